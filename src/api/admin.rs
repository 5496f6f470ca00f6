//! Master admin API: companies and the AI model catalogue.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiJson;
use super::json::ApiQuery;
use super::path_id;
use crate::app::AppState;
use crate::auth::MasterAdmin;
use crate::ids::{CompanyId, ModelId};
use crate::settings::{CompanySettings, CompanySettingsPatch};
use crate::store::{AiModel, Company, ModelPatch, ModelSettings, ModelType, NewModel, Provider};
use crate::time::rfc3339;
use crate::voices;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/companies", get(list_companies).post(create_company))
        .route("/api/admin/companies/{id}/settings", patch(update_company_settings))
        .route("/api/admin/ai-models", get(list_models).post(create_model))
        .route("/api/admin/ai-models/{id}", patch(update_model).delete(delete_model))
}

/// A company as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyView {
    id: CompanyId,
    name: String,
    settings: CompanySettings,
    created_at: String,
    updated_at: String,
}

impl From<Company> for CompanyView {
    fn from(c: Company) -> Self {
        Self {
            id: c.id,
            name: c.name,
            settings: c.settings,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// Body of `POST /api/admin/companies`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCompanyBody {
    name: String,
    #[serde(default)]
    settings: Option<CompanySettingsPatch>,
}

/// Every company.
#[utoipa::path(get, path = "/api/admin/companies", tag = "admin",
    responses((status = 200, body = [CompanyView]), (status = 403, body = ErrorBody)))]
pub async fn list_companies(_: MasterAdmin, State(state): State<AppState>) -> ApiResult<Json<Vec<CompanyView>>> {
    Ok(Json(state.store.list_companies().await?.into_iter().map(Into::into).collect()))
}

/// Creates a company (calls disabled unless the body enables them).
#[utoipa::path(post, path = "/api/admin/companies", tag = "admin", request_body = NewCompanyBody,
    responses((status = 201, body = CompanyView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_company(
    _: MasterAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCompanyBody>,
) -> ApiResult<(StatusCode, Json<CompanyView>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1–200 characters"));
    }
    let mut settings = CompanySettings::default();
    if let Some(patch) = body.settings {
        settings.apply(patch);
    }
    settings.validate()?;
    let company = state.store.create_company(name, &settings).await?;
    tracing::info!(company_id = %company.id, "company created");
    Ok((StatusCode::CREATED, Json(company.into())))
}

/// Changes a company's settings, e.g. `{"features":{"callEnabled":true}}`.
#[utoipa::path(patch, path = "/api/admin/companies/{id}/settings", tag = "admin", request_body = CompanySettingsPatch,
    params(("id" = String, Path, description = "Company id")),
    responses((status = 200, body = CompanyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_company_settings(
    _: MasterAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<CompanySettingsPatch>,
) -> ApiResult<Json<CompanyView>> {
    let id: CompanyId = path_id(&id, "company")?;
    let company = state.store.company(id).await?.ok_or_else(|| ApiError::not_found("company"))?;
    let mut settings = company.settings;
    settings.apply(patch);
    settings.validate()?;
    let company =
        state.store.update_company_settings(id, &settings).await?.ok_or_else(|| ApiError::not_found("company"))?;
    tracing::info!(company_id = %id, call_enabled = company.settings.features.call_enabled, "company settings changed");
    Ok(Json(company.into()))
}

/// A model as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    id: ModelId,
    provider: Provider,
    model_id: String,
    display_name: String,
    model_type: ModelType,
    is_active: bool,
    settings: ModelSettings,
    /// The voices a call-capable model speaks with (empty for chat models); they follow
    /// from the provider and its dialect.
    voices: Vec<&'static str>,
    /// The voice calls use when none is chosen (null for chat models).
    default_voice: Option<&'static str>,
    created_at: String,
    updated_at: String,
}

impl From<AiModel> for ModelView {
    fn from(m: AiModel) -> Self {
        let call_capable = m.model_type.is_call_capable();
        Self {
            voices: if call_capable { voices::voices_for(&m).to_vec() } else { Vec::new() },
            default_voice: call_capable.then(|| voices::default_voice(&m)),
            id: m.id,
            provider: m.provider,
            model_id: m.model_id,
            display_name: m.display_name,
            model_type: m.model_type,
            is_active: m.is_active,
            settings: m.settings,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// `?type=call` lists models usable for calls (`call` or `both`); `?type=chat` likewise for chat.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ModelQuery {
    #[serde(rename = "type")]
    #[param(value_type = Option<String>)]
    pub(super) kind: Option<String>,
}

/// The model catalogue.
#[utoipa::path(get, path = "/api/admin/ai-models", tag = "admin", params(ModelQuery),
    responses((status = 200, body = [ModelView]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_models(
    _: MasterAdmin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ModelQuery>,
) -> ApiResult<Json<Vec<ModelView>>> {
    let models = models_of_type(&state, query.kind.as_deref()).await?;
    Ok(Json(models.into_iter().map(Into::into).collect()))
}

/// The catalogue filtered by `?type=`: `call` lists the models usable for calls (`call`
/// or `both`), `chat` likewise for chat, none lists every model.
pub(super) async fn models_of_type(state: &AppState, kind: Option<&str>) -> ApiResult<Vec<AiModel>> {
    Ok(match kind {
        None => state.store.list_models(false).await?,
        Some("call") => state.store.list_models(true).await?,
        Some("chat") => {
            state.store.list_models(false).await?.into_iter().filter(|m| m.model_type != ModelType::Call).collect()
        }
        Some(_) => return Err(ApiError::invalid("type", "must be `call` or `chat`")),
    })
}

/// Body of `POST /api/admin/ai-models`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewModelBody {
    provider: Provider,
    model_id: String,
    display_name: String,
    #[serde(default = "default_model_type")]
    model_type: ModelType,
    #[serde(default = "default_true")]
    is_active: bool,
    #[serde(default)]
    settings: ModelSettings,
}

fn default_model_type() -> ModelType {
    ModelType::Chat
}

fn default_true() -> bool {
    true
}

fn check_model_text(field: &'static str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > 200 {
        return Err(ApiError::invalid(field, "must be 1–200 characters"));
    }
    Ok(())
}

/// Adds a model to the catalogue.
#[utoipa::path(post, path = "/api/admin/ai-models", tag = "admin", request_body = NewModelBody,
    responses((status = 201, body = ModelView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_model(
    _: MasterAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewModelBody>,
) -> ApiResult<(StatusCode, Json<ModelView>)> {
    check_model_text("modelId", &body.model_id)?;
    check_model_text("displayName", &body.display_name)?;
    let model = state
        .store
        .create_model(NewModel {
            provider: body.provider,
            model_id: body.model_id.trim().to_owned(),
            display_name: body.display_name.trim().to_owned(),
            model_type: body.model_type,
            is_active: body.is_active,
            settings: body.settings,
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => {
                ApiError::conflict("already_exists", "this provider already has a model with that id")
                    .with_field("modelId")
            }
            other => other.into(),
        })?;
    tracing::info!(model = %model.model_id, "AI model added");
    Ok((StatusCode::CREATED, Json(model.into())))
}

/// Body of `PATCH /api/admin/ai-models/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPatchBody {
    display_name: Option<String>,
    model_type: Option<ModelType>,
    is_active: Option<bool>,
    settings: Option<ModelSettings>,
}

/// Changes a model.
#[utoipa::path(patch, path = "/api/admin/ai-models/{id}", tag = "admin", request_body = ModelPatchBody,
    params(("id" = String, Path, description = "Model id")),
    responses((status = 200, body = ModelView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_model(
    _: MasterAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ModelPatchBody>,
) -> ApiResult<Json<ModelView>> {
    let id: ModelId = path_id(&id, "AI model")?;
    if let Some(name) = &body.display_name {
        check_model_text("displayName", name)?;
    }
    let patch = ModelPatch {
        display_name: body.display_name.map(|n| n.trim().to_owned()),
        model_type: body.model_type,
        is_active: body.is_active,
        settings: body.settings,
    };
    let model = state.store.update_model(id, patch).await?.ok_or_else(|| ApiError::not_found("AI model"))?;
    Ok(Json(model.into()))
}

/// Deletes a model; refused (409 `model_in_use`) while a chatbot uses it for calls.
#[utoipa::path(delete, path = "/api/admin/ai-models/{id}", tag = "admin",
    params(("id" = String, Path, description = "Model id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_model(
    _: MasterAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: ModelId = path_id(&id, "AI model")?;
    match state.store.delete_model(id).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found("AI model")),
        Err(crate::store::StoreError::ForeignKey) => {
            let n = state.store.count_chatbots_using_model(id).await?;
            Err(ApiError::conflict(
                "model_in_use",
                format!("{n} chatbot(s) use this model for calls; deactivate it (isActive: false) or move them first"),
            ))
        }
        Err(other) => Err(other.into()),
    }
}
