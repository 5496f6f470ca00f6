//! Replays every fixture's `_expect_client` frames against the mocks.
//!
//! The fixtures' client frames are real, so the mocks must accept each of
//! them (or, in the error fixtures, answer with the same error). Before each
//! client frame the replay waits until the mock has sent at least the events
//! the fixture shows before that frame (same types, same counts; streamed
//! deltas only need to be present), then maps the fixture's ids (items,
//! responses, calls) to the mock's by aligning events of the same type.
//! Audio frames are followed by real speech so the turn actually happens;
//! a truncate's `audio_end_ms` is clamped to the audio the mock really sent
//! (fixture payloads are shortened, so their positions are not real).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::audio::{self, RATE_16K, RATE_24K};
use crate::fixtures::{FixtureLine, load_jsonl};
use crate::mock_gemini_live::{GeminiLiveConfig, GoAway, GoAwayTrigger, MockGeminiLive};
use crate::mock_openai_realtime::{Dialect, MockOpenAiRealtime, OpenAiRealtimeConfig};
use crate::script::{MockReply, Pacing, ScriptedToolCall};
use crate::test_client::TestClient;

const WAIT: Duration = Duration::from_secs(8);

fn tool() -> ScriptedToolCall {
    ScriptedToolCall::new("search_knowledge_base", json!({"query": "shipping to Canada"}))
}

/// What a server frame counts as: OpenAI `type`, or Gemini's top-level key /
/// `serverContent` field.
fn milestone(frame: &Value) -> Vec<String> {
    if let Some(kind) = frame.get("type").and_then(Value::as_str) {
        return vec![kind.to_owned()];
    }
    let Some(map) = frame.as_object() else {
        return Vec::new();
    };
    map.iter()
        .flat_map(|(key, value)| match (key.as_str(), value.as_object()) {
            ("serverContent", Some(content)) => content.keys().map(|k| format!("serverContent.{k}")).collect(),
            ("usageMetadata", _) => Vec::new(),
            (key, _) => vec![key.to_owned()],
        })
        .collect()
}

fn streamed(kind: &str) -> bool {
    kind.ends_with(".delta")
        || matches!(
            kind,
            "serverContent.modelTurn" | "serverContent.outputTranscription" | "serverContent.inputTranscription"
        )
}

fn counts(frames: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for kind in frames.iter().flat_map(milestone) {
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// The mock has sent at least what the fixture shows so far.
fn reached(fixture: &[Value], mock: &[Value]) -> bool {
    let have = counts(mock);
    counts(fixture).iter().all(|(kind, &n)| {
        let got = have.get(kind).copied().unwrap_or(0);
        if streamed(kind) { got >= 1 } else { got >= n }
    })
}

fn missing(fixture: &[Value], mock: &[Value]) -> Vec<String> {
    let have = counts(mock);
    counts(fixture)
        .into_iter()
        .filter(|(kind, n)| {
            let got = have.get(kind).copied().unwrap_or(0);
            if streamed(kind) { got == 0 } else { got < *n }
        })
        .map(|(kind, n)| format!("{kind} x{n}"))
        .collect()
}

/// Ids at the places they appear in server frames.
fn ids_of(frame: &Value) -> Vec<String> {
    let pointers = [
        "/item/id",
        "/item_id",
        "/response/id",
        "/response_id",
        "/item/call_id",
        "/call_id",
        "/toolCall/functionCalls/0/id",
    ];
    pointers.iter().filter_map(|p| frame.pointer(p).and_then(Value::as_str).map(str::to_owned)).collect()
}

/// Fixture id -> mock id, by pairing the n-th frame of each kind.
fn align(fixture: &[Value], mock: &[Value], map: &mut HashMap<String, String>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut mock_by_kind: HashMap<String, Vec<&Value>> = HashMap::new();
    for frame in mock {
        for kind in milestone(frame) {
            mock_by_kind.entry(kind).or_default().push(frame);
        }
    }
    for frame in fixture {
        for kind in milestone(frame) {
            let n = seen.entry(kind.clone()).or_insert(0);
            if let Some(theirs) = mock_by_kind.get(&kind).and_then(|frames| frames.get(*n)) {
                for (fixture_id, mock_id) in ids_of(frame).into_iter().zip(ids_of(theirs)) {
                    map.entry(fixture_id).or_insert(mock_id);
                }
            }
            *n += 1;
        }
    }
}

fn substitute(value: &Value, map: &HashMap<String, String>) -> Value {
    match value {
        Value::String(s) => json!(map.get(s).cloned().unwrap_or_else(|| s.clone())),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, map)).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), substitute(v, map))).collect()),
        other => other.clone(),
    }
}

/// The server line right after `index` (notes skipped).
fn next_server(lines: &[FixtureLine], index: usize) -> Option<&Value> {
    lines[index + 1..].iter().find_map(|line| match line {
        FixtureLine::Server(v) => Some(Some(v)),
        FixtureLine::Note(_) | FixtureLine::Meta(_) => None,
        _ => Some(None),
    })?
}

fn normalized_message(message: &str) -> String {
    let mut out = String::new();
    for word in message.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(if word.starts_with("resp_") { "resp_X." } else { word });
    }
    out.split("...").next().unwrap_or_default().trim_end().to_owned()
}

async fn replay_openai(file: &str) {
    let dialect = if file.starts_with("ga-") { Dialect::Ga } else { Dialect::Beta };
    let lines = load_jsonl(&format!("openai-realtime/{file}")).expect("fixture");
    let barge_in = file.contains("barge-in");
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        tool_call: Some(tool()),
        reply: MockReply::tone("Sure! I'd be happy to help you with that today.", 6000),
        pacing: if barge_in || file.contains("error") { Pacing::RealTime(4.0) } else { Pacing::Burst },
        user_transcript: "Do you ship to Canada?".into(),
        ..Default::default()
    })
    .await;
    let model = if dialect == Dialect::Ga { "gpt-realtime" } else { "gpt-4o-realtime-preview-2024-12-17" };
    let auth = format!("Bearer {}", mock.config().api_key);
    let mut headers = vec![("authorization", auth.as_str())];
    if dialect == Dialect::Beta {
        headers.push(("openai-beta", "realtime=v1"));
    }
    let mut client = TestClient::connect(&mock.realtime_url(model), &headers).await.expect("handshake");
    let mut fixture_seen: Vec<Value> = Vec::new();
    let mut expected_errors: Vec<Value> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let sent = |mock: &MockOpenAiRealtime| mock.server_events();

    for (index, line) in lines.iter().enumerate() {
        match line {
            FixtureLine::Server(frame) => {
                if frame["type"] == "error" {
                    expected_errors.push(frame.clone());
                }
                fixture_seen.push(frame.clone());
            }
            FixtureLine::ExpectClient(frame) => {
                let wait = mock.wait_for(|s| reached(&fixture_seen, &server_frames(s)), WAIT).await;
                assert!(
                    wait.is_ok(),
                    "{file}: before line {}: missing {:?}",
                    index + 1,
                    missing(&fixture_seen, &sent(&mock))
                );
                align(&fixture_seen, &sent(&mock), &mut ids);
                let mut frame = substitute(frame, &ids);
                let expected = next_server(&lines, index).filter(|v| v["type"] == "error").cloned();
                let expected_message = expected.as_ref().and_then(|e| e["error"]["message"].as_str()).unwrap_or("");
                if expected_message.contains("already has an active response") {
                    // The fixture's note: a response is in progress.
                    client.send(&json!({"type": "response.create"})).await;
                    let created = mock.state().count_sent("response.created") + 1;
                    mock.wait_for(|s| s.count_sent("response.created") >= created, WAIT).await.expect("response");
                }
                if expected_message.starts_with("Cancellation failed") {
                    let done = mock.state().count_sent("response.done");
                    let created = mock.state().count_sent("response.created");
                    if created > done {
                        client.send(&json!({"type": "response.cancel"})).await;
                        mock.wait_for(|s| s.count_sent("response.done") >= created, WAIT).await.expect("cancelled");
                    }
                }
                if frame["type"] == "conversation.item.truncate" {
                    let item = frame["item_id"].as_str().unwrap_or_default().to_owned();
                    let played = mock.responses().iter().find(|r| r.item_id == item).map_or(0, |r| r.audio_ms);
                    let wanted = frame["audio_end_ms"].as_u64().unwrap_or(0);
                    frame["audio_end_ms"] = json!(wanted.min(played));
                }
                client.send(&frame).await;
                if frame["type"] == "input_audio_buffer.append" {
                    let speech = audio::speech_then_silence(RATE_24K, 600, 700);
                    for chunk in speech.chunks(2400) {
                        client
                            .send(&json!({"type": "input_audio_buffer.append", "audio": audio::pcm16_base64(chunk)}))
                            .await;
                    }
                }
            }
            FixtureLine::Close { .. } | FixtureLine::Note(_) | FixtureLine::Meta(_) => {}
        }
    }
    let wait = mock.wait_for(|s| reached(&fixture_seen, &server_frames(s)), WAIT).await;
    assert!(wait.is_ok(), "{file}: at the end: missing {:?}", missing(&fixture_seen, &sent(&mock)));

    // The scenario really happened on the mock's side too.
    if file.contains("function-call") {
        assert_eq!(mock.tool_outputs().len(), 1, "{file}: the tool output was taken");
    }
    if barge_in {
        assert!(mock.responses().iter().any(|r| r.status == "cancelled"), "{file}: the answer was cut");
        assert_eq!(mock.truncates().len(), 1, "{file}: the truncate was taken");
    }
    if file.contains("plain-turn") {
        assert_eq!(mock.responses().len(), 1, "{file}");
    }
    let errors = mock.errors_sent();
    assert_eq!(errors.len(), expected_errors.len(), "{file}: errors {errors:#?}");
    for (got, want) in errors.iter().zip(&expected_errors) {
        for key in ["type", "code", "param", "event_id"] {
            assert_eq!(got["error"][key], want["error"][key], "{file}: {key} of {got}");
        }
        let (got_text, want_text) = (got["error"]["message"].as_str(), want["error"]["message"].as_str());
        let got_text = normalized_message(got_text.unwrap_or_default());
        assert!(got_text.starts_with(&normalized_message(want_text.unwrap_or_default())), "{file}: {got_text}");
    }
}

fn server_frames(state: &crate::mock_openai_realtime::OpenAiState) -> Vec<Value> {
    state.server_events.iter().map(|e| e.event.clone()).collect()
}

async fn replay_gemini(file: &str) {
    let lines = load_jsonl(&format!("gemini-live/{file}")).expect("fixture");
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        tool_call: Some(tool()),
        reply: MockReply::tone("We are open Monday to Friday, from nine to five.", 6000),
        pacing: if file.contains("barge-in") { Pacing::RealTime(4.0) } else { Pacing::Burst },
        go_away: Some(GoAway { trigger: GoAwayTrigger::AfterTurns(1), time_left: Duration::from_millis(200) })
            .filter(|_| file.contains("go-away")),
        ..Default::default()
    })
    .await;
    let url = format!("{}?key={}", mock.ws_url(), mock.config().api_key);
    let mut client = TestClient::connect(&url, &[]).await.expect("handshake");
    let mut fixture_seen: Vec<Value> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut expect_close = None;
    let sent = |mock: &MockGeminiLive| mock.server_messages();

    for (index, line) in lines.iter().enumerate() {
        match line {
            FixtureLine::Server(frame) => fixture_seen.push(frame.clone()),
            FixtureLine::ExpectClient(frame) => {
                let wait = mock.wait_for(|s| reached(&fixture_seen, &live_frames(s)), WAIT).await;
                assert!(
                    wait.is_ok(),
                    "{file}: before line {}: missing {:?}",
                    index + 1,
                    missing(&fixture_seen, &sent(&mock))
                );
                align(&fixture_seen, &sent(&mock), &mut ids);
                client.send(&substitute(frame, &ids)).await;
                if frame.get("realtimeInput").is_some() {
                    let speech = audio::speech_then_silence(RATE_16K, 600, 300);
                    for chunk in speech.chunks(1600) {
                        client
                            .send(&json!({"realtimeInput": {"audio": {"data": audio::pcm16_base64(chunk), "mimeType": "audio/pcm;rate=16000"}}}))
                            .await;
                    }
                }
            }
            FixtureLine::Close { code, reason } => expect_close = Some((*code, reason.clone())),
            FixtureLine::Note(_) | FixtureLine::Meta(_) => {}
        }
    }
    if let Some((code, reason)) = expect_close {
        let close = client.until_close().await.expect("close frame");
        assert_eq!((u16::from(close.code), close.reason.to_string()), (code, reason), "{file}");
        return;
    }
    let wait = mock.wait_for(|s| reached(&fixture_seen, &live_frames(s)), WAIT).await;
    assert!(wait.is_ok(), "{file}: at the end: missing {:?}", missing(&fixture_seen, &sent(&mock)));
    assert!(mock.errors_sent().is_empty(), "{file}: {:?}", mock.errors_sent());
    let turns = mock.turns();
    match file {
        "barge-in.jsonl" => assert!(turns.len() == 2 && turns[0].interrupted, "{file}: {turns:?}"),
        "function-call.jsonl" => assert_eq!(mock.tool_responses().len(), 1, "{file}"),
        "go-away-resumption.jsonl" => assert_eq!(mock.state().go_aways_sent, 1, "{file}"),
        _ => assert_eq!(turns.len(), 1, "{file}: {turns:?}"),
    }
}

fn live_frames(state: &crate::mock_gemini_live::GeminiState) -> Vec<Value> {
    state.server_messages.iter().map(|m| m.message.clone()).collect()
}

#[tokio::test]
async fn openai_fixtures_replay_cleanly() {
    let files = [
        "ga-plain-turn.jsonl",
        "ga-barge-in.jsonl",
        "ga-function-call.jsonl",
        "ga-error.jsonl",
        "beta-plain-turn.jsonl",
        "beta-barge-in.jsonl",
        "beta-function-call.jsonl",
        "beta-error.jsonl",
    ];
    let replays: Vec<_> = files.iter().map(|file| replay_openai(file)).collect();
    futures::future::join_all(replays).await;
}

#[tokio::test]
async fn gemini_fixtures_replay_cleanly() {
    let files =
        ["plain-turn.jsonl", "barge-in.jsonl", "function-call.jsonl", "go-away-resumption.jsonl", "error.jsonl"];
    let replays: Vec<_> = files.iter().map(|file| replay_gemini(file)).collect();
    futures::future::join_all(replays).await;
}
