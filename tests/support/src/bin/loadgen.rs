//! Load generator: N concurrent callers against a real gateway process whose AI provider
//! is the mock OpenAI Realtime server (in this process), for S seconds.
//!
//! `cargo run --release --bin loadgen -- --channel web --calls 40 --seconds 60`
//!
//! The gateway runs as its own process (the release binary, built first if needed) so its
//! CPU time and memory are measured alone. The callers come in on one channel:
//!
//! - `web` (default): WebRTC callers as the browser widget dials (Opus at 48 kHz);
//! - `twilio`: phone calls through the Twilio simulator — the signed Voice webhook, the
//!   TwiML read as Twilio reads it, the Media Streams WebSocket with 20 ms of μ-law every
//!   20 ms — on a Twilio account made through the REST API and checked against the mock
//!   Twilio REST API (the gateway's `TWILIO_API_BASE_URL`);
//! - `whatsapp`: WhatsApp calls through the WhatsApp simulator — signed `connect` and
//!   `terminate` webhooks, the mock Graph API (the gateway's `META_GRAPH_BASE_URL`) and
//!   Meta's ICE-lite WebRTC peer per call — on a WhatsApp account made the same way.
//!
//! Every caller keeps the same conversation going: it speaks for 1.5 s every 6 s, and the
//! agent answers each turn with 2 s of audio streamed faster than real time, as the real
//! API does. `--record` turns the chatbot's call recording on first. At the end one JSON
//! line reports gateway CPU seconds per call per minute, peak RSS, the late-frame ratio,
//! and the gateway-added latency (p50/p99) in each direction, read from the gateway's
//! `/metrics`, with the machine's load average so runs can be compared.

// A command-line tool: its report goes to stdout, progress to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use testkit::mock_openai_realtime::{MockOpenAiRealtime, OpenAiRealtimeConfig};
use testkit::script::MockReply;
use testkit::twilio_sim::utterance_8k;
use testkit::{
    CallParties, Caller, MockTwilioRest, PlaceCall, TwilioAccount, TwilioRestConfig, TwilioSim, TwilioSimConfig,
    WebhookTarget, WhatsAppSim, WhatsAppSimConfig, utterance,
};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Concurrent callers against a gateway on the mock provider")]
struct Args {
    /// How the callers come in.
    #[arg(long, value_enum, default_value_t = Channel::Web)]
    channel: Channel,
    /// Concurrent calls.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Seconds to hold the calls after they all connected.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The gateway binary (default: target/release/gateway, built with cargo if missing).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Seconds over which callers dial in.
    #[arg(long, default_value_t = 5)]
    ramp_seconds: u64,
    /// Record every call (the chatbot's `recordingEnabled` call setting).
    #[arg(long)]
    record: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Channel {
    /// Browser callers over WebRTC (the widget).
    Web,
    /// Phone callers through Twilio Media Streams.
    Twilio,
    /// WhatsApp callers: Meta's webhooks, Graph and WebRTC.
    Whatsapp,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Twilio => "twilio",
            Self::Whatsapp => "whatsapp",
        }
    }
}

/// The Twilio account and number the phone calls go to.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e";
const NUMBER: &str = "+15551234567";
/// The WhatsApp account's access token (the Graph mock takes it) and app secret (Meta
/// signs webhooks with it).
const ACCESS_TOKEN: &str = "EAAtest-whatsapp-system-user-token";
const APP_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// How often a caller speaks, and for how long.
const TURN: Duration = Duration::from_secs(6);
const UTTERANCE_MS: usize = 1500;
/// Frames quieter than this were not agent audio.
const HEARD_DBFS: f32 = -50.0;

struct Gateway {
    child: Child,
    base: String,
    pid: u32,
    data: tempfile::TempDir,
}

impl Gateway {
    fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.gateway_bin {
        return Ok(path.clone());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    eprintln!("building the release gateway (cargo build --release -p gateway --bin gateway)…");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "gateway", "--bin", "gateway"])
        .current_dir(&root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the gateway failed");
    }
    Ok(root.join("target/release/gateway"))
}

/// Where the gateway finds the simulated outside world.
struct Upstreams {
    /// The mock OpenAI Realtime's WebSocket base.
    openai_ws: String,
    /// The mock Twilio REST API (phone calls only).
    twilio_rest: Option<String>,
    /// The mock Graph API (WhatsApp calls only).
    graph: Option<String>,
}

fn start_gateway(bin: &Path, upstreams: &Upstreams) -> anyhow::Result<(Gateway, String)> {
    let data = tempfile::tempdir()?;
    let env = |command: &mut Command| {
        command
            .env("GATEWAY_DATA_DIR", data.path())
            .env("OPENAI_API_KEY", "sk-test-openai")
            .env("OPENAI_REALTIME_URL", format!("{}/realtime", upstreams.openai_ws))
            .env("GATEWAY_RTC_BIND_IP", "127.0.0.1")
            .env("GATEWAY_WIDGET_SESSIONS_PER_MINUTE", "100000")
            .env("GATEWAY_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,gateway=info");
        if let Some(url) = &upstreams.twilio_rest {
            command.env("TWILIO_API_BASE_URL", url);
        }
        if let Some(url) = &upstreams.graph {
            command.env("META_GRAPH_BASE_URL", url);
        }
    };
    let mut create = Command::new(bin);
    env(&mut create);
    let out = create.args(["user", "create", "--email", "load@gateway.test", "--role", "master_admin"]).output()?;
    if !out.status.success() {
        bail!("gateway user create failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let token = String::from_utf8(out.stdout)?.lines().last().unwrap_or_default().trim().to_owned();

    let mut serve = Command::new(bin);
    env(&mut serve);
    let mut child = serve
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the gateway")?;
    let stderr = child.stderr.take().context("gateway stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if event["fields"]["message"] == "gateway listening" {
                    let _ = tx.send(event["fields"]["address"].as_str().unwrap_or_default().to_owned());
                }
                if event["level"] == "ERROR" {
                    eprintln!("gateway: {line}");
                }
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).context("the gateway did not start")?;
    let pid = child.id();
    Ok((Gateway { child, base: format!("http://{addr}"), pid, data }, token))
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// `name{labels} value` lines of the Prometheus text format.
fn metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The 1-minute load average of the machine.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

/// `.ogg` files under `dir`, recursively (the local recordings storage).
fn recordings_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() { recordings_in(&path) } else { usize::from(path.extension().is_some_and(|e| e == "ogg")) }
        })
        .sum()
}

/// The gateway's REST API as the master admin, in the demo company.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    company: String,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.token).header("X-Company-Id", &self.company).send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("the gateway answered {status}: {body}");
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body)).await
    }

    /// Creates an integration account bound to `bot` and runs its connection test, as an
    /// admin does in the console; returns the account as created.
    async fn integration_account(&self, mut body: Value, bot: &str) -> anyhow::Result<Value> {
        body["chatbotId"] = json!(bot);
        let account = self.post("/api/company/integration-accounts", body).await?;
        let id = account["id"].as_str().context("account id")?;
        let tested = self.post(&format!("/api/company/integration-accounts/{id}/test"), json!({})).await?;
        if tested["ok"] != true {
            bail!("the account's connection test failed: {tested}");
        }
        Ok(account)
    }
}

/// The simulated outside world the callers come through.
enum Line {
    Web { base: String, bot: String },
    Twilio { rest: MockTwilioRest, webhook_url: String },
    WhatsApp(Arc<WhatsAppSim>),
}

/// What one caller got out of its call.
#[derive(Default)]
struct CallResult {
    /// 20 ms frames of agent audio the caller heard.
    heard_frames: usize,
    /// Messages the simulated Twilio or Meta would have refused.
    faults: usize,
}

/// A browser caller: widget session, WebRTC, talk, hang up.
async fn web_call(
    http: reqwest::Client,
    base: String,
    bot: String,
    active: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> anyhow::Result<CallResult> {
    let session: Value = http
        .post(format!("{base}/api/widget/call/session"))
        .json(&json!({"chatbotId": bot}))
        .send()
        .await?
        .json()
        .await?;
    let ws_url = session["wsUrl"].as_str().context("wsUrl")?;
    let caller = Caller::dial(ws_url).await?;
    caller.wait_for_state("active", Duration::from_secs(30)).await?;
    active.fetch_add(1, Ordering::SeqCst);
    let speech = utterance(UTTERANCE_MS);
    let mut turn = tokio::time::interval(TURN);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = turn.tick() => caller.say(speech.clone()).await,
        }
    }
    caller.hang_up().await;
    let _ = caller.wait_for_state("ended", Duration::from_secs(10)).await;
    let heard_frames = caller.loud_frames(HEARD_DBFS).len();
    caller.close().await;
    Ok(CallResult { heard_frames, faults: 0 })
}

/// A phone caller: Twilio's webhook, the TwiML's stream, talk, hang up.
async fn twilio_call(sim: TwilioSim, active: Arc<AtomicUsize>, stop: CancellationToken) -> anyhow::Result<CallResult> {
    let call = sim.dial().await?;
    active.fetch_add(1, Ordering::SeqCst);
    let speech = utterance_8k(UTTERANCE_MS);
    let mut turn = tokio::time::interval(TURN);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = turn.tick() => call.say(&speech).await,
        }
    }
    call.hang_up().await;
    let _ = call.wait_ended(Duration::from_secs(10)).await;
    Ok(CallResult { heard_frames: (call.heard_audio_ms() / 20) as usize, faults: call.faults().len() })
}

/// A WhatsApp caller: Meta's connect, the gateway's pre_accept and accept, talk, hang up.
async fn whatsapp_call(
    sim: Arc<WhatsAppSim>,
    parties: CallParties,
    active: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> anyhow::Result<CallResult> {
    let call = sim.place_call_with(PlaceCall { parties: Some(parties), ..PlaceCall::default() }).await?;
    call.wait_accepted(Duration::from_secs(30)).await?;
    active.fetch_add(1, Ordering::SeqCst);
    let speech = utterance(UTTERANCE_MS);
    let mut turn = tokio::time::interval(TURN);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = turn.tick() => call.say(speech.clone()).await,
        }
    }
    call.hang_up();
    let _ = call.wait_ended(Duration::from_secs(10)).await;
    let heard_frames = call.heard().iter().filter(|h| h.dbfs > HEARD_DBFS).count();
    call.close().await;
    Ok(CallResult { heard_frames, faults: 0 })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = gateway_binary(&args)?;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        reply: MockReply::tone("Thanks, let me look into that for you right away.", 2000),
        user_transcript: "I have a question about my order.".into(),
        ..OpenAiRealtimeConfig::default()
    })
    .await;
    let twilio_rest = match args.channel {
        Channel::Twilio => Some(
            MockTwilioRest::start(TwilioRestConfig {
                accounts: vec![TwilioAccount::new(ACCOUNT_SID, AUTH_TOKEN, &[NUMBER])],
            })
            .await,
        ),
        _ => None,
    };
    let whatsapp = match args.channel {
        Channel::Whatsapp => Some(
            WhatsAppSim::start(WhatsAppSimConfig { access_token: ACCESS_TOKEN.into(), ..WhatsAppSimConfig::default() })
                .await,
        ),
        _ => None,
    };
    let upstreams = Upstreams {
        openai_ws: mock.ws_base_url(),
        twilio_rest: twilio_rest.as_ref().map(MockTwilioRest::base_url),
        graph: whatsapp.as_ref().map(|sim| sim.graph().base_url()),
    };
    let (gateway, token) = start_gateway(&bin, &upstreams)?;
    let http = reqwest::Client::new();
    let companies: Value =
        http.get(format!("{}/api/admin/companies", gateway.base)).bearer_auth(&token).send().await?.json().await?;
    let company = companies[0]["id"].as_str().context("demo company")?.to_owned();
    let api = Api { http: http.clone(), base: gateway.base.clone(), token, company };
    let bots = api.get("/api/company/chatbots").await?;
    let bot = bots[0]["id"].as_str().context("demo chatbot")?.to_owned();
    if args.record {
        api.patch(&format!("/api/company/chatbots/{bot}/call-settings"), json!({"recordingEnabled": true})).await?;
    }

    let line = match (args.channel, twilio_rest, whatsapp) {
        (Channel::Twilio, Some(rest), _) => {
            let account = api
                .integration_account(
                    json!({"accountType": "twilio", "name": "Load line", "accountSid": ACCOUNT_SID,
                        "authToken": AUTH_TOKEN, "phoneNumber": NUMBER}),
                    &bot,
                )
                .await?;
            let webhook_url = account["webhookUrl"].as_str().context("webhookUrl")?.to_owned();
            Line::Twilio { rest, webhook_url }
        }
        (Channel::Whatsapp, _, Some(sim)) => {
            let parties = sim.config().parties.clone();
            let account = api
                .integration_account(
                    json!({"accountType": "whatsapp", "name": "Load line", "businessAccountId": parties.waba_id,
                        "phoneNumberId": parties.phone_number_id, "phoneNumber": format!("+{}", parties.business_number),
                        "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET}),
                    &bot,
                )
                .await?;
            sim.set_webhook(WebhookTarget {
                url: account["webhookUrl"].as_str().context("webhookUrl")?.to_owned(),
                app_secret: APP_SECRET.into(),
                verify_token: account["verifyToken"].as_str().context("verifyToken")?.to_owned(),
            });
            Line::WhatsApp(Arc::new(sim))
        }
        _ => Line::Web { base: gateway.base.clone(), bot: bot.clone() },
    };

    eprintln!("dialling {} {} calls over {} s…", args.calls, args.channel.name(), args.ramp_seconds);
    let active = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..args.calls {
        let (active, stop) = (active.clone(), stop.clone());
        let delay = Duration::from_millis(args.ramp_seconds * 1000 * i as u64 / args.calls.max(1) as u64);
        let call: BoxFuture<'static, anyhow::Result<CallResult>> = match &line {
            Line::Web { base, bot } => web_call(http.clone(), base.clone(), bot.clone(), active, stop.clone()).boxed(),
            Line::Twilio { rest, webhook_url } => {
                let mut config = TwilioSimConfig::new(webhook_url, ACCOUNT_SID, AUTH_TOKEN, NUMBER);
                // Every call from its own phone.
                config.from = format!("+1415555{:04}", i % 10_000);
                twilio_call(TwilioSim::new(config).with_rest(rest), active, stop.clone()).boxed()
            }
            Line::WhatsApp(sim) => {
                let mut parties = sim.config().parties.clone();
                parties.user_wa_id = format!("1631555{:04}", i % 10_000);
                parties.user_name = format!("Caller {i}");
                whatsapp_call(sim.clone(), parties, active, stop.clone()).boxed()
            }
        };
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            call.await
        }));
    }
    let ramp_deadline = Instant::now() + Duration::from_secs(args.ramp_seconds + 30);
    while active.load(Ordering::SeqCst) < args.calls && Instant::now() < ramp_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connected = active.load(Ordering::SeqCst);
    eprintln!("{connected}/{} calls active; measuring for {} s…", args.calls, args.seconds);

    let before = metrics(&http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?);
    let load_before = load_average();
    let cpu_before = cpu_seconds(gateway.pid);
    let own_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(gateway.pid) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    let load_after = load_average();
    let after = metrics(&http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?);
    stop.cancel();
    let mut heard_frames = 0;
    let mut faults = 0;
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(result)) => {
                heard_frames += result.heard_frames;
                faults += result.faults;
            }
            Ok(Err(err)) => {
                eprintln!("a call failed: {err:#}");
                failed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    if let Line::WhatsApp(sim) = &line {
        faults += sim.graph().protocol_errors().len();
    }
    let recordings = if args.record {
        // Recordings are finished and stored after their calls end.
        let deadline = Instant::now() + Duration::from_secs(10);
        let dir = gateway.data_dir().join("recordings");
        while recordings_in(&dir) < connected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(recordings_in(&dir))
    } else {
        None
    };
    let peak_rss = peak_rss_mib(gateway.pid);

    let delta = |name: &str| after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
    let frames = delta("gateway_frames_sent_total");
    let late = delta("gateway_frames_late_total");
    let quantile = |name: &str, q: &str| after.get(&format!("{name}{{quantile=\"{q}\"}}")).copied().map(|s| s * 1000.0);
    let report = json!({
        "channel": args.channel.name(),
        "record": args.record,
        "calls": args.calls,
        "connected": connected,
        "failed": failed,
        "seconds": elapsed,
        "gateway_cpu_seconds": cpu,
        "gateway_cpu_cores": cpu / elapsed,
        "cpu_seconds_per_call_minute": if connected > 0 { cpu / connected as f64 / (elapsed / 60.0) } else { 0.0 },
        "calls_per_core_at_this_rate": if cpu > 0.0 { connected as f64 * elapsed / cpu } else { 0.0 },
        "peak_rss_mib": peak_rss,
        "frames_sent": frames,
        "late_frames": late,
        "late_frame_ratio": if frames > 0.0 { late / frames } else { 0.0 },
        "inbound_latency_ms": {"p50": quantile("gateway_inbound_latency_seconds", "0.5"), "p99": quantile("gateway_inbound_latency_seconds", "0.99")},
        "outbound_latency_ms": {"p50": quantile("gateway_outbound_latency_seconds", "0.5"), "p99": quantile("gateway_outbound_latency_seconds", "0.99")},
        "agent_audio_heard_frames": heard_frames,
        "provider_audio_received_ms": mock.audio_received_ms(),
        "protocol_faults": faults,
        "recordings_stored": recordings,
        "loadgen_cpu_cores": own_cpu / elapsed,
        "load_average": {"before": load_before, "after": load_after},
    });
    drop(gateway);
    println!("{report}");
    Ok(())
}
