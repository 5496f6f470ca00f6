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
//!
//! `--agent` (web and twilio) puts a human agent on every call: the chatbot escalates
//! (`escalationEnabled`), the mock model calls `escalate_to_human` at the end of the
//! caller's first turn, and each call has its own support agent (an account made with
//! `gateway user create --role support_agent`, its console socket `GET /api/agent/ws`
//! available before the call dials) who accepts the offer of that call (matched by
//! `callId`, or on the phone by the caller's number), opens `join.wsUrl` with a WebRTC
//! client (the same client as a browser caller) and, once its leg is active, talks: 2 s
//! every 6 s, between the caller's turns, as the AI's answers did. The measurement
//! starts when every call has its agent (or its join failed), so it covers the
//! with-agent phase only; the report counts agents joined, failed, and still on the call
//! when the window closed, what callers and agents heard in the window, the packet gaps
//! they saw, and the time from a speaker's first frame to the listener's first loud one.

// A command-line tool: its report goes to stdout, progress to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::mock_openai_realtime::{MockOpenAiRealtime, OpenAiRealtimeConfig};
use testkit::script::MockReply;
use testkit::twilio_sim::utterance_8k;
use testkit::{
    CallParties, Caller, MockTwilioRest, PlaceCall, ScriptedToolCall, TwilioAccount, TwilioRestConfig, TwilioSim,
    TwilioSimConfig, WebhookTarget, WhatsAppSim, WhatsAppSimConfig, utterance,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
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
    /// A human agent joins every call after the caller's first turn (web and twilio);
    /// the measurement covers the time they are on.
    #[arg(long)]
    agent: bool,
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
/// How long a human agent speaks each turn (as long as the AI's answers), half a turn
/// after the caller.
const AGENT_UTTERANCE_MS: usize = 2000;
/// How long an agent's join (offer, accept, WebRTC) may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// An inter-arrival gap of a whole frame or more beyond the 20 ms cadence.
const GAP: Duration = Duration::from_millis(40);
/// Frames quieter than this were not agent audio.
const HEARD_DBFS: f32 = -50.0;

struct Gateway {
    child: Child,
    base: String,
    pid: u32,
    data: tempfile::TempDir,
    bin: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Gateway {
    fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs `gateway <args>` (the CLI) on the serving gateway's database; its stdout.
    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        cli(&self.bin, &self.env, args)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(bin: &Path, env: &[(&'static str, String)], args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).args(args).output()?;
    if !out.status.success() {
        bail!("gateway {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
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
    let mut env = vec![
        ("GATEWAY_DATA_DIR", data.path().display().to_string()),
        ("OPENAI_API_KEY", "sk-test-openai".to_owned()),
        ("OPENAI_REALTIME_URL", format!("{}/realtime", upstreams.openai_ws)),
        ("GATEWAY_RTC_BIND_IP", "127.0.0.1".to_owned()),
        ("GATEWAY_WIDGET_SESSIONS_PER_MINUTE", "100000".to_owned()),
        ("GATEWAY_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn,gateway=info".to_owned()),
    ];
    if let Some(url) = &upstreams.twilio_rest {
        env.push(("TWILIO_API_BASE_URL", url.clone()));
    }
    if let Some(url) = &upstreams.graph {
        env.push(("META_GRAPH_BASE_URL", url.clone()));
    }
    let out = cli(bin, &env, &["user", "create", "--email", "load@gateway.test", "--role", "master_admin"])?;
    let token = out.lines().last().unwrap_or_default().trim().to_owned();

    let mut child = Command::new(bin)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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
    Ok((Gateway { child, base: format!("http://{addr}"), pid, data, bin: bin.to_owned(), env }, token))
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_times(pid);
    user + system
}

/// utime and stime of a process (user space, and the kernel on its behalf), in seconds.
fn cpu_times(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
    (ticks(11) / 100.0, ticks(12) / 100.0)
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

/// The `q` quantile (nearest rank) of `values`; None without values.
fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

/// CPU seconds the whole machine spent busy (not idle, not waiting for I/O), from
/// `/proc/stat`'s `cpu` line (in USER_HZ ticks of 1/100 s).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    let busy: f64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy / 100.0
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
    /// With `--agent`: what the call's agent did.
    agent: Option<AgentResult>,
    /// Loud frames the caller heard inside the measured window.
    caller_heard_in_window: usize,
    /// Packets a WebRTC caller received inside the window, and gaps of [`GAP`] or more
    /// between them.
    caller_packets: Option<Packets>,
}

/// What one call's human agent did.
#[derive(Default)]
struct AgentResult {
    /// Their media leg reported `active`.
    joined: bool,
    /// The offer reached their console → their leg active.
    join_ms: f64,
    /// Their leg ended before the measured window closed.
    left_early: bool,
    /// Loud frames (the caller's voice) the agent heard inside the window.
    heard_in_window: usize,
    /// Packets the agent received inside the window, and gaps.
    packets: Packets,
    /// A speaker's first frame of an utterance sent → the listener's first loud frame
    /// received, in milliseconds, for utterances started inside the window.
    to_caller_ms: Vec<f64>,
    to_agent_ms: Vec<f64>,
}

/// Packets received and inter-arrival gaps of [`GAP`] or more.
#[derive(Default, Clone, Copy)]
struct Packets {
    received: usize,
    gaps: usize,
}

impl std::ops::AddAssign for Packets {
    fn add_assign(&mut self, other: Self) {
        self.received += other.received;
        self.gaps += other.gaps;
    }
}

/// The measured window, set by the main task just before it stops the calls.
type Window = Arc<OnceLock<(Instant, Instant)>>;

fn in_window(window: &Window, at: Instant) -> bool {
    window.get().is_some_and(|&(start, end)| at >= start && at <= end)
}

/// Packets heard inside the window, and their gaps.
fn packets(heard: &[testkit::Heard], window: &Window) -> Packets {
    let arrivals: Vec<Instant> = heard.iter().map(|h| h.at).filter(|&at| in_window(window, at)).collect();
    let gaps = arrivals.windows(2).filter(|pair| pair[1].saturating_duration_since(pair[0]) >= GAP).count();
    Packets { received: arrivals.len(), gaps }
}

/// For each utterance `speaker` started inside the window, the time to the first loud
/// frame `listener` received (within a second).
fn mouth_to_ear(speaker: &Caller, listener: &Caller, window: &Window) -> Vec<f64> {
    let loud = listener.loud_frames(HEARD_DBFS);
    speaker
        .speech_started()
        .into_iter()
        .filter(|&at| in_window(window, at))
        .filter_map(|started| {
            let first = loud.iter().find(|h| h.at >= started)?;
            let ms = first.at.duration_since(started).as_secs_f64() * 1000.0;
            (ms < 1000.0).then_some(ms)
        })
        .collect()
}

/// The support agents: one account per call, and how many joined so far.
#[derive(Clone)]
struct Agents {
    http: reqwest::Client,
    base: String,
    tokens: Arc<Vec<String>>,
    joined: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One call's agent: their account, and their console socket once it is open.
struct AgentSeat {
    agents: Agents,
    token: String,
}

/// An agent on a call: their media client, and their console kept open until the end.
struct AgentOnCall {
    media: Caller,
    join_ms: f64,
}

impl AgentSeat {
    /// Opens the agent's console and goes available (before their call dials).
    async fn console(&self) -> anyhow::Result<Socket> {
        let url = format!("{}/api/agent/ws", self.agents.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("Authorization", format!("Bearer {}", self.token).parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.context("opening the agent console")?;
        socket.send(Message::text(json!({"type": "presence", "status": "available"}).to_string())).await?;
        let presence = next_message(&mut socket, |m| m["type"] == "presence").await?;
        if presence["status"] != "available" {
            bail!("the console is not available: {presence}");
        }
        Ok(socket)
    }

    /// Waits for the offer `offered` picks, accepts it, joins the media; the console is
    /// then kept open (and read, so its pings are answered) until `stop`.
    async fn join(
        &self,
        mut console: Socket,
        offered: impl Fn(&Value) -> bool,
        stop: CancellationToken,
    ) -> anyhow::Result<AgentOnCall> {
        let offer = next_message(&mut console, |m| m["type"] == "escalation" && offered(m)).await?;
        let since = Instant::now();
        let escalation = offer["escalationId"].as_str().context("escalationId")?;
        let response = self
            .agents
            .http
            .post(format!("{}/api/agent/escalations/{escalation}/accept", self.agents.base))
            .bearer_auth(&self.token)
            .json(&json!({}))
            .send()
            .await?;
        let status = response.status();
        let accepted: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("accepting the escalation: {status} {accepted}");
        }
        let ws_url = accepted["join"]["wsUrl"].as_str().context("join.wsUrl")?;
        let media = Caller::dial(ws_url).await?;
        media.wait_for_state("active", Duration::from_secs(30)).await?;
        let join_ms = since.elapsed().as_secs_f64() * 1000.0;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    message = console.next() => if !matches!(message, Some(Ok(_))) { break },
                }
            }
            let _ = console.close(None).await;
        });
        Ok(AgentOnCall { media, join_ms })
    }
}

/// The next console message `wanted` picks (others skipped), within [`JOIN_TIMEOUT`].
async fn next_message(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    tokio::time::timeout(JOIN_TIMEOUT, next_matching(socket, wanted))
        .await
        .context("no such message on the agent console")?
}

async fn next_matching(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    while let Some(message) = socket.next().await {
        if let Message::Text(text) = message? {
            let message: Value = serde_json::from_str(&text)?;
            if wanted(&message) {
                return Ok(message);
            }
        }
    }
    bail!("the agent console closed")
}

/// An agent's join, counted; a failure is reported and the call goes on without them.
async fn seat_agent(
    seat: &AgentSeat,
    console: Socket,
    offered: impl Fn(&Value) -> bool,
    stop: &CancellationToken,
) -> Option<AgentOnCall> {
    match seat.join(console, offered, stop.clone()).await {
        Ok(agent) => {
            seat.agents.joined.fetch_add(1, Ordering::SeqCst);
            Some(agent)
        }
        Err(err) => {
            eprintln!("an agent could not join: {err:#}");
            seat.agents.failed.fetch_add(1, Ordering::SeqCst);
            None
        }
    }
}

/// What the agent did, once the call is over; `stopped` is when the window closed.
fn agent_result(
    agent: Option<&AgentOnCall>,
    caller: Option<&Caller>,
    window: &Window,
    stopped: Instant,
) -> AgentResult {
    let Some(agent) = agent else { return AgentResult::default() };
    let media = &agent.media;
    let left_early =
        media.timed_events().iter().any(|(at, e)| e["type"] == "state" && e["state"] == "ended" && *at < stopped);
    AgentResult {
        joined: true,
        join_ms: agent.join_ms,
        left_early,
        heard_in_window: media.loud_frames(HEARD_DBFS).iter().filter(|h| in_window(window, h.at)).count(),
        packets: packets(&media.heard(), window),
        to_caller_ms: caller.map(|caller| mouth_to_ear(media, caller, window)).unwrap_or_default(),
        to_agent_ms: caller.map(|caller| mouth_to_ear(caller, media, window)).unwrap_or_default(),
    }
}

/// A browser caller: widget session, WebRTC, talk, hang up; with a `seat`, their agent
/// joins after the first turn and talks too.
async fn web_call(
    http: reqwest::Client,
    base: String,
    bot: String,
    active: Arc<AtomicUsize>,
    stop: CancellationToken,
    seat: Option<AgentSeat>,
    window: Window,
) -> anyhow::Result<CallResult> {
    let console = match &seat {
        Some(seat) => Some(seat.console().await?),
        None => None,
    };
    let session: Value = http
        .post(format!("{base}/api/widget/call/session"))
        .json(&json!({"chatbotId": bot}))
        .send()
        .await?
        .json()
        .await?;
    let ws_url = session["wsUrl"].as_str().context("wsUrl")?;
    let call_id = session["sessionId"].as_str().context("sessionId")?.to_owned();
    let caller = Caller::dial(ws_url).await?;
    caller.wait_for_state("active", Duration::from_secs(30)).await?;
    active.fetch_add(1, Ordering::SeqCst);
    let speech = utterance(UTTERANCE_MS);
    let mut agent = None;
    if let (Some(seat), Some(console)) = (&seat, console) {
        // The first turn asks for a person; the call's agent takes it.
        caller.say(speech.clone()).await;
        agent = seat_agent(seat, console, |offer| offer["callId"] == call_id.as_str(), &stop).await;
    }
    let agent_speech = utterance(AGENT_UTTERANCE_MS);
    let mut turn = tokio::time::interval(TURN);
    let mut agent_turn = tokio::time::interval_at(tokio::time::Instant::now() + TURN / 2, TURN);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = turn.tick() => caller.say(speech.clone()).await,
            _ = agent_turn.tick(), if agent.is_some() => {
                if let Some(agent) = &agent {
                    agent.media.say(agent_speech.clone()).await;
                }
            }
        }
    }
    let stopped = Instant::now();
    caller.hang_up().await;
    let _ = caller.wait_for_state("ended", Duration::from_secs(10)).await;
    if let Some(agent) = &agent {
        let _ = agent.media.wait_for_state("ended", Duration::from_secs(10)).await;
    }
    let result = CallResult {
        heard_frames: caller.loud_frames(HEARD_DBFS).len(),
        faults: 0,
        agent: seat.as_ref().map(|_| agent_result(agent.as_ref(), Some(&caller), &window, stopped)),
        caller_heard_in_window: caller.loud_frames(HEARD_DBFS).iter().filter(|h| in_window(&window, h.at)).count(),
        caller_packets: Some(packets(&caller.heard(), &window)),
    };
    caller.close().await;
    if let Some(agent) = agent {
        agent.media.close().await;
    }
    Ok(result)
}

/// A phone caller: Twilio's webhook, the TwiML's stream, talk, hang up; with a `seat`,
/// their agent joins after the first turn and talks too.
async fn twilio_call(
    sim: TwilioSim,
    active: Arc<AtomicUsize>,
    stop: CancellationToken,
    seat: Option<AgentSeat>,
    window: Window,
) -> anyhow::Result<CallResult> {
    let console = match &seat {
        Some(seat) => Some(seat.console().await?),
        None => None,
    };
    let from = sim.config().from.clone();
    let call = sim.dial().await?;
    active.fetch_add(1, Ordering::SeqCst);
    let speech = utterance_8k(UTTERANCE_MS);
    let mut agent = None;
    if let (Some(seat), Some(console)) = (&seat, console) {
        call.say(&speech).await;
        agent = seat_agent(seat, console, |offer| offer["caller"] == from.as_str(), &stop).await;
    }
    let agent_speech = utterance(AGENT_UTTERANCE_MS);
    let mut turn = tokio::time::interval(TURN);
    let mut agent_turn = tokio::time::interval_at(tokio::time::Instant::now() + TURN / 2, TURN);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = turn.tick() => call.say(&speech).await,
            _ = agent_turn.tick(), if agent.is_some() => {
                if let Some(agent) = &agent {
                    agent.media.say(agent_speech.clone()).await;
                }
            }
        }
    }
    let stopped = Instant::now();
    call.hang_up().await;
    let _ = call.wait_ended(Duration::from_secs(10)).await;
    if let Some(agent) = &agent {
        let _ = agent.media.wait_for_state("ended", Duration::from_secs(10)).await;
    }
    let result = CallResult {
        heard_frames: (call.heard_audio_ms() / 20) as usize,
        faults: call.faults().len(),
        agent: seat.as_ref().map(|_| agent_result(agent.as_ref(), None, &window, stopped)),
        caller_heard_in_window: call.loud_frames(HEARD_DBFS).iter().filter(|h| in_window(&window, h.at)).count(),
        caller_packets: None,
    };
    if let Some(agent) = agent {
        agent.media.close().await;
    }
    Ok(result)
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
    Ok(CallResult { heard_frames, ..CallResult::default() })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agent && args.channel == Channel::Whatsapp {
        bail!("--agent is built for the web and twilio channels");
    }
    let bin = gateway_binary(&args)?;
    // With agents, the model asks for a person at the end of each call's first turn.
    let tool_calls = if args.agent {
        vec![ScriptedToolCall {
            max_calls: Some(1),
            ..ScriptedToolCall::new("escalate_to_human", json!({"reason": "wants to talk to a person"}))
        }]
    } else {
        Vec::new()
    };
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        reply: MockReply::tone("Thanks, let me look into that for you right away.", 2000),
        user_transcript: "I have a question about my order.".into(),
        tool_calls,
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
    let api = Api { http: http.clone(), base: gateway.base.clone(), token, company: company.clone() };
    let bots = api.get("/api/company/chatbots").await?;
    let bot = bots[0]["id"].as_str().context("demo chatbot")?.to_owned();
    if args.record {
        api.patch(&format!("/api/company/chatbots/{bot}/call-settings"), json!({"recordingEnabled": true})).await?;
    }
    let agents = if args.agent {
        api.patch(
            &format!("/api/company/chatbots/{bot}/call-settings"),
            json!({"escalationEnabled": true, "escalationTimeoutSeconds": 120}),
        )
        .await?;
        eprintln!("creating {} support agents…", args.calls);
        let mut tokens = Vec::with_capacity(args.calls);
        for i in 0..args.calls {
            let email = format!("agent{i}@load.test");
            let out = gateway.cli(&[
                "user",
                "create",
                "--email",
                &email,
                "--role",
                "support_agent",
                "--company",
                &company,
            ])?;
            tokens.push(out.lines().last().unwrap_or_default().trim().to_owned());
        }
        Some(Agents {
            http: http.clone(),
            base: gateway.base.clone(),
            tokens: Arc::new(tokens),
            joined: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicUsize::new(0)),
        })
    } else {
        None
    };

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
    let window: Window = Arc::new(OnceLock::new());
    let mut tasks = Vec::new();
    for i in 0..args.calls {
        let (active, stop) = (active.clone(), stop.clone());
        let delay = Duration::from_millis(args.ramp_seconds * 1000 * i as u64 / args.calls.max(1) as u64);
        // Call i's own agent.
        let seat = agents.as_ref().map(|agents| AgentSeat { agents: agents.clone(), token: agents.tokens[i].clone() });
        let call: BoxFuture<'static, anyhow::Result<CallResult>> = match &line {
            Line::Web { base, bot } => {
                web_call(http.clone(), base.clone(), bot.clone(), active, stop.clone(), seat, window.clone()).boxed()
            }
            Line::Twilio { rest, webhook_url } => {
                let mut config = TwilioSimConfig::new(webhook_url, ACCOUNT_SID, AUTH_TOKEN, NUMBER);
                // Every call from its own phone.
                config.from = format!("+1415555{:04}", i % 10_000);
                twilio_call(TwilioSim::new(config).with_rest(rest), active, stop.clone(), seat, window.clone()).boxed()
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
    eprintln!("{connected}/{} calls active", args.calls);
    // With agents, the window opens once every call has its agent (or its join failed).
    let (mut agents_joined, mut agents_failed) = (0, 0);
    if let Some(agents) = &agents {
        let deadline = Instant::now() + JOIN_TIMEOUT + Duration::from_secs(30);
        loop {
            agents_joined = agents.joined.load(Ordering::SeqCst);
            agents_failed = agents.failed.load(Ordering::SeqCst);
            if agents_joined + agents_failed >= connected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("{agents_joined} agents joined, {agents_failed} failed");
    }
    eprintln!("measuring for {} s…", args.seconds);

    let before = metrics(&http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?);
    let load_before = load_average();
    let machine_before = machine_busy_seconds();
    let (user_before, system_before) = cpu_times(gateway.pid);
    let cpu_before = user_before + system_before;
    let own_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (user_after, system_after) = cpu_times(gateway.pid);
    let cpu = user_after + system_after - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    let load_after = load_average();
    let machine = machine_busy_seconds() - machine_before;
    let after = metrics(&http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?);
    let _ = window.set((started, Instant::now()));
    let provider_connections = mock.connection_count();
    stop.cancel();
    let mut heard_frames = 0;
    let mut faults = 0;
    let mut failed = 0;
    let mut caller_heard_in_window = 0;
    let mut caller_packets = Packets::default();
    let mut agent_results = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(result)) => {
                heard_frames += result.heard_frames;
                faults += result.faults;
                caller_heard_in_window += result.caller_heard_in_window;
                if let Some(packets) = result.caller_packets {
                    caller_packets += packets;
                }
                agent_results.extend(result.agent);
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
    let agents_report = agents.as_ref().map(|_| {
        let on_call = agent_results.iter().filter(|a| a.joined);
        let mut agent_packets = Packets::default();
        for a in on_call.clone() {
            agent_packets += a.packets;
        }
        let join_ms: Vec<f64> = on_call.clone().map(|a| a.join_ms).collect();
        let to_caller: Vec<f64> = on_call.clone().flat_map(|a| a.to_caller_ms.iter().copied()).collect();
        let to_agent: Vec<f64> = on_call.clone().flat_map(|a| a.to_agent_ms.iter().copied()).collect();
        json!({
            "joined_before_window": agents_joined,
            "failed_before_window": agents_failed,
            "joined": on_call.clone().count(),
            "failed": agent_results.iter().filter(|a| !a.joined).count(),
            "on_call_through_window": on_call.clone().filter(|a| !a.left_early).count(),
            "join_ms": {"p50": percentile(&join_ms, 0.5), "max": percentile(&join_ms, 1.0)},
            "agents_heard_frames_in_window": on_call.clone().map(|a| a.heard_in_window).sum::<usize>(),
            "agents_received_packets": {"packets": agent_packets.received, "gaps_40ms": agent_packets.gaps},
            "mouth_to_ear_ms": {
                "agent_to_caller": {"n": to_caller.len(), "p50": percentile(&to_caller, 0.5), "p99": percentile(&to_caller, 0.99)},
                "caller_to_agent": {"n": to_agent.len(), "p50": percentile(&to_agent, 0.5), "p99": percentile(&to_agent, 0.99)},
            },
        })
    });
    let callers_received = match args.channel {
        // Twilio's simulator plays what it is sent on its own clock: no packet arrivals.
        Channel::Twilio => Value::Null,
        _ => json!({"packets": caller_packets.received, "gaps_40ms": caller_packets.gaps}),
    };
    let report = json!({
        "channel": args.channel.name(),
        "record": args.record,
        "agent": args.agent,
        "calls": args.calls,
        "connected": connected,
        "failed": failed,
        "seconds": elapsed,
        "gateway_cpu_seconds": cpu,
        "gateway_cpu_cores": cpu / elapsed,
        "gateway_cpu_user_seconds": user_after - user_before,
        "gateway_cpu_system_seconds": system_after - system_before,
        "cpu_seconds_per_call_minute": if connected > 0 { cpu / connected as f64 / (elapsed / 60.0) } else { 0.0 },
        "calls_per_core_at_this_rate": if cpu > 0.0 { connected as f64 * elapsed / cpu } else { 0.0 },
        "peak_rss_mib": peak_rss,
        "frames_sent": frames,
        "late_frames": late,
        "late_frame_ratio": if frames > 0.0 { late / frames } else { 0.0 },
        "inbound_latency_ms": {"p50": quantile("gateway_inbound_latency_seconds", "0.5"), "p99": quantile("gateway_inbound_latency_seconds", "0.99")},
        "outbound_latency_ms": {"p50": quantile("gateway_outbound_latency_seconds", "0.5"), "p99": quantile("gateway_outbound_latency_seconds", "0.99")},
        "agent_audio_heard_frames": heard_frames,
        "callers_heard_frames_in_window": caller_heard_in_window,
        "callers_received_packets": callers_received,
        "agents": agents_report,
        "provider_connections": provider_connections,
        "provider_audio_received_ms": mock.audio_received_ms(),
        "protocol_faults": faults,
        "recordings_stored": recordings,
        "loadgen_cpu_cores": own_cpu / elapsed,
        // Everything else on the machine meanwhile (other work on the shared cores).
        "other_cpu_cores": ((machine - cpu - own_cpu) / elapsed).max(0.0),
        "load_average": {"before": load_before, "after": load_after},
    });
    drop(gateway);
    println!("{report}");
    Ok(())
}
