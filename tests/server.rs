//! The HTTP server of a real gateway under stalls and hostile clients: an unavailable
//! database, slow or silent connections, too many of them, and shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;

/// Makes the app's database refuse writes until `release` is called: SQLite's write lock
/// held by another connection, or a Postgres database switched to read-only (its
/// connections cut so the pool reconnects read-only).
struct Outage {
    holder: sqlx::AnyConnection,
    postgres: Option<String>,
}

impl Outage {
    async fn start(app: &TestApp) -> Self {
        sqlx::any::install_default_drivers();
        let mut holder = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
        let postgres = app.database_url.starts_with("postgres").then(|| {
            let url = url::Url::parse(&app.database_url).unwrap();
            url.path().trim_start_matches('/').to_owned()
        });
        match &postgres {
            None => {
                sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
            }
            Some(db) => {
                sqlx::query(&format!("ALTER DATABASE {db} SET default_transaction_read_only = on"))
                    .execute(&mut holder)
                    .await
                    .unwrap();
                cut_connections(&mut holder, db).await;
            }
        }
        Self { holder, postgres }
    }

    async fn release(mut self) {
        match &self.postgres {
            None => {
                sqlx::query("ROLLBACK").execute(&mut self.holder).await.unwrap();
            }
            Some(db) => {
                sqlx::query(&format!("ALTER DATABASE {db} RESET default_transaction_read_only"))
                    .execute(&mut self.holder)
                    .await
                    .unwrap();
                cut_connections(&mut self.holder, db).await;
            }
        }
    }
}

async fn cut_connections(holder: &mut sqlx::AnyConnection, db: &str) {
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ))
    .fetch_all(&mut *holder)
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unavailable_database_answers_503_and_readiness_says_so_while_liveness_holds() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let outage = Outage::start(&app).await;

    let create = json!({"name": "Voice", "chatbotType": "call"});
    let started = Instant::now();
    let refused = app.post("/api/company/chatbots", &admin, None, create.clone()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        "{}",
        refused.text
    );
    assert!(started.elapsed() < Duration::from_secs(12), "answered in {:?}", started.elapsed());
    let retry = app.http.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.headers()["retry-after"], "5");
    let body: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");
    let live = app.get("/healthz", "", None).await;
    assert_eq!(live.status, StatusCode::OK, "liveness does not depend on the database");
    let raw = app
        .http
        .post(format!("{}/api/company/chatbots", app.base))
        .bearer_auth(&admin)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(raw.headers()["retry-after"], "5");

    outage.release().await;
    let back = async {
        loop {
            if app.get("/readyz", "", None).await.status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), back).await.expect("ready again once the database is back");
    let created = app.post("/api/company/chatbots", &admin, None, create).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let listed = app.get("/api/company/chatbots", &admin, None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "the refused requests changed nothing");
}
