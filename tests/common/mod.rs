//! `spawn_app()`: a real gateway on port 0 with a fresh SQLite database (or, with
//! `GATEWAY_TEST_DATABASE=postgres` and `GATEWAY_TEST_POSTGRES_URL`, a fresh Postgres
//! database), plus helpers to make users and call the API.
#![allow(dead_code, clippy::unwrap_used)]

pub mod agents;
pub mod receiver;

use std::net::SocketAddr;

use base64::Engine;
use gateway::app::{App, AppState};
use gateway::config::{ServeArgs, StoreArgs};
use gateway::ids::CompanyId;
use gateway::settings::CompanySettings;
use gateway::store::Role;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Tests that measure real-time media behaviour (how fast audio stops, how much was
/// heard) take this lock, so on a small machine they do not run beside each other: a
/// test binary's other tests would otherwise share the same two cores at full tilt.
pub async fn media_timing_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// A master admin's token.
    pub master: String,
    /// The database the gateway uses (SQLite file or this test's Postgres database).
    pub database_url: String,
    /// The serving task: `App::run` until `state.shutdown` is cancelled.
    pub serving: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The Postgres database of this test, dropped with the app.
    postgres: Option<PostgresDb>,
    /// The settings it was built with (for [`TestApp::restart_with`]).
    args: ServeArgs,
}

/// A database created for one test on the server named by `GATEWAY_TEST_POSTGRES_URL`.
struct PostgresDb {
    admin_url: String,
    name: String,
}

impl PostgresDb {
    async fn create() -> (Self, String) {
        let admin_url = std::env::var("GATEWAY_TEST_POSTGRES_URL").expect("GATEWAY_TEST_POSTGRES_URL names the server");
        sqlx::any::install_default_drivers();
        let name = format!("gw_it_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        admin.close().await;
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        (Self { admin_url, name }, url.to_string())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(db) = self.postgres.take() else { return };
        // Drop runs outside any runtime we may block: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(admin) = sqlx::AnyPool::connect(&db.admin_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name)).execute(&admin).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The fixed test encryption key (base64 of 32 bytes).
pub fn test_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// Starts a gateway with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a gateway after `configure` adjusted its settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let postgres = std::env::var("GATEWAY_TEST_DATABASE").as_deref() == Ok("postgres");
    spawn(postgres, configure).await
}

/// Starts a gateway on a fresh Postgres database whatever `GATEWAY_TEST_DATABASE` says;
/// None when `GATEWAY_TEST_POSTGRES_URL` names no server (the test is then skipped).
#[allow(clippy::print_stderr)]
pub async fn spawn_postgres_app_with(configure: impl FnOnce(&mut ServeArgs)) -> Option<TestApp> {
    if std::env::var("GATEWAY_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        Some(spawn(true, configure).await)
    } else {
        eprintln!("skipped: GATEWAY_TEST_POSTGRES_URL is not set");
        None
    }
}

/// A second gateway node on `first`'s database (Postgres), with its own node id, data
/// directory and address; the first app keeps (and drops) the database.
pub async fn spawn_node(first: &TestApp, node_id: &str) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut args = first.args.clone();
    args.store.data_dir = data_dir.path().to_path_buf();
    args.node_id = Some(node_id.into());
    args.public_url = None;
    let (addr, state, server) = serve(args.clone()).await;
    TestApp {
        addr,
        base: format!("http://{addr}"),
        state,
        http: reqwest::Client::new(),
        data_dir,
        master: first.master.clone(),
        database_url: first.database_url.clone(),
        serving: Some(server),
        postgres: None,
        args,
    }
}

async fn spawn(postgres: bool, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    // `GATEWAY_TEST_LOG=debug cargo test …` shows the gateway's logs while debugging a test.
    if let Ok(filter) = std::env::var("GATEWAY_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let data_dir = tempfile::tempdir().unwrap();
    let (postgres, database_url) = if postgres {
        let (db, url) = PostgresDb::create().await;
        (Some(db), url)
    } else {
        (None, format!("sqlite://{}?mode=rwc", data_dir.path().join("gateway.db").display()))
    };
    let store = StoreArgs {
        database_url: Some(database_url.clone()),
        data_dir: data_dir.path().to_path_buf(),
        database_max_connections: 4,
    };
    let mut args = ServeArgs::for_tests(store);
    args.keys.encryption_key = Some(test_key());
    args.node_id = Some("test-node".into());
    configure(&mut args);
    let (addr, state, server) = serve(args.clone()).await;
    let master_user = state.store.create_user("root@gateway.test", None, Role::MasterAdmin, &[]).await.unwrap();
    let master = state.store.create_api_token(master_user.id, "test").await.unwrap();
    TestApp {
        addr,
        base: format!("http://{addr}"),
        state,
        http: reqwest::Client::new(),
        data_dir,
        master,
        database_url,
        serving: Some(server),
        postgres,
        args,
    }
}

async fn serve(args: ServeArgs) -> (SocketAddr, AppState, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let app = App::build(args).await.expect("gateway builds");
    let addr = app.addr();
    let state = app.state().clone();
    (addr, state, tokio::spawn(app.run(false)))
}

impl TestApp {
    /// Shuts the gateway down as SIGTERM would, and waits until it has stopped.
    pub async fn stop(&mut self) {
        self.state.shutdown.cancel();
        if let Some(server) = self.serving.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Stops this gateway and starts a new one on the same database and data directory,
    /// after `configure` adjusted its settings (tokens and data survive).
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
        self.stop().await;
        let mut args = self.args.clone();
        configure(&mut args);
        let (addr, state, server) = serve(args.clone()).await;
        let placeholder = tempfile::tempdir().unwrap();
        TestApp {
            addr,
            base: format!("http://{addr}"),
            state,
            http: reqwest::Client::new(),
            data_dir: std::mem::replace(&mut self.data_dir, placeholder),
            master: self.master.clone(),
            database_url: self.database_url.clone(),
            serving: Some(server),
            postgres: self.postgres.take(),
            args,
        }
    }
}

/// A response: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The field of an error body.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    /// Calls the API as `token` (acting on `company` when given).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        company: Option<CompanyId>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(company) = company {
            request = request.header("X-Company-Id", company.to_string());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        Reply { status, body, text }
    }

    pub async fn get(&self, path: &str, token: &str, company: Option<CompanyId>) -> Reply {
        self.call(Method::GET, path, token, company, None).await
    }

    pub async fn post(&self, path: &str, token: &str, company: Option<CompanyId>, body: Value) -> Reply {
        self.call(Method::POST, path, token, company, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, company: Option<CompanyId>, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, company, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str, company: Option<CompanyId>) -> Reply {
        self.call(Method::DELETE, path, token, company, None).await
    }

    /// A company (calls enabled or not) with a company admin; returns (company, admin token).
    pub async fn company_with_admin(&self, name: &str, calls: bool) -> (CompanyId, String) {
        let mut settings = CompanySettings::default();
        settings.features.call_enabled = calls;
        let company = self.state.store.create_company(name, &settings).await.unwrap();
        let email = format!("admin@{}.test", name.to_lowercase().replace(' ', "-"));
        let token = self.user_token(&email, Role::CompanyAdmin, &[company.id]).await;
        (company.id, token)
    }

    /// A user with a token.
    pub async fn user_token(&self, email: &str, role: Role, companies: &[CompanyId]) -> String {
        let user = self.state.store.create_user(email, None, role, companies).await.unwrap();
        self.state.store.create_api_token(user.id, "test").await.unwrap()
    }

    /// A call chatbot with a call model set (gpt-realtime); returns its id.
    pub async fn call_chatbot(&self, company: CompanyId, token: &str) -> String {
        let bot = self
            .post(
                "/api/company/chatbots",
                token,
                Some(company),
                serde_json::json!({"name": "Voice", "chatbotType": "call"}),
            )
            .await;
        assert_eq!(bot.status, StatusCode::CREATED, "{}", bot.text);
        let id = bot.body["id"].as_str().unwrap().to_owned();
        let set = self
            .patch(
                &format!("/api/company/chatbots/{id}/call-settings"),
                token,
                Some(company),
                serde_json::json!({"aiModelId": GPT_REALTIME}),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        id
    }
}

/// A web call of `chatbot` as the widget opens it, on the test node.
pub fn web_call(company: CompanyId, chatbot: &str) -> gateway::store::NewCall {
    gateway::store::NewCall {
        company_id: company,
        chatbot_id: chatbot.parse().unwrap(),
        source: gateway::store::CallSource::Web,
        is_test: false,
        caller: Some("https://shop.example.com".into()),
        provider: "openai".into(),
        model_id: "gpt-realtime".into(),
        node_id: "test-node".into(),
        token_hash: None,
        token_expires_at: None,
        integration_account_id: None,
        external_id: None,
    }
}

/// Seeded model ids.
pub const GPT_REALTIME: &str = "00000000-0000-4000-8000-000000000103";
pub const GPT_4O_PREVIEW: &str = "00000000-0000-4000-8000-000000000101";
pub const GEMINI_2_5: &str = "00000000-0000-4000-8000-000000000104";
pub const GPT_5_2: &str = "00000000-0000-4000-8000-000000000001";

/// The gateway pointed at a mock OpenAI Realtime server, quick to retry and to notice a
/// vanished caller; plus a company with a call chatbot. Returns (app, chatbot id, admin token).
pub async fn spawn_call_app(
    mock: &testkit::MockOpenAiRealtime,
    configure: impl FnOnce(&mut ServeArgs),
) -> (TestApp, String, String) {
    let url = format!("{}/realtime", mock.ws_base_url());
    spawn_company_call_app(|args| {
        args.openai_realtime_url = url.parse().unwrap();
        args.openai_api_key = Some("sk-test-openai".into());
        configure(args);
    })
    .await
}

/// A gateway tuned for call tests (quick provider retries, a vanished caller noticed in
/// 2 s, no rate limit in the way) with a company and a call chatbot on gpt-realtime.
async fn spawn_company_call_app(configure: impl FnOnce(&mut ServeArgs)) -> (TestApp, String, String) {
    let app = spawn_app_with(|args| {
        args.provider_backoff_ms = 50;
        args.rtc_disconnected_timeout_seconds = 2;
        args.widget_sessions_per_minute = 1000;
        configure(args);
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    (app, bot, admin)
}

/// The gateway pointed at a mock Gemini Live server (the base URL only: the gateway appends
/// `/ws/google.ai.generativelanguage.<version>…`), plus a company with a call chatbot on the
/// seeded Gemini 2.5 native-audio model. Returns (app, chatbot id, admin token).
pub async fn spawn_gemini_app(
    mock: &testkit::MockGeminiLive,
    configure: impl FnOnce(&mut ServeArgs),
) -> (TestApp, String, String) {
    let url = mock.ws_base_url();
    let key = mock.config().api_key.clone();
    let (app, bot, admin) = spawn_company_call_app(|args| {
        args.gemini_live_url = url.parse().unwrap();
        args.gemini_api_key = Some(key);
        configure(args);
    })
    .await;
    app.set_call_settings(&bot, &admin, serde_json::json!({"aiModelId": GEMINI_2_5})).await;
    (app, bot, admin)
}

impl TestApp {
    /// Waits (up to 15 s) until call `id` has ended, whatever its channel; returns its row.
    pub async fn wait_for_call_end(&self, id: gateway::ids::CallId) -> gateway::store::Call {
        let poll = async {
            loop {
                let call = self.state.store.call(id).await.unwrap().unwrap();
                if call.status.is_final() {
                    return call;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(15), poll).await.expect("the call ended")
    }

    /// `POST /api/widget/call/session` for a chatbot, from an origin.
    pub async fn open_session(&self, chatbot: &str, origin: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/api/widget/call/session", self.base))
            .json(&serde_json::json!({"chatbotId": chatbot}));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    /// Changes a chatbot's call settings (as its company admin).
    pub async fn set_call_settings(&self, chatbot: &str, admin: &str, settings: Value) {
        let reply = self.patch(&format!("/api/company/chatbots/{chatbot}/call-settings"), admin, None, settings).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}
