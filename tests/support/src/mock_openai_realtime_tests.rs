//! The OpenAI mock driven by a plain WebSocket client.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use super::*;
use crate::audio::{self, RATE_8K, RATE_24K};
use crate::test_client::{TestClient, types};

const KEY: &str = "sk-test-openai";

async fn connect(mock: &MockOpenAiRealtime, dialect: Dialect) -> TestClient {
    let model = if dialect == Dialect::Ga { "gpt-realtime" } else { "gpt-4o-realtime-preview-2024-12-17" };
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![("authorization", auth.as_str())];
    if dialect == Dialect::Beta {
        headers.push(("openai-beta", "realtime=v1"));
    }
    let mut client = TestClient::connect(&mock.realtime_url(model), &headers).await.expect("handshake");
    let created = client.next_json().await;
    assert_eq!(created["type"], "session.created");
    client
}

/// Sends `samples` as 100 ms `input_audio_buffer.append` events.
async fn append(client: &mut TestClient, samples: &[i16], encode: fn(&[i16]) -> Vec<u8>, rate: u32) {
    for chunk in samples.chunks(audio::samples_for_ms(rate, 100)) {
        let audio = audio::base64_encode(&encode(chunk));
        client.send(&json!({"type": "input_audio_buffer.append", "audio": audio})).await;
    }
}

/// A caller turn: 300 ms silence, 600 ms of loud tone, 700 ms silence.
fn caller_turn(rate: u32) -> Vec<i16> {
    let mut samples = audio::silence(rate, 300);
    samples.extend(audio::speech_then_silence(rate, 600, 700));
    samples
}

fn ga_session_update() -> Value {
    json!({"type": "session.update", "session": {
        "type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"],
        "instructions": "You are a polite AI assistant on a phone call. Keep answers short.",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"},
                      "transcription": {"model": "whisper-1", "language": "en"}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
        }
    }})
}

fn beta_session_update() -> Value {
    json!({"type": "session.update", "session": {
        "modalities": ["text", "audio"], "instructions": "You are Sarah.", "voice": "coral",
        "input_audio_format": "pcm16", "output_audio_format": "pcm16",
        "input_audio_transcription": {"model": "whisper-1", "language": "en"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                           "silence_duration_ms": 200, "create_response": true, "interrupt_response": true},
        "tools": [], "tool_choice": "auto"
    }})
}

fn decoded_audio(events: &[Value], kind: &str) -> Vec<i16> {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .flat_map(|e| audio::pcm16_from_base64(e["delta"].as_str().expect("delta")).expect("base64"))
        .collect()
}

fn without_deltas(events: &[Value]) -> Vec<String> {
    let mut kinds = types(events);
    kinds.dedup_by(|a, b| a == b && a.ends_with(".delta"));
    kinds.retain(|k| !k.ends_with("audio.delta") && !k.ends_with("transcript.delta"));
    kinds
}

#[tokio::test]
async fn ga_plain_turn_streams_real_audio_in_the_fixture_order() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        user_transcript: "Do you ship to Canada?".into(),
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, Dialect::Ga).await;
    let created = &client.seen[0]["session"];
    assert_eq!(created["type"], "realtime");
    assert_eq!(created["audio"]["input"]["turn_detection"]["silence_duration_ms"], 200);
    assert_eq!(created["audio"]["input"]["turn_detection"]["threshold"], 0.5);

    client.send(&ga_session_update()).await;
    let updated = client.next_json().await;
    assert_eq!(updated["type"], "session.updated", "{updated}");
    assert_eq!(updated["session"]["audio"]["input"]["transcription"]["prompt"], Value::Null);

    append(&mut client, &caller_turn(RATE_24K), audio::pcm16_to_bytes, RATE_24K).await;
    let events = client.until_type("response.done").await;
    assert_eq!(
        without_deltas(&events),
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "response.created",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let started = &events[0];
    let start_ms = started["audio_start_ms"].as_u64().expect("ms");
    assert!(start_ms <= 20, "onset at 300 ms minus 300 ms padding: {started}");
    let stopped = &events[1];
    let end_ms = stopped["audio_end_ms"].as_u64().expect("ms");
    assert!((1080..=1120).contains(&end_ms), "900 ms + 200 ms silence: {stopped}");
    assert_eq!(stopped["item_id"], started["item_id"]);
    assert!(events.iter().all(|e| { e["event_id"].as_str().is_some_and(|id| id.starts_with("event_")) }));

    let pcm = decoded_audio(&events, "response.output_audio.delta");
    assert_eq!(pcm.len(), 36_000, "1.5 s at 24 kHz");
    assert!(audio::rms(&pcm) > 0.1, "the reply is real audio");
    let transcript: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().expect("delta"))
        .collect();
    assert_eq!(transcript, "Hello! How can I help you today?");
    let done = events.last().expect("response.done");
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(done["response"]["output"][0]["content"][0]["type"], "output_audio");
    assert!(done["response"]["usage"]["total_tokens"].as_u64().is_some());
    let completed = events.iter().find(|e| e["type"].as_str().is_some_and(|t| t.ends_with("transcription.completed")));
    assert_eq!(completed.expect("transcription")["transcript"], "Do you ship to Canada?");

    assert_eq!(client.next_json().await["type"], "rate_limits.updated");
    assert!(mock.errors_sent().is_empty(), "{:?}", mock.errors_sent());
    assert_eq!(mock.audio_received_ms(), 1600);
    let responses = mock.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].audio_ms, 1500);
    assert_eq!(mock.connections()[0].dialect, Dialect::Ga);
    assert_eq!(mock.connections()[0].model, "gpt-realtime");
}

#[tokio::test]
async fn beta_plain_turn_uses_beta_names_and_shapes() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let mut client = connect(&mock, Dialect::Beta).await;
    let created = &client.seen[0]["session"];
    assert_eq!(created["input_audio_format"], "pcm16");
    assert_eq!(created["modalities"], json!(["audio", "text"]));
    assert!(created.get("type").is_none());

    client.send(&beta_session_update()).await;
    let updated = client.next_json().await;
    assert_eq!(updated["type"], "session.updated", "{updated}");
    assert_eq!(updated["session"]["voice"], "coral");

    append(&mut client, &caller_turn(RATE_24K), audio::pcm16_to_bytes, RATE_24K).await;
    let events = client.until_type("response.done").await;
    assert_eq!(
        without_deltas(&events),
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.created",
            "response.created",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.created",
            "response.content_part.added",
            "response.audio.done",
            "response.audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
        ]
    );
    assert!(audio::rms(&decoded_audio(&events, "response.audio.delta")) > 0.1);
    let done = events.last().expect("done");
    assert_eq!(done["response"]["voice"], "coral");
    assert_eq!(done["response"]["output"][0]["object"], "realtime.item");
    assert_eq!(done["response"]["output"][0]["content"][0]["type"], "audio");
    assert!(events.iter().all(|e| e.get("obfuscation").is_none()), "beta deltas carry no obfuscation");
    assert!(mock.errors_sent().is_empty(), "{:?}", mock.errors_sent());
    assert_eq!(mock.connections()[0].dialect, Dialect::Beta);
}

#[tokio::test]
async fn g711_sessions_take_and_give_8_khz_mulaw() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let mut client = connect(&mock, Dialect::Ga).await;
    client
        .send(&json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}}))
        .await;
    let updated = client.next_json().await;
    assert_eq!(updated["session"]["audio"]["output"]["format"], json!({"type": "audio/pcmu"}));
    append(&mut client, &caller_turn(RATE_8K), audio::ulaw_encode_all, RATE_8K).await;
    let events = client.until_type("response.done").await;
    let deltas: Vec<Vec<u8>> = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| audio::base64_decode(e["delta"].as_str().expect("delta")).expect("base64"))
        .collect();
    assert_eq!(deltas.len(), 15);
    assert!(deltas.iter().all(|d| d.len() == 800), "100 ms of 8 kHz µ-law per delta");
    let pcm: Vec<i16> = deltas.iter().flat_map(|d| audio::ulaw_decode_all(d)).collect();
    assert!(audio::rms(&pcm) > 0.1);
    assert_eq!(mock.audio_received_ms(), 1600);
}

#[tokio::test]
async fn malformed_events_get_the_real_errors_and_the_session_stays_open() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let mut client = connect(&mock, Dialect::Ga).await;
    let cases = [
        (
            json!({"type": "session.update", "session": {"type": "realtime", "foo": 1}}),
            "unknown_parameter",
            Some("session.foo"),
        ),
        (
            json!({"type": "session.update", "session": {"instructions": "x"}}),
            "missing_required_parameter",
            Some("session.type"),
        ),
        (
            json!({"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}}),
            "unknown_parameter",
            Some("session.voice"),
        ),
        (
            json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "nova"}}}}),
            "invalid_value",
            Some("session.audio.output.voice"),
        ),
        (
            json!({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio", "text"]}}),
            "invalid_value",
            Some("session.output_modalities"),
        ),
        (json!({"event_id": "event_567"}), "invalid_event", None),
        (json!({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty", None),
        (json!({"type": "input_audio_buffer.append", "audio": "%%%"}), "invalid_value", Some("audio")),
    ];
    for (event, code, param) in cases {
        client.send(&event).await;
        let error = client.next_json().await;
        assert_eq!(error["type"], "error", "{event} -> {error}");
        assert_eq!(error["error"]["code"], code, "{event} -> {error}");
        assert_eq!(error["error"]["param"], json!(param), "{event} -> {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    client.send(&json!({"event_id": "my_awesome_event", "type": "scooby.dooby.doo"})).await;
    let error = client.next_json().await;
    assert_eq!(error["error"]["param"], "type");
    assert_eq!(error["error"]["event_id"], "my_awesome_event");
    assert!(error["error"]["message"].as_str().expect("message").starts_with("Invalid value: 'scooby.dooby.doo'."));

    client.send(&ga_session_update()).await;
    assert_eq!(client.next_json().await["type"], "session.updated", "still open after errors");
    assert_eq!(mock.errors_sent().len(), 9);

    // The beta dialect refuses GA shapes.
    let mut beta = connect(&mock, Dialect::Beta).await;
    beta.send(&ga_session_update()).await;
    let error = beta.next_json().await;
    assert_eq!(error["error"]["code"], "unknown_parameter", "{error}");
}

#[tokio::test]
async fn speech_during_a_response_cancels_it_and_truncate_is_recorded() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        pacing: Pacing::RealTime(2.0),
        reply: MockReply::tone("Sure! Let me tell you all about our opening hours today.", 3000),
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, Dialect::Ga).await;
    append(&mut client, &caller_turn(RATE_24K), audio::pcm16_to_bytes, RATE_24K).await;
    let first = client.until(|e| e["type"] == "response.output_audio.delta").await;
    let item_id = first.last().expect("delta")["item_id"].clone();
    client.until(|e| e["type"] == "response.output_audio.delta").await;

    // The caller talks over the answer.
    append(&mut client, &audio::tone(RATE_24K, 300.0, 300, 0.5), audio::pcm16_to_bytes, RATE_24K).await;
    let events = client.until_type("response.done").await;
    let kinds = without_deltas(&events);
    let started = kinds.iter().position(|k| k == "input_audio_buffer.speech_started").expect("speech_started");
    assert_eq!(
        kinds[started..],
        [
            "input_audio_buffer.speech_started",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let done = events.last().expect("done");
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(done["response"]["status_details"], json!({"type": "cancelled", "reason": "turn_detected"}));
    assert_eq!(done["response"]["output"][0]["status"], "incomplete");
    let sent_ms = mock.responses()[0].audio_ms;
    assert!((200..3000).contains(&sent_ms), "cancelled part way: {sent_ms} ms");

    client
        .send(
            &json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 150}),
        )
        .await;
    let truncated = client.until_type("conversation.item.truncated").await;
    assert_eq!(truncated.last().expect("truncated")["audio_end_ms"], 150);
    let truncates = mock.truncates();
    assert_eq!(truncates.len(), 1);
    assert_eq!(truncates[0].item_id, item_id.as_str().expect("id"));
    assert_eq!(truncates[0].audio_end_ms, 150);
    assert!(mock.errors_sent().is_empty(), "{:?}", mock.errors_sent());
}

#[tokio::test]
async fn truncate_is_validated_like_the_real_api() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let mut client = connect(&mock, Dialect::Ga).await;
    append(&mut client, &caller_turn(RATE_24K), audio::pcm16_to_bytes, RATE_24K).await;
    let events = client.until_type("response.done").await;
    let user_item = events[0]["item_id"].clone();
    let assistant_item = events.last().expect("done")["response"]["output"][0]["id"].clone();
    let truncate = |item_id: &Value, ms: u64| json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": ms});
    let cases = [
        (truncate(&assistant_item, 5000), "Audio content of 1500ms is already shorter than 5000ms"),
        (truncate(&user_item, 10), "Only model output audio messages can be truncated"),
        (truncate(&json!("item_nope"), 10), "Error truncating item: the item with id 'item_nope' does not exist."),
    ];
    client.drain(Duration::from_millis(50)).await;
    for (event, message) in cases {
        client.send(&event).await;
        let error = client.next_json().await;
        assert_eq!(error["error"]["message"], message, "{error}");
    }
    client.send(&truncate(&assistant_item, 1000)).await;
    assert_eq!(client.next_json().await["type"], "conversation.item.truncated");
    client.send(&truncate(&assistant_item, 1200)).await;
    let error = client.next_json().await;
    assert_eq!(error["error"]["message"], "Audio content of 1000ms is already shorter than 1200ms");
    assert_eq!(mock.truncates().len(), 1);
}

#[tokio::test]
async fn function_call_round_trip_speaks_the_tool_output() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        tool_call: Some(ScriptedToolCall::new("search_knowledge_base", json!({"query": "shipping to Canada"}))),
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, Dialect::Ga).await;
    let mut update = ga_session_update();
    update["session"]["tools"] = json!([{"type": "function", "name": "search_knowledge_base",
        "description": "Search the knowledge base.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]);
    client.send(&update).await;
    assert_eq!(client.next_json().await["type"], "session.updated");
    append(&mut client, &caller_turn(RATE_24K), audio::pcm16_to_bytes, RATE_24K).await;
    let events = client.until_type("response.done").await;
    let kinds = types(&events);
    let from = kinds.iter().position(|k| k == "response.output_item.added").expect("item");
    assert_eq!(
        kinds[from..],
        [
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let args_done = &events[from + 4];
    assert_eq!(args_done["name"], "search_knowledge_base");
    assert_eq!(args_done["arguments"], r#"{"query":"shipping to Canada"}"#);
    let call_id = args_done["call_id"].as_str().expect("call id").to_owned();
    assert!(call_id.starts_with("call_"));

    // A wrong call id is refused; the right one is recorded and answered.
    client
        .send(&json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_nope", "output": "x"}}))
        .await;
    let error = client.until_type("error").await;
    assert_eq!(error.last().expect("error")["error"]["code"], "invalid_tool_call_id");
    let output = r#"{"results":[{"snippet":"We ship to Canada in 5-7 business days."}]}"#;
    client
        .send(&json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call_id, "output": output}}))
        .await;
    assert_eq!(client.next_json().await["type"], "conversation.item.added");
    client.send(&json!({"type": "response.create"})).await;
    let answer = client.until_type("response.done").await;
    let transcript = answer.last().expect("done")["response"]["output"][0]["content"][0]["transcript"].clone();
    assert_eq!(transcript, format!("According to our records: {output}"));
    assert_eq!(mock.tool_outputs(), vec![ToolOutputRecord { connection: 0, call_id, output: output.into() }]);
}

#[tokio::test]
async fn response_create_and_cancel_conflicts_are_errors() {
    let mock =
        MockOpenAiRealtime::start(OpenAiRealtimeConfig { pacing: Pacing::RealTime(1.0), ..Default::default() }).await;
    let mut client = connect(&mock, Dialect::Ga).await;
    client.send(&json!({"type": "response.cancel"})).await;
    let error = client.next_json().await;
    assert_eq!(error["error"]["code"], "response_cancel_not_active");
    assert_eq!(error["error"]["message"], "Cancellation failed: no active response found");

    client.send(&json!({"type": "response.create", "response": {"instructions": "Greet the caller."}})).await;
    let created = client.until_type("response.created").await;
    let id = created.last().expect("created")["response"]["id"].as_str().expect("id").to_owned();
    client.send(&json!({"type": "response.create"})).await;
    let error = client.until_type("error").await;
    assert_eq!(error.last().expect("error")["error"]["code"], "conversation_already_has_active_response");
    assert_eq!(
        error.last().expect("error")["error"]["message"],
        format!(
            "Conversation already has an active response in progress: {id}. Wait until the response is finished before creating a new one."
        )
    );
    client.send(&json!({"type": "response.cancel"})).await;
    let done = client.until_type("response.done").await;
    assert_eq!(done.last().expect("done")["response"]["status_details"]["reason"], "client_cancelled");
}

#[tokio::test]
async fn handshake_faults_and_bad_keys_are_http_errors() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        faults: OpenAiFaults { reject_handshakes: HandshakeRejection::First(1), ..Default::default() },
        ..Default::default()
    })
    .await;
    let url = mock.realtime_url("gpt-realtime");
    let auth = format!("Bearer {KEY}");
    let status = |result: Result<TestClient, tungstenite::Error>| match result {
        Err(tungstenite::Error::Http(response)) => {
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("json body");
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => (101, Value::Null),
    };
    let (code, body) = status(TestClient::connect(&url, &[("authorization", &auth)]).await);
    assert_eq!(code, 503);
    assert_eq!(body["error"]["type"], "server_error");
    let (code, body) = status(TestClient::connect(&url, &[("authorization", "Bearer sk-wrong-key-123")]).await);
    assert_eq!(code, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
    let (code, body) = status(TestClient::connect(&url, &[]).await);
    assert_eq!(code, 401);
    assert!(body["error"]["message"].as_str().expect("message").starts_with("You didn't provide an API key"));
    let (code, body) = status(TestClient::connect(&mock.realtime_url("gpt-5"), &[("authorization", &auth)]).await);
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("model_not_found")));
    let (code, _) = status(TestClient::connect(&url, &[("authorization", &auth)]).await);
    assert_eq!(code, 101, "accepted after the injected failure");
    let state = mock.state();
    assert_eq!((state.handshakes, state.rejected_handshakes, state.connections.len()), (5, 4, 1));
}

#[tokio::test]
async fn the_session_cap_sends_session_expired_then_closes() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        faults: OpenAiFaults { session_cap: Some(Duration::from_millis(300)), ..Default::default() },
        ..Default::default()
    })
    .await;
    let mut client = connect(&mock, Dialect::Ga).await;
    let error = client.next_json().await;
    assert_eq!(error["error"]["code"], "session_expired");
    assert!(
        error["error"]["message"].as_str().expect("message").starts_with("Your session hit the maximum duration of")
    );
    let close = client.until_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
    mock.wait_for(|s| s.connections.first().is_some_and(|c| c.capped), Duration::from_secs(1)).await.expect("capped");
    assert!(mock.client_errors().is_empty(), "the cap is not the client's fault");
}

#[tokio::test]
async fn browser_subprotocols_authenticate_and_select_beta() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let protocols = format!("realtime, openai-insecure-api-key.{KEY}, openai-beta.realtime-v1");
    let mut client = TestClient::connect(
        &mock.realtime_url("gpt-4o-realtime-preview-2024-12-17"),
        &[("sec-websocket-protocol", &protocols)],
    )
    .await
    .expect("handshake");
    assert_eq!(client.next_json().await["type"], "session.created");
    assert_eq!(mock.connections()[0].dialect, Dialect::Beta);
}

#[tokio::test]
async fn state_endpoint_serves_the_records() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let mut client = connect(&mock, Dialect::Ga).await;
    client.send(&json!({"type": "response.cancel"})).await;
    client.next_json().await;
    let state: Value =
        reqwest::get(format!("http://{}/__mock/state", mock.addr())).await.expect("get").json().await.expect("json");
    assert_eq!(state["errors_sent"][0]["event"]["error"]["code"], "response_cancel_not_active");
    assert_eq!(state["connections"][0]["dialect"], "ga");
}

#[tokio::test]
async fn text_sessions_answer_in_text_and_voice_is_fixed_after_audio() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let mut client = connect(&mock, Dialect::Ga).await;
    client.send(&json!({"type": "response.create", "response": {"output_modalities": ["text"]}})).await;
    let events = client.until_type("response.done").await;
    let kinds = without_deltas(&events);
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    assert_eq!(events.last().expect("done")["response"]["output"][0]["content"][0]["type"], "output_text");

    client.send(&json!({"type": "response.create"})).await;
    client.until_type("response.done").await;
    client
        .send(&json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}))
        .await;
    let error = client.until_type("error").await;
    assert_eq!(error.last().expect("error")["error"]["code"], "cannot_update_voice");
}
