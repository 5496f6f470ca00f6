//! Company admin API: the active models a chatbot may use, the voices a call model
//! offers, and a spoken preview of each.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::admin::{ModelQuery, ModelView, models_of_type};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiQuery;
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::ids::ModelId;
use crate::store::{AiModel, Provider};
use crate::voices;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/ai-models", get(list_models))
        .route("/api/company/voices", get(list_voices))
        .route("/api/company/voices/{voice}/preview", get(preview))
}

/// The active models of the catalogue, for a company admin choosing one (`?type=call`:
/// the models usable for calls, `call` or `both`; `?type=chat` likewise). Inactive models
/// are left out: chatbots cannot be moved onto them.
#[utoipa::path(get, path = "/api/company/ai-models", tag = "voices", params(ModelQuery),
    responses((status = 200, body = [ModelView]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_models(
    _: CompanyAdmin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ModelQuery>,
) -> ApiResult<Json<Vec<ModelView>>> {
    let models = models_of_type(&state, query.kind.as_deref()).await?;
    Ok(Json(models.into_iter().filter(|m| m.is_active).map(Into::into).collect()))
}

/// `?modelId=` naming the call model.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoiceQuery {
    #[serde(default)]
    model_id: Option<String>,
}

/// The voices of a call model.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoiceList {
    model_id: ModelId,
    provider: Provider,
    default_voice: &'static str,
    /// Whether `voiceSpeed` changes how fast the voice speaks (OpenAI yes, Gemini no).
    supports_speed: bool,
    voices: Vec<Voice>,
}

/// A voice and where to hear it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Voice {
    id: &'static str,
    name: String,
    preview_url: String,
}

async fn call_model(state: &AppState, raw: Option<&str>) -> ApiResult<AiModel> {
    let raw = raw.ok_or_else(|| ApiError::invalid("modelId", "is required"))?;
    let id: ModelId = raw.parse().map_err(|_| ApiError::invalid("modelId", "is not a model id"))?;
    let model = state.store.model(id).await?.ok_or_else(|| ApiError::invalid("modelId", "no such model"))?;
    if !model.model_type.is_call_capable() {
        return Err(ApiError::invalid("modelId", format!("{} is not a call model", model.display_name)));
    }
    Ok(model)
}

fn display_name(voice: &str) -> String {
    let mut chars = voice.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The voices a call model can speak with.
#[utoipa::path(get, path = "/api/company/voices", tag = "voices", params(("modelId" = String, Query)),
    responses((status = 200, body = VoiceList), (status = 422, body = ErrorBody)))]
pub async fn list_voices(
    _: CompanyAdmin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<VoiceQuery>,
) -> ApiResult<Json<VoiceList>> {
    let model = call_model(&state, query.model_id.as_deref()).await?;
    let voices = voices::voices_for(&model)
        .iter()
        .map(|&id| Voice {
            id,
            name: display_name(id),
            preview_url: format!("/api/company/voices/{id}/preview?modelId={}", model.id),
        })
        .collect();
    Ok(Json(VoiceList {
        model_id: model.id,
        provider: model.provider,
        default_voice: voices::default_voice(&model),
        supports_speed: model.provider == Provider::OpenAi,
        voices,
    }))
}

/// A ~3 s spoken sample of a voice (WAV), generated once through the provider and cached.
#[utoipa::path(get, path = "/api/company/voices/{voice}/preview", tag = "voices", params(("voice" = String, Path), ("modelId" = String, Query)),
    responses((status = 200, content_type = "audio/wav"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn preview(
    _: CompanyAdmin,
    State(state): State<AppState>,
    Path(voice): Path<String>,
    ApiQuery(query): ApiQuery<VoiceQuery>,
) -> ApiResult<Response> {
    let model = call_model(&state, query.model_id.as_deref()).await?;
    if !voices::is_valid_voice(&model, &voice) {
        return Err(ApiError::not_found(&format!("voice {voice:?} of {}", model.display_name)));
    }
    if !state.providers.is_available(&model) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "voice_unavailable",
            "the voice provider is not configured",
        ));
    }
    let wav = state.voice_previews.preview(&state.providers, &model, &voice).await.map_err(|err| {
        tracing::warn!(error = %err, voice, model = %model.model_id, "voice preview failed");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            "the voice provider could not make a preview right now",
        )
    })?;
    let mut response = wav.as_ref().clone().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
    Ok(response)
}
