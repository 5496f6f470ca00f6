//! WhatsApp calls end to end: the testkit's WhatsApp simulator plays Meta — signed webhooks
//! like the captured ones, a Graph mock that checks every call action, and an ICE-lite
//! WebRTC peer that offers like WhatsApp's relay and never sends media before `accept` —
//! against a real gateway whose AI side is the mock OpenAI Realtime.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gateway::domain::{CallSource, CallStatus, EndReason, TranscriptRole};
use gateway::ids::{CallId, CompanyId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::mock_graph::CallFault;
use testkit::whatsapp_sim::{CallOutcome, PlaceCall, WhatsAppSim, WhatsAppSimConfig};
use testkit::whatsapp_webhook::{WebhookTarget, unix_now};
use testkit::{MockOpenAiRealtime, MockReply, OpenAiRealtimeConfig, utterance};

const SECOND: Duration = Duration::from_secs(1);
const ACCESS_TOKEN: &str = "EAAtest-whatsapp-system-user-token";
const APP_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A gateway with a WhatsApp account bound to its call chatbot, and Meta simulated for it.
struct Meta {
    app: TestApp,
    company: CompanyId,
    bot: String,
    admin: String,
    account: String,
    sim: WhatsAppSim,
}

impl Meta {
    async fn calls(&self) -> Vec<gateway::store::Call> {
        self.app.state.store.list_calls(self.company, &gateway::store::CallFilter::latest(100)).await.unwrap()
    }

    async fn only_call(&self) -> CallId {
        let poll = async {
            loop {
                if let [call] = self.calls().await.as_slice() {
                    return call.id;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(10 * SECOND, poll).await.expect("exactly one WhatsApp call")
    }

    async fn wait_for_end(&self, id: CallId) -> gateway::store::Call {
        self.app.wait_for_call_end(id).await
    }

    /// The Graph actions the gateway took on Meta's call `call_id`, by name.
    fn actions(&self, call_id: &str) -> Vec<String> {
        self.sim
            .graph()
            .call_actions()
            .into_iter()
            .filter(|a| a.call_id.as_deref() == Some(call_id))
            .filter_map(|a| a.action)
            .collect()
    }

    fn assert_faithful(&self) {
        assert!(self.sim.graph().protocol_errors().is_empty(), "{:?}", self.sim.graph().protocol_errors());
    }
}

fn openai(reply_ms: u32) -> OpenAiRealtimeConfig {
    OpenAiRealtimeConfig {
        reply: MockReply::tone("We are open from nine to five, Monday to Friday.", reply_ms),
        user_transcript: "When are you open?".into(),
        ..OpenAiRealtimeConfig::default()
    }
}

/// A gateway on `mock`, with a WhatsApp account made through the API (bound to the call
/// chatbot when `bound`) and verified against the Graph mock; Meta points at its webhook.
async fn meta_with(mock: &MockOpenAiRealtime, bound: bool) -> Meta {
    let sim =
        WhatsAppSim::start(WhatsAppSimConfig { access_token: ACCESS_TOKEN.into(), ..WhatsAppSimConfig::default() })
            .await;
    let (graph, realtime) = (sim.graph().base_url(), format!("{}/realtime", mock.ws_base_url()));
    let app = spawn_app_with(|args| {
        args.provider_backoff_ms = 50;
        args.rtc_disconnected_timeout_seconds = 2;
        args.openai_realtime_url = realtime.parse().unwrap();
        args.openai_api_key = Some("sk-test-openai".into());
        args.meta_graph_base_url = graph.parse().unwrap();
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let parties = sim.config().parties.clone();
    let mut body = json!({"accountType": "whatsapp", "name": "WhatsApp line",
        "businessAccountId": parties.waba_id, "phoneNumberId": parties.phone_number_id,
        "phoneNumber": format!("+{}", parties.business_number), "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET});
    if bound {
        body["chatbotId"] = json!(bot);
    }
    let created = app.post("/api/company/integration-accounts", &admin, None, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let tested = app.post(&format!("/api/company/integration-accounts/{account}/test"), &admin, None, json!({})).await;
    assert_eq!(tested.body["ok"], true, "{}", tested.text);
    let url = created.body["webhookUrl"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{}/api/webhooks/whatsapp/{account}", app.base));
    let verify_token = created.body["verifyToken"].as_str().unwrap().to_owned();
    sim.set_webhook(WebhookTarget { url, app_secret: APP_SECRET.into(), verify_token });
    Meta { app, company, bot, admin, account, sim }
}

async fn meta(mock: &MockOpenAiRealtime) -> Meta {
    meta_with(mock, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_call_is_answered_heard_interrupted_and_stored() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(6000)).await;
    let meta = meta(&mock).await;
    let call = meta.sim.place_call().await.unwrap();
    call.wait_accepted(10 * SECOND).await.unwrap();
    assert_eq!(meta.actions(call.call_id()), ["pre_accept", "accept"], "pre_accept first, then the same SDP");

    // The greeting reaches the WhatsApp user.
    call.wait_until_heard(800, -30.0, 10 * SECOND).await.unwrap();
    let roles = call.meta_roles().await.unwrap();
    assert!(roles.ice_controlled && roles.dtls_server, "Meta is ICE-lite and the DTLS server: {roles:?}");

    // The user asks; the agent's long answer plays until the user talks over it.
    call.say(utterance(1000)).await;
    mock.wait_for(|s| s.responses.len() >= 2, 10 * SECOND).await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    call.say(utterance(1500)).await;
    mock.wait_for(|s| !s.truncates.is_empty(), 10 * SECOND).await.unwrap();
    let truncate = mock.truncates()[0].clone();
    assert!(truncate.audio_end_ms > 500 && truncate.audio_end_ms < 5500, "cut at {} ms", truncate.audio_end_ms);

    call.hang_up();
    let id = meta.only_call().await;
    let row = meta.wait_for_end(id).await;
    assert_eq!(row.source, CallSource::WhatsApp);
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::CallerHangup)));
    assert_eq!(row.caller.as_deref(), Some(meta.sim.config().parties.user_wa_id.as_str()));
    assert_eq!(row.external_id.as_deref(), Some(call.call_id()));
    assert_eq!(row.integration_account_id.map(|a| a.to_string()), Some(meta.account.clone()));
    let lines = meta.app.state.store.transcript(id).await.unwrap();
    assert!(lines.iter().any(|l| l.role == TranscriptRole::User && l.content == "When are you open?"));
    assert!(lines.iter().any(|l| l.role == TranscriptRole::Agent && l.content.ends_with('…')), "{lines:?}");
    // Meta ended it: the gateway does not terminate on top.
    assert_eq!(meta.actions(call.call_id()), ["pre_accept", "accept"]);
    meta.assert_faithful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_ends_a_whatsapp_call_after_the_goodbye_with_terminate() {
    let _serial = media_timing_lock().await;
    let mock =
        MockOpenAiRealtime::start(OpenAiRealtimeConfig { user_transcript: "Thanks, goodbye!".into(), ..openai(1200) })
            .await;
    let meta = meta(&mock).await;
    meta.app
        .set_call_settings(&meta.bot, &meta.admin, json!({"greetingMessage": "", "endCallPhrase": "goodbye"}))
        .await;
    let call = meta.sim.place_call().await.unwrap();
    call.wait_accepted(10 * SECOND).await.unwrap();
    call.say(utterance(1000)).await;
    let end = call.wait_ended(20 * SECOND).await.unwrap();
    assert_eq!(end.outcome, CallOutcome::BusinessTerminated);
    assert_eq!(end.status, "COMPLETED");
    let heard: u32 = call.heard().iter().map(|h| h.loud_ms).sum();
    assert!(heard >= 900, "the goodbye was heard first ({heard} ms)");
    let id = meta.only_call().await;
    let row = meta.wait_for_end(id).await;
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::EndPhrase)));
    assert_eq!(meta.actions(call.call_id()), ["pre_accept", "accept", "terminate"]);
    // Meta's terminate that follows is acknowledged and changes nothing.
    meta.sim
        .wait_for_deliveries(|d| d.iter().any(|d| d.event == "terminate" && d.status == Some(200)), 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(meta.calls().await.len(), 1);
    meta.assert_faithful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_terminate_ends_the_call_within_a_second_while_media_flows() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    let call = meta.sim.place_call().await.unwrap();
    call.wait_accepted(10 * SECOND).await.unwrap();
    let id = meta.only_call().await;
    call.wait_until_heard(500, -30.0, 10 * SECOND).await.unwrap();
    call.say(utterance(4000)).await;
    tokio::time::sleep(SECOND).await;
    call.hang_up();
    let end = call.wait_ended(5 * SECOND).await.unwrap();
    let row = meta.wait_for_end(id).await;
    let ended_after = Instant::now().duration_since(end.at);
    assert!(ended_after < SECOND, "the call row ended {ended_after:?} after Meta's terminate");
    assert_eq!(row.end_reason, Some(EndReason::CallerHangup));
    assert_eq!(meta.actions(call.call_id()), ["pre_accept", "accept"]);
    meta.assert_faithful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_gateway_cannot_take_is_rejected_and_leaves_no_call() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta_with(&mock, false).await;
    let call = meta.sim.place_call().await.unwrap();
    let end = call.wait_ended(10 * SECOND).await.unwrap();
    assert_eq!(end.outcome, CallOutcome::BusinessRejected);
    assert_eq!(meta.actions(call.call_id()), ["reject"]);
    assert!(meta.calls().await.is_empty());
    let deliveries = meta.sim.deliveries();
    assert!(deliveries.iter().all(|d| d.status == Some(200)), "{deliveries:?}");
    meta.assert_faithful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_accept_meta_refuses_is_rejected_not_terminated() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    meta.sim.graph().inject_call_faults(CallFault::RefusedAccept, 1);
    let call = meta.sim.place_call().await.unwrap();
    let end = call.wait_ended(15 * SECOND).await.unwrap();
    assert_ne!(end.outcome, CallOutcome::UserHungUp);
    let id = meta.only_call().await;
    let row = meta.wait_for_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::Error));
    assert!(row.error_message.as_deref().unwrap_or_default().contains("accept"), "{row:?}");
    // Never accepted, so never terminated: Meta is told with a reject.
    assert_eq!(meta.actions(call.call_id()), ["pre_accept", "accept", "reject"]);
    meta.assert_faithful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_authenticated_before_anything_happens() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    let sender = meta.sim.webhook();
    let target = sender.target().clone();

    // The subscription handshake.
    let ok = sender.verify_subscription(&target.verify_token, "1158201444").await.unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "1158201444"));
    let wrong = sender.verify_subscription("not-the-token", "1158201444").await.unwrap();
    assert_eq!(wrong.status, 403);
    assert_eq!(serde_json::from_str::<Value>(&wrong.body).unwrap()["error"]["code"], "verification_failed");

    let connect = meta.sim.config().parties.connect("wacid.forged", unix_now(), "v=0\r\n");
    let code = |body: &str| serde_json::from_str::<Value>(body).unwrap()["error"]["code"].as_str().unwrap().to_owned();
    let unsigned = sender.post_unsigned(&connect).await.unwrap();
    assert_eq!((unsigned.status, code(&unsigned.body).as_str()), (401, "signature_missing"));
    let forged = sender.post_wrongly_signed(&connect).await.unwrap();
    assert_eq!((forged.status, code(&forged.body).as_str()), (403, "signature_invalid"));
    let garbage = sender.post_invalid_json().await.unwrap();
    assert_eq!((garbage.status, code(&garbage.body).as_str()), (400, "invalid_json"));
    let huge = sender.post_oversized((1 << 20) + 1).await.unwrap();
    assert_eq!((huge.status, code(&huge.body).as_str()), (413, "body_too_large"));
    let just_fits = sender.post_oversized(1 << 20).await.unwrap();
    assert_eq!(just_fits.status, 200, "{}", just_fits.body);

    let nowhere = testkit::whatsapp_webhook::WebhookSender::new(WebhookTarget {
        url: format!("{}/api/webhooks/whatsapp/{}", meta.app.base, uuid::Uuid::new_v4()),
        ..target.clone()
    });
    assert_eq!(nowhere.post(&connect).await.unwrap().status, 404);
    assert_eq!(nowhere.verify_subscription(&target.verify_token, "1").await.unwrap().status, 404);

    // Authentic webhooks that ask for nothing are acknowledged: messages, statuses, a
    // terminate for a call nobody knows.
    let parties = meta.sim.config().parties.clone();
    for body in [
        parties.text_message("wamid.1", unix_now(), "hello"),
        parties.status("wacid.status", unix_now(), "RINGING", None),
        parties.terminate("wacid.unknown", unix_now(), None, None, None),
    ] {
        let reply = sender.post(&body).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.took < SECOND);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(meta.sim.graph().call_actions().is_empty(), "nothing reached Graph");
    assert!(meta.calls().await.is_empty(), "no call was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_published_signature_vectors_are_checked_over_the_raw_body() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    let vectors = testkit::fixtures::load_json("whatsapp/signature-vectors.json").unwrap();
    for vector in vectors.as_array().unwrap() {
        let secret = vector["app_secret"].as_str().unwrap();
        let body = json!({"accountType": "whatsapp", "name": format!("Vector {}", &secret[..6]),
            "businessAccountId": "264937493375603", "phoneNumberId": "277321005464405",
            "phoneNumber": "+15550953877", "accessToken": ACCESS_TOKEN, "appSecret": secret});
        let created = meta.app.post("/api/company/integration-accounts", &meta.admin, None, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let sender = testkit::whatsapp_webhook::WebhookSender::new(WebhookTarget {
            url: created.body["webhookUrl"].as_str().unwrap().to_owned(),
            app_secret: secret.to_owned(),
            verify_token: String::new(),
        });
        let reply = sender
            .post_with_signature(vector["body"].as_str().unwrap().as_bytes(), vector["expected"].as_str())
            .await
            .unwrap();
        let valid = vector["valid"].as_bool().unwrap();
        assert_eq!(reply.status, if valid { 200 } else { 403 }, "{vector}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_late_and_out_of_order_webhooks_answer_each_call_once() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    let call = meta.sim.place_call().await.unwrap();
    let replies = call.redeliver_connect_concurrently(5).await;
    assert!(replies.iter().all(|r| r.as_ref().unwrap().status == 200));
    call.wait_accepted(10 * SECOND).await.unwrap();
    assert_eq!(call.deliver_stale_connect(30).await.unwrap().status, 200);
    assert_eq!(call.redeliver_connect().await.unwrap().status, 200);
    let id = meta.only_call().await;

    // A user who hung up at once: Meta's terminate overtook the connect.
    let quick =
        meta.sim.place_call_with(PlaceCall { terminate_before_connect: true, ..PlaceCall::default() }).await.unwrap();
    meta.sim
        .wait_for_deliveries(
            |d| d.iter().any(|d| d.call_id == quick.call_id() && d.event == "connect" && d.status == Some(200)),
            5 * SECOND,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(meta.actions(quick.call_id()).is_empty(), "a connect after its terminate is not answered");

    call.hang_up();
    meta.wait_for_end(id).await;
    assert_eq!(meta.actions(call.call_id()), ["pre_accept", "accept"]);
    assert_eq!(meta.calls().await.len(), 1);
    meta.assert_faithful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_errors_are_retried_and_a_refused_token_marks_the_account_inactive() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;

    // A passing outage: retried within the call's budget.
    meta.sim.graph().inject_call_faults(CallFault::ServerError, 1);
    let call = meta.sim.place_call().await.unwrap();
    call.wait_accepted(10 * SECOND).await.unwrap();
    call.hang_up();
    let first = meta.only_call().await;
    meta.wait_for_end(first).await;

    // The token was revoked: the call fails and the account says why.
    meta.sim.graph().inject_call_faults(CallFault::AuthError, 1);
    let call = meta.sim.place_call().await.unwrap();
    let end = call.wait_ended(15 * SECOND).await.unwrap();
    assert_ne!(end.outcome, CallOutcome::UserHungUp);
    let account = meta.app.get(&format!("/api/company/integration-accounts/{}", meta.account), &meta.admin, None).await;
    let poll = async {
        loop {
            let account =
                meta.app.get(&format!("/api/company/integration-accounts/{}", meta.account), &meta.admin, None).await;
            if account.body["status"] == "inactive" {
                return account;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let inactive = tokio::time::timeout(5 * SECOND, poll).await.unwrap_or(account);
    assert_eq!(inactive.body["status"], "inactive", "{}", inactive.text);
    assert!(inactive.body["lastError"].as_str().unwrap().contains("access token"), "{}", inactive.text);
    let notices = meta.app.get("/api/company/notices", &meta.admin, None).await;
    assert!(notices.text.contains(&meta.account), "{}", notices.text);
    let rows = meta.calls().await;
    let failed = rows.iter().find(|c| c.id != first).unwrap();
    let failed = meta.wait_for_end(failed.id).await;
    assert_eq!(failed.end_reason, Some(EndReason::Error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_media_ends_the_call_network_lost_and_terminates_it() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    let call = meta.sim.place_call().await.unwrap();
    call.wait_accepted(10 * SECOND).await.unwrap();
    let id = meta.only_call().await;
    call.wait_until_heard(300, -30.0, 10 * SECOND).await.unwrap();
    let call_id = call.call_id().to_owned();
    // Meta's relay vanishes without a word.
    call.close().await;
    let row = meta.wait_for_end(id).await;
    assert_eq!((row.status, row.end_reason), (CallStatus::Failed, Some(EndReason::NetworkLost)));
    let poll = async {
        while !meta.actions(&call_id).contains(&"terminate".to_owned()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(5 * SECOND, poll).await.expect("the gateway terminated the call on Meta's side");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_key_press_is_a_system_line_and_a_note_to_the_model() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let meta = meta(&mock).await;
    meta.app.set_call_settings(&meta.bot, &meta.admin, json!({"greetingMessage": ""})).await;
    let call = meta.sim.place_call().await.unwrap();
    call.wait_accepted(10 * SECOND).await.unwrap();
    let id = meta.only_call().await;
    call.press_keys("7").await;
    mock.wait_for(
        |s| {
            s.client_events.iter().any(|e| {
                e.event["type"] == "conversation.item.create"
                    && e.event["item"]["content"][0]["text"] == "The caller pressed 7"
            })
        },
        10 * SECOND,
    )
    .await
    .unwrap();
    call.hang_up();
    meta.wait_for_end(id).await;
    let lines = meta.app.state.store.transcript(id).await.unwrap();
    assert!(lines.iter().any(|l| l.role == TranscriptRole::System && l.content == "The caller pressed 7"), "{lines:?}");
}
