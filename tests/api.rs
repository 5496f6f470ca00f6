//! The admin and company REST API against a real gateway (spawn_app) on SQLite.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gateway::store::Role;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn health_and_openapi_are_served() {
    let app = spawn_app().await;
    let health = app.get("/healthz", "", None).await;
    assert_eq!((health.status, &health.body["status"]), (StatusCode::OK, &json!("ok")));
    let ready = app.get("/readyz", "", None).await;
    assert_eq!((ready.status, &ready.body["database"]), (StatusCode::OK, &json!("ok")));
    let doc = app.get("/api/openapi.json", "", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    for path in [
        "/api/admin/companies",
        "/api/company/chatbots/{id}/call-settings",
        "/api/company/integration-accounts/{id}/test",
        "/api/auth/login",
        "/api/auth/session",
        "/api/auth/logout",
        "/api/admin/users",
        "/api/admin/users/{id}/tokens",
        "/api/admin/users/{id}/tokens/{token_id}",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} documented");
    }
    let schemes = &doc.body["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "gw_session");
}

#[tokio::test]
async fn unknown_routes_and_missing_tokens_get_json_errors() {
    let app = spawn_app().await;
    let missing = app.get("/api/nope", &app.master, None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "not_found"));
    let anonymous = app.get("/api/admin/companies", "", None).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let wrong = app.get("/api/admin/companies", "gw_not-a-token", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn master_admins_manage_companies_and_switch_calls_on() {
    let app = spawn_app().await;
    let created = app.post("/api/admin/companies", &app.master, None, json!({"name": "Acme"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["settings"]["features"]["callEnabled"], false);
    let id = created.body["id"].as_str().unwrap();

    let list = app.get("/api/admin/companies", &app.master, None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    let on = app
        .patch(
            &format!("/api/admin/companies/{id}/settings"),
            &app.master,
            None,
            json!({"features": {"callEnabled": true}}),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK);
    assert_eq!(on.body["settings"]["features"]["callEnabled"], true);

    let bad = app
        .patch(
            &format!("/api/admin/companies/{id}/settings"),
            &app.master,
            None,
            json!({"features": {"callEnabled": "yes"}}),
        )
        .await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "features.callEnabled"));
    let unknown = app
        .patch(&format!("/api/admin/companies/{id}/settings"), &app.master, None, json!({"features": {"fax": true}}))
        .await;
    assert_eq!((unknown.status, unknown.field()), (StatusCode::UNPROCESSABLE_ENTITY, "features.fax"));
    let still = app.get("/api/admin/companies", &app.master, None).await;
    assert_eq!(still.body[0]["settings"]["features"]["callEnabled"], true, "bad input changed nothing");

    let missing = app
        .patch(
            &format!("/api/admin/companies/{}/settings", gateway::ids::CompanyId::new()),
            &app.master,
            None,
            json!({}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let empty_name = app.post("/api/admin/companies", &app.master, None, json!({"name": "  "})).await;
    assert_eq!((empty_name.status, empty_name.field()), (StatusCode::UNPROCESSABLE_ENTITY, "name"));
}

#[tokio::test]
async fn only_master_admins_reach_the_admin_api() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let agent = app.user_token("agent@acme.test", Role::SupportAgent, &[company]).await;
    for token in [&admin, &agent] {
        for (method, path) in [
            (reqwest::Method::GET, "/api/admin/companies"),
            (reqwest::Method::POST, "/api/admin/companies"),
            (reqwest::Method::GET, "/api/admin/ai-models"),
            (reqwest::Method::POST, "/api/admin/ai-models"),
        ] {
            let reply = app.call(method.clone(), path, token, None, Some(json!({"name": "X"}))).await;
            assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"), "{method} {path}");
        }
        let patch = app
            .patch(
                &format!("/api/admin/companies/{company}/settings"),
                token,
                None,
                json!({"features": {"callEnabled": false}}),
            )
            .await;
        assert_eq!(patch.status, StatusCode::FORBIDDEN);
    }
    // Support agents cannot configure the company either.
    let bots = app.get("/api/company/chatbots", &agent, None).await;
    assert_eq!(bots.status, StatusCode::FORBIDDEN);
    assert!(app.state.store.company(company).await.unwrap().unwrap().settings.features.call_enabled);
}

#[tokio::test]
async fn ai_models_can_be_listed_by_type_added_changed_and_deleted() {
    let app = spawn_app().await;
    let all = app.get("/api/admin/ai-models", &app.master, None).await;
    assert_eq!(all.status, StatusCode::OK);
    let call = app.get("/api/admin/ai-models?type=call", &app.master, None).await;
    let call = call.body.as_array().unwrap();
    assert!(call.iter().all(|m| m["modelType"] == "call" || m["modelType"] == "both"));
    assert!(call.iter().any(|m| m["modelId"] == "gpt-4o-realtime-preview-2024-10-01"));
    assert!(call.iter().any(|m| m["modelId"] == "gemini-2.0-flash-exp"));
    assert!(all.body.as_array().unwrap().len() > call.len());
    let bad = app.get("/api/admin/ai-models?type=fax", &app.master, None).await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "type"));

    let body = json!({"provider": "openai", "modelId": "gpt-realtime-mini", "displayName": "GPT Realtime Mini", "modelType": "both"});
    let created = app.post("/api/admin/ai-models", &app.master, None, body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let dup = app.post("/api/admin/ai-models", &app.master, None, body).await;
    assert_eq!((dup.status, dup.code()), (StatusCode::CONFLICT, "already_exists"));
    let bad_provider = app
        .post(
            "/api/admin/ai-models",
            &app.master,
            None,
            json!({"provider": "acme", "modelId": "x", "displayName": "X"}),
        )
        .await;
    assert_eq!((bad_provider.status, bad_provider.field()), (StatusCode::UNPROCESSABLE_ENTITY, "provider"));

    let both = app.get("/api/admin/ai-models?type=call", &app.master, None).await;
    assert!(both.body.as_array().unwrap().iter().any(|m| m["id"] == id.as_str()), "`both` models are usable for calls");
    let patched = app
        .patch(
            &format!("/api/admin/ai-models/{id}"),
            &app.master,
            None,
            json!({"isActive": false, "displayName": "Mini"}),
        )
        .await;
    assert_eq!((patched.body["isActive"].as_bool(), patched.body["displayName"].as_str()), (Some(false), Some("Mini")));
    let deleted = app.delete(&format!("/api/admin/ai-models/{id}"), &app.master, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = app.delete(&format!("/api/admin/ai-models/{id}"), &app.master, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_model_in_use_by_a_chatbot_is_not_deleted() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    app.call_chatbot(company, &admin).await;
    let refused = app.delete(&format!("/api/admin/ai-models/{GPT_REALTIME}"), &app.master, None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "model_in_use"));
}

#[tokio::test]
async fn company_admins_manage_their_chatbots() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", false).await;
    let chat = app.post("/api/company/chatbots", &admin, None, json!({"name": "Helper"})).await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.text);
    assert_eq!(chat.body["chatbotType"], "chat");
    let id = chat.body["id"].as_str().unwrap();

    let refused =
        app.post("/api/company/chatbots", &admin, None, json!({"name": "Voice", "chatbotType": "call"})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "calls_disabled"));

    let renamed = app
        .patch(
            &format!("/api/company/chatbots/{id}"),
            &admin,
            None,
            json!({"name": "Helpdesk", "instructions": "Be kind."}),
        )
        .await;
    assert_eq!(renamed.body["name"], "Helpdesk");
    let one = app.get(&format!("/api/company/chatbots/{id}"), &admin, None).await;
    assert_eq!(one.body["instructions"], "Be kind.");
    let list = app.get("/api/company/chatbots", &admin, None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    // A master admin acts on the company named by X-Company-Id.
    let as_master = app.get("/api/company/chatbots", &app.master, Some(company)).await;
    assert_eq!(as_master.body.as_array().unwrap().len(), 1);
    let no_header = app.get("/api/company/chatbots", &app.master, None).await;
    assert_eq!((no_header.status, no_header.code()), (StatusCode::BAD_REQUEST, "company_required"));
}

#[tokio::test]
async fn another_companys_resources_answer_404() {
    let app = spawn_app().await;
    let (acme, acme_admin) = app.company_with_admin("Acme", true).await;
    let (globex, globex_admin) = app.company_with_admin("Globex", true).await;
    let bot = app.call_chatbot(acme, &acme_admin).await;
    for path in [
        format!("/api/company/chatbots/{bot}"),
        format!("/api/company/chatbots/{bot}/call-settings"),
        format!("/api/company/chatbots/{bot}/widget-settings"),
    ] {
        let reply = app.get(&path, &globex_admin, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        let reply = app.get(&path, &app.master, Some(globex)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path} as master in the wrong company");
        let patch = app.patch(&path, &globex_admin, None, json!({})).await;
        assert_eq!(patch.status, StatusCode::NOT_FOUND, "PATCH {path}");
    }
    // Naming a company one is not a member of is refused outright.
    let foreign = app.get("/api/company/chatbots", &globex_admin, Some(acme)).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    // A user of both companies must choose.
    let both = app.user_token("both@x.test", Role::CompanyAdmin, &[acme, globex]).await;
    let ambiguous = app.get("/api/company/chatbots", &both, None).await;
    assert_eq!((ambiguous.status, ambiguous.code()), (StatusCode::BAD_REQUEST, "company_required"));
    let chosen = app.get("/api/company/chatbots", &both, Some(acme)).await;
    assert_eq!(chosen.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn call_settings_need_calls_enabled_and_a_call_chatbot() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let chat = app.post("/api/company/chatbots", &admin, None, json!({"name": "Helper"})).await;
    let chat_id = chat.body["id"].as_str().unwrap();
    let refused = app.get(&format!("/api/company/chatbots/{chat_id}/call-settings"), &admin, None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "not_a_call_chatbot"));

    let bot = app.call_chatbot(company, &admin).await;
    app.patch(
        &format!("/api/admin/companies/{company}/settings"),
        &app.master,
        None,
        json!({"features": {"callEnabled": false}}),
    )
    .await;
    let disabled = app.get(&format!("/api/company/chatbots/{bot}/call-settings"), &admin, None).await;
    assert_eq!((disabled.status, disabled.code()), (StatusCode::FORBIDDEN, "calls_disabled"));
    let disabled = app
        .patch(&format!("/api/company/chatbots/{bot}/call-settings"), &admin, None, json!({"voiceSpeed": 1.2}))
        .await;
    assert_eq!(disabled.code(), "calls_disabled");
}

#[tokio::test]
async fn call_settings_have_spec_defaults_and_partial_patches() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let path = format!("/api/company/chatbots/{bot}/call-settings");
    let got = app.get(&path, &admin, None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let s = &got.body;
    assert_eq!(s["aiModelId"], GPT_REALTIME);
    assert_eq!((s["silenceTimeoutSeconds"].as_u64(), s["maxCallDurationMinutes"].as_u64()), (Some(180), Some(10)));
    assert_eq!((s["vadThreshold"].as_f64(), s["voiceSpeed"].as_f64()), (Some(0.5), Some(1.0)));
    assert_eq!(s["voice"], "alloy");
    assert!(s["availableVoices"].as_array().unwrap().iter().any(|v| v == "marin"));

    let patched = app
        .patch(&path, &admin, None, json!({"voice": "marin", "greetingMessage": "Hello there!", "callRecording": true}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (patched.body["voice"].as_str(), patched.body["greetingMessage"].as_str()),
        (Some("marin"), Some("Hello there!"))
    );
    assert_eq!(patched.body["silenceTimeoutSeconds"], 180, "untouched fields keep their values");
    assert_eq!(patched.body["callRecording"], true);

    // Switching to Gemini: an OpenAI voice no longer fits, so the model's default is used.
    let gemini = app.patch(&path, &admin, None, json!({"aiModelId": GEMINI_2_5})).await;
    assert_eq!(gemini.body["voice"], "Puck");
    let bad_voice = app.patch(&path, &admin, None, json!({"voice": "alloy"})).await;
    assert_eq!((bad_voice.status, bad_voice.field()), (StatusCode::UNPROCESSABLE_ENTITY, "voice"));
    let chat_model = app.patch(&path, &admin, None, json!({"aiModelId": GPT_5_2})).await;
    assert_eq!((chat_model.status, chat_model.field()), (StatusCode::UNPROCESSABLE_ENTITY, "aiModelId"));
    let not_id = app.patch(&path, &admin, None, json!({"aiModelId": "gpt-realtime"})).await;
    assert_eq!(not_id.field(), "aiModelId");
}

#[tokio::test]
async fn every_out_of_range_call_setting_is_refused_with_its_field_and_changes_nothing() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let path = format!("/api/company/chatbots/{bot}/call-settings");
    let before = app.get(&path, &admin, None).await.body;
    for (body, field) in [
        (json!({"voiceSpeed": 0.49}), "voiceSpeed"),
        (json!({"voiceSpeed": 2.01}), "voiceSpeed"),
        (json!({"silenceTimeoutSeconds": 29}), "silenceTimeoutSeconds"),
        (json!({"silenceTimeoutSeconds": 301}), "silenceTimeoutSeconds"),
        (json!({"maxCallDurationMinutes": 0}), "maxCallDurationMinutes"),
        (json!({"maxCallDurationMinutes": 61}), "maxCallDurationMinutes"),
        (json!({"vadThreshold": -0.01}), "vadThreshold"),
        (json!({"vadThreshold": 1.5}), "vadThreshold"),
        (json!({"silenceTimeoutSeconds": -5}), "silenceTimeoutSeconds"),
        (json!({"allowInterruption": "sometimes"}), "allowInterruption"),
        (json!({"greetingMessage": "x".repeat(1001)}), "greetingMessage"),
        (json!({"voiceSpeed": 1.5, "maxCallDurationMinutes": 90}), "maxCallDurationMinutes"),
        (json!({"loudness": 11}), "loudness"),
    ] {
        let reply = app.patch(&path, &admin, None, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        assert_eq!(reply.field(), field, "{body}");
    }
    assert_eq!(app.get(&path, &admin, None).await.body, before, "refused patches changed nothing");
}

#[tokio::test]
async fn widget_settings_keep_chat_and_call_options_side_by_side() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let path = format!("/api/company/chatbots/{bot}/widget-settings");
    let got = app.get(&path, &admin, None).await;
    assert_eq!(
        (got.body["callButtonText"].as_str(), got.body["visualizerStyle"].as_str()),
        (Some("Call Us"), Some("orb"))
    );
    assert_eq!(got.body["callButtonColor"], "#10b981");
    let patched = app
        .patch(&path, &admin, None, json!({"visualizerStyle": "wave", "callButtonColor": "#ff0000", "primaryColor": "#000000", "showCallDuration": false}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["visualizerStyle"], "wave");
    assert_eq!(patched.body["callWelcomeMessage"], got.body["callWelcomeMessage"]);
    for (body, field) in [
        (json!({"callButtonColor": "red"}), "callButtonColor"),
        (json!({"visualizerStyle": "spiral"}), "visualizerStyle"),
        (json!({"callButtonText": ""}), "callButtonText"),
        (json!({"allowedOrigins": ["not an origin"]}), "allowedOrigins"),
    ] {
        let reply = app.patch(&path, &admin, None, body.clone()).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{body}");
    }
    assert_eq!(app.get(&path, &admin, None).await.body, patched.body);
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let url = format!("{}/api/company/chatbots", app.base);
    let not_json = app
        .http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    let wrong_type = app.http.post(&url).bearer_auth(&admin).body("name=x").send().await.unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"name": "x", "instructions": "y".repeat(200_000)});
    let too_big = app.http.post(&url).bearer_auth(&admin).json(&huge).send().await.unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = too_big.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    assert_eq!(app.get("/api/company/chatbots", &admin, None).await.body.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn me_lists_the_companies_a_token_may_act_on() {
    let app = spawn_app().await;
    let (acme, _) = app.company_with_admin("Acme", true).await;
    let (globex, _) = app.company_with_admin("Globex", false).await;
    let both = app.user_token("both@x.test", Role::CompanyAdmin, &[acme, globex]).await;
    let me = app.get("/api/me", &both, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["role"], "company_admin");
    let names: Vec<&str> =
        me.body["companies"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Acme", "Globex"]);
    let master = app.get("/api/me", &app.master, None).await;
    assert_eq!(master.body["companies"].as_array().unwrap().len(), 2, "master admins may act on every company");
    assert_eq!(app.get("/api/me", "", None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn json_bodies_with_trailing_data_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let reply = app
        .http
        .post(format!("{}/api/company/chatbots", app.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"name":"First","chatbotType":"call"}{"name":"Second","chatbotType":"call"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(app.get("/api/company/chatbots", &admin, None).await.body.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn json_media_types_are_case_insensitive() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    for (i, content_type) in ["APPLICATION/JSON", "application/json; charset=UTF-8", "Application/Json;Charset=utf-8"]
        .into_iter()
        .enumerate()
    {
        let reply = app
            .http
            .post(format!("{}/api/company/chatbots", app.base))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(json!({"name": format!("Bot {i}"), "chatbotType": "call"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::CREATED, "{content_type}: {}", reply.text().await.unwrap());
    }
}

#[tokio::test]
async fn a_rate_limited_client_that_waits_retry_after_gets_through() {
    // 10 a minute: a new allowance every 6 s, so the wait is never whole seconds.
    let app = spawn_app_with(|args| args.widget_sessions_per_minute = 10).await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let mut limited = None;
    for _ in 0..11 {
        let reply = app
            .http
            .post(format!("{}/api/widget/call/session", app.base))
            .json(&json!({"chatbotId": bot}))
            .send()
            .await
            .unwrap();
        if reply.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the eleventh session in a minute is refused");
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let again = app
        .http
        .post(format!("{}/api/widget/call/session", app.base))
        .json(&json!({"chatbotId": bot}))
        .send()
        .await
        .unwrap();
    assert_ne!(again.status(), StatusCode::TOO_MANY_REQUESTS, "waited the Retry-After of {wait} s");
}

#[tokio::test]
async fn the_first_rating_of_a_call_stands() {
    // A key makes the model usable; the provider is only reached once a caller connects.
    let app = spawn_app_with(|args| args.openai_api_key = Some("sk-test".into())).await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let session = app.open_session(&bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let (id, token) = (session.body["sessionId"].as_str().unwrap(), session.body["token"].as_str().unwrap());
    let post = |path: String, body: serde_json::Value| {
        let request = app.http.post(format!("{}{path}", app.base)).json(&body);
        async move { request.send().await.unwrap() }
    };
    let ended = post(format!("/api/widget/call/{id}/end"), json!({"token": token})).await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let first =
        post(format!("/api/widget/call/{id}/rating"), json!({"token": token, "rating": 5, "comment": "great"})).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let second = post(format!("/api/widget/call/{id}/rating"), json!({"token": token, "rating": 1})).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_rated");
    let call = app.state.store.call(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((call.rating, call.rating_comment.as_deref()), (Some(5), Some("great")));
}

/// base64(HMAC-SHA1(secret, username)), as a TURN server checks it.
fn turn_rest_credential(secret: &str, username: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn callers_get_short_lived_turn_credentials_of_their_own() {
    let app = spawn_app_with(|args| {
        args.openai_api_key = Some("sk-test".into());
        args.ice_servers = vec!["stun:stun.example.com:3478".into(), "turn:turn.example.com:3478?transport=udp".into()];
        args.turn_secret = Some("coturn-shared-secret".into());
        args.turn_credential_ttl_seconds = 600;
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let mut usernames = Vec::new();
    for _ in 0..2 {
        let session = app.open_session(&bot, None).await;
        assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
        let servers = session.body["iceServers"].as_array().unwrap();
        assert_eq!(servers[0], json!({"urls": ["stun:stun.example.com:3478"]}));
        let turn = &servers[1];
        assert_eq!(turn["urls"], json!(["turn:turn.example.com:3478?transport=udp"]));
        let username = turn["username"].as_str().unwrap();
        let (expiry, id) = username.split_once(':').unwrap();
        assert_eq!(id, session.body["sessionId"].as_str().unwrap());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let expiry: u64 = expiry.parse().unwrap();
        assert!((now + 590..=now + 610).contains(&expiry), "expires at {expiry}, now {now}");
        assert_eq!(turn["credential"], turn_rest_credential("coturn-shared-secret", username));
        assert!(!session.text.contains("coturn-shared-secret"));
        usernames.push(username.to_owned());
    }
    assert_ne!(usernames[0], usernames[1], "one credential per caller");
}

#[tokio::test]
async fn long_term_turn_credentials_reach_callers_only_by_explicit_choice() {
    let data = tempfile::tempdir().unwrap();
    let store = gateway::config::StoreArgs {
        database_url: Some(format!("sqlite://{}", data.path().join("gw.db").display())),
        data_dir: data.path().to_path_buf(),
        database_max_connections: 2,
    };
    let mut args = gateway::config::ServeArgs::for_tests(store);
    args.keys.encryption_key = Some(test_key());
    args.ice_servers = vec!["turn:turn.example.com:3478".into()];
    args.turn_username = Some("gateway".into());
    args.turn_credential = Some("long-term-password".into());
    let refused = gateway::app::App::build(args.clone()).await.err().expect("refused without the explicit choice");
    let message = format!("{refused:#}");
    assert!(
        message.contains("GATEWAY_TURN_SECRET") && message.contains("GATEWAY_TURN_STATIC_CREDENTIALS"),
        "{message}"
    );
    assert!(!message.contains("long-term-password"), "{message}");

    let app = spawn_app_with(|args| {
        args.openai_api_key = Some("sk-test".into());
        args.ice_servers = vec!["turn:turn.example.com:3478".into()];
        args.turn_username = Some("gateway".into());
        args.turn_credential = Some("long-term-password".into());
        args.turn_static_credentials = true;
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let session = app.open_session(&bot, None).await;
    assert_eq!(
        session.body["iceServers"],
        json!([{"urls": ["turn:turn.example.com:3478"], "username": "gateway", "credential": "long-term-password"}])
    );
}

#[tokio::test]
async fn company_admins_list_the_active_models_they_may_choose_with_their_voices() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let call = app.get("/api/company/ai-models?type=call", &admin, None).await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.text);
    let models = call.body.as_array().unwrap();
    assert!(models.iter().all(|m| m["modelType"] == "call" || m["modelType"] == "both"));
    let realtime = models.iter().find(|m| m["id"] == GPT_REALTIME).unwrap();
    assert_eq!(realtime["defaultVoice"], "alloy");
    assert!(realtime["voices"].as_array().unwrap().iter().any(|v| v == "marin"), "GA voices");
    let chat = app.get("/api/company/ai-models?type=chat", &admin, None).await;
    let gpt5 = chat.body.as_array().unwrap().iter().find(|m| m["id"] == GPT_5_2).unwrap().clone();
    assert_eq!((gpt5["voices"].clone(), gpt5["defaultVoice"].clone()), (json!([]), serde_json::Value::Null));

    // Inactive models are not offered to company admins; master admins still see them.
    let off =
        app.patch(&format!("/api/admin/ai-models/{GPT_REALTIME}"), &app.master, None, json!({"isActive": false})).await;
    assert_eq!(off.status, StatusCode::OK);
    let offered = app.get("/api/company/ai-models?type=call", &admin, None).await;
    assert!(offered.body.as_array().unwrap().iter().all(|m| m["id"] != GPT_REALTIME));
    let catalogue = app.get("/api/admin/ai-models?type=call", &app.master, None).await;
    assert!(catalogue.body.as_array().unwrap().iter().any(|m| m["id"] == GPT_REALTIME && m["voices"][0] == "alloy"));

    let bad = app.get("/api/company/ai-models?type=fax", &admin, None).await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "type"));
    let agent = app.user_token("agent@acme.test", Role::SupportAgent, &[]).await;
    let refused = app.get("/api/company/ai-models", &agent, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_call_history_filters_are_checked_and_stay_within_the_company() {
    use gateway::ids::ChatbotId;
    use gateway::store::{CallSource, NewCall};
    let app = spawn_app().await;
    let (acme, admin) = app.company_with_admin("Acme", true).await;
    let (other, other_admin) = app.company_with_admin("Other", true).await;
    let bot = app.call_chatbot(acme, &admin).await;
    let foreign = app.call_chatbot(other, &other_admin).await;
    for (company, chatbot, source) in
        [(acme, &bot, CallSource::Web), (acme, &bot, CallSource::Twilio), (other, &foreign, CallSource::Web)]
    {
        app.state
            .store
            .create_call(NewCall {
                company_id: company,
                chatbot_id: chatbot.parse::<ChatbotId>().unwrap(),
                source,
                is_test: false,
                caller: None,
                provider: "openai".into(),
                model_id: "gpt-realtime".into(),
                node_id: "test-node".into(),
                token_hash: None,
                token_expires_at: None,
                integration_account_id: None,
                external_id: None,
            })
            .await
            .unwrap();
    }
    let count = |reply: &Reply| reply.body.as_array().map(Vec::len).unwrap_or(usize::MAX);
    let all = app.get("/api/company/calls", &admin, None).await;
    assert_eq!((all.status, count(&all)), (StatusCode::OK, 2), "{}", all.text);
    let web = app.get(&format!("/api/company/calls?chatbotId={bot}&source=web&status=pending"), &admin, None).await;
    assert_eq!((web.status, count(&web)), (StatusCode::OK, 1), "{}", web.text);
    assert_eq!(web.body[0]["source"], "web");
    let window = app
        .get("/api/company/calls?from=2020-01-01T00:00:00%2B01:00&to=2999-01-01T00:00:00Z&source=twilio", &admin, None)
        .await;
    assert_eq!((window.status, count(&window)), (StatusCode::OK, 1), "{}", window.text);
    let past = app.get("/api/company/calls?to=2020-01-01T00:00:00Z", &admin, None).await;
    assert_eq!(count(&past), 0);
    let foreign_bot = app.get(&format!("/api/company/calls?chatbotId={foreign}"), &admin, None).await;
    assert_eq!(
        (foreign_bot.status, count(&foreign_bot)),
        (StatusCode::OK, 0),
        "another company's chatbot finds nothing"
    );

    for (query, field) in [
        ("source=fax", "source"),
        ("status=ringing", "status"),
        ("chatbotId=nope", "chatbotId"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
    ] {
        let refused = app.get(&format!("/api/company/calls?{query}"), &admin, None).await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{query}: {}",
            refused.text
        );
    }
    let unknown = app.get("/api/company/calls?colour=red", &admin, None).await;
    assert!(unknown.status.is_client_error(), "unknown filters are refused");
}

#[tokio::test]
async fn the_admin_console_is_served_for_every_screen_and_the_old_test_call_address_leads_there() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |path: &str| http.get(format!("{}{path}", app.base)).send();
    for path in ["/admin", "/admin/", "/admin/calls", "/admin/chatbots/42/widget"] {
        let page = get(path).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(policy.contains("script-src 'self';") && policy.contains("frame-ancestors 'self'"), "{policy}");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="/admin/app.js">"#), "{path}");
        assert!(html.contains(&format!(r#"content="{}""#, app.state.public_base)), "the public URL for embed snippets");
    }
    let script = get("/admin/app.js").await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
    assert!(script.headers().get("access-control-allow-origin").is_none(), "the console is not for other sites");
    let screen = get("/admin/screens/calls.js").await.unwrap();
    assert_eq!(screen.status(), StatusCode::OK);
    let preview = get("/admin/preview.html").await.unwrap();
    assert!(preview.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'self'"));
    let missing = get("/admin/nope.js").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<serde_json::Value>().await.unwrap()["error"]["code"], "not_found");
    let escape = get("/admin/..%2F..%2FCargo.toml").await.unwrap();
    assert_eq!(escape.status(), StatusCode::NOT_FOUND, "no file outside the console");

    let old = get("/test-call?chatbot=abc").await.unwrap();
    assert_eq!(old.status(), StatusCode::SEE_OTHER);
    assert_eq!(old.headers()["location"], "/admin/test-call?chatbot=abc");
    let plain = get("/test-call").await.unwrap();
    assert_eq!(plain.headers()["location"], "/admin/test-call");
}
