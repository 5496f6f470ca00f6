//! Company admin API: the knowledge base — categories, documents, which categories each
//! chatbot may search, and a search box to try what the agent will find.

use std::collections::HashSet;

use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiJson;
use super::path_id;
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::ids::{CategoryId, ChatbotId, CompanyId, DocumentId};
use crate::knowledge;
use crate::store::{Category, ContentType, Document, DocumentSummary, NewCategory, NewDocument, StoreError};
use crate::time::rfc3339;

/// Largest body of a document upload (the JSON around the text included); every other
/// route keeps the API-wide [`super::MAX_BODY_BYTES`].
pub const MAX_DOCUMENT_BODY_BYTES: usize = 1024 * 1024;

/// Largest document text, in bytes of UTF-8. Below the body limit, so that a text full of
/// characters JSON escapes still arrives and gets this clear error instead.
pub const MAX_DOCUMENT_CONTENT_BYTES: usize = 512 * 1024;

/// Longest search query an admin may try (the agent's queries are a sentence).
pub const MAX_QUERY_CHARS: usize = 500;

/// Most passages the admin search returns.
pub const MAX_SEARCH_LIMIT: usize = 20;

/// Most categories one chatbot may be linked to.
pub const MAX_LINKED_CATEGORIES: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/knowledge/categories", get(list_categories).post(create_category))
        .route("/api/company/knowledge/categories/{id}", get(get_category).delete(delete_category))
        .route(
            "/api/company/knowledge/categories/{id}/documents",
            get(list_documents).post(upload_document).layer(DefaultBodyLimit::max(MAX_DOCUMENT_BODY_BYTES)),
        )
        .route("/api/company/knowledge/documents/{id}", get(get_document).delete(delete_document))
        .route(
            "/api/company/chatbots/{id}/knowledge-categories",
            get(get_chatbot_categories).put(set_chatbot_categories),
        )
        .route("/api/company/chatbots/{id}/knowledge/search", get(search))
}

/// A knowledge-base category.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryView {
    id: CategoryId,
    company_id: CompanyId,
    name: String,
    description: String,
    /// Documents in the category.
    document_count: i64,
    created_at: String,
}

impl From<&Category> for CategoryView {
    fn from(c: &Category) -> Self {
        Self {
            id: c.id,
            company_id: c.company_id,
            name: c.name.clone(),
            description: c.description.clone(),
            document_count: c.document_count,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// A document without its text.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentSummaryView {
    id: DocumentId,
    category_id: CategoryId,
    title: String,
    content_type: ContentType,
    /// Length of the text in characters.
    content_chars: i64,
    /// Passages the text was cut into for search.
    chunk_count: i64,
    created_at: String,
}

impl From<&DocumentSummary> for DocumentSummaryView {
    fn from(d: &DocumentSummary) -> Self {
        Self {
            id: d.id,
            category_id: d.category_id,
            title: d.title.clone(),
            content_type: d.content_type,
            content_chars: d.content_chars,
            chunk_count: d.chunk_count,
            created_at: rfc3339(d.created_at),
        }
    }
}

/// A document with its text.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    #[serde(flatten)]
    summary: DocumentSummaryView,
    content: String,
}

impl From<Document> for DocumentView {
    fn from(d: Document) -> Self {
        Self { summary: (&d.summary).into(), content: d.content }
    }
}

/// Checks a one-line text field: `min`–`max` characters once trimmed, no control characters.
fn check_line(field: &'static str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.trim().chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid(field, format!("must be {min}–{max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// NUL cannot be stored in Postgres text; refusing it keeps both databases alike.
fn check_no_nul(field: &'static str, value: &str) -> ApiResult<()> {
    if value.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

async fn load_category(state: &AppState, company: CompanyId, raw_id: &str) -> ApiResult<Category> {
    let id: CategoryId = path_id(raw_id, "category")?;
    state.store.category(company, id).await?.ok_or_else(|| ApiError::not_found("category"))
}

async fn load_chatbot_id(state: &AppState, company: CompanyId, raw_id: &str) -> ApiResult<ChatbotId> {
    let id: ChatbotId = path_id(raw_id, "chatbot")?;
    state.store.chatbot(company, id).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    Ok(id)
}

/// The active company's knowledge-base categories, by name.
#[utoipa::path(get, path = "/api/company/knowledge/categories", tag = "knowledge",
    responses((status = 200, body = [CategoryView]), (status = 403, body = ErrorBody)))]
pub async fn list_categories(admin: CompanyAdmin, State(state): State<AppState>) -> ApiResult<Json<Vec<CategoryView>>> {
    let categories = state.store.list_categories(admin.company_id).await?;
    Ok(Json(categories.iter().map(Into::into).collect()))
}

/// Body of `POST /api/company/knowledge/categories`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCategoryBody {
    /// 1–200 characters, unique in the company.
    name: String,
    #[serde(default)]
    description: String,
}

/// Creates a category.
#[utoipa::path(post, path = "/api/company/knowledge/categories", tag = "knowledge", request_body = NewCategoryBody,
    responses((status = 201, body = CategoryView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_category(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCategoryBody>,
) -> ApiResult<(StatusCode, Json<CategoryView>)> {
    check_line("name", &body.name, 1, 200)?;
    if body.description.chars().count() > 2000 {
        return Err(ApiError::invalid("description", "must be 0–2000 characters"));
    }
    check_no_nul("description", &body.description)?;
    let new = NewCategory { name: body.name.trim().to_owned(), description: body.description };
    let category = match state.store.create_category(admin.company_id, new).await {
        Ok(category) => category,
        Err(StoreError::Conflict) => {
            return Err(ApiError::conflict("already_exists", "the company already has a category of that name")
                .with_field("name"));
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(company_id = %admin.company_id, category_id = %category.id, "knowledge category created");
    Ok((StatusCode::CREATED, Json((&category).into())))
}

/// One category.
#[utoipa::path(get, path = "/api/company/knowledge/categories/{id}", tag = "knowledge", params(("id" = String, Path)),
    responses((status = 200, body = CategoryView), (status = 404, body = ErrorBody)))]
pub async fn get_category(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CategoryView>> {
    let category = load_category(&state, admin.company_id, &id).await?;
    Ok(Json((&category).into()))
}

/// Deletes a category with its documents; chatbots linked to it stop searching it.
#[utoipa::path(delete, path = "/api/company/knowledge/categories/{id}", tag = "knowledge", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_category(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: CategoryId = path_id(&id, "category")?;
    if !state.store.delete_category(admin.company_id, id).await? {
        return Err(ApiError::not_found("category"));
    }
    tracing::info!(company_id = %admin.company_id, category_id = %id, "knowledge category deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The documents of a category, oldest first, without their text.
#[utoipa::path(get, path = "/api/company/knowledge/categories/{id}/documents", tag = "knowledge",
    params(("id" = String, Path)),
    responses((status = 200, body = [DocumentSummaryView]), (status = 404, body = ErrorBody)))]
pub async fn list_documents(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DocumentSummaryView>>> {
    let category = load_category(&state, admin.company_id, &id).await?;
    let documents = state.store.list_documents(admin.company_id, category.id).await?;
    Ok(Json(documents.iter().map(Into::into).collect()))
}

/// Body of `POST /api/company/knowledge/categories/{id}/documents`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDocumentBody {
    /// 1–300 characters.
    title: String,
    /// The text, up to 512 KiB of UTF-8.
    content: String,
    /// `text/plain` (default) or `text/markdown` (cut into passages along its headings).
    #[serde(default = "default_content_type")]
    content_type: ContentType,
}

fn default_content_type() -> ContentType {
    ContentType::PlainText
}

/// Uploads a text or markdown document into a category. It is cut into passages at once
/// and is searchable as soon as this returns.
#[utoipa::path(post, path = "/api/company/knowledge/categories/{id}/documents", tag = "knowledge",
    request_body = NewDocumentBody, params(("id" = String, Path)),
    responses((status = 201, body = DocumentSummaryView), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "`body_too_large` (over 1 MiB) or `document_too_large` (text over 512 KiB)"),
        (status = 422, body = ErrorBody)))]
pub async fn upload_document(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewDocumentBody>,
) -> ApiResult<(StatusCode, Json<DocumentSummaryView>)> {
    let category = load_category(&state, admin.company_id, &id).await?;
    check_line("title", &body.title, 1, 300)?;
    if body.content.len() > MAX_DOCUMENT_CONTENT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "document_too_large",
            format!(
                "the document is {} KiB; the limit is {} KiB: split it into several documents",
                body.content.len().div_ceil(1024),
                MAX_DOCUMENT_CONTENT_BYTES / 1024
            ),
        )
        .with_field("content"));
    }
    if body.content.trim().is_empty() {
        return Err(ApiError::invalid("content", "must not be empty"));
    }
    check_no_nul("content", &body.content)?;
    let chunks = knowledge::chunk_document(&body.content, body.content_type);
    let new = NewDocument {
        category_id: category.id,
        title: body.title.trim().to_owned(),
        content_type: body.content_type,
        content: body.content,
        chunks,
    };
    let document =
        state.store.create_document(admin.company_id, new).await?.ok_or_else(|| ApiError::not_found("category"))?;
    tracing::info!(
        company_id = %admin.company_id,
        category_id = %category.id,
        document_id = %document.summary.id,
        chunks = document.summary.chunk_count,
        "knowledge document uploaded"
    );
    Ok((StatusCode::CREATED, Json((&document.summary).into())))
}

/// One document with its text.
#[utoipa::path(get, path = "/api/company/knowledge/documents/{id}", tag = "knowledge", params(("id" = String, Path)),
    responses((status = 200, body = DocumentView), (status = 404, body = ErrorBody)))]
pub async fn get_document(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DocumentView>> {
    let id: DocumentId = path_id(&id, "document")?;
    let document = state.store.document(admin.company_id, id).await?.ok_or_else(|| ApiError::not_found("document"))?;
    Ok(Json(document.into()))
}

/// Deletes a document; its passages leave the search at once.
#[utoipa::path(delete, path = "/api/company/knowledge/documents/{id}", tag = "knowledge", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_document(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: DocumentId = path_id(&id, "document")?;
    if !state.store.delete_document(admin.company_id, id).await? {
        return Err(ApiError::not_found("document"));
    }
    tracing::info!(company_id = %admin.company_id, document_id = %id, "knowledge document deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The categories a chatbot searches.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatbotCategoriesView {
    category_ids: Vec<CategoryId>,
    categories: Vec<CategoryView>,
}

async fn chatbot_categories_view(
    state: &AppState,
    company: CompanyId,
    chatbot: ChatbotId,
) -> ApiResult<ChatbotCategoriesView> {
    let categories = state.store.chatbot_categories(company, chatbot).await?;
    Ok(ChatbotCategoriesView {
        category_ids: categories.iter().map(|c| c.id).collect(),
        categories: categories.iter().map(Into::into).collect(),
    })
}

/// The knowledge-base categories a chatbot searches.
#[utoipa::path(get, path = "/api/company/chatbots/{id}/knowledge-categories", tag = "knowledge",
    params(("id" = String, Path)),
    responses((status = 200, body = ChatbotCategoriesView), (status = 404, body = ErrorBody)))]
pub async fn get_chatbot_categories(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChatbotCategoriesView>> {
    let chatbot = load_chatbot_id(&state, admin.company_id, &id).await?;
    Ok(Json(chatbot_categories_view(&state, admin.company_id, chatbot).await?))
}

/// Body of `PUT /api/company/chatbots/{id}/knowledge-categories`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatbotCategoriesBody {
    /// Every category the chatbot may search (replaces the current list; `[]` unlinks all).
    category_ids: Vec<String>,
}

/// Replaces the categories a chatbot searches. Each id must be a category of the company.
#[utoipa::path(put, path = "/api/company/chatbots/{id}/knowledge-categories", tag = "knowledge",
    request_body = ChatbotCategoriesBody, params(("id" = String, Path)),
    responses((status = 200, body = ChatbotCategoriesView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_chatbot_categories(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChatbotCategoriesBody>,
) -> ApiResult<Json<ChatbotCategoriesView>> {
    let chatbot = load_chatbot_id(&state, admin.company_id, &id).await?;
    if body.category_ids.len() > MAX_LINKED_CATEGORIES {
        return Err(ApiError::invalid("categoryIds", format!("at most {MAX_LINKED_CATEGORIES} categories")));
    }
    let mut ids = Vec::with_capacity(body.category_ids.len());
    for raw in &body.category_ids {
        let id: CategoryId = raw
            .parse()
            .map_err(|_| ApiError::invalid("categoryIds", format!("{:?} is not a category id", truncated(raw))))?;
        ids.push(id);
    }
    let known: HashSet<CategoryId> =
        state.store.list_categories(admin.company_id).await?.into_iter().map(|c| c.id).collect();
    if let Some(unknown) = ids.iter().find(|id| !known.contains(id)) {
        return Err(ApiError::invalid("categoryIds", format!("no such category: {unknown}")));
    }
    if !state.store.set_chatbot_categories(admin.company_id, chatbot, &ids).await? {
        // A category was deleted in the meantime.
        return Err(ApiError::invalid("categoryIds", "a category no longer exists"));
    }
    tracing::info!(company_id = %admin.company_id, chatbot_id = %chatbot, categories = ids.len(), "knowledge categories linked");
    Ok(Json(chatbot_categories_view(&state, admin.company_id, chatbot).await?))
}

/// At most 40 characters of untrusted input, for an error message.
fn truncated(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// One passage found.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PassageView {
    document_id: DocumentId,
    /// The document's title.
    title: String,
    /// The passage, starting with the headings it sits under.
    content: String,
    /// Relevance, higher is better; comparable within one result list only.
    score: f64,
}

/// What a search found.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchView {
    query: String,
    /// Best first.
    results: Vec<PassageView>,
}

/// `?q=…&limit=…`, parsed by hand so that every mistake gets the API's error shape.
struct SearchParams {
    query: String,
    limit: usize,
}

fn search_params(raw: Option<&str>) -> ApiResult<SearchParams> {
    let (mut query, mut limit) = (None, knowledge::DEFAULT_RESULTS);
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*key {
            "q" => query = Some(value.into_owned()),
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_SEARCH_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("must be 1–{MAX_SEARCH_LIMIT}")))?;
            }
            other => return Err(ApiError::invalid(truncated(other), "unknown query parameter; use `q` and `limit`")),
        }
    }
    let query =
        query.filter(|q| !q.trim().is_empty()).ok_or_else(|| ApiError::invalid("q", "a search query is required"))?;
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid("q", format!("must be at most {MAX_QUERY_CHARS} characters")));
    }
    Ok(SearchParams { query, limit })
}

/// Runs the search the chatbot's agent runs with its `search_knowledge_base` tool, over
/// the categories linked to the chatbot.
#[utoipa::path(get, path = "/api/company/chatbots/{id}/knowledge/search", tag = "knowledge",
    params(("id" = String, Path), ("q" = String, Query, description = "What to search for (1–500 characters)"),
        ("limit" = Option<u32>, Query, description = "Most passages to return (1–20, default 5)")),
    responses((status = 200, body = SearchView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn search(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<SearchView>> {
    let chatbot = load_chatbot_id(&state, admin.company_id, &id).await?;
    let params = search_params(raw.as_deref())?;
    let passages = state
        .knowledge
        .search(admin.company_id, chatbot, &params.query, params.limit)
        .await
        .map_err(|e| ApiError::internal(format!("knowledge search: {e:#}")))?;
    let results = passages
        .into_iter()
        .map(|p| PassageView { document_id: p.document_id, title: p.title, content: p.content, score: p.score })
        .collect();
    Ok(Json(SearchView { query: params.query, results }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_params_need_a_query_and_a_sane_limit() {
        let ok = search_params(Some("q=business%20hours&limit=3")).unwrap();
        assert_eq!((ok.query.as_str(), ok.limit), ("business hours", 3));
        assert_eq!(search_params(Some("q=x+y")).unwrap().limit, knowledge::DEFAULT_RESULTS);
        assert_eq!(search_params(Some("q=x+y")).unwrap().query, "x y");
        for (raw, field) in [
            (None, "q"),
            (Some(""), "q"),
            (Some("q=%20%20"), "q"),
            (Some("limit=3"), "q"),
            (Some("q=x&limit=0"), "limit"),
            (Some("q=x&limit=21"), "limit"),
            (Some("q=x&limit=many"), "limit"),
            (Some("q=x&page=2"), "page"),
        ] {
            let err = search_params(raw).err().map(|e| e.field);
            assert_eq!(err, Some(Some(field.to_owned())), "{raw:?}");
        }
        let long = format!("q={}", "a".repeat(MAX_QUERY_CHARS + 1));
        assert_eq!(search_params(Some(&long)).err().and_then(|e| e.field).as_deref(), Some("q"));
        let at_limit = format!("q={}", "é".repeat(MAX_QUERY_CHARS));
        assert!(search_params(Some(&at_limit)).is_ok(), "the limit counts characters");
    }

    #[test]
    fn one_line_fields_refuse_blank_long_and_control_characters() {
        assert!(check_line("name", "FAQ", 1, 200).is_ok());
        assert!(check_line("name", "  ", 1, 200).is_err());
        assert!(check_line("name", &"x".repeat(201), 1, 200).is_err());
        assert!(check_line("name", "a\0b", 1, 200).is_err());
        assert!(check_line("name", "a\nb", 1, 200).is_err());
        assert!(check_no_nul("content", "tab\tand\nlines").is_ok());
        assert!(check_no_nul("content", "nul\0").is_err());
    }
}
