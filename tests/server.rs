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

// --- slow, silent and too many clients ------------------------------------------------

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); returns what it sent and
/// when it closed, or None if it was still open after `limit`.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(String, Instant)> {
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read_all).await.ok()?;
    Some((String::from_utf8_lossy(&received).into_owned(), closed))
}

/// Writes `bytes` one at a time, `every` apart, until the server stops taking them.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, every: Duration) {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Keep the write half open: closing it would end the request early.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[tokio::test]
async fn silent_and_dripping_clients_are_cut_by_the_header_timeout() {
    let app = spawn_app_with(|args| args.http_header_timeout_seconds = 1).await;
    let silent = async {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let opened = Instant::now();
        let (_, closed) =
            until_closed(&mut stream, Duration::from_secs(5)).await.expect("a silent connection is closed");
        closed - opened
    };
    let dripping = async {
        let stream = TcpStream::connect(app.addr).await.unwrap();
        let (mut reader, writer) = stream.into_split();
        let started = Instant::now();
        trickle(
            writer,
            b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec(),
            Duration::from_millis(100),
        );
        let mut buf = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if matches!(reader.read(&mut buf).await, Ok(0) | Err(_)) {
                    return Instant::now();
                }
            }
        })
        .await
        .expect("a connection dripping its head is closed");
        closed - started
    };
    let (silent, dripping) = tokio::join!(silent, dripping);
    for (what, took) in [("silent", silent), ("dripping", dripping)] {
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_millis(2500),
            "{what}: closed after {took:?}"
        );
    }
    assert_eq!(app.get("/healthz", "", None).await.status, StatusCode::OK, "prompt clients are served");
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|args| args.http_idle_timeout_seconds = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&response).contains("\"status\":\"ok\"") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the response");
        response.extend_from_slice(&buf[..n]);
    }
    let answered = Instant::now();
    let (_, closed) = until_closed(&mut stream, Duration::from_secs(5)).await.expect("an idle connection is closed");
    let idle = closed - answered;
    assert!(idle >= Duration::from_millis(800) && idle < Duration::from_millis(2500), "closed after {idle:?} idle");
}

/// A request head for `path` with a JSON body of `length` bytes.
fn post_head(path: &str, token: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_trickling_body_is_cut_with_408_but_a_slow_steady_upload_completes() {
    let app = spawn_app_with(|args| {
        args.http_body_grace_seconds = 1;
        args.http_body_min_rate = 1024;
        args.http_idle_timeout_seconds = 1;
        args.http_header_timeout_seconds = 1;
    })
    .await;
    let (_, admin) = app.company_with_admin("Acme", true).await;

    // 1 byte every 200 ms: 5 B/s.
    let body = json!({"name": "x".repeat(1000), "chatbotType": "call"}).to_string();
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(post_head("/api/company/chatbots", &admin, body.len()).as_bytes()).await.unwrap();
    let started = Instant::now();
    trickle(writer, body.into_bytes(), Duration::from_millis(200));
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), reader.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the trickle was still being read after 6 s");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_too_slow"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(3), "cut after {:?}", started.elapsed());

    // 12 KiB at 3 KiB/s: slower than every timeout above, but steady.
    let category = app.post("/api/company/knowledge/categories", &admin, None, json!({"name": "FAQ"})).await;
    assert_eq!(category.status, StatusCode::CREATED, "{}", category.text);
    let path = format!("/api/company/knowledge/categories/{}/documents", category.body["id"].as_str().unwrap());
    let document = json!({"title": "Hours", "content": "We are open nine to five. ".repeat(480)}).to_string();
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(post_head(&path, &admin, document.len()).as_bytes()).await.unwrap();
    let started = Instant::now();
    for chunk in document.as_bytes().chunks(768) {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(3));
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_app_with(|args| {
        args.http_max_connections = 2;
        args.http_header_timeout_seconds = 1;
    })
    .await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let fresh = reqwest::Client::new();
    let reply = tokio::time::timeout(Duration::from_secs(5), fresh.get(format!("{}/healthz", app.base)).send())
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700), "served after {waited:?}: the cap of 2 was not applied");
}

/// The demo chatbot (echo provider) of an app started with `--demo`.
async fn demo_chatbot(app: &TestApp) -> String {
    let companies = app.get("/api/admin/companies", &app.master, None).await;
    let demo = companies.body.as_array().unwrap().iter().find(|c| c["name"] == "Demo Company").unwrap();
    let company: gateway::ids::CompanyId = demo["id"].as_str().unwrap().parse().unwrap();
    let bots = app.get("/api/company/chatbots", &app.master, Some(company)).await;
    bots.body[0]["id"].as_str().unwrap().to_owned()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A call's signaling WebSocket, connected and not yet offering.
async fn call_socket(app: &TestApp) -> (Socket, gateway::ids::CallId) {
    let bot = demo_chatbot(app).await;
    let session = app.open_session(&bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let (socket, _) = tokio_tungstenite::connect_async(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    (socket, session.body["sessionId"].as_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn websockets_outlive_the_header_idle_and_body_timeouts() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(|args| {
        args.demo = true;
        args.http_header_timeout_seconds = 1;
        args.http_idle_timeout_seconds = 1;
        args.http_body_grace_seconds = 1;
    })
    .await;
    let (mut socket, _) = call_socket(&app).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    socket.send(Message::text(r#"{"type":"dance"}"#)).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message
                && text.contains("unknown_type")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(answered, Ok(true), "the quiet WebSocket is still served");
}

// --- shutdown -------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_finishes_within_its_grace_period_whatever_clients_do() {
    let grace = Duration::from_secs(2);
    let mut app = spawn_app_with(|args| {
        args.demo = true;
        args.shutdown_grace_seconds = 2;
        // No timeout comes to the rescue: only the shutdown deadline.
        args.http_header_timeout_seconds = 600;
        args.http_idle_timeout_seconds = 600;
        args.http_body_grace_seconds = 600;
    })
    .await;
    let (_, admin) = app.company_with_admin("Acme", true).await;
    let mut clients = Vec::new();
    // Silent.
    clients.push(TcpStream::connect(app.addr).await.unwrap());
    // Half a request head.
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: gat").await.unwrap();
    clients.push(half);
    // A request whose body never comes.
    let mut waiting = TcpStream::connect(app.addr).await.unwrap();
    waiting.write_all(post_head("/api/company/chatbots", &admin, 500).as_bytes()).await.unwrap();
    waiting.write_all(b"{\"name\":").await.unwrap();
    clients.push(waiting);
    // Kept alive after a request.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    assert!(kept.read(&mut buf).await.unwrap() > 0);
    clients.push(kept);
    // A call's WebSocket, waiting for the offer.
    let (socket, call_id) = call_socket(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    app.state.shutdown.cancel();
    let serving = app.serving.take().unwrap();
    let finished = tokio::time::timeout(grace + Duration::from_secs(4), serving).await;
    let took = asked.elapsed();
    assert!(finished.is_ok(), "shutdown still running after {took:?}");
    finished.unwrap().unwrap().unwrap();
    assert!(took < grace + Duration::from_millis(750), "shutdown took {took:?}");
    for (i, mut client) in clients.into_iter().enumerate() {
        assert!(until_closed(&mut client, Duration::from_secs(1)).await.is_some(), "client {i} is still connected");
    }
    drop(socket);
    // The call was ended and stored before the process let go of the database.
    let store = gateway::store::Store::connect(&app.database_url, 1).await.unwrap();
    let call = store.call(call_id).await.unwrap().unwrap();
    assert_eq!(call.end_reason, Some(gateway::store::EndReason::Shutdown), "{call:?}");
    store.close().await;
}
