//! Load generator: N concurrent WebRTC callers against a real gateway process whose AI
//! provider is the mock OpenAI Realtime server (in this process), for S seconds.
//!
//! `cargo run --release --bin loadgen -- --calls 40 --seconds 60`
//!
//! The gateway runs as its own process (the release binary, built first if needed) so its
//! CPU time and memory are measured alone. Each caller keeps a realistic conversation
//! going: it speaks for 1.5 s every 6 s, and the agent answers each turn with 2 s of audio
//! streamed faster than real time, as the real API does. At the end one JSON line reports
//! gateway CPU seconds per call per minute, peak RSS, the late-frame ratio, and the
//! gateway-added latency (p50/p99) in each direction, read from the gateway's `/metrics`.

// A command-line tool: its report goes to stdout, progress to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use testkit::mock_openai_realtime::{MockOpenAiRealtime, OpenAiRealtimeConfig};
use testkit::script::MockReply;
use testkit::{Caller, utterance};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Concurrent WebRTC callers against a gateway on the mock provider")]
struct Args {
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
}

struct Gateway {
    child: Child,
    base: String,
    pid: u32,
    _data: tempfile::TempDir,
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

fn start_gateway(bin: &PathBuf, mock: &MockOpenAiRealtime) -> anyhow::Result<(Gateway, String)> {
    let data = tempfile::tempdir()?;
    let env = |command: &mut Command| {
        command
            .env("GATEWAY_DATA_DIR", data.path())
            .env("OPENAI_API_KEY", "sk-test-openai")
            .env("OPENAI_REALTIME_URL", format!("{}/realtime", mock.ws_base_url()))
            .env("GATEWAY_RTC_BIND_IP", "127.0.0.1")
            .env("GATEWAY_WIDGET_SESSIONS_PER_MINUTE", "100000")
            .env("GATEWAY_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,gateway=info");
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
    Ok((Gateway { child, base: format!("http://{addr}"), pid, _data: data }, token))
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
    let (gateway, token) = start_gateway(&bin, &mock)?;
    let http = reqwest::Client::new();
    let companies: Value =
        http.get(format!("{}/api/admin/companies", gateway.base)).bearer_auth(&token).send().await?.json().await?;
    let company = companies[0]["id"].as_str().context("demo company")?.to_owned();
    let bots: Value = http
        .get(format!("{}/api/company/chatbots", gateway.base))
        .bearer_auth(&token)
        .header("X-Company-Id", &company)
        .send()
        .await?
        .json()
        .await?;
    let bot = bots[0]["id"].as_str().context("demo chatbot")?.to_owned();

    eprintln!("dialling {} calls over {} s…", args.calls, args.ramp_seconds);
    let active = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..args.calls {
        let (http, base, bot, active, stop) =
            (http.clone(), gateway.base.clone(), bot.clone(), active.clone(), stop.clone());
        let delay = Duration::from_millis(args.ramp_seconds * 1000 * i as u64 / args.calls.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
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
            let speech = utterance(1500);
            let mut turn = tokio::time::interval(Duration::from_secs(6));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = turn.tick() => caller.say(speech.clone()).await,
                }
            }
            caller.hang_up().await;
            let _ = caller.wait_for_state("ended", Duration::from_secs(10)).await;
            let heard = caller.loud_frames(-50.0).len();
            caller.close().await;
            anyhow::Ok(heard)
        }));
    }
    let ramp_deadline = Instant::now() + Duration::from_secs(args.ramp_seconds + 30);
    while active.load(Ordering::SeqCst) < args.calls && Instant::now() < ramp_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connected = active.load(Ordering::SeqCst);
    eprintln!("{connected}/{} calls active; measuring for {} s…", args.calls, args.seconds);

    let before = metrics(&http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?);
    let cpu_before = cpu_seconds(gateway.pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(gateway.pid) - cpu_before;
    let after = metrics(&http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?);
    stop.cancel();
    let mut heard_frames = 0;
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(heard)) => heard_frames += heard,
            _ => failed += 1,
        }
    }
    let peak_rss = peak_rss_mib(gateway.pid);

    let delta = |name: &str| after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
    let frames = delta("gateway_frames_sent_total");
    let late = delta("gateway_frames_late_total");
    let quantile = |name: &str, q: &str| after.get(&format!("{name}{{quantile=\"{q}\"}}")).copied().map(|s| s * 1000.0);
    let report = json!({
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
    });
    drop(gateway);
    println!("{report}");
    Ok(())
}
