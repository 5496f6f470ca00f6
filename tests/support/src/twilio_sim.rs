//! A Twilio for tests: it places phone calls to the gateway the way Twilio does and
//! plays the caller's phone (shared/protocols/twilio-protocol.md, §6 checklist).
//!
//! 1. [`TwilioSim::webhook`] POSTs (or GETs) the Voice webhook with the form of a real
//!    inbound call, signed with `X-Twilio-Signature` over the configured webhook URL; tests
//!    may drop or spoil the signature, replay a CallSid or change any field.
//! 2. [`WebhookAnswer::twiml`] reads the answer as Twilio would: `<Connect><Stream url>`
//!    (no query string; `wss`, or `ws` only for an http webhook) with its `<Parameter>`s,
//!    or a refusal (`<Say>`/`<Hangup>`/`<Reject>`).
//! 3. [`TwilioSim::open_stream`] opens the Media Streams WebSocket with
//!    `x-twilio-signature` over the stream URL, sends `connected` and `start`, then a
//!    `media` frame every 20 ms of real time: what the test asked the caller to say
//!    ([`PhoneCall::say`]), else μ-law silence; `dtmf` on [`PhoneCall::press`]; `stop` and
//!    a close on [`PhoneCall::hang_up`].
//! 4. What the gateway sends is judged as Twilio judges it (only `media|mark|clear`, exact
//!    fields, the right `streamSid`; faults recorded with Twilio's error code), and its
//!    audio is played at 8 bytes/ms: marks are echoed once the audio before them has
//!    played, `clear` drops the queue and echoes pending marks at once.
//! 5. Everything is recorded with the stream clock (ms since the stream started, the clock
//!    of `media.timestamp`): what the caller heard per 20 ms, marks echoed, clears, faults,
//!    and how the call ended (caller, gateway closing the socket, REST hang-up).
//!
//! [`TwilioSim::dial`] does 1-3 for the common case. With [`TwilioSim::with_rest`] the
//! calls are live in a [`MockTwilioRest`], so the gateway can complete them through the
//! REST API, which ends the stream as Twilio would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::mock_twilio_rest::{LiveCalls, MockTwilioRest};
use crate::recorder::{Recorder, WaitTimeout};
pub use crate::twilio_stream::StreamFault;
use crate::twilio_stream::{FRAME_BYTES, MULAW_SILENCE, Outbound, Playout, StreamIds, StreamWriter, check_outbound};
pub use crate::twilio_webhook::{Refusal, StreamTwiml, Twiml, TwimlError};
use crate::twilio_webhook::{inbound_call_form, new_sid, parse_twiml, signature};

/// The number the simulated caller dials from unless told otherwise.
pub const DEFAULT_FROM: &str = "+14155550100";

/// Where and as whom the simulator calls.
#[derive(Debug, Clone)]
pub struct TwilioSimConfig {
    /// The number's Voice URL exactly as configured at Twilio (the gateway's public
    /// webhook URL); this is the URL Twilio signs.
    pub webhook_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The caller, E.164.
    pub from: String,
    /// The number called (the account's), E.164.
    pub to: String,
    /// Send HTTP and WebSocket traffic here (plain http/ws, with the public `Host`)
    /// instead of to the URLs' own host: for a public `https://` URL in front of a
    /// gateway listening locally. The URLs signed stay the public ones.
    pub connect_addr: Option<SocketAddr>,
    /// `timestamp` of the first media frame (Twilio's start around 100-160 ms).
    pub first_timestamp_ms: u64,
}

impl TwilioSimConfig {
    pub fn new(
        webhook_url: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        to: impl Into<String>,
    ) -> Self {
        Self {
            webhook_url: webhook_url.into(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            from: DEFAULT_FROM.into(),
            to: to.into(),
            connect_addr: None,
            first_timestamp_ms: 140,
        }
    }
}

/// How a request is signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Signing {
    /// As Twilio signs it.
    #[default]
    Valid,
    /// No `X-Twilio-Signature` header.
    Missing,
    /// A well-formed signature made with another auth token.
    Wrong,
    /// This exact header value.
    Exactly(String),
}

/// Places calls to the gateway as Twilio.
pub struct TwilioSim {
    config: TwilioSimConfig,
    http: reqwest::Client,
    live_calls: Option<LiveCalls>,
}

impl TwilioSim {
    pub fn new(config: TwilioSimConfig) -> Self {
        let http = reqwest::Client::builder()
            .user_agent("TwilioProxy/1.1")
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client without TLS builds");
        Self { config, http, live_calls: None }
    }

    /// Makes the calls live in `rest`, so the gateway can hang them up through the REST API.
    pub fn with_rest(mut self, rest: &MockTwilioRest) -> Self {
        self.live_calls = Some(rest.live_calls());
        self
    }

    pub fn config(&self) -> &TwilioSimConfig {
        &self.config
    }

    /// The first webhook of a new inbound call (fresh `CA…` SID), to adjust and send.
    pub fn webhook(&self) -> WebhookRequest<'_> {
        let call_sid = new_sid("CA");
        let form = inbound_call_form(&call_sid, &self.config.account_sid, &self.config.from, &self.config.to);
        WebhookRequest { sim: self, get: false, signing: Signing::Valid, form }
    }

    /// A call as it usually goes: webhook, TwiML, stream. Fails when the gateway answers
    /// with anything but a `<Connect><Stream>` it can open.
    pub async fn dial(&self) -> anyhow::Result<PhoneCall> {
        let answer = self.webhook().send().await?;
        if answer.status != 200 {
            bail!("the webhook answered {}: {}", answer.status, answer.body);
        }
        match answer.twiml().map_err(|e| anyhow!("unusable TwiML ({e}): {}", answer.body))? {
            Twiml::Connect(stream) => Ok(self.open_stream(&answer.call_sid, &stream, Signing::Valid).await?),
            Twiml::Refused(refusal) => bail!("the gateway refused the call: {refusal:?}"),
        }
    }

    /// Opens the Media Streams WebSocket of `<Connect><Stream>` for call `call_sid`.
    pub async fn open_stream(
        &self,
        call_sid: &str,
        stream: &StreamTwiml,
        signing: Signing,
    ) -> Result<PhoneCall, StreamOpenError> {
        let mut request =
            stream.url.as_str().into_client_request().map_err(|e| StreamOpenError::Other(e.to_string()))?;
        if let Some(value) = self.signature_header(&stream.url, &[], &signing) {
            let value = HeaderValue::from_str(&value).map_err(|e| StreamOpenError::Other(e.to_string()))?;
            request.headers_mut().insert("x-twilio-signature", value);
        }
        let handshake = match self.config.connect_addr {
            Some(addr) => {
                let tcp =
                    tokio::net::TcpStream::connect(addr).await.map_err(|e| StreamOpenError::Other(e.to_string()))?;
                tokio_tungstenite::client_async_with_config(
                    request,
                    tokio_tungstenite::MaybeTlsStream::Plain(tcp),
                    Some(small_reads()),
                )
                .await
            }
            None if stream.url.starts_with("ws://") => {
                tokio_tungstenite::connect_async_with_config(request, Some(small_reads()), false).await
            }
            None => {
                return Err(StreamOpenError::Other(
                    "the simulator has no TLS: set TwilioSimConfig::connect_addr for a wss:// stream URL".into(),
                ));
            }
        };
        let ws = match handshake {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(StreamOpenError::Rejected { status: response.status().as_u16() });
            }
            Err(e) => return Err(StreamOpenError::Other(e.to_string())),
        };

        let ids = StreamIds {
            account_sid: self.config.account_sid.clone(),
            call_sid: call_sid.to_owned(),
            stream_sid: new_sid("MZ"),
        };
        if let Some(live) = &self.live_calls {
            live.start(&ids.account_sid, call_sid, &self.config.from, &self.config.to);
        }
        let record = Arc::new(Recorder::new(CallRecord::default()));
        let (commands, commands_rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let writer = StreamWriter::new(ids.clone(), self.config.first_timestamp_ms);
        let call = CallTask {
            writer,
            parameters: stream.parameters.clone(),
            record: record.clone(),
            commands: commands_rx,
            cancel: cancel.clone(),
            live_calls: self.live_calls.clone(),
            first_timestamp_ms: self.config.first_timestamp_ms,
        };
        tokio::spawn(call.run(ws));
        if let Some(live) = self.live_calls.clone() {
            let (sid, commands, cancel) = (call_sid.to_owned(), commands.clone(), cancel.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = live.completed(&sid) => { let _ = commands.send(Command::RestHangUp).await; }
                }
            });
        }
        Ok(PhoneCall { ids, parameters: stream.parameters.clone(), record, commands, cancel })
    }

    /// The header value for `signing` over `url` and `params`, `None` for no header.
    fn signature_header(&self, url: &str, params: &[(String, String)], signing: &Signing) -> Option<String> {
        match signing {
            Signing::Valid => Some(signature(&self.config.auth_token, url, params)),
            Signing::Missing => None,
            Signing::Wrong => Some(signature("not-the-auth-token", url, params)),
            Signing::Exactly(value) => Some(value.clone()),
        }
    }

    /// The address to send a request for `public_url` to, and the `Host` to send with it.
    fn target(&self, public_url: &str) -> anyhow::Result<(String, Option<String>)> {
        let Some(addr) = self.config.connect_addr else {
            return Ok((public_url.to_owned(), None));
        };
        let (_, rest) = public_url.split_once("://").context("the webhook URL has no scheme")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Ok((format!("http://{addr}{path}"), Some(authority.to_owned())))
    }
}

/// A webhook about to be sent.
pub struct WebhookRequest<'a> {
    sim: &'a TwilioSim,
    get: bool,
    signing: Signing,
    form: Vec<(String, String)>,
}

impl WebhookRequest<'_> {
    /// Replays the webhook of an earlier call.
    pub fn call_sid(self, call_sid: &str) -> Self {
        self.set("CallSid", call_sid)
    }

    /// Sends the parameters in the query of a GET, as for a number configured with GET.
    pub fn get(mut self) -> Self {
        self.get = true;
        self
    }

    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// Sets a form field (replacing it, or adding it at the end).
    pub fn set(mut self, name: &str, value: &str) -> Self {
        match self.form.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.form.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    /// Removes a form field.
    pub fn remove(mut self, name: &str) -> Self {
        self.form.retain(|(n, _)| n != name);
        self
    }

    pub fn form(&self) -> &[(String, String)] {
        &self.form
    }

    /// Sends it and reads the answer.
    pub async fn send(self) -> anyhow::Result<WebhookAnswer> {
        let config = &self.sim.config;
        let call_sid = self.form.iter().find(|(n, _)| n == "CallSid").map(|(_, v)| v.clone()).unwrap_or_default();
        let encoded = serde_urlencoded::to_string(&self.form).context("encoding the form")?;
        let (signed_url, params, body) = if self.get {
            let separator = if config.webhook_url.contains('?') { '&' } else { '?' };
            (format!("{}{separator}{encoded}", config.webhook_url), Vec::new(), None)
        } else {
            (config.webhook_url.clone(), self.form.clone(), Some(encoded))
        };
        let (target, host) = self.sim.target(&signed_url)?;
        let mut request = match body {
            None => self.sim.http.get(&target),
            Some(body) => {
                self.sim.http.post(&target).header("content-type", "application/x-www-form-urlencoded").body(body)
            }
        };
        request = request.header("accept", "*/*").header("i-twilio-idempotency-token", uuid_like());
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(signature) = self.sim.signature_header(&signed_url, &params, &self.signing) {
            request = request.header("x-twilio-signature", signature);
        }
        let response = request.send().await.with_context(|| format!("posting the webhook to {target}"))?;
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await.context("reading the webhook answer")?;
        Ok(WebhookAnswer { status, content_type, body, call_sid, webhook_url: config.webhook_url.clone() })
    }
}

fn uuid_like() -> String {
    let sid = new_sid("");
    format!("{}-{}-{}-{}-{}", &sid[..8], &sid[8..12], &sid[12..16], &sid[16..20], &sid[20..])
}

/// The gateway's answer to a webhook.
#[derive(Debug, Clone)]
pub struct WebhookAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
    /// The `CallSid` the webhook carried.
    pub call_sid: String,
    webhook_url: String,
}

impl WebhookAnswer {
    /// The TwiML, read as Twilio reads it.
    pub fn twiml(&self) -> Result<Twiml, TwimlError> {
        parse_twiml(self.content_type.as_deref(), &self.body, &self.webhook_url)
    }
}

/// Why the Media Streams WebSocket did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOpenError {
    /// The gateway answered the upgrade with this HTTP status.
    Rejected {
        status: u16,
    },
    Other(String),
}

impl std::fmt::Display for StreamOpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected { status } => write!(f, "the gateway refused the stream upgrade with HTTP {status}"),
            Self::Other(reason) => write!(f, "could not open the stream: {reason}"),
        }
    }
}

impl std::error::Error for StreamOpenError {}

/// 20 ms the caller heard.
#[derive(Debug, Clone)]
pub struct HeardFrame {
    pub at: Instant,
    /// Stream-clock time the frame started playing.
    pub stream_ms: u64,
    /// 160 samples at 8 kHz (decoded μ-law; silence where nothing was queued).
    pub pcm: Vec<i16>,
    /// How many of the 160 bytes were the gateway's audio.
    pub audio_bytes: usize,
    pub dbfs: f32,
}

/// A mark echoed to the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoedMark {
    pub name: String,
    pub stream_ms: u64,
    /// Echoed because a `clear` dropped its audio, not because it played.
    pub cleared: bool,
}

/// A `clear` the gateway sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearRecord {
    pub stream_ms: u64,
    pub dropped_bytes: usize,
    pub marks: Vec<String>,
}

/// A message Twilio would have refused.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    pub stream_ms: u64,
    pub fault: StreamFault,
}

/// Who ended the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndedBy {
    /// The caller hung up: `stop` sent, socket closed.
    Caller,
    /// The gateway closed the socket (Twilio logs 31921 and the call hangs up).
    Gateway { code: Option<u16>, reason: String },
    /// The gateway completed the call through the REST API: `stop`, then close.
    RestHangUp,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub by: EndedBy,
    pub stream_ms: u64,
}

/// Everything a call recorded.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    /// Every text frame sent to the gateway, in order.
    pub sent: Vec<String>,
    pub heard: Vec<HeardFrame>,
    pub marks: Vec<EchoedMark>,
    pub clears: Vec<ClearRecord>,
    pub faults: Vec<FaultRecord>,
    /// Stream-clock time each utterance started going out.
    pub speech_started: Vec<u64>,
    /// Media messages accepted from the gateway, and their bytes.
    pub media_messages: usize,
    pub media_bytes: usize,
    pub ended: Option<CallEnd>,
}

enum Command {
    Say(Vec<u8>),
    Press(char),
    HangUp,
    RestHangUp,
}

/// A phone call in progress through the simulator.
pub struct PhoneCall {
    ids: StreamIds,
    parameters: Vec<(String, String)>,
    record: Arc<Recorder<CallRecord>>,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
}

impl PhoneCall {
    pub fn call_sid(&self) -> &str {
        &self.ids.call_sid
    }

    pub fn stream_sid(&self) -> &str {
        &self.ids.stream_sid
    }

    pub fn account_sid(&self) -> &str {
        &self.ids.account_sid
    }

    /// The TwiML's `<Parameter>`s, sent as `start.customParameters`.
    pub fn parameters(&self) -> &[(String, String)] {
        &self.parameters
    }

    /// Queues speech (8 kHz mono PCM) to go out in real time after anything queued.
    pub async fn say(&self, pcm_8k: &[i16]) {
        self.say_mulaw(pcm_8k.iter().map(|&s| media::g711::ulaw_encode(s)).collect()).await;
    }

    /// Queues μ-law bytes to go out in real time.
    pub async fn say_mulaw(&self, mulaw: Vec<u8>) {
        let _ = self.commands.send(Command::Say(mulaw)).await;
    }

    /// Presses a key (`0-9`, `*`, `#`): a `dtmf` message.
    pub async fn press(&self, digit: char) {
        let _ = self.commands.send(Command::Press(digit)).await;
    }

    /// Hangs up: `stop`, then the socket closes.
    pub async fn hang_up(&self) {
        let _ = self.commands.send(Command::HangUp).await;
    }

    /// A copy of everything recorded so far.
    pub fn record(&self) -> CallRecord {
        self.record.read(Clone::clone)
    }

    pub fn heard(&self) -> Vec<HeardFrame> {
        self.record.read(|r| r.heard.clone())
    }

    /// Frames heard louder than `dbfs`.
    pub fn loud_frames(&self, dbfs: f32) -> Vec<HeardFrame> {
        self.record.read(|r| r.heard.iter().filter(|f| f.dbfs > dbfs).cloned().collect())
    }

    /// What the caller heard from `from_ms` to `to_ms` of the stream clock, as 8 kHz PCM.
    pub fn heard_pcm(&self, from_ms: u64, to_ms: u64) -> Vec<i16> {
        self.record.read(|r| {
            r.heard
                .iter()
                .filter(|f| f.stream_ms >= from_ms && f.stream_ms < to_ms)
                .flat_map(|f| f.pcm.clone())
                .collect()
        })
    }

    /// Milliseconds of the gateway's audio played to the caller.
    pub fn heard_audio_ms(&self) -> u64 {
        self.record.read(|r| r.heard.iter().map(|f| f.audio_bytes as u64).sum::<u64>() / 8)
    }

    pub fn marks(&self) -> Vec<EchoedMark> {
        self.record.read(|r| r.marks.clone())
    }

    pub fn clears(&self) -> Vec<ClearRecord> {
        self.record.read(|r| r.clears.clone())
    }

    /// Messages Twilio would have refused (tests assert there are none).
    pub fn faults(&self) -> Vec<FaultRecord> {
        self.record.read(|r| r.faults.clone())
    }

    pub fn ended(&self) -> Option<CallEnd> {
        self.record.read(|r| r.ended.clone())
    }

    /// Waits until `condition` holds for the record.
    pub async fn wait_for(
        &self,
        condition: impl FnMut(&CallRecord) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        self.record.wait_for(condition, timeout).await
    }

    /// Waits until `ms` of the gateway's audio has played to the caller.
    pub async fn wait_until_heard(&self, ms: u64, timeout: Duration) -> Result<(), WaitTimeout> {
        self.wait_for(|r| r.heard.iter().map(|f| f.audio_bytes as u64).sum::<u64>() / 8 >= ms, timeout).await
    }

    /// Waits for the echo of mark `name`.
    pub async fn wait_for_mark(&self, name: &str, timeout: Duration) -> Result<EchoedMark, WaitTimeout> {
        self.wait_for(|r| r.marks.iter().any(|m| m.name == name), timeout).await?;
        Ok(self.record.read(|r| r.marks.iter().find(|m| m.name == name).cloned()).expect("waited for it"))
    }

    /// Waits for the call to end, however it ends.
    pub async fn wait_ended(&self, timeout: Duration) -> Result<CallEnd, WaitTimeout> {
        self.wait_for(|r| r.ended.is_some(), timeout).await?;
        Ok(self.ended().expect("waited for it"))
    }
}

impl Drop for PhoneCall {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The task that is Twilio's end of one stream.
struct CallTask {
    writer: StreamWriter,
    parameters: Vec<(String, String)>,
    record: Arc<Recorder<CallRecord>>,
    commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    live_calls: Option<LiveCalls>,
    first_timestamp_ms: u64,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl CallTask {
    async fn run(mut self, ws: Ws) {
        let started = tokio::time::Instant::now();
        let stream_ms = move || started.elapsed().as_millis() as u64;
        let (mut sink, mut stream) = ws.split();
        let sid = self.writer.ids().stream_sid.clone();
        let mut playout = Playout::default();
        let mut speech: VecDeque<u8> = VecDeque::new();
        let mut tick = tokio::time::interval_at(
            started + Duration::from_millis(self.first_timestamp_ms),
            Duration::from_millis(20),
        );

        let opening = [self.writer.connected(), self.writer.start(&self.parameters)];
        let mut ended = None;
        for text in opening {
            if let Err(e) = self.send(&mut sink, text).await {
                ended = Some(EndedBy::Gateway { code: None, reason: e });
            }
        }

        while ended.is_none() {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    // The test dropped the call: hang up like a caller would.
                    let stop = self.writer.stop();
                    let _ = self.send(&mut sink, stop).await;
                    ended = Some(EndedBy::Caller);
                }
                _ = tick.tick() => {
                    let mut frame = [MULAW_SILENCE; FRAME_BYTES];
                    for byte in frame.iter_mut() {
                        match speech.pop_front() {
                            Some(b) => *byte = b,
                            None => break,
                        }
                    }
                    let (text, timestamp) = self.writer.media(&frame);
                    if let Err(e) = self.send(&mut sink, text).await {
                        ended = Some(EndedBy::Gateway { code: None, reason: e });
                        continue;
                    }
                    let played = playout.play();
                    for name in played.marks {
                        let echo = self.writer.mark(&name);
                        self.record.update(|r| r.marks.push(EchoedMark { name, stream_ms: timestamp, cleared: false }));
                        if let Err(e) = self.send(&mut sink, echo).await {
                            ended = Some(EndedBy::Gateway { code: None, reason: e });
                        }
                    }
                    let pcm: Vec<i16> = played.audio.iter().map(|&b| media::g711::ulaw_decode(b)).collect();
                    let heard = HeardFrame {
                        at: Instant::now(),
                        stream_ms: timestamp,
                        dbfs: media::dbfs(&pcm),
                        pcm,
                        audio_bytes: played.audio_bytes,
                    };
                    self.record.update(|r| r.heard.push(heard));
                }
                command = self.commands.recv() => match command {
                    Some(Command::Say(mulaw)) => {
                        if speech.is_empty() {
                            let at = self.writer.next_timestamp_ms();
                            self.record.update(|r| r.speech_started.push(at));
                        }
                        speech.extend(mulaw);
                    }
                    Some(Command::Press(digit)) => {
                        let dtmf = self.writer.dtmf(digit);
                        if let Err(e) = self.send(&mut sink, dtmf).await {
                            ended = Some(EndedBy::Gateway { code: None, reason: e });
                        }
                    }
                    Some(Command::HangUp) | None => {
                        let stop = self.writer.stop();
                        let _ = self.send(&mut sink, stop).await;
                        ended = Some(EndedBy::Caller);
                    }
                    Some(Command::RestHangUp) => {
                        let stop = self.writer.stop();
                        let _ = self.send(&mut sink, stop).await;
                        ended = Some(EndedBy::RestHangUp);
                    }
                },
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.handle_text(&mut sink, &mut playout, &sid, text.as_str(), stream_ms()).await,
                    Some(Ok(Message::Binary(_))) => {
                        let at = stream_ms();
                        self.record.update(|r| r.faults.push(FaultRecord { stream_ms: at, fault: StreamFault::binary() }));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        ended = Some(EndedBy::Gateway {
                            code: frame.as_ref().map(|f| u16::from(f.code)),
                            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => ended = Some(EndedBy::Gateway { code: None, reason: e.to_string() }),
                    None => ended = Some(EndedBy::Gateway { code: None, reason: "connection closed".into() }),
                },
            }
        }

        // Close our side; when the gateway closed first this completes the handshake.
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
        if let Some(live) = &self.live_calls {
            live.end(&self.writer.ids().call_sid);
        }
        self.cancel.cancel();
        let at = stream_ms();
        if let Some(by) = ended {
            self.record.update(|r| r.ended = Some(CallEnd { by, stream_ms: at }));
        }
        // Then, like Twilio, let the gateway finish the close before the socket goes:
        // dropping it with the gateway's last frames unread would reset the connection,
        // and a reset can discard what was sent last (the `stop` itself).
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    async fn handle_text(
        &mut self,
        sink: &mut futures::stream::SplitSink<Ws, Message>,
        playout: &mut Playout,
        sid: &str,
        text: &str,
        now_ms: u64,
    ) {
        let mut echoes = Vec::new();
        match check_outbound(text, sid) {
            Ok(Outbound::Media(audio)) => {
                let len = audio.len();
                match playout.push_audio(audio) {
                    Ok(()) => self.record.update(|r| {
                        r.media_messages += 1;
                        r.media_bytes += len;
                    }),
                    Err(fault) => self.record.update(|r| r.faults.push(FaultRecord { stream_ms: now_ms, fault })),
                }
            }
            Ok(Outbound::Mark(name)) => {
                if let Some(name) = playout.push_mark(name) {
                    self.record
                        .update(|r| r.marks.push(EchoedMark { name: name.clone(), stream_ms: now_ms, cleared: false }));
                    echoes.push(name);
                }
            }
            Ok(Outbound::Clear) => {
                let cleared = playout.clear();
                self.record.update(|r| {
                    for name in &cleared.marks {
                        r.marks.push(EchoedMark { name: name.clone(), stream_ms: now_ms, cleared: true });
                    }
                    r.clears.push(ClearRecord {
                        stream_ms: now_ms,
                        dropped_bytes: cleared.dropped_bytes,
                        marks: cleared.marks.clone(),
                    });
                });
                echoes = cleared.marks;
            }
            Err(fault) => self.record.update(|r| r.faults.push(FaultRecord { stream_ms: now_ms, fault })),
        }
        for name in echoes {
            let echo = self.writer.mark(&name);
            // A send failure shows up as the stream ending on the next read.
            let _ = self.send(sink, echo).await;
        }
    }

    async fn send(&self, sink: &mut futures::stream::SplitSink<Ws, Message>, text: String) -> Result<(), String> {
        self.record.update(|r| r.sent.push(text.clone()));
        sink.send(Message::text(text)).await.map_err(|e| e.to_string())
    }
}

/// A speech-like utterance at 8 kHz (the phone's rate), starting at its first loud
/// millisecond, like [`crate::caller::utterance`].
pub fn utterance_8k(ms: usize) -> Vec<i16> {
    let rate = media::SampleRate::Hz8000;
    let signal = media::test_signal::speech_like(rate, ms as u32 + 300, 0x5eed);
    let per_ms = rate.samples_per_ms();
    let onset = signal.chunks(per_ms).position(|block| media::dbfs(block) > -20.0).unwrap_or(0) * per_ms;
    signal[onset..onset + ms * per_ms].to_vec()
}

/// The frequency of a tone in `pcm` (8 kHz), from its zero crossings; 0 for silence.
pub fn tone_hz(pcm: &[i16]) -> f32 {
    let crossings: Vec<f32> = pcm
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[0] < 0 && pair[1] >= 0)
        .map(|(i, pair)| i as f32 - f32::from(pair[0]) / (f32::from(pair[1]) - f32::from(pair[0])))
        .collect();
    match (crossings.first(), crossings.last()) {
        (Some(first), Some(last)) if crossings.len() > 1 => (crossings.len() - 1) as f32 * 8000.0 / (last - first),
        _ => 0.0,
    }
}

/// A read window the size of a few frames: tungstenite zero-fills its whole window
/// before each read (128 KiB by default), which would make the load generator's callers
/// cost more than the gateway they measure.
fn small_reads() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}
