//! The `gateway` binary as a new user meets it: `--help`, `user create` printing a token,
//! `serve --demo` on a fresh data directory, the API with that token — and not one secret
//! in its logs (debug level), its responses or its database files; the README's first
//! steps run literally, twice; passwords and tokens from the command line; the startup
//! warning about credentials sealed with a missing key.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::mock_graph::GraphPhoneNumber;
use testkit::{GraphConfig, MockGraph, MockTwilioRest, TwilioAccount, TwilioRestConfig};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
const GRAPH_TOKEN: &str = "EAAGm0PX4ZCpsBAKZCsupersecretgraph77";
const APP_SECRET: &str = "0badc0ffee0badc0ffee0badc0ffee99";
const OPENAI_KEY: &str = "sk-test-never-log-this-key-42";

fn gateway(data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEWAY_DATA_DIR", data)
        .env("RUST_LOG", "debug");
    command
}

/// A `gateway serve` child process, its address and every line it logged.
struct Running {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `command` (a `serve` with JSON logs) and waits until it listens.
    fn start(mut command: Command) -> Self {
        let mut child =
            command.env("GATEWAY_LOG_FORMAT", "json").stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::<String>::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["fields"]["message"] == "gateway listening"
                {
                    let _ = addr_tx.send(event["fields"]["address"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(60)).expect("the gateway starts and logs its address");
        Self { child, base: format!("http://{addr}"), logs }
    }

    /// Stops the gateway and returns its logs.
    fn stop(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        self.logs.lock().unwrap().join("\n")
    }
}

/// Runs the binary with `stdin` as its input; returns (success, stdout, stderr).
fn run_with_input(mut command: Command, stdin: &str) -> (bool, String, String) {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn help_documents_the_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "GATEWAY_LISTEN",
        "GATEWAY_PUBLIC_URL",
        "DATABASE_URL",
        "GATEWAY_ENCRYPTION_KEY",
        "GATEWAY_ENCRYPTION_KEYS",
        "GATEWAY_ENCRYPTION_KEY_FILE",
        "GATEWAY_SESSION_TTL_HOURS",
        "GATEWAY_LOGIN_ATTEMPTS_PER_ACCOUNT",
        "GATEWAY_LOGIN_ATTEMPTS_PER_IP",
        "OPENAI_API_KEY",
        "OPENAI_REALTIME_URL",
        "GEMINI_API_KEY",
        "GEMINI_LIVE_URL",
        "TWILIO_API_BASE_URL",
        "META_GRAPH_BASE_URL",
        "META_GRAPH_API_VERSION",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}

#[test]
fn production_mode_refuses_to_start_without_an_encryption_key() {
    let data = tempfile::tempdir().unwrap();
    let out = gateway(data.path()).args(["serve", "--production", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEWAY_ENCRYPTION_KEY"));
}

#[tokio::test]
async fn a_new_user_starts_the_gateway_and_uses_the_api_without_secrets_leaking() {
    let data = tempfile::tempdir().unwrap();
    let twilio = MockTwilioRest::start(TwilioRestConfig {
        accounts: vec![TwilioAccount::new(SID, TWILIO_TOKEN, &["+15551234567"])],
    })
    .await;
    let graph =
        MockGraph::start(GraphConfig { numbers: vec![GraphPhoneNumber::new("106853218861309", GRAPH_TOKEN)] }).await;

    // `gateway user create` prints the token as its last line.
    let out = gateway(data.path())
        .args(["user", "create", "--email", "root@example.com", "--role", "master_admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("gw_"), "{stdout}");

    let mut serve = gateway(data.path());
    serve
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("TWILIO_API_BASE_URL", twilio.base_url())
        .env("META_GRAPH_BASE_URL", graph.base_url());
    let running = Running::start(serve);
    let base = running.base.clone();
    let http = reqwest::Client::new();
    let mut responses = String::new();

    let companies: Value =
        http.get(format!("{base}/api/admin/companies")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let demo =
        companies.as_array().unwrap().iter().find(|c| c["name"] == "Demo Company").expect("the demo company exists");
    assert_eq!(demo["settings"]["features"]["callEnabled"], true);
    let company = demo["id"].as_str().unwrap().to_owned();
    let bots: Value = http
        .get(format!("{base}/api/company/chatbots"))
        .bearer_auth(&token)
        .header("X-Company-Id", &company)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bots[0]["chatbotType"], "call", "the demo has a call chatbot");

    for body in [
        json!({"accountType": "twilio", "name": "Main", "accountSid": SID, "authToken": TWILIO_TOKEN, "phoneNumber": "+15551234567"}),
        json!({"accountType": "whatsapp", "name": "WA", "businessAccountId": "1234567890", "phoneNumberId": "106853218861309",
               "phoneNumber": "+15555555555", "accessToken": GRAPH_TOKEN, "appSecret": APP_SECRET}),
    ] {
        let created = http
            .post(format!("{base}/api/company/integration-accounts"))
            .bearer_auth(&token)
            .header("X-Company-Id", &company)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        responses.push_str(&created.to_string());
        let id = created["id"].as_str().unwrap();
        let report = http
            .post(format!("{base}/api/company/integration-accounts/{id}/test"))
            .bearer_auth(&token)
            .header("X-Company-Id", &company)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(report.contains("\"ok\":true"), "{report}");
        responses.push_str(&report);
    }
    let listed = http
        .get(format!("{base}/api/company/integration-accounts"))
        .bearer_auth(&token)
        .header("X-Company-Id", &company)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    responses.push_str(&listed);

    let logs = running.stop();
    assert!(logs.contains("demo company ready"), "{logs}");
    assert!(logs.contains("integration account tested"));
    for secret in [TWILIO_TOKEN, GRAPH_TOKEN, APP_SECRET, OPENAI_KEY] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs");
        assert!(!responses.contains(secret), "{secret} appeared in a response");
        for path in files_under(data.path()) {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in {}", path.display());
        }
    }
}

/// The shell block under "## Try it" in the README.
fn readme_first_steps() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## Try it").expect("the README has a Try it section")..];
    let start = section.find("```sh\n").expect("with a shell block") + "```sh\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

#[test]
fn the_readme_first_steps_work_when_followed_literally_twice() {
    let script = readme_first_steps();
    assert!(!script.contains("jq"), "the first steps need nothing beyond curl");
    assert!(!script.contains("target/release"), "no hard-coded binary path");
    // Run from a fresh "repository root": `./run.sh` (here `serve --demo`) and the README's
    // commands find the same ./data there. The test binary stands in for `cargo run --release`.
    let root = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_gateway"));
    serve.current_dir(root.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).args([
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
    ]);
    let running = Running::start(serve);
    let addr = running.base.trim_start_matches("http://").to_owned();
    let script = script
        .replace("cargo run -q --release --bin gateway --", env!("CARGO_BIN_EXE_gateway"))
        .replace("localhost:8080", &addr);
    for run in 1..=2 {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(root.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "run {run} failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains(r#""email":"admin@example.com","role":"company_admin""#), "run {run}: {stdout}");
        assert!(stdout.contains(r#""name":"Demo Company""#), "run {run}: {stdout}");
        assert!(stdout.contains(r#""name":"Demo Voice Agent""#), "run {run}: the demo chatbot is listed: {stdout}");
        assert!(!stdout.contains(r#""error""#), "run {run}: {stdout}");
        if run == 2 {
            assert!(
                stdout.contains("user admin@example.com exists (company_admin); already in the companies named"),
                "{stdout}"
            );
            assert!(stdout.contains("password unchanged"), "{stdout}");
        }
    }
    // The password the README sets signs in.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/auth/login", running.base))
            .json(&json!({"email": "admin@example.com", "password": "change-me-please"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    running.stop();
}

#[tokio::test]
async fn passwords_and_tokens_are_managed_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let user = |args: &[&str]| {
        let mut command = gateway(data.path());
        command.arg("user").args(args).env("RUST_LOG", "warn");
        command
    };
    let (ok, _, stderr) = run_with_input(
        user(&["create", "--email", "ops@example.com", "--role", "master_admin", "--password-stdin"]),
        "short\n",
    );
    assert!(!ok && stderr.contains("at least 8 characters"), "{stderr}");
    let (ok, stdout, stderr) = run_with_input(
        user(&["create", "--email", "ops@example.com", "--role", "master_admin", "--password-stdin"]),
        "first-password-1\n",
    );
    assert!(ok, "{stderr}");
    let token = stdout.lines().last().unwrap().to_owned();
    assert!(!stdout.contains("first-password-1") && !stderr.contains("first-password-1"));
    let (ok, _, stderr) = run_with_input(
        user(&["create", "--email", "ops@example.com", "--role", "company_admin", "--company", "x"]),
        "",
    );
    assert!(!ok && stderr.contains("no company is named"), "{stderr}");

    let mut serve = gateway(data.path());
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let running = Running::start(serve);
    let http = reqwest::Client::new();
    let login = |password: &'static str| {
        http.post(format!("{}/api/auth/login", running.base))
            .json(&json!({"email": "ops@example.com", "password": password}))
            .send()
    };
    let signed_in = login("first-password-1").await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let me = |cookie: String| http.get(format!("{}/api/me", running.base)).header("Cookie", cookie).send();
    assert_eq!(me(cookie.clone()).await.unwrap().status(), 200);

    // A new password from stdin ends the sessions; only the new password signs in.
    let (ok, stdout, stderr) = run_with_input(user(&["passwd", "--email", "ops@example.com"]), "second-password-2\r\n");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 sign-in session(s) ended"), "{stdout}");
    assert_eq!(me(cookie).await.unwrap().status(), 401);
    assert_eq!(login("first-password-1").await.unwrap().status(), 401);
    assert_eq!(login("second-password-2").await.unwrap().status(), 200);

    // Tokens: one more with a short life, then all of them revoked.
    let (ok, stdout, _) = run_with_input(user(&["token", "--email", "ops@example.com", "--token-ttl-days", "1"]), "");
    assert!(ok);
    let short = stdout.trim().to_owned();
    let users: Value = http
        .get(format!("{}/api/admin/users?email=ops@example.com", running.base))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens: Value = http
        .get(format!("{}/api/admin/users/{}/tokens", running.base, users[0]["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expiries: Vec<chrono::DateTime<chrono::Utc>> =
        tokens.as_array().unwrap().iter().map(|t| t["expiresAt"].as_str().unwrap().parse().unwrap()).collect();
    let days = |at: &chrono::DateTime<chrono::Utc>| (*at - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(expiries.iter().any(|at| (0.9..=1.0).contains(&days(at))), "a one-day token: {tokens}");
    assert!(expiries.iter().any(|at| (89.9..=90.0).contains(&days(at))), "a 90-day token: {tokens}");

    let (ok, stdout, _) = run_with_input(user(&["revoke-tokens", "--email", "ops@example.com"]), "");
    assert!(
        ok && stdout.contains("revoked 2 API token(s) of ops@example.com and ended 1 sign-in session(s)"),
        "{stdout}"
    );
    for token in [&token, &short] {
        let refused = http.get(format!("{}/api/me", running.base)).bearer_auth(token).send().await.unwrap();
        assert_eq!(refused.status(), 401);
    }
    let logs = running.stop();
    for secret in ["first-password-1", "second-password-2", token.as_str(), short.as_str()] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs");
    }
}

#[tokio::test]
async fn startup_names_the_accounts_sealed_with_a_key_it_does_not_have() {
    use base64::Engine;
    let data = tempfile::tempdir().unwrap();
    let key = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    let url = format!("sqlite://{}?mode=rwc", data.path().join("gateway.db").display());
    let store = gateway::store::Store::connect(&url, 2).await.unwrap();
    let company = store.create_company("Acme", &gateway::settings::CompanySettings::default()).await.unwrap();
    let old = gateway::crypto::Sealer::from_key_list(&format!("k1:{}", key(1))).unwrap();
    let id = gateway::ids::IntegrationAccountId::new();
    let account = gateway::store::NewIntegrationAccount {
        id,
        account_type: gateway::store::AccountType::Twilio,
        name: "Main line".into(),
        description: String::new(),
        phone_number: "+15551234567".into(),
        chatbot_id: None,
        public_config: serde_json::Map::new(),
        credentials: old.seal(b"{}", id.as_string().as_bytes()),
    };
    store.create_integration_account(company.id, account).await.unwrap();
    store.close().await;

    let mut serve = gateway(data.path());
    serve.args(["serve", "--listen", "127.0.0.1:0"]).env("GATEWAY_ENCRYPTION_KEYS", format!("k2:{}", key(2)));
    let logs = Running::start(serve).stop();
    let warning = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["fields"]["account_id"] == id.to_string())
        .unwrap_or_else(|| panic!("no warning about account {id}: {logs}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["account"], "Main line");
    assert_eq!(warning["fields"]["key_id"], "k1");
    assert_eq!(warning["fields"]["company_id"], company.id.to_string());
}

/// Every file under `dir`, however deep.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_new_sqlite_file_named_by_database_url_is_created_with_its_directory() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("fresh").join("dir").join("new.db");
    let out = gateway(data.path())
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}", file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(file.exists());
}

#[test]
fn an_unreachable_postgres_fails_fast_in_one_clear_line() {
    let data = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    // Port 1: nothing listens there.
    let out = gateway(data.path())
        .arg("migrate")
        .env("DATABASE_URL", "postgres://gw:s3cret@127.0.0.1:1/gateway")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, no backtrace: {stderr}");
    let line = lines[0].to_lowercase();
    assert!(line.contains("127.0.0.1:1/gateway"), "{stderr}");
    assert_eq!(line.matches("connection refused").count(), 1, "the cause once: {stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let out = gateway(data.path()).arg("migrate").env("RUST_LOG", "info").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migrations applied"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape codes in piped logs: {stderr:?}");
}

/// The repository root (this crate's manifest directory).
fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn run_sh_says_the_first_build_takes_minutes_before_building_and_shows_cargo_progress() {
    // A stand-in `cargo` that records how it was called and stops the script there.
    let bin = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    let fake = bin.path().join("cargo");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" >> {}\nexit 3\n", calls.display())).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg(repo().join("run.sh"))
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the stand-in cargo failed the build: {stderr}");
    assert!(stderr.contains("minutes"), "the first build is announced: {stderr}");
    let called = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(called.starts_with("build --release"), "cargo builds first, showing its progress: {called}");
    assert!(called.contains("--bin gateway"), "{called}");
}

#[test]
fn the_readme_names_the_build_prerequisites_before_the_first_command() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let first_command = readme.find("```sh").expect("the README has commands");
    let before = &readme[..first_command];
    for needed in ["cmake", "C compiler", "pkg-config"] {
        assert!(before.contains(needed), "{needed} is not named before the first command");
    }
}
