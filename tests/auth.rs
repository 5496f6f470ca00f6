//! Sign-in for people, API token lifecycle and encryption-key rotation, against a real
//! gateway (docs/auth.md): cookies and their flags, CSRF, sign-in limits, token expiry and
//! revocation through the admin API, and accounts sealed with a key the gateway lacks.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use gateway::app::{App, AppState};
use gateway::auth::password::hash_password;
use gateway::config::ServeArgs;
use gateway::ids::CompanyId;
use gateway::store::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// A signed-in browser: its cookie and the CSRF token the sign-in returned.
struct Browser {
    cookie: String,
    csrf: String,
    set_cookie: String,
    body: Value,
}

/// A user with a password (and no token).
async fn person(app: &TestApp, email: &str, role: Role, companies: &[CompanyId]) {
    let user = app.state.store.create_user(email, None, role, companies).await.unwrap();
    app.state.store.set_password(user.id, &hash_password(PASSWORD)).await.unwrap();
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/auth/login", app.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let text = response.text().await.unwrap();
    Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

async fn sign_in(app: &TestApp, email: &str) -> Browser {
    let response = login(app, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();
    Browser { cookie, csrf, set_cookie, body }
}

/// A request as the browser sends it: the cookie, and the CSRF header when given.
async fn as_browser(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    company: Option<CompanyId>,
    body: Option<Value>,
) -> Reply {
    let mut request = app.http.request(method, format!("{}{path}", app.base)).header("Cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    if let Some(company) = company {
        request = request.header("X-Company-Id", company.to_string());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    reply(request.send().await.unwrap()).await
}

#[tokio::test]
async fn people_sign_in_with_a_password_and_the_session_answers_like_me() {
    let app = spawn_app().await;
    let (company, admin_token) = app.company_with_admin("Acme", true).await;
    let admin = app.state.store.user_by_email("admin@acme.test").await.unwrap().unwrap();
    app.state.store.set_password(admin.id, &hash_password(PASSWORD)).await.unwrap();

    let browser = sign_in(&app, "Admin@Acme.test").await;
    let me = app.get("/api/me", &admin_token, None).await;
    assert_eq!(browser.body["user"], me.body, "the user is exactly GET /api/me");
    assert_eq!(browser.body["user"]["companies"][0]["id"], company.to_string());
    assert!(browser.csrf.len() >= 40);
    assert!(browser.cookie.starts_with("gw_session=gws_"));
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(browser.set_cookie.contains(flag), "{flag} missing: {}", browser.set_cookie);
    }
    assert!(!browser.set_cookie.contains("Secure"), "the public URL is http: {}", browser.set_cookie);

    let session = as_browser(&app, Method::GET, "/api/auth/session", &browser.cookie, None, None, None).await;
    assert_eq!(session.status, StatusCode::OK);
    assert_eq!(session.body, browser.body, "the session endpoint answers like the sign-in");
    let me_by_cookie = as_browser(&app, Method::GET, "/api/me", &browser.cookie, None, None, None).await;
    assert_eq!(me_by_cookie.body, me.body);
    let bots = as_browser(&app, Method::GET, "/api/company/chatbots", &browser.cookie, None, None, None).await;
    assert_eq!(bots.status, StatusCode::OK, "company routes work with the cookie: {}", bots.text);

    let no_cookie = app.get("/api/auth/session", "", None).await;
    assert_eq!((no_cookie.status, no_cookie.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let by_token = app.get("/api/auth/session", &admin_token, None).await;
    assert_eq!(by_token.status, StatusCode::UNAUTHORIZED, "a bearer token is not a sign-in session");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer_in_similar_time() {
    let app = spawn_app().await;
    person(&app, "agent@acme.test", Role::MasterAdmin, &[]).await;
    let nopass = app.state.store.create_user("nopass@acme.test", None, Role::MasterAdmin, &[]).await.unwrap();
    let mut answers = Vec::new();
    let (mut wrong_time, mut unknown_time) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let started = Instant::now();
        answers.push(reply(login(&app, "agent@acme.test", "not the password").await).await);
        wrong_time = wrong_time.min(started.elapsed());
        let started = Instant::now();
        answers.push(reply(login(&app, "nobody@acme.test", "not the password").await).await);
        unknown_time = unknown_time.min(started.elapsed());
    }
    answers.push(reply(login(&app, &nopass.email, "not the password").await).await);
    for answer in &answers {
        assert_eq!((answer.status, answer.code()), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
        assert_eq!(answer.body, answers[0].body, "one answer for every failure");
    }
    // An unknown account costs a full Argon2 check too (the fastest of three tries each).
    assert!(
        unknown_time * 3 > wrong_time,
        "unknown e-mail answered in {unknown_time:?}, a wrong password in {wrong_time:?}"
    );

    let empty = reply(login(&app, "agent@acme.test", "").await).await;
    assert_eq!((empty.status, empty.field()), (StatusCode::UNPROCESSABLE_ENTITY, "password"));
    let extra = app
        .http
        .post(format!("{}/api/auth/login", app.base))
        .json(&json!({"email": "agent@acme.test", "password": PASSWORD, "remember": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(extra).await.field(), "remember");
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_public_url_is_https() {
    let app = spawn_app_with(|args| args.public_url = Some("https://voice.example.test".parse().unwrap())).await;
    person(&app, "agent@acme.test", Role::MasterAdmin, &[]).await;
    let browser = sign_in(&app, "agent@acme.test").await;
    assert!(browser.set_cookie.contains("; Secure"), "{}", browser.set_cookie);
    let session_hours = spawn_app_with(|args| args.session_ttl_hours = 2).await;
    person(&session_hours, "agent@acme.test", Role::MasterAdmin, &[]).await;
    assert!(sign_in(&session_hours, "agent@acme.test").await.set_cookie.contains("Max-Age=7200"));
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server_and_needs_the_csrf_token() {
    let app = spawn_app().await;
    person(&app, "agent@acme.test", Role::MasterAdmin, &[]).await;
    let browser = sign_in(&app, "agent@acme.test").await;
    let other = sign_in(&app, "agent@acme.test").await;

    let forged = as_browser(&app, Method::POST, "/api/auth/logout", &browser.cookie, None, None, None).await;
    assert_eq!((forged.status, forged.code()), (StatusCode::FORBIDDEN, "csrf_failed"));
    let still = as_browser(&app, Method::GET, "/api/me", &browser.cookie, None, None, None).await;
    assert_eq!(still.status, StatusCode::OK, "a refused sign-out changes nothing");

    let response = app
        .http
        .post(format!("{}/api/auth/logout", app.base))
        .header("Cookie", &browser.cookie)
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let expiring = response.headers()["set-cookie"].to_str().unwrap();
    assert!(expiring.starts_with("gw_session=;") && expiring.contains("Max-Age=0"), "{expiring}");

    for path in ["/api/me", "/api/auth/session"] {
        let gone = as_browser(&app, Method::GET, path, &browser.cookie, None, None, None).await;
        assert_eq!((gone.status, gone.code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{path}");
    }
    let again = as_browser(&app, Method::POST, "/api/auth/logout", &browser.cookie, Some(&browser.csrf), None, None);
    assert_eq!(again.await.status, StatusCode::UNAUTHORIZED);
    let elsewhere = as_browser(&app, Method::GET, "/api/me", &other.cookie, None, None, None).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "only that session ended");
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_csrf_token_and_bearer_ones_do_not() {
    let app = spawn_app().await;
    person(&app, "root@acme.test", Role::MasterAdmin, &[]).await;
    let browser = sign_in(&app, "root@acme.test").await;
    let body = Some(json!({"name": "Forged"}));
    let companies =
        || async { app.get("/api/admin/companies", &app.master, None).await.body.as_array().unwrap().len() };

    let missing =
        as_browser(&app, Method::POST, "/api/admin/companies", &browser.cookie, None, None, body.clone()).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::FORBIDDEN, "csrf_failed"));
    let wrong =
        as_browser(&app, Method::POST, "/api/admin/companies", &browser.cookie, Some("guess"), None, body.clone())
            .await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::FORBIDDEN, "csrf_failed"));
    let other = sign_in(&app, "root@acme.test").await;
    let foreign =
        as_browser(&app, Method::POST, "/api/admin/companies", &browser.cookie, Some(&other.csrf), None, body.clone());
    assert_eq!(foreign.await.code(), "csrf_failed", "another session's token does not do");
    assert_eq!(companies().await, 0, "nothing was created");

    let created =
        as_browser(&app, Method::POST, "/api/admin/companies", &browser.cookie, Some(&browser.csrf), None, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let company: CompanyId = created.body["id"].as_str().unwrap().parse().unwrap();

    let path = format!("/api/admin/companies/{company}/settings");
    let patch = Some(json!({"features": {"callEnabled": true}}));
    let refused = as_browser(&app, Method::PATCH, &path, &browser.cookie, None, None, patch.clone()).await;
    assert_eq!(refused.code(), "csrf_failed");
    assert!(!app.state.store.company(company).await.unwrap().unwrap().settings.features.call_enabled);
    let done = as_browser(&app, Method::PATCH, &path, &browser.cookie, Some(&browser.csrf), None, patch).await;
    assert_eq!(done.status, StatusCode::OK);

    // The active company works the same with the cookie: a master admin names it.
    let unnamed = as_browser(&app, Method::GET, "/api/company/chatbots", &browser.cookie, None, None, None).await;
    assert_eq!(unnamed.code(), "company_required");
    let named =
        as_browser(&app, Method::GET, "/api/company/chatbots", &browser.cookie, None, Some(company), None).await;
    assert_eq!(named.status, StatusCode::OK);
    let bot = as_browser(
        &app,
        Method::POST,
        "/api/company/chatbots",
        &browser.cookie,
        Some(&browser.csrf),
        Some(company),
        Some(json!({"name": "Voice", "chatbotType": "call"})),
    )
    .await;
    assert_eq!(bot.status, StatusCode::CREATED, "{}", bot.text);

    // Bearer clients send no CSRF token, cookie or not.
    let bearer = app.post("/api/admin/companies", &app.master, None, json!({"name": "By token"})).await;
    assert_eq!(bearer.status, StatusCode::CREATED);
    assert_eq!(companies().await, 2);
}

#[tokio::test]
async fn signed_in_websockets_must_come_from_the_gateway_origin() {
    let app = spawn_app_with(|args| args.public_url = Some("https://voice.example.test/".parse().unwrap())).await;
    person(&app, "agent@acme.test", Role::MasterAdmin, &[]).await;
    let browser = sign_in(&app, "agent@acme.test").await;
    let upgrade = |origin: &'static str| {
        app.http
            .get(format!("{}/api/me", app.base))
            .header("Cookie", &browser.cookie)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Origin", origin)
            .send()
    };
    let foreign = reply(upgrade("https://evil.example").await.unwrap()).await;
    assert_eq!((foreign.status, foreign.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let own = upgrade("https://voice.example.test").await.unwrap();
    assert_eq!(own.status(), StatusCode::OK, "the gateway's own pages may");
    let bearer = app
        .http
        .get(format!("{}/api/me", app.base))
        .bearer_auth(&app.master)
        .header("Upgrade", "websocket")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK, "bearer clients are not browsers riding a cookie");
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account_with_retry_after_in_whole_seconds() {
    let app = spawn_app_with(|args| {
        args.login_attempts_per_account = 2;
        args.login_attempts_per_ip = 100;
    })
    .await;
    person(&app, "agent@acme.test", Role::MasterAdmin, &[]).await;
    person(&app, "other@acme.test", Role::MasterAdmin, &[]).await;
    for _ in 0..2 {
        assert_eq!(login(&app, "agent@acme.test", "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = login(&app, "AGENT@acme.test", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((449..=450).contains(&retry_after), "two per 15 minutes: one back after 450 s, got {retry_after}");
    assert_eq!(reply(refused).await.code(), "rate_limited");
    assert_eq!(login(&app, "other@acme.test", PASSWORD).await.status(), StatusCode::OK, "other accounts are fine");
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let app = spawn_app_with(|args| {
        args.login_attempts_per_ip = 3;
        args.login_attempts_per_account = 100;
        args.trust_forwarded_for = true;
    })
    .await;
    person(&app, "agent@acme.test", Role::MasterAdmin, &[]).await;
    let from = |ip: &'static str, email: &'static str| {
        app.http
            .post(format!("{}/api/auth/login", app.base))
            .header("X-Forwarded-For", ip)
            .json(&json!({"email": email, "password": "guess"}))
            .send()
    };
    for email in ["a@x.test", "b@x.test", "c@x.test"] {
        assert_eq!(from("203.0.113.7", email).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let refused = from("203.0.113.7", "agent@acme.test").await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "300");
    let elsewhere = from("203.0.113.8", "agent@acme.test").await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED, "another address still tries");
}

#[tokio::test]
async fn expired_tokens_get_token_expired_and_revoked_ones_unauthorized() {
    let app = spawn_app().await;
    let user = app.state.store.create_user("script@acme.test", None, Role::MasterAdmin, &[]).await.unwrap();
    let past = gateway::time::now_ms() - 1;
    let expired = app.state.store.create_api_token_until(user.id, "old", past).await.unwrap();
    let reply = app.get("/api/me", &expired, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "token_expired"));

    let live = app.state.store.create_api_token(user.id, "cli").await.unwrap();
    assert_eq!(app.get("/api/me", &live, None).await.status, StatusCode::OK);
    app.state.store.revoke_tokens(user.id).await.unwrap();
    let revoked = app.get("/api/me", &live, None).await;
    assert_eq!((revoked.status, revoked.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
}

#[tokio::test]
async fn master_admins_list_and_revoke_a_users_tokens_without_seeing_them() {
    let app = spawn_app().await;
    let (company, admin_token) = app.company_with_admin("Acme", true).await;
    let second = app
        .state
        .store
        .create_api_token(app.state.store.user_by_email("admin@acme.test").await.unwrap().unwrap().id, "ci")
        .await
        .unwrap();
    let admin = app.state.store.user_by_email("admin@acme.test").await.unwrap().unwrap();
    app.state.store.set_password(admin.id, &hash_password(PASSWORD)).await.unwrap();
    assert_eq!(app.get("/api/me", &admin_token, None).await.status, StatusCode::OK);

    let users = app.get("/api/admin/users?email=ADMIN@acme.test", &app.master, None).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.text);
    assert_eq!(users.body.as_array().unwrap().len(), 1);
    assert_eq!(users.body[0]["id"], admin.id.to_string());
    assert_eq!(users.body[0]["role"], "company_admin");
    assert_eq!(users.body[0]["companies"], json!([company.to_string()]));
    assert_eq!(users.body[0]["hasPassword"], true);
    assert_eq!(app.get("/api/admin/users", &app.master, None).await.body.as_array().unwrap().len(), 2);
    let bad_limit = app.get("/api/admin/users?limit=0", &app.master, None).await;
    assert_eq!((bad_limit.status, bad_limit.field()), (StatusCode::UNPROCESSABLE_ENTITY, "limit"));

    let path = format!("/api/admin/users/{}/tokens", admin.id);
    let tokens = app.get(&path, &app.master, None).await;
    assert_eq!(tokens.status, StatusCode::OK);
    let list = tokens.body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for token in [&admin_token, &second] {
        assert!(!tokens.text.contains(token.as_str()), "no token secrets");
        assert!(!tokens.text.contains(&gateway::crypto::token_hash(token)), "no token hashes");
    }
    let used = list.iter().find(|t| t["name"] == "test").unwrap();
    assert_eq!(used["status"], "active");
    assert!(used["lastUsedAt"].is_string(), "the token was used: {used}");
    assert!(used["expiresAt"].is_string());
    let unused = list.iter().find(|t| t["name"] == "ci").unwrap();
    assert!(unused["lastUsedAt"].is_null());

    let browser = sign_in(&app, "admin@acme.test").await;
    for who in [&admin_token, &second] {
        let forbidden = app.get(&path, who, None).await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "only master admins");
    }
    let id = used["id"].as_str().unwrap();
    let revoked = app.delete(&format!("{path}/{id}"), &app.master, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/me", &admin_token, None).await.code(), "unauthorized", "revoked at once");
    assert_eq!(app.get("/api/me", &second, None).await.status, StatusCode::OK, "only that token");
    let listed = app.get(&path, &app.master, None).await;
    let entry = listed.body.as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone();
    assert_eq!(entry["status"], "revoked");
    assert!(entry["revokedAt"].is_string());

    let root = app.state.store.user_by_email("root@gateway.test").await.unwrap().unwrap();
    let foreign = app.delete(&format!("/api/admin/users/{}/tokens/{id}", root.id), &app.master, None).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "a token of another user");
    let nobody = app.get(&format!("/api/admin/users/{}/tokens", gateway::ids::UserId::new()), &app.master, None).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    let all = app.delete(&path, &app.master, None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body, json!({"revokedTokens": 1, "endedSessions": 1}));
    assert_eq!(app.get("/api/me", &second, None).await.status, StatusCode::UNAUTHORIZED);
    let session = as_browser(&app, Method::GET, "/api/me", &browser.cookie, None, None, None).await;
    assert_eq!(session.status, StatusCode::UNAUTHORIZED, "sign-in sessions end too");
}

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e";

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn use_keys(args: &mut ServeArgs, keys: String) {
    args.keys.encryption_key = None;
    args.keys.encryption_keys = Some(keys);
}

/// Another gateway on the same database (a restart with other settings).
async fn restart(app: &TestApp, configure: impl FnOnce(&mut ServeArgs)) -> (String, AppState) {
    let mut args = ServeArgs::for_tests(app.state.config.store.clone());
    args.node_id = Some("test-node-2".into());
    configure(&mut args);
    let other = App::build(args).await.expect("gateway builds");
    let (base, state) = (format!("http://{}", other.addr()), other.state().clone());
    tokio::spawn(other.run(false));
    (base, state)
}

async fn call(app: &TestApp, base: &str, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let mut request = app.http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    reply(request.send().await.unwrap()).await
}

fn rotate(app: &TestApp, keys: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["keys", "rotate"])
        .env_clear()
        .env("DATABASE_URL", app.state.config.store.database_url())
        .env("GATEWAY_DATA_DIR", app.data_dir.path())
        .env("GATEWAY_ENCRYPTION_KEYS", keys)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn keys_rotate_accounts_sealed_with_a_missing_key_stay_listed_and_can_be_repaired() {
    let app = spawn_app_with(|args| use_keys(args, format!("k1:{}", key(1)))).await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let mut ids = Vec::new();
    for name in ["Kept", "Repaired"] {
        let body = json!({"accountType": "twilio", "name": name, "accountSid": SID, "authToken": TWILIO_TOKEN, "phoneNumber": "+15551234567"});
        let created = app.post("/api/company/integration-accounts", &admin, None, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }

    // The key changed without k1: the list and each account still answer, marked unreadable.
    let (base, _) = restart(&app, |args| use_keys(args, format!("k2:{}", key(2)))).await;
    let list = call(&app, &base, Method::GET, "/api/company/integration-accounts", &admin, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    for account in list.body.as_array().unwrap() {
        assert_eq!(account["status"], "credentials_unreadable");
        assert!(account["lastError"].as_str().unwrap().contains("encryption key k1"), "{account}");
        assert!(account.get("authToken").is_none());
        assert_eq!(account["accountSid"], SID, "what is not sealed still shows");
    }
    let one_path = format!("/api/company/integration-accounts/{}", ids[0]);
    let one = call(&app, &base, Method::GET, &one_path, &admin, None).await;
    assert_eq!(one.body["status"], "credentials_unreadable");
    let test = call(&app, &base, Method::POST, &format!("{one_path}/test"), &admin, None).await;
    assert_eq!((test.status, test.code()), (StatusCode::CONFLICT, "credentials_unreadable"));

    // A PATCH repairs it only with the secrets; without them nothing changes.
    let path = format!("/api/company/integration-accounts/{}", ids[1]);
    let rename = call(&app, &base, Method::PATCH, &path, &admin, Some(json!({"name": "Renamed"}))).await;
    assert_eq!(
        (rename.status, rename.code(), rename.field()),
        (StatusCode::CONFLICT, "credentials_unreadable", "authToken")
    );
    let repaired =
        call(&app, &base, Method::PATCH, &path, &admin, Some(json!({"name": "Renamed", "authToken": TWILIO_TOKEN})))
            .await;
    assert_eq!(repaired.status, StatusCode::OK, "{}", repaired.text);
    assert_eq!(repaired.body["status"], "inactive", "readable again; to be tested");
    assert_eq!(repaired.body["name"], "Renamed");
    assert_eq!(repaired.body["authToken"], "••••8d7e");

    // Rotation needs the old key to open what it seals again; without it, it names the account.
    let refused = rotate(&app, &format!("k2:{}", key(2)));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains(&ids[0]), "{}", String::from_utf8_lossy(&refused.stdout));
    let done = rotate(&app, &format!("k1:{},k2:{}", key(1), key(2)));
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{out}{}", String::from_utf8_lossy(&done.stderr));
    assert!(out.contains("re-sealed 1 integration account(s) with key k2; 1 already used it"), "{out}");
    for secret in [key(1), key(2), TWILIO_TOKEN.to_owned()] {
        assert!(!out.contains(&secret) && !String::from_utf8_lossy(&done.stderr).contains(&secret));
    }

    // k1 can be dropped: the gateway with k2 alone reads every account.
    let list = call(&app, &base, Method::GET, "/api/company/integration-accounts", &admin, None).await;
    for account in list.body.as_array().unwrap() {
        assert_eq!(account["status"], "inactive", "{account}");
        assert_eq!(account["authToken"], "••••8d7e");
    }
    let again = rotate(&app, &format!("k2:{}", key(2)));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("re-sealed 0 integration account(s) with key k2; 2 already used it")
    );
}
