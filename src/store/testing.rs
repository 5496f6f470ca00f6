//! Store tests run twice: on a fresh SQLite file, and on a fresh Postgres database when
//! `GATEWAY_TEST_POSTGRES_URL` names a server (CI sets it to the local Postgres; without
//! it the Postgres variant reports that it was skipped).

use super::{Chatbot, ChatbotType, EventType, NewChatbot, NewWebhookEndpoint, Store};
use crate::crypto::Sealed;
use crate::ids::{CompanyId, WebhookId};

/// A store on a new SQLite file; keep the directory alive for the test's duration.
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    (Store::connect(&url, 4).await.expect("sqlite store"), dir)
}

/// A `call` chatbot of `company`, without a model.
pub async fn call_chatbot(store: &Store, company: CompanyId) -> Chatbot {
    let new = NewChatbot {
        name: "Voice".into(),
        description: String::new(),
        chatbot_type: ChatbotType::Call,
        call_model_id: None,
        instructions: String::new(),
        settings: crate::settings::ChatbotSettings::default(),
    };
    store.create_chatbot(company, new).await.expect("create a chatbot")
}

/// An enabled webhook endpoint of `company` for `types` (its sealed secret is a stand-in:
/// store tests never send).
pub async fn webhook(store: &Store, company: CompanyId, types: &[EventType]) -> WebhookId {
    let id = WebhookId::new();
    let new = NewWebhookEndpoint {
        id,
        url: format!("https://hooks.example.com/{id}"),
        description: String::new(),
        event_types: types.to_vec(),
        secret: Sealed { key_id: "k".into(), blob: "b".into() },
    };
    store.create_webhook(company, new).await.expect("create a webhook endpoint");
    id
}

/// A fresh Postgres database for one test; dropped again by [`PostgresTestDb::drop_db`].
pub struct PostgresTestDb {
    admin_url: String,
    name: String,
}

impl PostgresTestDb {
    /// Creates `gw_test_<random>` on the server named by `GATEWAY_TEST_POSTGRES_URL`.
    pub async fn create() -> Option<(Store, Self)> {
        let admin_url = std::env::var("GATEWAY_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
        sqlx::any::install_default_drivers();
        let name = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url).await.expect("connect to GATEWAY_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create test database");
        admin.close().await;
        let url = replace_database(&admin_url, &name);
        let store = Store::connect(&url, 4).await.expect("postgres store");
        Some((store, Self { admin_url, name }))
    }

    /// The test database's URL (for a second connection, e.g. a `LISTEN`er).
    pub fn url(&self) -> String {
        replace_database(&self.admin_url, &self.name)
    }

    /// Drops the test database.
    pub async fn drop_db(self, store: Store) {
        store.close().await;
        if let Ok(admin) = sqlx::AnyPool::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&admin).await;
            admin.close().await;
        }
    }
}

/// The same server URL with another database name.
pub fn replace_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("GATEWAY_TEST_POSTGRES_URL is a URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// `store_test!(name, |store| { body })` defines `name::sqlite` and `name::postgres`.
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let ($store, _dir) = crate::store::testing::sqlite_store().await;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let Some(($store, db)) = crate::store::testing::PostgresTestDb::create().await else {
                    eprintln!("skipped: GATEWAY_TEST_POSTGRES_URL is not set");
                    return;
                };
                {
                    let $store = $store.clone();
                    $body
                }
                db.drop_db($store).await;
            }
        }
    };
}
pub(crate) use store_test;
