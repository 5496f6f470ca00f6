//! Voices: the list per model, validation of call settings against it, and spoken
//! previews generated once through the provider and then served from the cache.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use testkit::{MockOpenAiRealtime, MockReply, OpenAiRealtimeConfig};

#[tokio::test]
async fn each_call_model_lists_its_own_voices() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig::default()).await;
    let (app, _, admin) = spawn_call_app(&mock, |_| {}).await;
    let ga = app.get(&format!("/api/company/voices?modelId={GPT_REALTIME}"), &admin, None).await;
    assert_eq!(ga.status, StatusCode::OK, "{}", ga.text);
    let ids: Vec<&str> = ga.body["voices"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"marin") && ids.contains(&"alloy"));
    assert_eq!((ga.body["defaultVoice"].as_str(), ga.body["supportsSpeed"].as_bool()), (Some("alloy"), Some(true)));
    let beta = app.get(&format!("/api/company/voices?modelId={GPT_4O_PREVIEW}"), &admin, None).await;
    assert!(!beta.text.contains("\"marin\""), "the beta dialect has no marin");
    let gemini = app.get(&format!("/api/company/voices?modelId={GEMINI_2_5}"), &admin, None).await;
    assert_eq!(gemini.body["voices"].as_array().unwrap().len(), 30);
    assert_eq!(gemini.body["supportsSpeed"], false);

    let chat = app.get(&format!("/api/company/voices?modelId={GPT_5_2}"), &admin, None).await;
    assert_eq!((chat.status, chat.field()), (StatusCode::UNPROCESSABLE_ENTITY, "modelId"));
    let missing = app.get("/api/company/voices", &admin, None).await;
    assert_eq!(missing.field(), "modelId");
    let anonymous = app.get(&format!("/api/company/voices?modelId={GPT_REALTIME}"), "", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_preview_is_generated_once_through_the_provider_and_cached() {
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        reply: MockReply::tone("Hi, I'm marin.", 3000),
        ..OpenAiRealtimeConfig::default()
    })
    .await;
    let (app, _, admin) = spawn_call_app(&mock, |_| {}).await;
    let url = format!("{}/api/company/voices/marin/preview?modelId={GPT_REALTIME}", app.base);
    let first = app.http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["content-type"], "audio/wav");
    let wav = first.bytes().await.unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    let seconds = (wav.len() - 44) as f64 / 2.0 / 24_000.0;
    assert!((2.5..=3.5).contains(&seconds), "about three seconds, got {seconds}");
    let update = &mock.connections()[0].session;
    assert_eq!(update["audio"]["output"]["voice"], "marin", "generated in the voice asked for");

    let again = app.http.get(&url).bearer_auth(&admin).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(again, wav);
    assert_eq!(mock.connection_count(), 1, "the second preview came from the cache");

    let unknown = app.get(&format!("/api/company/voices/Nova/preview?modelId={GPT_REALTIME}"), &admin, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn previews_need_a_configured_provider() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let reply = app.get(&format!("/api/company/voices/Puck/preview?modelId={GEMINI_2_5}"), &admin, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::SERVICE_UNAVAILABLE, "voice_unavailable"));
}
