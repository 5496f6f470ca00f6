//! Runs the OpenAI, Gemini, Twilio and Graph mocks in one process for tests
//! that drive a real gateway from outside (Node + Chromium). Prints one JSON
//! line with their URLs and credentials on stdout, then serves until killed.
//! Logs go to stderr (`RUST_LOG`, default `info`).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use testkit::mock_gemini_live::{GeminiLiveConfig, MockGeminiLive};
use testkit::mock_graph::{GraphConfig, GraphPhoneNumber, MockGraph, TEST_ACCESS_TOKEN, TEST_PHONE_NUMBER_ID};
use testkit::mock_openai_realtime::{MockOpenAiRealtime, OpenAiFaults, OpenAiRealtimeConfig};
use testkit::mock_twilio_rest::{
    MockTwilioRest, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_NUMBER, TwilioAccount, TwilioRestConfig,
};
use testkit::script::{HandshakeRejection, MockReply, Pacing, ScriptedToolCall};

#[derive(Debug, Parser)]
#[command(
    name = "mock-providers",
    about = "Local stand-ins for OpenAI Realtime, Gemini Live, Twilio REST and Meta Graph"
)]
struct Args {
    /// Address to bind every mock on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Ports; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    openai_port: u16,
    #[arg(long, default_value_t = 0)]
    gemini_port: u16,
    #[arg(long, default_value_t = 0)]
    twilio_port: u16,
    #[arg(long, default_value_t = 0)]
    graph_port: u16,
    /// The key the OpenAI mock accepts.
    #[arg(long, default_value = "sk-test-openai")]
    openai_key: String,
    /// The key the Gemini mock accepts.
    #[arg(long, default_value = "test-gemini-key")]
    gemini_key: String,
    /// A Twilio account as `SID:TOKEN[:+E164,+E164…]`; repeatable. Default:
    /// the test account owning +15551234567.
    #[arg(long = "twilio-account", value_name = "SID:TOKEN[:NUMBERS]")]
    twilio_accounts: Vec<String>,
    /// A WhatsApp number as `PHONE_NUMBER_ID:TOKEN`; repeatable.
    #[arg(long = "graph-number", value_name = "ID:TOKEN")]
    graph_numbers: Vec<String>,
    /// How fast answers stream: `burst`, `realtime`, or a speed factor.
    #[arg(long, default_value = "burst")]
    pacing: String,
    /// Length of the spoken answer (a 440 Hz tone).
    #[arg(long, default_value_t = 1500)]
    reply_ms: u32,
    /// Transcript of the spoken answer.
    #[arg(long, default_value = "Hello! How can I help you today?")]
    reply_transcript: String,
    /// What the caller is "heard" saying in every turn.
    #[arg(long, default_value = "Hi, can you hear me?")]
    user_transcript: String,
    /// Call this tool after each caller turn when the session declares it:
    /// `NAME=JSON_ARGUMENTS`, e.g. `search_knowledge_base={"query":"hours"}`. Repeatable:
    /// after each caller turn the first script (in the order given) whose tool the session
    /// declares and whose calls are not used up is made. `NAME@N=JSON` makes that tool at
    /// most N times per connection, e.g. `escalate_to_human@1={"reason":"a person"}` then
    /// `take_message@1={"name":"Ada","callbackNumber":"+14155550100","message":"Call back"}`.
    /// The Gemini mock makes only the first.
    #[arg(long = "tool-call", value_name = "NAME[@N]=JSON")]
    tool_calls: Vec<String>,
    /// Refuse OpenAI handshakes with HTTP 503 (the service is down): `none`, `all`,
    /// or a number N to refuse the first N and then accept.
    #[arg(long, default_value = "none", value_name = "none|all|N")]
    openai_reject: String,
}

fn rejection(text: &str) -> anyhow::Result<HandshakeRejection> {
    Ok(match text {
        "none" => HandshakeRejection::None,
        "all" => HandshakeRejection::All,
        n => HandshakeRejection::First(
            n.parse().with_context(|| format!("--openai-reject wants none, all or a number, got {n}"))?,
        ),
    })
}

fn pacing(text: &str) -> anyhow::Result<Pacing> {
    Ok(match text {
        "burst" => Pacing::Burst,
        "realtime" => Pacing::RealTime(1.0),
        factor => Pacing::RealTime(factor.parse().with_context(|| format!("--pacing {factor}"))?),
    })
}

fn twilio_account(spec: &str) -> anyhow::Result<TwilioAccount> {
    let mut parts = spec.splitn(3, ':');
    let (Some(sid), Some(token)) = (parts.next(), parts.next()) else {
        bail!("--twilio-account wants SID:TOKEN[:NUMBERS], got {spec}");
    };
    let numbers: Vec<&str> = parts.next().map(|n| n.split(',').filter(|n| !n.is_empty()).collect()).unwrap_or_default();
    Ok(TwilioAccount::new(sid, token, &numbers))
}

fn graph_number(spec: &str) -> anyhow::Result<GraphPhoneNumber> {
    let Some((id, token)) = spec.split_once(':') else { bail!("--graph-number wants ID:TOKEN, got {spec}") };
    Ok(GraphPhoneNumber::new(id, token))
}

fn tool_call(spec: &str) -> anyhow::Result<ScriptedToolCall> {
    let Some((name, arguments)) = spec.split_once('=') else { bail!("--tool-call wants NAME[@N]=JSON, got {spec}") };
    let arguments = serde_json::from_str(arguments).with_context(|| format!("--tool-call arguments {arguments}"))?;
    let (name, max_calls) = match name.split_once('@') {
        Some((name, times)) => {
            let times: usize =
                times.parse().with_context(|| format!("--tool-call {name}@N wants a count, got {times}"))?;
            (name, Some(times))
        }
        None => (name, None),
    };
    Ok(ScriptedToolCall { max_calls, ..ScriptedToolCall::new(name, arguments) })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let reply = MockReply::tone(args.reply_transcript.clone(), args.reply_ms);
    let pacing = pacing(&args.pacing)?;
    let tools = args.tool_calls.iter().map(|spec| tool_call(spec)).collect::<anyhow::Result<Vec<_>>>()?;
    let reject_handshakes = rejection(&args.openai_reject)?;
    let at = |port| SocketAddr::new(args.host, port);

    let openai = MockOpenAiRealtime::start_on(
        at(args.openai_port),
        OpenAiRealtimeConfig {
            api_key: args.openai_key.clone(),
            reply: reply.clone(),
            user_transcript: args.user_transcript.clone(),
            tool_calls: tools.clone(),
            pacing,
            faults: OpenAiFaults { reject_handshakes, ..Default::default() },
            ..Default::default()
        },
    )
    .await
    .context("start the OpenAI mock")?;
    let gemini = MockGeminiLive::start_on(
        at(args.gemini_port),
        GeminiLiveConfig {
            api_key: args.gemini_key.clone(),
            reply,
            user_transcript: args.user_transcript.clone(),
            // The Gemini mock scripts one tool: the first.
            tool_call: tools.first().cloned(),
            pacing,
            ..Default::default()
        },
    )
    .await
    .context("start the Gemini mock")?;
    let accounts = if args.twilio_accounts.is_empty() {
        vec![TwilioAccount::new(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, &[TEST_NUMBER])]
    } else {
        args.twilio_accounts.iter().map(|spec| twilio_account(spec)).collect::<anyhow::Result<_>>()?
    };
    let twilio_first = accounts[0].clone();
    let twilio = MockTwilioRest::start_on(at(args.twilio_port), TwilioRestConfig { accounts })
        .await
        .context("start the Twilio mock (is the shared fixtures folder there? set GATEWAY_SHARED_DIR)")?;
    let numbers = if args.graph_numbers.is_empty() {
        vec![GraphPhoneNumber::new(TEST_PHONE_NUMBER_ID, TEST_ACCESS_TOKEN)]
    } else {
        args.graph_numbers.iter().map(|spec| graph_number(spec)).collect::<anyhow::Result<_>>()?
    };
    let graph_first = numbers[0].clone();
    let graph = MockGraph::start_on(at(args.graph_port), GraphConfig { numbers })
        .await
        .context("start the Graph mock (is the shared fixtures folder there? set GATEWAY_SHARED_DIR)")?;

    let line = json!({
        "openai": {
            "base_url": openai.base_url(),
            "ws_base_url": openai.ws_base_url(),
            "api_key": args.openai_key,
            "state_url": format!("http://{}/__mock/state", openai.addr()),
        },
        "gemini": {
            "base_url": gemini.base_url(),
            "ws_base_url": gemini.ws_base_url(),
            "ws_url": gemini.ws_url(),
            "api_key": args.gemini_key,
            "state_url": format!("http://{}/__mock/state", gemini.addr()),
        },
        "twilio": {
            "base_url": twilio.base_url(),
            "account_sid": twilio_first.sid,
            "auth_token": twilio_first.auth_token,
            "numbers": twilio_first.numbers,
            "state_url": format!("{}/__mock/state", twilio.base_url()),
        },
        "graph": {
            "base_url": graph.base_url(),
            "phone_number_id": graph_first.id,
            "access_token": graph_first.token,
            "state_url": format!("{}/__mock/state", graph.base_url()),
        },
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    tracing::info!("mock providers ready");

    wait_for_signal().await?;
    tracing::info!("stopping");
    openai.shutdown().await;
    gemini.shutdown().await;
    twilio.shutdown().await;
    graph.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
