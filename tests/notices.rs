//! "Notify company admin if persistent": repeated provider failures and integration accounts
//! whose credentials start failing raise a notice and an `integration.failed` event; a
//! failing account is made inactive and its chatbots stop offering calls.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use gateway::config::ServeArgs;
use gateway::ids::CompanyId;
use gateway::store::EndReason;
use gateway::time::now_ms;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{MockTwilioRest, TwilioAccount, TwilioRestConfig};

const WAIT: Duration = Duration::from_secs(15);
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e";
const NUMBER: &str = "+15551234567";

fn fast(args: &mut ServeArgs) {
    args.webhooks.allow_private = true;
    args.webhooks.poll_ms = 50;
    args.webhooks.backoff_ms = 100;
}

/// A call that could not reach the voice provider, recorded as the call session records it.
async fn provider_failure(app: &TestApp, company: CompanyId, chatbot: &str) {
    let store = &app.state.store;
    let call = store.create_call(web_call(company, chatbot)).await.unwrap();
    store.mark_call_connecting(call.id, "test-node").await.unwrap();
    let error = "could not reach the voice service: connection refused";
    assert!(store.end_call(call.id, EndReason::ProviderError, now_ms(), Some(error)).await.unwrap());
}

async fn notices(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let reply = app.get(&format!("/api/company/notices{query}"), admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body.as_array().unwrap().clone()
}

#[tokio::test]
async fn three_provider_failures_in_ten_minutes_raise_one_notice_and_one_integration_failed_event() {
    let app = spawn_app_with(fast).await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let (_, other) = app.company_with_admin("Globex", true).await;
    let chatbot = app.call_chatbot(company, &admin).await;
    let receiver = Receiver::start().await;
    let hook = app
        .post("/api/company/webhooks", &admin, None, json!({"url": receiver.url(), "events": ["integration.failed"]}))
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);

    provider_failure(&app, company, &chatbot).await;
    provider_failure(&app, company, &chatbot).await;
    assert!(notices(&app, &admin, "").await.is_empty(), "two failures are not persistent yet");
    provider_failure(&app, company, &chatbot).await;
    let open = notices(&app, &admin, "?status=open").await;
    assert_eq!(open.len(), 1);
    let notice = &open[0];
    assert_eq!((notice["kind"].as_str(), notice["severity"].as_str()), (Some("provider_failures"), Some("critical")));
    assert_eq!((notice["status"].as_str(), notice["occurrences"].as_i64()), (Some("open"), Some(1)));
    let message = notice["message"].as_str().unwrap();
    assert!(message.starts_with("3 calls failed in the last 10 minutes") && message.contains("openai"), "{message}");
    assert!(notice["createdAt"].is_string() && notice["resolvedAt"].is_null() && notice["dismissedAt"].is_null());

    let got = receiver.wait_for("integration.failed", WAIT, |r| !r.is_empty()).await;
    let event = got[0].json();
    assert_eq!(event["type"], "integration.failed");
    assert_eq!(event["data"]["integration"], "provider");
    assert_eq!((event["data"]["provider"].as_str(), event["data"]["failedCalls"].as_i64()), (Some("openai"), Some(3)));
    assert_eq!(event["data"]["windowMinutes"], 10);

    provider_failure(&app, company, &chatbot).await;
    assert_eq!(notices(&app, &admin, "").await[0]["occurrences"], 2, "the open notice counts the repeat");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.requests().len(), 1, "one event per incident");

    let id = notice["id"].as_str().unwrap();
    assert!(notices(&app, &other, "").await.is_empty(), "tenant isolation");
    let foreign = app.post(&format!("/api/company/notices/{id}/dismiss"), &other, None, json!({})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let dismissed = app.post(&format!("/api/company/notices/{id}/dismiss"), &admin, None, json!({})).await;
    assert_eq!((dismissed.status, dismissed.body["status"].as_str()), (StatusCode::OK, Some("dismissed")));
    assert!(dismissed.body["dismissedAt"].is_string());
    assert!(notices(&app, &admin, "?status=open").await.is_empty());
    assert_eq!(notices(&app, &admin, "?status=all").await.len(), 1);
    for (query, field) in
        [("?status=closed", "status"), ("?limit=0", "limit"), ("?limit=x", "limit"), ("?page=2", "page")]
    {
        let reply = app.get(&format!("/api/company/notices{query}"), &admin, None).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", reply.text);
        assert!(reply.text.contains(field), "{query}: {}", reply.text);
    }
    let missing = app.post("/api/company/notices/not-an-id/dismiss", &admin, None, json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Runs the account's connection test.
async fn test(app: &TestApp, admin: &str, account: &str) -> Value {
    let reply = app.post(&format!("/api/company/integration-accounts/{account}/test"), admin, None, json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

/// What the widget is told about the chatbot's call button.
async fn widget(app: &TestApp, chatbot: &str) -> Value {
    app.get(&format!("/api/widget/chatbots/{chatbot}"), "", None).await.body["call"].clone()
}

/// A Twilio REST mock whose account `SID` accepts `token`, on `addr` when given.
async fn twilio(addr: Option<std::net::SocketAddr>, token: &str) -> MockTwilioRest {
    let config = TwilioRestConfig { accounts: vec![TwilioAccount::new(SID, token, &[NUMBER])] };
    match addr {
        Some(addr) => MockTwilioRest::start_on(addr, config).await.unwrap(),
        None => MockTwilioRest::start(config).await,
    }
}

#[tokio::test]
async fn an_account_whose_credentials_start_failing_is_made_inactive_with_a_notice_and_hides_the_call_button() {
    let mock = twilio(None, TOKEN).await;
    let twilio_url = mock.base_url();
    let app = spawn_app_with(|args| {
        fast(args);
        args.twilio_api_base_url = twilio_url.parse().unwrap();
        args.openai_api_key = Some("sk-test-openai".into());
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let chatbot = app.call_chatbot(company, &admin).await;
    let receiver = Receiver::start().await;
    let hook = app
        .post("/api/company/webhooks", &admin, None, json!({"url": receiver.url(), "events": ["integration.failed"]}))
        .await;
    assert_eq!(hook.status, StatusCode::CREATED);
    let account = app
        .post(
            "/api/company/integration-accounts",
            &admin,
            None,
            json!({"accountType": "twilio", "name": "Main Account", "accountSid": SID, "authToken": TOKEN,
                   "phoneNumber": NUMBER, "chatbotId": chatbot}),
        )
        .await;
    assert_eq!(account.status, StatusCode::CREATED, "{}", account.text);
    let account = account.body["id"].as_str().unwrap().to_owned();
    assert_eq!(test(&app, &admin, &account).await["ok"], true);
    assert_eq!(widget(&app, &chatbot).await["available"], true);

    // Twilio now refuses the token (it was changed on Twilio's side).
    let addr = mock.addr();
    mock.shutdown().await;
    let mock = twilio(Some(addr), "0000000000000000000000000000beef").await;
    let report = test(&app, &admin, &account).await;
    assert_eq!((report["ok"].as_bool(), report["status"].as_str()), (Some(false), Some("inactive")));
    let stored = app.get(&format!("/api/company/integration-accounts/{account}"), &admin, None).await.body;
    assert_eq!(stored["status"], "inactive");
    assert!(stored["lastError"].as_str().unwrap().contains("invalid auth token"), "{stored}");

    let open = notices(&app, &admin, "?status=open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0]["kind"].as_str(), open[0]["subject"].as_str()),
        (Some("integration_failed"), Some(account.as_str()))
    );
    let message = open[0]["message"].as_str().unwrap();
    assert!(message.starts_with("Your Twilio integration \"Main Account\" has failed verification."), "{message}");
    assert!(message.contains("invalid auth token"), "{message}");
    let got = receiver.wait_for("integration.failed", WAIT, |r| !r.is_empty()).await;
    let event = got[0].json();
    assert_eq!(
        (event["data"]["integration"].as_str(), event["data"]["accountId"].as_str()),
        (Some("twilio"), Some(account.as_str()))
    );
    assert_eq!(event["data"]["accountName"], "Main Account");

    // The chatbot bound to the account offers no call while it is failing.
    let call = widget(&app, &chatbot).await;
    assert_eq!(
        (call["available"].as_bool(), call["unavailableReason"].as_str()),
        (Some(false), Some("voice_unavailable"))
    );
    let session = app.open_session(&chatbot, None).await;
    assert_eq!(
        (session.status, session.body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("voice_unavailable"))
    );
    let why = session.body["error"]["message"].as_str().unwrap();
    assert!(why.contains("\"Main Account\" is failing"), "{why}");

    // The call edges report a refused credential the same way: one notice, one event.
    let account_id = account.parse().unwrap();
    assert!(
        app.state.store.report_integration_failure(company, account_id, "Invalid auth token", now_ms()).await.unwrap()
    );
    assert_eq!(notices(&app, &admin, "?status=open").await[0]["occurrences"], 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.requests().len(), 1);

    // Fixed on Twilio's side: the test passes, the notice is resolved, calls are back.
    mock.shutdown().await;
    let _mock = twilio(Some(addr), TOKEN).await;
    assert_eq!(test(&app, &admin, &account).await["ok"], true);
    assert!(notices(&app, &admin, "?status=open").await.is_empty());
    assert_eq!(notices(&app, &admin, "").await[0]["status"], "resolved");
    assert_eq!(widget(&app, &chatbot).await["available"], true);
}
