//! The `gateway` binary as a new user meets it: `--help`, `user create` printing a token,
//! `serve --demo` on a fresh data directory, the API with that token — and not one secret
//! in its logs (debug level), its responses or its database files.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

#[test]
fn help_documents_the_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "GATEWAY_LISTEN",
        "GATEWAY_PUBLIC_URL",
        "DATABASE_URL",
        "GATEWAY_ENCRYPTION_KEY",
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

    let mut child = gateway(data.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("GATEWAY_LOG_FORMAT", "json")
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("TWILIO_API_BASE_URL", twilio.base_url())
        .env("META_GRAPH_BASE_URL", graph.base_url())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
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
    let base = format!("http://{addr}");
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

    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let logs = logs.lock().unwrap().join("\n");
    assert!(logs.contains("demo company ready"), "{logs}");
    assert!(logs.contains("integration account tested"));
    for secret in [TWILIO_TOKEN, GRAPH_TOKEN, APP_SECRET, OPENAI_KEY] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs");
        assert!(!responses.contains(secret), "{secret} appeared in a response");
        for entry in std::fs::read_dir(data.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the data directory");
        }
    }
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
