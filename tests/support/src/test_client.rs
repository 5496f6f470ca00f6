//! A plain WebSocket client for driving the mocks in tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) struct TestClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every JSON frame read so far.
    pub(crate) seen: Vec<Value>,
    /// How many of them came as text and as binary frames.
    pub(crate) text_frames: usize,
    pub(crate) binary_frames: usize,
}

/// What a frame turned into.
#[derive(Debug)]
pub(crate) enum Received {
    Json(Value),
    Close(Option<CloseFrame>),
}

impl TestClient {
    pub(crate) async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { ws, seen: Vec::new(), text_frames: 0, binary_frames: 0 })
    }

    pub(crate) async fn send(&mut self, value: &Value) {
        self.ws.send(Message::Text(value.to_string().into())).await.expect("send");
    }

    pub(crate) async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next frame (JSON from text or binary frames), or a close.
    pub(crate) async fn recv(&mut self, timeout: Duration) -> Option<Received> {
        loop {
            let frame = tokio::time::timeout(timeout, self.ws.next()).await.ok()??;
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("server sent JSON");
                    self.text_frames += 1;
                    self.seen.push(value.clone());
                    return Some(Received::Json(value));
                }
                Ok(Message::Binary(bytes)) => {
                    let value: Value = serde_json::from_slice(&bytes).expect("server sent JSON");
                    self.binary_frames += 1;
                    self.seen.push(value.clone());
                    return Some(Received::Json(value));
                }
                Ok(Message::Close(frame)) => return Some(Received::Close(frame)),
                Ok(_) => continue,
                Err(_) => return Some(Received::Close(None)),
            }
        }
    }

    /// The next JSON frame; panics on a close or a timeout.
    pub(crate) async fn next_json(&mut self) -> Value {
        match self.recv(Duration::from_secs(5)).await {
            Some(Received::Json(value)) => value,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Reads until an OpenAI event of `kind`, returning every event read.
    pub(crate) async fn until_type(&mut self, kind: &str) -> Vec<Value> {
        self.until(|v| v["type"] == kind).await
    }

    /// Reads until `done` holds for a frame, returning every frame read
    /// (that one included).
    pub(crate) async fn until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next_json().await;
            let stop = done(&frame);
            frames.push(frame);
            if stop {
                return frames;
            }
        }
    }

    /// Reads until the server closes, returning the close frame.
    pub(crate) async fn until_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.recv(Duration::from_secs(5)).await {
                Some(Received::Json(_)) => continue,
                Some(Received::Close(frame)) => return frame,
                None => panic!("no close within 5 s"),
            }
        }
    }

    /// Frames arriving within `quiet` of each other, until a gap.
    pub(crate) async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(Received::Json(value)) = self.recv(quiet).await {
            frames.push(value);
        }
        frames
    }
}

/// The `type`s of OpenAI events, for order assertions.
pub(crate) fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap_or("?").to_owned()).collect()
}
