//! Calls on Gemini Live end to end: a WebRTC caller calls a real gateway whose provider is
//! the mock Gemini Live server (which closes with 1007 on anything the real service would
//! refuse), plus provider-level tests of the tool round trip and of refused setups.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gateway::ids::{CallId, ModelId};
use gateway::providers::{
    AudioFormat, ProviderCommand, ProviderError, ProviderEvent, ProviderSettings, SessionSpec, ToolSpec,
};
use gateway::store::{AiModel, CallStatus, EndReason, ModelSettings, ModelType, Provider, TranscriptRole};
use media::SampleRate;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::mock_gemini_live::{GeminiFaults, GoAway, GoAwayTrigger};
use testkit::{Caller, GeminiLiveConfig, MockGeminiLive, MockReply, Pacing, ScriptedToolCall, utterance};

const SECOND: Duration = Duration::from_secs(1);
const MODEL: &str = "gemini-2.5-flash-native-audio-preview-12-2025";
const GREETING: &str = "Hi! Thanks for calling Acme. How can I help?";
const ANSWER: &str = "We are open Monday through Friday from nine to five.";
const LONG_ANSWER: &str = "We are open Monday through Friday from nine in the morning to five in the evening, \
     on Saturdays from ten to two, and on public holidays we are closed all day.";
const QUESTION: &str = "What are your opening hours?";

fn mock_config() -> GeminiLiveConfig {
    GeminiLiveConfig {
        replies: vec![MockReply::tone(GREETING, 1500), MockReply::tone(ANSWER, 2000)],
        user_transcript: QUESTION.into(),
        ..GeminiLiveConfig::default()
    }
}

async fn dial(app: &TestApp, bot: &str) -> (Caller, CallId) {
    let session = app.open_session(bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    (caller, session.body["sessionId"].as_str().unwrap().parse().unwrap())
}

/// Waits for the final transcript line of `role` with `text`, as the widget sees it.
async fn wait_for_line(caller: &Caller, role: &str, text: &str) {
    caller
        .wait_for_event(10 * SECOND, |e| {
            e["type"] == "transcript" && e["role"] == role && e["final"] == true && e["text"] == text
        })
        .await
        .unwrap();
}

/// Hangs up and waits for the call row to be final.
async fn hang_up(app: &TestApp, caller: Caller, call_id: CallId) -> gateway::store::Call {
    caller.hang_up().await;
    let ended = caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "caller_hangup");
    caller.close().await;
    let row = app.state.store.call(call_id).await.unwrap().unwrap();
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::CallerHangup)));
    row
}

/// The text of stored lines of `role`, in order.
async fn stored(app: &TestApp, call_id: CallId, role: TranscriptRole) -> Vec<String> {
    let lines = app.state.store.transcript(call_id).await.unwrap();
    lines.into_iter().filter(|l| l.role == role).map(|l| l.content).collect()
}

/// What the caller heard of the agent, as (first, last) loud frame times in a window.
fn agent_audio(caller: &Caller, from: Instant, to: Instant) -> Option<(Instant, Instant)> {
    let loud: Vec<_> = caller.loud_frames(-50.0).into_iter().filter(|h| h.at >= from && h.at <= to).collect();
    Some((loud.first()?.at, loud.last()?.at))
}

/// Every client message is one of the four Gemini Live accepts.
fn assert_client_shapes(mock: &MockGeminiLive) {
    for message in mock.client_messages() {
        let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
        assert!(
            matches!(keys.as_slice(), [k] if ["setup", "realtimeInput", "clientContent", "toolResponse"].contains(&k.as_str())),
            "{message}"
        );
    }
    assert!(mock.errors_sent().is_empty(), "the gateway sent nothing Gemini refuses: {:?}", mock.errors_sent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_call_greets_hears_the_caller_answers_and_stores_both_sides() {
    let _serial = media_timing_lock().await;
    let mock = MockGeminiLive::start(mock_config()).await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": GREETING})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();

    // The greeting is asked for as a user turn, spoken, heard and stored once played.
    caller.wait_until_heard(1000, -50.0, 10 * SECOND).await.unwrap();
    wait_for_line(&caller, "agent", GREETING).await;

    // The caller asks; Gemini hears it (16 kHz input), transcribes it and answers.
    let asked = Instant::now();
    caller.say(utterance(1200)).await;
    wait_for_line(&caller, "user", QUESTION).await;
    wait_for_line(&caller, "agent", ANSWER).await;
    let (first, last) = agent_audio(&caller, asked + Duration::from_millis(1200), Instant::now()).unwrap();
    assert!(last.duration_since(first) >= Duration::from_millis(1500), "the answer was heard: {:?}", last - first);

    hang_up(&app, caller, call_id).await;
    assert_eq!(stored(&app, call_id, TranscriptRole::User).await, [QUESTION]);
    assert_eq!(stored(&app, call_id, TranscriptRole::Agent).await, [GREETING, ANSWER]);

    let connection = &mock.connections()[0];
    assert_eq!(connection.api_version, "v1beta");
    assert!(connection.headers.iter().any(|(name, value)| name == "x-goog-api-key" && value == "test-gemini-key"));
    let setup = connection.setup.clone().unwrap();
    assert_eq!(setup["model"], format!("models/{MODEL}"));
    assert_eq!(setup["generationConfig"]["responseModalities"], json!(["AUDIO"]));
    assert_eq!(setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"], "Puck");
    assert_eq!(setup["realtimeInputConfig"]["activityHandling"], "START_OF_ACTIVITY_INTERRUPTS");
    assert_eq!(setup["sessionResumption"], json!({}));
    let say = mock.client_messages().into_iter().find(|m| m.get("clientContent").is_some()).unwrap();
    assert!(say["clientContent"]["turns"][0]["parts"][0]["text"].as_str().unwrap().ends_with(GREETING));
    assert!(mock.audio_received_ms() > 1000, "caller audio reached Gemini: {} ms", mock.audio_received_ms());
    assert_client_shapes(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_talking_over_gemini_stops_its_audio_and_the_stored_line_is_cut() {
    let _serial = media_timing_lock().await;
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        reply: MockReply::tone(LONG_ANSWER, 6000),
        user_transcript: QUESTION.into(),
        // Streamed (faster than real time, as Gemini does) so the turn is still being
        // generated when the caller talks over it: the server then says `interrupted`.
        pacing: Pacing::RealTime(1.5),
        ..GeminiLiveConfig::default()
    })
    .await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": ""})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();

    caller.say(utterance(1200)).await;
    caller.wait_until_heard(1000, -50.0, 10 * SECOND).await.unwrap();
    caller.say(utterance(1500)).await;
    mock.wait_for(|s| s.turns.iter().any(|t| t.interrupted), 5 * SECOND).await.unwrap();
    tokio::time::sleep(SECOND).await;

    let barge_in = caller.speech_started()[1];
    let heard_before = agent_audio(&caller, Instant::now() - Duration::from_secs(60), barge_in).unwrap();
    let (_, last) = agent_audio(&caller, heard_before.0, barge_in + Duration::from_millis(900)).unwrap();
    let stopped_after = last.saturating_duration_since(barge_in);
    println!("barge-in: agent audio stopped {stopped_after:?} after the caller's speech onset");
    assert!(
        stopped_after <= Duration::from_millis(150),
        "agent audio went on for {stopped_after:?} after the caller spoke"
    );

    hang_up(&app, caller, call_id).await;
    let agent = stored(&app, call_id, TranscriptRole::Agent).await;
    let cut = &agent[0];
    println!("barge-in: stored agent line {cut:?}");
    assert!(cut.ends_with('…'), "{cut:?}");
    assert!(LONG_ANSWER.starts_with(cut.trim_end_matches('…')), "{cut:?}");
    assert!(cut.len() < LONG_ANSWER.len() / 2, "the line is cut to the ~1 s the caller heard: {cut:?}");
    assert_client_shapes(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_over_an_answer_gemini_has_finished_sending_is_confirmed_by_the_gateways_own_vad() {
    let _serial = media_timing_lock().await;
    // Gemini sends the whole answer at once (faster than real time), and without input
    // transcription: once the caller talks over it, Gemini has nothing to interrupt and
    // says nothing — neither `interrupted` nor a caller transcript.
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        replies: vec![MockReply::tone(LONG_ANSWER, 6000), MockReply::tone(ANSWER, 2000)],
        user_transcript: QUESTION.into(),
        pacing: Pacing::Burst,
        ..GeminiLiveConfig::default()
    })
    .await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "realtimeTranscription": false})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    let setup = mock.connections()[0].setup.clone().unwrap();
    assert!(setup.get("inputAudioTranscription").is_none(), "{setup}");

    caller.say(utterance(1200)).await;
    mock.wait_for(|s| s.turns.len() == 1, 10 * SECOND).await.unwrap();
    caller.wait_until_heard(1000, -50.0, 10 * SECOND).await.unwrap();
    // Longer than Gemini's 1.5 s confirmation window: an unconfirmed pause would resume
    // the old answer while the caller is still talking.
    caller.say(utterance(2500)).await;
    mock.wait_for(|s| s.turns.len() == 2, 10 * SECOND).await.unwrap();
    tokio::time::sleep(2 * SECOND).await;

    let turns = mock.turns();
    assert!(!turns[0].interrupted && turns[0].audio_ms == 6000, "the answer was sent in full first: {turns:?}");
    assert_eq!(mock.state().count_sent("interrupted"), 0, "Gemini had nothing to interrupt");
    let barge_in = caller.speech_started()[1];
    let talked_until = barge_in + Duration::from_millis(2500);
    let (_, last) = agent_audio(&caller, barge_in - 2 * SECOND, barge_in + Duration::from_millis(900)).unwrap();
    let stopped_after = last.saturating_duration_since(barge_in);
    println!("barge-in: agent audio stopped {stopped_after:?} after the caller's speech onset");
    assert!(stopped_after <= Duration::from_millis(200), "agent audio went on for {stopped_after:?}");
    let resumed: Vec<_> = caller
        .loud_frames(-50.0)
        .into_iter()
        .filter(|h| h.at > barge_in + Duration::from_millis(300) && h.at < talked_until)
        .map(|h| h.at - barge_in)
        .collect();
    assert!(resumed.is_empty(), "the talked-over answer came back while the caller spoke: {resumed:?}");
    // The reply to what the caller said is heard after they stop, and alone.
    let (first, last) = agent_audio(&caller, talked_until, Instant::now()).expect("the reply was heard");
    println!("barge-in: the reply played {:?} after the caller stopped", first - talked_until);
    let reply_ms = caller.loud_frames(-50.0).iter().filter(|h| h.at >= talked_until).count() * 20;
    assert!(last - first >= Duration::from_millis(1500), "the reply was heard: {:?}", last - first);
    assert!(reply_ms <= 2200, "{reply_ms} ms heard after the barge-in: the old answer played behind the reply");

    hang_up(&app, caller, call_id).await;
    assert_client_shapes(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outlives_its_gemini_connection_by_resuming_the_session() {
    let _serial = media_timing_lock().await;
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        go_away: Some(GoAway { trigger: GoAwayTrigger::AfterTurns(1), time_left: Duration::from_secs(3) }),
        // One answer for every turn: the mock's reply list starts over on each connection.
        reply: MockReply::tone(ANSWER, 1500),
        user_transcript: QUESTION.into(),
        ..GeminiLiveConfig::default()
    })
    .await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": GREETING})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();

    // The greeting turn ends, Gemini says goAway, and the gateway resumes on a new
    // connection with the newest handle while the greeting is still playing.
    mock.wait_for(|s| s.connections.iter().any(|c| c.resumed_from.is_some()), 10 * SECOND).await.unwrap();
    wait_for_line(&caller, "agent", ANSWER).await;
    let state = mock.state();
    let on_first = |key: &'static str| {
        state.server_messages.iter().filter(move |m| m.connection == 0 && m.message.get(key).is_some())
    };
    let go_away_at = on_first("goAway").next().unwrap().at;
    let last_handle =
        on_first("sessionResumptionUpdate").next_back().unwrap().message["sessionResumptionUpdate"]["newHandle"]
            .as_str()
            .unwrap()
            .to_owned();
    let resumed = &mock.resumptions()[0];
    assert_eq!(resumed.resumed_from.as_deref(), Some(last_handle.as_str()));
    assert_eq!(resumed.setup.as_ref().unwrap()["sessionResumption"], json!({"handle": last_handle}));
    let ready_at = state
        .server_messages
        .iter()
        .find(|m| m.connection == resumed.index && m.message.get("setupComplete").is_some())
        .unwrap()
        .at;
    let pause = ready_at - go_away_at;
    println!("rollover: goAway → setupComplete on the new connection in {pause:?}");
    assert!(pause < Duration::from_millis(500), "{pause:?}");

    // The caller heard the greeting without a gap although the connection changed under it.
    // (Silent frames inside it, not arrival gaps: a loaded test machine delays packets.)
    let loud = caller.loud_frames(-50.0);
    let (start, end) =
        (loud[0].at, loud.iter().take_while(|h| h.at < loud[0].at + Duration::from_millis(1400)).last().unwrap().at);
    let silent = caller.heard().iter().filter(|h| h.at > start && h.at < end && h.dbfs <= -50.0).count();
    assert_eq!(silent, 0, "silent frames in the greeting");

    // The conversation goes on over the new connection.
    let asked = Instant::now();
    caller.say(utterance(1200)).await;
    wait_for_line(&caller, "user", QUESTION).await;
    caller
        .wait_for_event(10 * SECOND, |e| e["type"] == "transcript" && e["final"] == true && e["itemId"] == "turn-2")
        .await
        .unwrap();
    let (first, last) = agent_audio(&caller, asked + Duration::from_millis(1200), Instant::now()).unwrap();
    assert!(last - first >= Duration::from_millis(1000), "the answer was heard: {:?}", last - first);
    assert!(mock.turns().iter().any(|t| t.connection == resumed.index && !t.interrupted), "{:?}", mock.turns());
    assert!(mock.connections()[resumed.index].audio_received_ms > 1000);

    hang_up(&app, caller, call_id).await;
    assert_eq!(stored(&app, call_id, TranscriptRole::Agent).await, [ANSWER, ANSWER]);
    assert_eq!(stored(&app, call_id, TranscriptRole::User).await, [QUESTION]);
    assert_client_shapes(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_interruption_gemini_is_told_not_to_interrupt() {
    let mock = MockGeminiLive::start(mock_config()).await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(
        &bot,
        &admin,
        json!({"greetingMessage": "", "allowInterruption": false, "vadThreshold": 0.9}),
    )
    .await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    let setup = mock.connections()[0].setup.clone().unwrap();
    assert_eq!(setup["realtimeInputConfig"]["activityHandling"], "NO_INTERRUPTION");
    assert_eq!(
        setup["realtimeInputConfig"]["automaticActivityDetection"]["startOfSpeechSensitivity"],
        "START_SENSITIVITY_LOW"
    );
    hang_up(&app, caller, call_id).await;
    assert_client_shapes(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_phrase_replaces_gemini_s_answer_with_a_goodbye_heard_before_the_end() {
    let _serial = media_timing_lock().await;
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        reply: MockReply::tone("Sure, here you go.", 1500),
        user_transcript: "Okay, thanks. Goodbye!".into(),
        pacing: Pacing::RealTime(2.0),
        ..GeminiLiveConfig::default()
    })
    .await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "endCallPhrase": "goodbye"})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.say(utterance(1000)).await;

    // The goodbye is a new user turn: Gemini drops the answer it had started (the
    // gateway counts that turn as cancelled) and speaks the goodbye, heard in full.
    let ended = caller.wait_for_state("ended", 15 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "end_phrase");
    let ended_at = caller.timed_events().into_iter().find(|(_, e)| e["state"] == "ended").unwrap().0;
    let last_loud = caller.loud_frames(-50.0).last().unwrap().at;
    assert!(last_loud <= ended_at, "the goodbye was heard before the call ended");
    let state = mock.state();
    let farewell = state.client_messages.iter().rfind(|m| m.message.get("clientContent").is_some()).unwrap();
    let text = farewell.message["clientContent"]["turns"][0]["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains(gateway::call::policy::lines::END_PHRASE_FAREWELL), "{text}");
    let asked_at = mock.started_at() + farewell.at;
    let goodbye_ms = caller.loud_frames(-50.0).iter().filter(|h| h.at > asked_at).count() * 20;
    assert!(goodbye_ms >= 1200, "only {goodbye_ms} ms of the 1.5 s goodbye was heard");
    let turns = mock.turns();
    assert!(turns[0].interrupted && !turns[1].interrupted, "the answer gave way to the goodbye: {turns:?}");
    let row = app.state.store.call(call_id).await.unwrap().unwrap();
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::EndPhrase)));
    assert_client_shapes(&mock);
    caller.close().await;
}

fn settings(mock: &MockGeminiLive) -> ProviderSettings {
    ProviderSettings {
        openai_url: "ws://127.0.0.1:9".parse().unwrap(),
        openai_key: None,
        gemini_url: mock.ws_base_url().parse().unwrap(),
        gemini_key: Some("test-gemini-key".into()),
        retries: 3,
        backoff: Duration::from_millis(20),
    }
}

fn gemini_model(model_id: &str) -> AiModel {
    AiModel {
        id: ModelId::new(),
        provider: Provider::Google,
        model_id: model_id.into(),
        display_name: "Gemini".into(),
        model_type: ModelType::Call,
        is_active: true,
        settings: ModelSettings { realtime_dialect: None, live_api_version: Some("v1beta".into()) },
        created_at: 0,
        updated_at: 0,
    }
}

fn spec(model_id: &str) -> SessionSpec {
    SessionSpec {
        model: model_id.into(),
        dialect: Default::default(),
        instructions: "You are a friendly phone agent. Keep answers short.".into(),
        voice: "Kore".into(),
        speed: 1.0,
        vad_threshold: 0.5,
        allow_interruption: true,
        transcription: true,
        noise_reduction: false,
        respond: true,
        tools: vec![ToolSpec {
            name: "search_knowledge_base".into(),
            description: "Search the company knowledge base for an answer to the caller's question.".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        }],
        input: AudioFormat::Pcm16(SampleRate::Hz16000),
        output: AudioFormat::Pcm16(SampleRate::Hz24000),
    }
}

/// The next event matching `pick`, skipping others.
async fn next_event<T>(
    events: &mut tokio::sync::mpsc::Receiver<ProviderEvent>,
    pick: impl Fn(ProviderEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let event = events.recv().await.expect("the session is open");
            if let ProviderEvent::Closed { reason, expected: false } = &event {
                panic!("the session closed: {reason}");
            }
            if let Some(found) = pick(event) {
                return found;
            }
        }
    };
    tokio::time::timeout(10 * SECOND, wait).await.expect("the event came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_tool_call_is_answered_with_a_tool_response_the_server_accepts() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        tool_call: Some(ScriptedToolCall {
            max_calls: Some(1),
            ..ScriptedToolCall::new("search_knowledge_base", json!({"query": "shipping to Canada"}))
        }),
        ..GeminiLiveConfig::default()
    })
    .await;
    let mut session = settings(&mock).connect(&gemini_model(MODEL), &spec(MODEL)).await.unwrap();
    session.commands.send(ProviderCommand::Say { text: "Do you ship to Canada?".into() }).await.unwrap();

    let (call_id, name, arguments) = next_event(&mut session.events, |e| match e {
        ProviderEvent::ToolCall { call_id, name, arguments } => Some((call_id, name, arguments)),
        _ => None,
    })
    .await;
    assert_eq!(mock.state().tool_calls[0].1, call_id);
    assert_eq!(name, "search_knowledge_base");
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"query": "shipping to Canada"}));

    let output = json!({"answer": "We ship to Canada in 5-7 business days."}).to_string();
    session.commands.send(ProviderCommand::ToolResult { call_id: call_id.clone(), name, output }).await.unwrap();
    let line = next_event(&mut session.events, |e| match e {
        ProviderEvent::AgentTranscript { text, is_final: true, .. } => Some(text),
        _ => None,
    })
    .await;
    assert!(line.starts_with("According to our records"), "{line}");
    let responses = mock.tool_responses();
    assert_eq!((responses[0].id.as_str(), responses[0].name.as_str()), (call_id.as_str(), "search_knowledge_base"));
    assert_eq!(responses[0].response, json!({"output": {"answer": "We ship to Canada in 5-7 business days."}}));

    session.commands.send(ProviderCommand::Close).await.unwrap();
    let closed = next_event(&mut session.events, |e| match e {
        ProviderEvent::Closed { expected, .. } => Some(expected),
        _ => None,
    })
    .await;
    assert!(closed);
    let declared = &mock.connections()[0].setup.clone().unwrap()["tools"][0]["functionDeclarations"][0];
    assert_eq!(declared["parameters"]["properties"]["query"]["type"], "STRING");
    assert_client_shapes(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_setup_is_not_retried() {
    let mock = MockGeminiLive::start(GeminiLiveConfig::default()).await;
    let model = "gemini-no-such-model";
    let result = settings(&mock).connect(&gemini_model(model), &spec(model)).await;
    let Err(ProviderError::Refused(reason)) = result else { panic!("{:?}", result.err()) };
    assert!(reason.contains("1007"), "{reason}");
    assert_eq!(mock.state().handshakes, 1, "a refusal is final");
    assert_eq!(mock.closes_sent()[0].code, 1007);

    let mut wrong_key = settings(&mock);
    wrong_key.gemini_key = Some("not-the-key".into());
    let result = wrong_key.connect(&gemini_model(MODEL), &spec(MODEL)).await;
    assert!(matches!(result, Err(ProviderError::Refused(_))), "{:?}", result.err());
    assert_eq!(mock.state().handshakes, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_gemini_connection_is_resumed_without_the_session_noticing() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        faults: GeminiFaults { drop_after: Some(Duration::from_millis(400)), ..GeminiFaults::default() },
        ..GeminiLiveConfig::default()
    })
    .await;
    let mut session = settings(&mock).connect(&gemini_model(MODEL), &spec(MODEL)).await.unwrap();
    mock.wait_for(|s| s.connections.iter().filter(|c| c.resumed_from.is_some()).count() >= 2, 5 * SECOND)
        .await
        .unwrap();
    // The session still works: a spoken text is answered on the current connection.
    session.commands.send(ProviderCommand::Say { text: "Hello".into() }).await.unwrap();
    let line = next_event(&mut session.events, |e| match e {
        ProviderEvent::AgentTranscript { text, is_final: true, .. } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(line, "Hello! How can I help you today?");
    assert!(mock.closes_sent().iter().all(|c| c.code == 1011), "{:?}", mock.closes_sent());
    session.commands.send(ProviderCommand::Close).await.unwrap();
}
