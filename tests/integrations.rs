//! Integration accounts: CRUD, masking, tenant isolation, and the real connection test
//! against local Twilio REST and Graph API mocks replaying the shared fixtures.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::mock_graph::GraphPhoneNumber;
use testkit::{GraphConfig, MockGraph, MockTwilioRest, TwilioAccount, TwilioRestConfig};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e";
const NUMBER: &str = "+15551234567";
const PNID: &str = "106853218861309";
const GRAPH_TOKEN: &str = "EAAGm0PX4ZCpsBAKZCsecretgraphtoken1a2b";
const APP_SECRET: &str = "1222e786b144d0e85b9f365372d93676";

struct World {
    app: TestApp,
    twilio: MockTwilioRest,
    graph: MockGraph,
    company: gateway::ids::CompanyId,
    admin: String,
}

async fn world() -> World {
    let twilio =
        MockTwilioRest::start(TwilioRestConfig { accounts: vec![TwilioAccount::new(SID, TWILIO_TOKEN, &[NUMBER])] })
            .await;
    let graph = MockGraph::start(GraphConfig { numbers: vec![GraphPhoneNumber::new(PNID, GRAPH_TOKEN)] }).await;
    let (twilio_url, graph_url) = (twilio.base_url(), graph.base_url());
    let app = spawn_app_with(|args| {
        args.twilio_api_base_url = twilio_url.parse().unwrap();
        args.meta_graph_base_url = graph_url.parse().unwrap();
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    World { app, twilio, graph, company, admin }
}

fn twilio_body() -> Value {
    json!({"accountType": "twilio", "name": "Main Twilio", "accountSid": SID, "authToken": TWILIO_TOKEN, "phoneNumber": "+1 (555) 123-4567"})
}

fn whatsapp_body() -> Value {
    json!({"accountType": "whatsapp", "name": "Support WhatsApp", "businessAccountId": "123456789012345",
           "phoneNumberId": PNID, "phoneNumber": "+1 555-555-5555", "accessToken": GRAPH_TOKEN, "appSecret": APP_SECRET})
}

fn assert_no_secrets(text: &str) {
    for secret in [TWILIO_TOKEN, GRAPH_TOKEN, APP_SECRET] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

impl World {
    async fn create(&self, body: Value) -> Value {
        let reply = self.app.post("/api/company/integration-accounts", &self.admin, None, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_no_secrets(&reply.text);
        reply.body
    }

    async fn test(&self, id: &str) -> Value {
        let reply =
            self.app.post(&format!("/api/company/integration-accounts/{id}/test"), &self.admin, None, json!({})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_no_secrets(&reply.text);
        reply.body
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

#[tokio::test]
async fn a_twilio_account_is_created_masked_and_verified_against_twilio() {
    let w = world().await;
    let account = w.create(twilio_body()).await;
    let id = account["id"].as_str().unwrap();
    assert_eq!(account["authToken"], "••••8d7e");
    assert_eq!(account["accountSid"], SID);
    assert_eq!(account["phoneNumber"], NUMBER, "normalised to E.164");
    assert_eq!(account["status"], "inactive", "inactive until tested");
    assert_eq!(account["webhookUrl"], format!("{}/api/webhooks/twilio/{id}/voice", w.app.base));

    let report = w.test(id).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["status"], "active");
    for name in ["connection", "credentials", "account_status", "phone_number"] {
        assert_eq!(check(&report, name)["passed"], true, "{name}: {report}");
    }
    let requests = w.twilio.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == format!("/2010-04-01/Accounts/{SID}.json") && r.username.as_deref() == Some(SID))
    );
    assert!(requests.iter().any(|r| r.path.ends_with("/IncomingPhoneNumbers.json")
        && r.query.as_deref().unwrap_or("").contains("PhoneNumber=%2B15551234567")));

    let got = w.app.get(&format!("/api/company/integration-accounts/{id}"), &w.admin, None).await;
    assert_eq!(got.body["status"], "active");
    assert!(got.body["lastVerifiedAt"].is_string());
    assert!(got.body["lastError"].is_null());
}

#[tokio::test]
async fn a_wrong_twilio_token_is_reported_as_an_invalid_auth_token() {
    let w = world().await;
    let account = w.create(twilio_body()).await;
    let id = account["id"].as_str().unwrap();
    assert_eq!(w.test(id).await["ok"], true);

    let patched = w
        .app
        .patch(
            &format!("/api/company/integration-accounts/{id}"),
            &w.admin,
            None,
            json!({"authToken": "ffffffffffffffffffffffffffff1a2b"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["status"], "inactive", "new credentials need a new test");
    assert_eq!(patched.body["authToken"], "••••1a2b");

    let report = w.test(id).await;
    assert_eq!(report["ok"], false);
    assert_eq!(check(&report, "connection")["passed"], true);
    let credentials = check(&report, "credentials");
    assert_eq!(credentials["passed"], false);
    assert!(credentials["message"].as_str().unwrap().contains("invalid auth token"), "{credentials}");
    assert!(report["lastError"].as_str().unwrap().contains("invalid auth token"));
    let got = w.app.get(&format!("/api/company/integration-accounts/{id}"), &w.admin, None).await;
    assert_eq!(got.body["status"], "inactive");
}

#[tokio::test]
async fn a_number_the_twilio_account_does_not_own_fails_the_test() {
    let w = world().await;
    let mut body = twilio_body();
    body["phoneNumber"] = json!("+15559876543");
    let account = w.create(body).await;
    let report = w.test(account["id"].as_str().unwrap()).await;
    assert_eq!(report["ok"], false);
    assert_eq!(check(&report, "credentials")["passed"], true);
    let number = check(&report, "phone_number");
    assert_eq!(number["passed"], false);
    assert!(number["message"].as_str().unwrap().contains("number not owned"), "{number}");
}

#[tokio::test]
async fn a_whatsapp_account_is_verified_against_the_graph_api() {
    let w = world().await;
    let account = w.create(whatsapp_body()).await;
    let id = account["id"].as_str().unwrap();
    assert_eq!((account["accessToken"].as_str(), account["appSecret"].as_str()), (Some("••••1a2b"), Some("••••3676")));
    assert!(account["verifyToken"].as_str().unwrap().len() >= 32);
    assert_eq!(account["webhookUrl"], format!("{}/api/webhooks/whatsapp/{id}", w.app.base));
    let report = w.test(id).await;
    assert_eq!(report["ok"], true, "{report}");
    let request = &w.graph.requests()[0];
    assert_eq!(request.path, format!("/v23.0/{PNID}"));
    assert_eq!(request.token.as_deref(), Some(GRAPH_TOKEN));
}

#[tokio::test]
async fn a_bad_graph_token_is_reported_as_an_invalid_access_token() {
    let w = world().await;
    let mut body = whatsapp_body();
    body["accessToken"] = json!("EAAGnot-the-right-token-at-all-99");
    let account = w.create(body).await;
    let report = w.test(account["id"].as_str().unwrap()).await;
    assert_eq!(report["ok"], false);
    let token = check(&report, "access_token");
    assert_eq!(token["passed"], false);
    assert!(token["message"].as_str().unwrap().contains("invalid access token"), "{token}");
}

#[tokio::test]
async fn an_unreachable_provider_fails_the_connection_check() {
    let app = spawn_app_with(|args| args.twilio_api_base_url = "http://127.0.0.1:9".parse().unwrap()).await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let account = app.post("/api/company/integration-accounts", &admin, None, twilio_body()).await;
    let id = account.body["id"].as_str().unwrap();
    let report = app.post(&format!("/api/company/integration-accounts/{id}/test"), &admin, None, json!({})).await;
    assert_eq!(report.body["ok"], false);
    assert_eq!(check(&report.body, "connection")["passed"], false);
}

#[tokio::test]
async fn accounts_are_listed_updated_and_deleted_within_their_company() {
    let w = world().await;
    let twilio = w.create(twilio_body()).await;
    let id = twilio["id"].as_str().unwrap();
    let bot = w.app.call_chatbot(w.company, &w.admin).await;
    let renamed = w
        .app
        .patch(
            &format!("/api/company/integration-accounts/{id}"),
            &w.admin,
            None,
            json!({"name": "Renamed", "chatbotId": bot}),
        )
        .await;
    assert_eq!(
        (renamed.body["name"].as_str(), renamed.body["chatbotId"].as_str()),
        (Some("Renamed"), Some(bot.as_str()))
    );
    let list = w.app.get("/api/company/integration-accounts", &w.admin, None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_no_secrets(&list.text);

    let (_, other_admin) = w.app.company_with_admin("Globex", true).await;
    let path = format!("/api/company/integration-accounts/{id}");
    assert_eq!(w.app.get(&path, &other_admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.app.patch(&path, &other_admin, None, json!({"name": "x"})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.app.post(&format!("{path}/test"), &other_admin, None, json!({})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.app.delete(&path, &other_admin, None).await.status, StatusCode::NOT_FOUND);

    assert_eq!(w.app.delete(&path, &w.admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(w.app.get(&path, &w.admin, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_accounts_are_refused_with_their_field() {
    let w = world().await;
    let chat = w.app.post("/api/company/chatbots", &w.admin, None, json!({"name": "Chat only"})).await;
    let chat_id = chat.body["id"].as_str().unwrap().to_owned();
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut bad = |change: &dyn Fn(&mut Value), field: &'static str| {
        let mut body = twilio_body();
        change(&mut body);
        cases.push((body, field));
    };
    bad(&|b| b["accountSid"] = json!("AC123"), "accountSid");
    bad(&|b| b["phoneNumber"] = json!("555-1234"), "phoneNumber");
    bad(&|b| b["authToken"] = json!("short"), "authToken");
    bad(
        &|b| {
            b.as_object_mut().unwrap().remove("authToken");
        },
        "authToken",
    );
    bad(&|b| b["accessToken"] = json!("a-whatsapp-field-on-twilio"), "accessToken");
    bad(&|b| b["accountType"] = json!("fax"), "accountType");
    bad(&|b| b["name"] = json!(""), "name");
    bad(&|b| b["colour"] = json!("blue"), "colour");
    let chat_id2 = chat_id.clone();
    bad(&move |b| b["chatbotId"] = json!(chat_id2.clone()), "chatbotId");
    for (body, field) in cases {
        let reply = w.app.post("/api/company/integration-accounts", &w.admin, None, body.clone()).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{body}: {}", reply.text);
    }
    let list = w.app.get("/api/company/integration-accounts", &w.admin, None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 0, "nothing was created");
}

#[tokio::test]
async fn secrets_are_absent_from_the_database_files() {
    if std::env::var("GATEWAY_TEST_DATABASE").as_deref() == Ok("postgres") {
        // No database files here; the store test `integration_accounts_keep_credentials_sealed_and_scoped`
        // checks the stored columns on Postgres.
        return;
    }
    let w = world().await;
    let twilio = w.create(twilio_body()).await;
    let whatsapp = w.create(whatsapp_body()).await;
    w.test(twilio["id"].as_str().unwrap()).await;
    w.test(whatsapp["id"].as_str().unwrap()).await;
    let mut checked = 0;
    let files = std::fs::read_dir(w.app.data_dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for secret in [TWILIO_TOKEN, GRAPH_TOKEN, APP_SECRET] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "the database (and its WAL) were checked");
    // The sealed credentials still open with the key: the test passed above.
}
