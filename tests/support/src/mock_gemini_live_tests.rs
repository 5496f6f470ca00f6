//! The Gemini mock driven by a plain WebSocket client.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::audio::{self, RATE_16K};
use crate::test_client::{Received, TestClient};

const KEY: &str = "test-gemini-key";
const MODEL: &str = "models/gemini-2.5-flash-native-audio-preview-12-2025";

fn setup() -> Value {
    json!({"setup": {
        "model": MODEL,
        "generationConfig": {"responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
        "systemInstruction": {"parts": [{"text": "You are a friendly phone agent. Keep answers short."}]},
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": false,
            "startOfSpeechSensitivity": "START_SENSITIVITY_LOW", "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
            "prefixPaddingMs": 20, "silenceDurationMs": 100}},
        "inputAudioTranscription": {}, "outputAudioTranscription": {}
    }})
}

fn with_tools(mut setup: Value) -> Value {
    setup["setup"]["tools"] = json!([{"functionDeclarations": [{"name": "search_knowledge_base",
        "description": "Search the company knowledge base.",
        "parameters": {"type": "OBJECT", "properties": {"query": {"type": "STRING"}}, "required": ["query"]}}]}]);
    setup
}

async fn connect(mock: &MockGeminiLive, setup: &Value) -> TestClient {
    let mut client = TestClient::connect(&format!("{}?key={KEY}", mock.ws_url()), &[]).await.expect("handshake");
    client.send(setup).await;
    assert_eq!(client.next_json().await, json!({"setupComplete": {}}));
    client
}

/// 16 kHz PCM as 100 ms `realtimeInput.audio` messages.
async fn speak(client: &mut TestClient, samples: &[i16]) {
    for chunk in samples.chunks(audio::samples_for_ms(RATE_16K, 100)) {
        client
            .send(&json!({"realtimeInput": {"audio": {"data": audio::pcm16_base64(chunk), "mimeType": "audio/pcm;rate=16000"}}}))
            .await;
    }
}

fn caller_turn() -> Vec<i16> {
    let mut samples = audio::silence(RATE_16K, 200);
    samples.extend(audio::speech_then_silence(RATE_16K, 600, 300));
    samples
}

/// `serverContent` sub-key or top-level key of each message, for order checks.
fn kinds(messages: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = messages
        .iter()
        .map(|m| match m.get("serverContent").and_then(Value::as_object) {
            Some(content) => content.keys().next().cloned().unwrap_or_default(),
            None => m.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default(),
        })
        .collect();
    kinds.dedup();
    kinds
}

fn is_turn_complete(m: &Value) -> bool {
    m["serverContent"]["turnComplete"] == true
}

fn model_audio(messages: &[Value]) -> Vec<i16> {
    messages
        .iter()
        .filter_map(|m| m["serverContent"]["modelTurn"]["parts"][0]["inlineData"]["data"].as_str())
        .flat_map(|data| audio::pcm16_from_base64(data).expect("base64"))
        .collect()
}

#[tokio::test]
async fn plain_turn_answers_with_24_khz_audio_in_binary_frames() {
    let mock = MockGeminiLive::start(GeminiLiveConfig::default()).await;
    let mut client = connect(&mock, &setup()).await;
    speak(&mut client, &caller_turn()).await;
    let messages = client.until(is_turn_complete).await;
    let order = kinds(&messages);
    assert_eq!(order.first().map(String::as_str), Some("inputTranscription"));
    assert_eq!(order[order.len() - 2..], ["generationComplete", "turnComplete"]);
    assert!(order.contains(&"modelTurn".to_owned()) && order.contains(&"outputTranscription".to_owned()));
    let heard: String =
        messages.iter().filter_map(|m| m["serverContent"]["inputTranscription"]["text"].as_str()).collect();
    assert_eq!(heard, " Hi, can you hear me?");
    let said: String =
        messages.iter().filter_map(|m| m["serverContent"]["outputTranscription"]["text"].as_str()).collect();
    assert_eq!(said, "Hello! How can I help you today?");
    let last = messages.last().expect("turnComplete");
    assert!(last["usageMetadata"]["totalTokenCount"].as_u64().is_some(), "usage rides with turnComplete");
    let parts: Vec<&Value> =
        messages.iter().filter_map(|m| m["serverContent"]["modelTurn"]["parts"][0].get("inlineData")).collect();
    assert!(parts.iter().all(|p| p["mimeType"] == "audio/pcm;rate=24000"));
    let pcm = model_audio(&messages);
    assert_eq!(pcm.len(), 36_000);
    assert!(audio::rms(&pcm) > 0.1);
    assert_eq!(client.text_frames, 0, "the server sends binary frames only");
    assert!(client.binary_frames > 10);
    assert_eq!(mock.audio_received_ms(), 1100);
    assert!(mock.errors_sent().is_empty());
    assert_eq!(mock.connections()[0].model.as_deref(), Some("gemini-2.5-flash-native-audio-preview-12-2025"));
}

#[tokio::test]
async fn speech_during_a_model_turn_interrupts_it() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        pacing: Pacing::RealTime(2.0),
        reply: MockReply::tone("We are open Monday to Friday, from nine to five.", 3000),
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, &setup()).await;
    speak(&mut client, &caller_turn()).await;
    client.until(|m| m["serverContent"]["modelTurn"].is_object()).await;
    client.until(|m| m["serverContent"]["modelTurn"].is_object()).await;
    speak(&mut client, &audio::tone(RATE_16K, 300.0, 300, 0.5)).await;
    let messages = client.until(is_turn_complete).await;
    let order = kinds(&messages);
    assert_eq!(order[order.len() - 2..], ["interrupted", "turnComplete"]);
    assert!(!order.contains(&"generationComplete".to_owned()), "no generationComplete in an interrupted turn");
    let turns = mock.turns();
    assert!(turns[0].interrupted);
    assert!((100..3000).contains(&turns[0].audio_ms), "{turns:?}");
    // The interrupting speech becomes the next turn.
    speak(&mut client, &audio::silence(RATE_16K, 300)).await;
    let next = client.until(is_turn_complete).await;
    assert!(kinds(&next).contains(&"generationComplete".to_owned()));
}

#[tokio::test]
async fn tool_call_round_trip_and_cancellation() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        tool_call: Some(ScriptedToolCall::new("search_knowledge_base", json!({"query": "shipping to Canada"}))),
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, &with_tools(setup())).await;
    speak(&mut client, &caller_turn()).await;
    let messages = client.until(|m| m.get("toolCall").is_some()).await;
    let call = &messages.last().expect("toolCall")["toolCall"]["functionCalls"][0];
    assert_eq!(call["name"], "search_knowledge_base");
    assert_eq!(call["args"], json!({"query": "shipping to Canada"}));
    let id = call["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("function-call-"));
    client
        .send(&json!({"tool_response": {"function_responses": [{"id": id, "name": "search_knowledge_base",
            "response": {"result": "We ship to Canada in 5-7 business days."}}]}}))
        .await;
    let answer = client.until(is_turn_complete).await;
    let said: String =
        answer.iter().filter_map(|m| m["serverContent"]["outputTranscription"]["text"].as_str()).collect();
    assert_eq!(said, "According to our records: We ship to Canada in 5-7 business days.");
    assert_eq!(mock.tool_responses()[0].id, id);

    // A second turn calls again; talking over the pending call cancels it.
    speak(&mut client, &caller_turn()).await;
    let messages = client.until(|m| m.get("toolCall").is_some()).await;
    let pending = messages.last().expect("toolCall")["toolCall"]["functionCalls"][0]["id"].clone();
    speak(&mut client, &audio::tone(RATE_16K, 300.0, 200, 0.5)).await;
    let cancelled = client.until(|m| m.get("toolCallCancellation").is_some()).await;
    assert_eq!(cancelled.last().expect("cancel")["toolCallCancellation"]["ids"], json!([pending]));
    // Answering the cancelled call is an invalid argument.
    client
        .send(&json!({"toolResponse": {"functionResponses": [{"id": pending, "name": "search_knowledge_base", "response": {}}]}}))
        .await;
    let close = client.until_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1007);
}

#[tokio::test]
async fn go_away_then_resumption_with_an_issued_handle() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        go_away: Some(GoAway { trigger: GoAwayTrigger::AfterTurns(1), time_left: Duration::from_millis(300) }),
        ..Default::default()
    })
    .await;
    let mut resumable = setup();
    resumable["setup"]["sessionResumption"] = json!({});
    let mut client = connect(&mock, &resumable).await;
    let first = client.next_json().await;
    assert_eq!(first["sessionResumptionUpdate"]["resumable"], true);
    speak(&mut client, &caller_turn()).await;
    let messages = client.until(|m| m.get("goAway").is_some()).await;
    let order = kinds(&messages);
    assert_eq!(order[order.len() - 3..], ["turnComplete", "sessionResumptionUpdate", "goAway"]);
    assert_eq!(messages.last().expect("goAway")["goAway"]["timeLeft"], "0.300s");
    let handle = messages[messages.len() - 2]["sessionResumptionUpdate"]["newHandle"].clone();
    let close = client.until_close().await.expect("close");
    assert_eq!(u16::from(close.code), 1011);

    resumable["setup"]["sessionResumption"] = json!({"handle": handle});
    let mut again = connect(&mock, &resumable).await;
    assert!(again.next_json().await.get("sessionResumptionUpdate").is_some());
    let resumed = mock.resumptions();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].resumed_from.as_ref(), handle.as_str().map(str::to_owned).as_ref());

    resumable["setup"]["sessionResumption"] = json!({"handle": "not-issued"});
    let mut stranger = TestClient::connect(&format!("{}?key={KEY}", mock.ws_url()), &[]).await.expect("handshake");
    stranger.send(&resumable).await;
    assert_eq!(u16::from(stranger.until_close().await.expect("close").code), 1007);
}

async fn close_of(client: &mut TestClient) -> Option<(u16, String)> {
    client.until_close().await.map(|f| (u16::from(f.code), f.reason.to_string()))
}

#[tokio::test]
async fn bad_keys_setups_and_audio_are_closed_with_the_real_codes() {
    let mock = MockGeminiLive::start(GeminiLiveConfig::default()).await;
    let url = mock.ws_url();
    let mut wrong = TestClient::connect(&format!("{url}?key=nope"), &[]).await.expect("upgrade");
    assert_eq!(close_of(&mut wrong).await, Some((1007, "API key not valid. Please pass a valid API key.".into())));
    let mut keyless = TestClient::connect(&url, &[]).await.expect("upgrade");
    assert_eq!(close_of(&mut keyless).await.map(|c| c.0), Some(1008));

    let cases = [
        json!({"setup": {"model": "models/gemini-no-such-model", "generationConfig": {"responseModalities": ["AUDIO"]}}}),
        json!({"setup": {"model": MODEL, "speech_config": {}}}),
        json!({"realtimeInput": {"audio": {"data": "", "mimeType": "audio/pcm;rate=16000"}}}),
        json!({"setup": {"model": MODEL}, "clientContent": {}}),
    ];
    for message in cases {
        let mut client = TestClient::connect(&format!("{url}?key={KEY}"), &[]).await.expect("upgrade");
        client.send(&message).await;
        let (code, reason) = close_of(&mut client).await.expect("close");
        assert_eq!(code, 1007, "{message}: {reason}");
    }
    let mut client = connect(&mock, &setup()).await;
    client
        .send(&json!({"realtimeInput": {"audio": {"data": audio::pcm16_base64(&[0; 240]), "mimeType": "audio/pcm;rate=24000"}}}))
        .await;
    assert_eq!(close_of(&mut client).await.map(|c| c.0), Some(1007));
    let mut client = connect(&mock, &setup()).await;
    client.send(&json!({"realtimeInput": {"activityStart": {}}})).await;
    assert_eq!(close_of(&mut client).await.map(|c| c.0), Some(1007), "activityStart needs detection disabled");
    assert_eq!(mock.errors_sent().len(), 8);
}

#[tokio::test]
async fn header_key_snake_case_v1alpha_and_text_turns_work() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        replies: vec![MockReply::tone("Thanks for calling Acme, how can I help?", 500)],
        ..Default::default()
    })
    .await;
    let url = mock.ws_url().replace("v1beta", "v1alpha");
    let mut client = TestClient::connect(&url, &[("x-goog-api-key", KEY)]).await.expect("handshake");
    client
        .send(&json!({"setup": {"model": MODEL, "generation_config": {"response_modalities": ["AUDIO"]},
            "output_audio_transcription": {}}}))
        .await;
    assert_eq!(client.next_json().await, json!({"setupComplete": {}}));
    client
        .send(&json!({"client_content": {"turns": [{"role": "user", "parts": [{"text": "Greet the caller."}]}], "turn_complete": true}}))
        .await;
    let messages = client.until(is_turn_complete).await;
    let said: String =
        messages.iter().filter_map(|m| m["serverContent"]["outputTranscription"]["text"].as_str()).collect();
    assert_eq!(said, "Thanks for calling Acme, how can I help?");
    assert_eq!(mock.connections()[0].api_version, "v1alpha");
    client.send_raw(Message::Close(None)).await;
    assert!(matches!(client.recv(Duration::from_secs(1)).await, Some(Received::Close(_)) | None));
}

#[tokio::test]
async fn manual_activity_and_handshake_faults() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        faults: GeminiFaults { reject_handshakes: HandshakeRejection::First(1), ..Default::default() },
        ..Default::default()
    })
    .await;
    let url = format!("{}?key={KEY}", mock.ws_url());
    match TestClient::connect(&url, &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503)
        }
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("the first handshake is refused"),
    }
    let mut manual = setup();
    manual["setup"]["realtimeInputConfig"] = json!({"automaticActivityDetection": {"disabled": true}});
    let mut client = connect(&mock, &manual).await;
    client.send(&json!({"realtimeInput": {"activityStart": {}}})).await;
    speak(&mut client, &audio::silence(RATE_16K, 200)).await;
    client.send(&json!({"realtimeInput": {"activityEnd": {}}})).await;
    let messages = client.until(is_turn_complete).await;
    assert!(kinds(&messages).contains(&"generationComplete".to_owned()));
}

#[tokio::test]
async fn timed_go_away_and_dropped_connections() {
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        go_away: Some(GoAway {
            trigger: GoAwayTrigger::After(Duration::from_millis(150)),
            time_left: Duration::from_millis(100),
        }),
        faults: GeminiFaults { setup_complete_delay: Duration::from_millis(50), ..Default::default() },
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, &setup()).await;
    assert_eq!(client.next_json().await, json!({"goAway": {"timeLeft": "0.100s"}}));
    assert_eq!(close_of(&mut client).await.map(|c| c.0), Some(1011));

    let mock = MockGeminiLive::start(GeminiLiveConfig {
        faults: GeminiFaults { drop_after: Some(Duration::from_millis(100)), ..Default::default() },
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, &setup()).await;
    assert_eq!(close_of(&mut client).await, Some((1011, "Internal error occurred.".into())));
    assert!(mock.errors_sent().is_empty(), "a dropped connection is not a client error");
}
