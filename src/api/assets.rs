//! The widget's files (`/widget/v1/…`, embedded from `widget-js/src` at build time), the
//! admin console (`/admin`, `/admin/…`, embedded from `widget-js/admin`; `/test-call`
//! leads to its Test Call screen), the agent console (`/agent`, `/agent/…`, embedded from
//! `widget-js/agent`), the API reference page (`/api/docs`, from `api-docs/`)
//! and, with `--demo`, the demo site at `/`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::{Embed, EmbeddedFile};

use super::error::ApiError;
use crate::app::AppState;
use crate::demo::DEMO_COMPANY;
use crate::store::ChatbotType;

#[derive(Embed)]
#[folder = "widget-js/src/"]
struct WidgetFiles;

#[derive(Embed)]
#[folder = "widget-js/admin/"]
struct ConsoleFiles;

/// The agent console's page and modules; it shares the admin console's client, building
/// blocks, style sheet and ticket inbox (served under `/admin/…`).
#[derive(Embed)]
#[folder = "widget-js/agent/"]
struct AgentFiles;

#[derive(Embed)]
#[folder = "widget-js/demo/"]
struct DemoFiles;

/// The API reference page: a small viewer of `/api/openapi.json` (about 11 KB).
#[derive(Embed)]
#[folder = "api-docs/"]
struct ApiDocsFiles;

/// The reference page loads nothing but the gateway's own files and document.
const API_DOCS_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    let widget = Router::new()
        .route("/widget/v1/{*path}", get(widget_file))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    let console = Router::new()
        .route("/admin", get(console_page))
        .route("/admin/", get(console_page))
        .route("/admin/{*path}", get(console_file))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    let agent = Router::new()
        .route("/agent", get(agent_page))
        .route("/agent/", get(agent_page))
        .route("/agent/{*path}", get(agent_file))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    Router::new()
        .merge(widget)
        .merge(console)
        .merge(agent)
        .route("/test-call", get(test_call_page))
        .route("/api/docs", get(|| api_docs_file(Path("index.html".to_owned()))))
        .route("/api/docs/{file}", get(api_docs_file))
        .route("/", get(demo_page))
}

/// The API reference page and its script and style sheet.
async fn api_docs_file(Path(file): Path<String>) -> Response {
    let Some(found) = ApiDocsFiles::get(&file) else {
        return ApiError::not_found("file").into_response();
    };
    let mut response = found.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(found.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_DOCS_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Serves a widget file. Any origin may load it: the widget runs on customers' sites and
/// loads its modules from here.
async fn widget_file(Path(path): Path<String>, request_headers: HeaderMap) -> Response {
    let Some(file) = WidgetFiles::get(&path) else {
        return ApiError::not_found("widget file").into_response();
    };
    let mut response = embedded(file, &request_headers);
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// An embedded file with its content type.
/// Module URLs are not versioned, so browsers revalidate them on each load (`no-cache`
/// with an ETag: a 304 costs a round trip, and a page never mixes modules of two releases).
fn embedded(file: EmbeddedFile, request_headers: &HeaderMap) -> Response {
    let mime = file.metadata.mimetype();
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..8]));
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { file.data.into_owned().into_response() };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The console's shell for every screen (`/admin`, `/admin/calls/…`): the page routes
/// on the client. Files (`/admin/app.js`) are served as they are; a path that names a
/// file the console does not have is a 404.
async fn console_file(State(state): State<AppState>, Path(path): Path<String>, request_headers: HeaderMap) -> Response {
    if path != "index.html"
        && let Some(file) = ConsoleFiles::get(&path)
    {
        let html = file.metadata.mimetype().starts_with("text/html");
        let mut response = embedded(file, &request_headers);
        if html {
            console_headers(response.headers_mut(), &state.public_base);
        }
        return response;
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return ApiError::not_found("console file").into_response();
    }
    console_page(State(state)).await
}

/// The agent console's files (`/agent/app.js`); any other path without a file extension
/// answers the page, an unknown file is a 404.
async fn agent_file(State(state): State<AppState>, Path(path): Path<String>, request_headers: HeaderMap) -> Response {
    if path != "index.html"
        && let Some(file) = AgentFiles::get(&path)
    {
        return embedded(file, &request_headers);
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return ApiError::not_found("agent console file").into_response();
    }
    agent_page(State(state)).await
}

/// The agent console's page, with the admin console's headers (its own scripts only, the
/// gateway's sockets, no framing by other sites).
async fn agent_page(State(state): State<AppState>) -> Response {
    let Some(file) = AgentFiles::get("index.html") else { return ApiError::not_found("page").into_response() };
    let mut response = Html(file.data.into_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    console_headers(headers, &state.public_base);
    response
}

/// The console's page; `{{GATEWAY}}` becomes the public URL (for embed snippets).
async fn console_page(State(state): State<AppState>) -> Response {
    let Some(file) = ConsoleFiles::get("index.html") else { return ApiError::not_found("page").into_response() };
    let html = String::from_utf8_lossy(&file.data).replace("{{GATEWAY}}", &html_attribute(&state.public_base));
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    console_headers(headers, &state.public_base);
    response
}

/// The console's pages run only their own scripts, are framed only by themselves (the
/// widget preview) and talk only to the gateway (and its public WebSocket origin, which
/// may differ behind a proxy). Media may come from signed recording links.
fn console_headers(headers: &mut HeaderMap, public_base: &str) {
    let sockets = url::Url::parse(public_base)
        .ok()
        .map(|url| {
            let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!(" {scheme}://{host}:{port}"),
                None => format!(" {scheme}://{host}"),
            }
        })
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
         media-src 'self' blob: https:; connect-src 'self'{sockets}; frame-src 'self'; frame-ancestors 'self'; \
         base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// Text made safe for a double-quoted HTML attribute.
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

fn page(name: &str) -> Option<String> {
    DemoFiles::get(name).and_then(|f| String::from_utf8(f.data.into_owned()).ok())
}

/// The Test Call page moved into the console; old links (`/test-call?chatbot=ID`) lead there.
async fn test_call_page(RawQuery(query): RawQuery) -> Redirect {
    match query.filter(|q| !q.is_empty()) {
        Some(query) => Redirect::to(&format!("/admin/test-call?{query}")),
        None => Redirect::to("/admin/test-call"),
    }
}

/// With `--demo`, a sample site with the widget embedded for the demo chatbot.
async fn demo_page(State(state): State<AppState>) -> Response {
    if !state.config.demo {
        return (StatusCode::OK, Html("<!doctype html><title>Voice gateway</title><p>Voice gateway. Admin console: <a href=\"/admin\">/admin</a>. API reference: <a href=\"/api/docs\">/api/docs</a> (<a href=\"/api/openapi.json\">openapi.json</a>).</p>")).into_response();
    }
    let chatbot = match demo_chatbot(&state).await {
        Ok(Some(id)) => id,
        Ok(None) => return ApiError::not_found("demo chatbot").into_response(),
        Err(err) => return err.into_response(),
    };
    match page("index.html") {
        Some(html) => {
            Html(html.replace("{{GATEWAY}}", &state.public_base).replace("{{CHATBOT_ID}}", &chatbot)).into_response()
        }
        None => ApiError::not_found("page").into_response(),
    }
}

async fn demo_chatbot(state: &AppState) -> Result<Option<String>, ApiError> {
    let Some(company) = state.store.company_by_name(DEMO_COMPANY).await? else { return Ok(None) };
    let bots = state.store.list_chatbots(company.id).await?;
    Ok(bots.into_iter().find(|b| b.chatbot_type == ChatbotType::Call).map(|b| b.id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_text_cannot_close_its_quotes() {
        assert_eq!(html_attribute(r#"https://x.example/"><script>"#), "https://x.example/&quot;&gt;&lt;script&gt;");
        assert_eq!(html_attribute("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn console_pages_allow_the_public_websocket_origin_and_only_self_framing() {
        let mut headers = HeaderMap::new();
        console_headers(&mut headers, "https://voice.example.com");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or_default();
        assert!(policy.contains("connect-src 'self' wss://voice.example.com;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'self'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        let mut headers = HeaderMap::new();
        console_headers(&mut headers, "http://127.0.0.1:8080");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or_default();
        assert!(policy.contains("connect-src 'self' ws://127.0.0.1:8080;"), "{policy}");
    }
}
