//! The widget's files (`/widget/v1/…`, embedded from `widget-js/src` at build time), the
//! admin Test Call page (`/test-call`), the API reference page (`/api/docs`, from
//! `api-docs/`) and, with `--demo`, the demo site at `/`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

use super::error::ApiError;
use crate::app::AppState;
use crate::demo::DEMO_COMPANY;
use crate::store::ChatbotType;

#[derive(Embed)]
#[folder = "widget-js/src/"]
struct WidgetFiles;

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
    Router::new()
        .merge(widget)
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
/// Module URLs are not versioned, so browsers revalidate them on each load (`no-cache`
/// with an ETag: a 304 costs a round trip, and a page never mixes modules of two releases).
async fn widget_file(Path(path): Path<String>, request_headers: axum::http::HeaderMap) -> Response {
    let Some(file) = WidgetFiles::get(&path) else {
        return ApiError::not_found("widget file").into_response();
    };
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
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn page(name: &str) -> Option<String> {
    DemoFiles::get(name).and_then(|f| String::from_utf8(f.data.into_owned()).ok())
}

/// The admin Test Call page.
async fn test_call_page(State(state): State<AppState>) -> Response {
    match page("test-call.html") {
        Some(html) => Html(html.replace("{{GATEWAY}}", &state.public_base)).into_response(),
        None => ApiError::not_found("page").into_response(),
    }
}

/// With `--demo`, a sample site with the widget embedded for the demo chatbot.
async fn demo_page(State(state): State<AppState>) -> Response {
    if !state.config.demo {
        return (StatusCode::OK, Html("<!doctype html><title>Voice gateway</title><p>Voice gateway. API reference: <a href=\"/api/docs\">/api/docs</a> (<a href=\"/api/openapi.json\">openapi.json</a>).</p>")).into_response();
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
