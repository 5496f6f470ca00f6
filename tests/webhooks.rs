//! Webhooks against a real gateway and a local receiver: signatures the documented snippet
//! verifies, retries, the outbox surviving a restart, per-endpoint order, private
//! destinations, automatic disabling, redelivery, the delivery log, tenant isolation.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::receiver::{Received, Receiver};
use common::*;
use gateway::config::ServeArgs;
use gateway::events::payload::{EventData, IntegrationFailed, IntegrationKind};
use gateway::ids::{CallId, CompanyId};
use gateway::store::{EndReason, TranscriptLine, TranscriptRole};
use gateway::time::now_ms;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// Quick deliveries for tests, to the local receiver.
fn fast(args: &mut ServeArgs) {
    args.webhooks.allow_private = true;
    args.webhooks.poll_ms = 50;
    args.webhooks.backoff_ms = 100;
    args.webhooks.timeout_seconds = 2;
}

async fn register(app: &TestApp, admin: &str, url: &str, events: &[&str]) -> (String, String) {
    let reply = app.post("/api/company/webhooks", admin, None, json!({"url": url, "events": events})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (reply.body["id"].as_str().unwrap().to_owned(), reply.body["secret"].as_str().unwrap().to_owned())
}

/// An `integration.failed` event numbered by its error, written as the store writes it.
async fn emit(app: &TestApp, company: CompanyId, n: usize) {
    let data = EventData::IntegrationFailed(IntegrationFailed {
        integration: IntegrationKind::Provider,
        account_id: None,
        account_name: None,
        provider: Some("openai".into()),
        failed_calls: Some(3),
        window_minutes: Some(10),
        error: format!("event {n}"),
    });
    app.state.store.emit_event(company, &data, now_ms()).await.unwrap();
}

/// A call through its life as the call session records it: connecting, active, a line
/// each way, ended by the caller.
async fn call_through(app: &TestApp, company: CompanyId, chatbot: &str) -> CallId {
    let store = &app.state.store;
    let call = store.create_call(web_call(company, chatbot)).await.unwrap();
    assert!(store.mark_call_connecting(call.id, "test-node").await.unwrap());
    let answered = now_ms();
    assert!(store.mark_call_active(call.id, answered).await.unwrap());
    for (seq, role, text) in [(0, TranscriptRole::Agent, "Hi! How can I help?"), (1, TranscriptRole::User, "Bye")] {
        let line = TranscriptLine { seq, role, content: text.into(), item_id: None, offset_ms: seq * 1500 };
        store.append_transcript(call.id, &line).await.unwrap();
    }
    assert!(store.end_call(call.id, EndReason::CallerHangup, answered + 4200, None).await.unwrap());
    call.id
}

async fn deliveries(app: &TestApp, admin: &str, webhook: &str) -> Vec<Value> {
    let reply = app.get(&format!("/api/company/webhooks/{webhook}/deliveries"), admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body.as_array().unwrap().clone()
}

/// Polls the API until `done` holds for the endpoint's delivery log.
async fn wait_for_log(
    app: &TestApp,
    admin: &str,
    webhook: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = deliveries(app, admin, webhook).await;
        if done(&log) {
            return log;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {log:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the Python verification snippet of docs/webhooks.md, as written there, on a
/// delivery; None when python3 is not installed.
fn python_verifies(secret: &str, signature: &str, body: &[u8]) -> Option<bool> {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks.md")).unwrap();
    let after = docs.split("<!-- verify-snippet -->").nth(1).expect("docs/webhooks.md marks its snippet");
    let snippet = after.split("```python").nth(1).unwrap().split("```").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let program = format!(
        "{snippet}\nimport os\nbody = open(os.environ['BODY_FILE'], 'rb').read()\n\
         print('valid' if verify(os.environ['SECRET'], os.environ['SIGNATURE'], body) else 'invalid')\n"
    );
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .env("BODY_FILE", &body_file)
        .env("SECRET", secret)
        .env("SIGNATURE", signature)
        .output()
        .ok()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8_lossy(&output.stdout).trim() == "valid")
}

#[tokio::test]
async fn call_events_arrive_signed_and_the_documented_snippet_verifies_them() {
    let app = spawn_app_with(fast).await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let chatbot = app.call_chatbot(company, &admin).await;
    let receiver = Receiver::start().await;
    let (webhook, secret) =
        register(&app, &admin, &receiver.url(), &["call.started", "call.ended", "call.failed"]).await;
    assert!(secret.starts_with("whsec_") && secret.len() == 49, "the secret is shown in full once: {secret}");
    let shown = app.get(&format!("/api/company/webhooks/{webhook}"), &admin, None).await;
    assert!(!shown.text.contains(&secret[6..]), "then masked: {}", shown.text);
    assert_eq!(shown.body["secret"], format!("whsec_••••{}", &secret[secret.len() - 4..]));

    let call = call_through(&app, company, &chatbot).await;
    let got = receiver.wait_for("call.started and call.ended", WAIT, |r| r.len() >= 2).await;
    assert_eq!(got.iter().map(|r| r.header("x-gateway-event")).collect::<Vec<_>>(), ["call.started", "call.ended"]);
    let ended = &got[1];
    let body = ended.json();
    assert_eq!(body["type"], "call.ended");
    assert_eq!(body["companyId"], company.to_string());
    assert_eq!(body["id"], ended.header("x-gateway-event-id"));
    assert_eq!(body["data"]["callId"], call.to_string());
    assert_eq!(body["data"]["endReason"], "caller_hangup");
    assert_eq!(body["data"]["durationMs"], 4200);
    assert_eq!(body["data"]["transcript"][1], json!({"role": "user", "content": "Bye", "offsetMs": 1500}));
    assert_eq!(ended.header("content-type"), "application/json");

    let signature = ended.header("x-gateway-signature");
    let now = now_ms() / 1000;
    assert!(gateway::events::signature::verify(&secret, &signature, &ended.body, now, 300));
    let (t, v1) = signature.split_once(',').unwrap();
    assert!(t.starts_with("t=") && v1.starts_with("v1=") && v1.len() == 3 + 64, "{signature}");
    match python_verifies(&secret, &signature, &ended.body) {
        Some(valid) => {
            assert!(valid, "the documented snippet accepts a real delivery");
            let mut tampered = ended.body.to_vec();
            tampered.push(b' ');
            assert_eq!(python_verifies(&secret, &signature, &tampered), Some(false), "and refuses a changed body");
            assert_eq!(python_verifies("whsec_other", &signature, &ended.body), Some(false), "or another secret");
        }
        None => eprintln!("python3 not found: the snippet was checked through its Rust mirror only"),
    }

    // The receiver answers before the gateway records the outcome.
    let log = wait_for_log(&app, &admin, &webhook, "both recorded as delivered", |log| {
        log.len() == 2 && log.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(log[0]["eventType"], "call.ended");
    assert_eq!(log[0]["log"][0]["statusCode"], 200);
    assert_eq!(log[0]["nextAttemptAt"], Value::Null);
}

#[tokio::test]
async fn deliveries_are_retried_until_a_failing_receiver_comes_back_and_the_log_shows_each_attempt() {
    let app = spawn_app_with(fast).await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let (webhook, _) = register(&app, &admin, &receiver.url(), &["integration.failed"]).await;
    emit(&app, company, 1).await;
    receiver.wait_for("two failed attempts", WAIT, |r| r.len() >= 2).await;
    let pending = wait_for_log(&app, &admin, &webhook, "the failures in the log", |log| {
        log.first().is_some_and(|d| d["attempts"].as_i64() >= Some(2))
    })
    .await;
    let delivery = &pending[0];
    assert_eq!(delivery["status"], "pending");
    assert!(delivery["nextAttemptAt"].is_string(), "{delivery}");
    assert_eq!(delivery["lastStatusCode"], 503);
    assert_eq!(delivery["log"][0]["error"], "HTTP 503");
    assert!(delivery["log"][0]["latencyMs"].is_i64() && delivery["log"][0]["attemptedAt"].is_string());

    receiver.answer(200);
    let got = receiver.wait_for("a delivered attempt", WAIT, |r| r.iter().any(|r| r.answered == 200)).await;
    let ids: Vec<String> = got.iter().map(|r| r.header("x-gateway-event-id")).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "every attempt carries the same event id");
    let log = wait_for_log(&app, &admin, &webhook, "delivered", |log| log[0]["status"] == "delivered").await;
    let attempts = log[0]["log"].as_array().unwrap();
    assert_eq!(attempts[0]["statusCode"], 200);
    assert_eq!(attempts[0]["error"], Value::Null);
    assert!(attempts[1..].iter().all(|a| a["statusCode"] == 503));
    assert_eq!(log[0]["attempts"].as_u64(), Some(attempts.len() as u64));
    assert_eq!(log[0]["nextAttemptAt"], Value::Null);
    let endpoint = app.get(&format!("/api/company/webhooks/{webhook}"), &admin, None).await;
    assert_eq!((endpoint.body["enabled"].as_bool(), &endpoint.body["failingSince"]), (Some(true), &Value::Null));
}

#[tokio::test]
async fn events_pending_when_the_gateway_stops_arrive_after_a_restart() {
    // The first gateway looks at its outbox once, at start, then not for an hour: the
    // events written after that are still waiting when it stops.
    let app = spawn_app_with(|args| {
        fast(args);
        args.webhooks.poll_ms = 3_600_000;
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let chatbot = app.call_chatbot(company, &admin).await;
    let receiver = Receiver::start().await;
    register(&app, &admin, &receiver.url(), &["call.started", "call.ended"]).await;
    let call = call_through(&app, company, &chatbot).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.requests().is_empty(), "nothing sent before the restart");

    let app = app.restart_with(fast).await;
    let got = receiver.wait_for("both events after the restart", WAIT, |r| r.len() >= 2).await;
    assert_eq!(got.iter().map(|r| r.header("x-gateway-event")).collect::<Vec<_>>(), ["call.started", "call.ended"]);
    assert_eq!(got[1].json()["data"]["callId"], call.to_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests().len(), 2, "each once");
    drop(app);
}

#[tokio::test]
async fn each_endpoint_receives_its_events_in_order_and_does_not_wait_for_the_others() {
    let app = spawn_app_with(fast).await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let (slow, quick) = (Receiver::start().await, Receiver::start().await);
    slow.answer(500);
    register(&app, &admin, &slow.url(), &["integration.failed"]).await;
    register(&app, &admin, &quick.url(), &["integration.failed"]).await;
    for n in 0..5 {
        emit(&app, company, n).await;
    }
    let quick_got = quick.wait_for("all five at the healthy endpoint", WAIT, |r| r.len() >= 5).await;
    let order: Vec<String> = quick_got.iter().map(Received::error).collect();
    assert_eq!(order, ["event 0", "event 1", "event 2", "event 3", "event 4"]);

    let failing = slow.wait_for("three failed attempts", WAIT, |r| r.len() >= 3).await;
    assert!(failing.iter().all(|r| r.error() == "event 0"), "the next event waits for the first");
    slow.answer(200);
    let got = slow
        .wait_for("the rest once the receiver recovers", WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 5)
        .await;
    let delivered: Vec<String> = got.iter().filter(|r| r.answered == 200).map(Received::error).collect();
    assert_eq!(delivered, order, "in order");
    let mut seen: Vec<String> = got.iter().map(Received::error).collect();
    seen.dedup();
    assert_eq!(seen, order, "no event was attempted before the previous one was delivered");
}

#[tokio::test]
async fn private_destinations_are_refused_at_registration_and_on_delivery_without_the_flag() {
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let app = spawn_app_with(|args| {
        fast(args);
        args.webhooks.allow_private = false;
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://10.1.2.3/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "https://[fd00::1]/hook".to_owned(),
    ] {
        let reply =
            app.post("/api/company/webhooks", &admin, None, json!({"url": url, "events": ["call.ended"]})).await;
        assert_eq!(
            (reply.status, reply.code(), reply.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "destination_not_public", "url"),
            "{url}: {}",
            reply.text
        );
    }
    assert!(app.get("/api/company/webhooks", &admin, None).await.body.as_array().unwrap().is_empty(), "nothing stored");

    // Endpoints registered while private destinations were allowed are refused on delivery
    // once they are not: by name (after DNS resolution) and by address.
    let app = app.restart_with(|args| args.webhooks.allow_private = true).await;
    let (by_name, _) = register(&app, &admin, &format!("http://localhost:{port}/hook"), &["integration.failed"]).await;
    let (by_address, _) = register(&app, &admin, &receiver.url(), &["integration.failed"]).await;
    let app = app.restart_with(|args| args.webhooks.allow_private = false).await;
    emit(&app, company, 1).await;
    for webhook in [&by_name, &by_address] {
        let log = wait_for_log(&app, &admin, webhook, "a refused attempt", |log| {
            log.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1))
        })
        .await;
        let error = log[0]["log"][0]["error"].as_str().unwrap();
        assert!(error.contains("is not a public address"), "{error}");
        assert_eq!(log[0]["log"][0]["statusCode"], Value::Null);
    }
    assert!(receiver.requests().is_empty(), "the receiver was never reached");
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_retry_window_is_disabled_and_redelivery_sends_again() {
    let app = spawn_app_with(|args| {
        fast(args);
        args.webhooks.retry_window_seconds = 2;
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (webhook, _) = register(&app, &admin, &receiver.url(), &["integration.failed"]).await;
    emit(&app, company, 1).await;
    emit(&app, company, 2).await;
    let log = wait_for_log(&app, &admin, &webhook, "the first delivery given up", |log| {
        log.iter().any(|d| d["status"] == "failed")
    })
    .await;
    let (second, first) = (&log[0], &log[1]);
    assert_eq!((first["status"].as_str(), second["status"].as_str()), (Some("failed"), Some("pending")));
    assert!(first["attempts"].as_i64().unwrap() >= 3, "retried within the window: {first}");
    assert_eq!(second["attempts"], 0, "the second event waited behind the first");
    let endpoint = app.get(&format!("/api/company/webhooks/{webhook}"), &admin, None).await.body;
    assert_eq!(endpoint["enabled"], false);
    let reason = endpoint["disabledReason"].as_str().unwrap();
    assert!(reason.contains("for 2 s") && reason.contains("HTTP 500"), "{reason}");
    assert!(endpoint["disabledAt"].is_string() && endpoint["failingSince"].is_string());
    let notices = app.get("/api/company/notices?status=open", &admin, None).await.body;
    assert_eq!(notices[0]["kind"], "webhook_disabled");
    assert_eq!(notices[0]["subject"], webhook);

    // Disabled: nothing is sent, new events are not queued for it, redelivery is refused.
    emit(&app, company, 3).await;
    let delivery = first["id"].as_str().unwrap().to_owned();
    let redeliver = format!("/api/company/webhooks/{webhook}/deliveries/{delivery}/redeliver");
    let refused = app.post(&redeliver, &admin, None, json!({})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "webhook_disabled"));
    let attempts_while_disabled = receiver.requests().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.requests().len(), attempts_while_disabled, "nothing is sent to a disabled endpoint");
    assert_eq!(deliveries(&app, &admin, &webhook).await.len(), 2);

    receiver.answer(200);
    let enabled = app.patch(&format!("/api/company/webhooks/{webhook}"), &admin, None, json!({"enabled": true})).await;
    assert_eq!((enabled.status, &enabled.body["disabledReason"]), (StatusCode::OK, &Value::Null));
    assert!(app.get("/api/company/notices?status=open", &admin, None).await.body.as_array().unwrap().is_empty());
    receiver
        .wait_for("the waiting event", WAIT, |r| r.iter().any(|r| r.answered == 200 && r.error() == "event 2"))
        .await;

    let queued = app.post(&redeliver, &admin, None, json!({})).await;
    assert_eq!(
        (queued.status, queued.body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("pending")),
        "{}",
        queued.text
    );
    assert!(queued.body["redeliveredAt"].is_string());
    let got = receiver
        .wait_for("the redelivery", WAIT, |r| r.iter().any(|r| r.answered == 200 && r.error() == "event 1"))
        .await;
    let first = got.iter().find(|r| r.error() == "event 1").unwrap();
    let again = got.iter().rfind(|r| r.error() == "event 1").unwrap();
    assert_eq!(first.header("x-gateway-event-id"), again.header("x-gateway-event-id"), "the same event");
    let log = wait_for_log(&app, &admin, &webhook, "redelivered", |log| {
        log.iter().any(|d| d["id"] == delivery.as_str() && d["status"] == "delivered")
    })
    .await;
    assert!(log.iter().find(|d| d["id"] == delivery.as_str()).unwrap()["deliveredAt"].is_string());
    let missing = app
        .post(
            &format!("/api/company/webhooks/{webhook}/deliveries/{}/redeliver", CallId::new()),
            &admin,
            None,
            json!({}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn endpoints_are_validated_with_field_errors_isolated_between_companies_and_rotate_their_secret() {
    let app = spawn_app_with(fast).await;
    let (acme, admin) = app.company_with_admin("Acme", true).await;
    let (globex, other) = app.company_with_admin("Globex", true).await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    for (body, field) in [
        (json!({"url": "ftp://example.com/", "events": ["call.ended"]}), "url"),
        (json!({"url": "not a url", "events": ["call.ended"]}), "url"),
        (json!({"url": "https://user:pw@example.com/", "events": ["call.ended"]}), "url"),
        (json!({"url": url, "events": []}), "events"),
        (json!({"url": url, "events": ["call.ended", "call.rang"]}), "events.1"),
        (json!({"url": url, "events": ["call.ended", "call.ended"]}), "events.1"),
        (json!({"url": url, "events": "call.ended"}), "events"),
        (json!({"url": url, "events": ["call.ended"], "description": "x".repeat(501)}), "description"),
        (json!({"url": url, "events": ["call.ended"], "secret": "mine"}), "secret"),
        (json!({"events": ["call.ended"]}), "."),
    ] {
        let reply = app.post("/api/company/webhooks", &admin, None, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        if field != "." {
            assert_eq!(reply.field(), field, "{body}: {}", reply.text);
        }
    }
    assert!(app.get("/api/company/webhooks", &admin, None).await.body.as_array().unwrap().is_empty());

    let (webhook, secret) = register(&app, &admin, &url, &["integration.failed"]).await;
    let path = format!("/api/company/webhooks/{webhook}");
    for reply in [
        app.get(&path, &other, None).await,
        app.patch(&path, &other, None, json!({"enabled": false})).await,
        app.post(&format!("{path}/rotate-secret"), &other, None, json!({})).await,
        app.get(&format!("{path}/deliveries"), &other, None).await,
        app.delete(&path, &other, None).await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    }
    assert!(app.get("/api/company/webhooks", &other, None).await.body.as_array().unwrap().is_empty());
    emit(&app, globex, 0).await;
    emit(&app, acme, 1).await;
    let got = receiver.wait_for("Acme's event", WAIT, |r| !r.is_empty()).await;
    assert_eq!(got[0].json()["companyId"], acme.to_string());
    let delivery = deliveries(&app, &admin, &webhook).await[0]["id"].as_str().unwrap().to_owned();
    let foreign = app.post(&format!("{path}/deliveries/{delivery}/redeliver"), &other, None, json!({})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let bad_patch = app.patch(&path, &admin, None, json!({"events": ["nope"]})).await;
    assert_eq!((bad_patch.status, bad_patch.field()), (StatusCode::UNPROCESSABLE_ENTITY, "events.0"));
    let bad_limit = app.get(&format!("{path}/deliveries?limit=0"), &admin, None).await;
    assert_eq!((bad_limit.status, bad_limit.field()), (StatusCode::UNPROCESSABLE_ENTITY, "limit"));

    let rotated = app.post(&format!("{path}/rotate-secret"), &admin, None, json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    emit(&app, acme, 2).await;
    let got = receiver.wait_for("the event after rotation", WAIT, |r| r.len() >= 2).await;
    let signature = got[1].header("x-gateway-signature");
    let now = now_ms() / 1000;
    assert!(gateway::events::signature::verify(&new_secret, &signature, &got[1].body, now, 300));
    assert!(!gateway::events::signature::verify(&secret, &signature, &got[1].body, now, 300));

    let renamed = app
        .patch(&path, &admin, None, json!({"description": "CRM", "events": ["call.ended", "integration.failed"]}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(
        (renamed.body["description"].as_str(), renamed.body["events"][0].as_str()),
        (Some("CRM"), Some("call.ended"))
    );
    assert_eq!(app.delete(&path, &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &admin, None).await.status, StatusCode::NOT_FOUND);
}
