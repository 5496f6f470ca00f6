//! Company admin API: chatbots, their call settings and widget settings.

use axum::extract::{Path, State};
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
use crate::ids::{ChatbotId, CompanyId, ModelId};
use crate::settings::{CallSettings, CallSettingsPatch, ChatbotSettings, WidgetSettings, WidgetSettingsPatch};
use crate::store::{Chatbot, ChatbotType, NewChatbot};
use crate::time::rfc3339;
use crate::voices;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/chatbots", get(list_chatbots).post(create_chatbot))
        .route("/api/company/chatbots/{id}", get(get_chatbot).patch(update_chatbot))
        .route("/api/company/chatbots/{id}/call-settings", get(get_call_settings).patch(update_call_settings))
        .route("/api/company/chatbots/{id}/widget-settings", get(get_widget_settings).patch(update_widget_settings))
}

/// A chatbot as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatbotView {
    id: ChatbotId,
    company_id: CompanyId,
    name: String,
    description: String,
    chatbot_type: ChatbotType,
    instructions: String,
    created_at: String,
    updated_at: String,
}

impl From<&Chatbot> for ChatbotView {
    fn from(b: &Chatbot) -> Self {
        Self {
            id: b.id,
            company_id: b.company_id,
            name: b.name.clone(),
            description: b.description.clone(),
            chatbot_type: b.chatbot_type,
            instructions: b.instructions.clone(),
            created_at: rfc3339(b.created_at),
            updated_at: rfc3339(b.updated_at),
        }
    }
}

async fn calls_enabled(state: &AppState, company: CompanyId) -> ApiResult<bool> {
    let company = state.store.company(company).await?.ok_or_else(|| ApiError::not_found("company"))?;
    Ok(company.settings.features.call_enabled)
}

fn calls_disabled() -> ApiError {
    ApiError::forbidden("voice calls are not enabled for this company; a master admin can enable them")
        .with_code("calls_disabled")
}

async fn load_chatbot(state: &AppState, company: CompanyId, raw_id: &str) -> ApiResult<Chatbot> {
    let id: ChatbotId = path_id(raw_id, "chatbot")?;
    state.store.chatbot(company, id).await?.ok_or_else(|| ApiError::not_found("chatbot"))
}

fn check_text(field: &'static str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.trim().chars().count();
    if n < min || value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be {min}–{max} characters")));
    }
    Ok(())
}

/// The active company's chatbots.
#[utoipa::path(get, path = "/api/company/chatbots", tag = "company",
    responses((status = 200, body = [ChatbotView]), (status = 403, body = ErrorBody)))]
pub async fn list_chatbots(admin: CompanyAdmin, State(state): State<AppState>) -> ApiResult<Json<Vec<ChatbotView>>> {
    let bots = state.store.list_chatbots(admin.company_id).await?;
    Ok(Json(bots.iter().map(Into::into).collect()))
}

/// Body of `POST /api/company/chatbots`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewChatbotBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_type")]
    chatbot_type: ChatbotType,
    #[serde(default)]
    instructions: String,
}

fn default_type() -> ChatbotType {
    ChatbotType::Chat
}

/// Creates a chatbot; `call` chatbots need the company's call feature.
#[utoipa::path(post, path = "/api/company/chatbots", tag = "company", request_body = NewChatbotBody,
    responses((status = 201, body = ChatbotView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_chatbot(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewChatbotBody>,
) -> ApiResult<(StatusCode, Json<ChatbotView>)> {
    check_text("name", &body.name, 1, 200)?;
    check_text("description", &body.description, 0, 2000)?;
    check_text("instructions", &body.instructions, 0, 20_000)?;
    if body.chatbot_type == ChatbotType::Call && !calls_enabled(&state, admin.company_id).await? {
        return Err(calls_disabled().with_field("chatbotType"));
    }
    let bot = state
        .store
        .create_chatbot(
            admin.company_id,
            NewChatbot {
                name: body.name.trim().to_owned(),
                description: body.description,
                chatbot_type: body.chatbot_type,
                call_model_id: None,
                instructions: body.instructions,
                settings: ChatbotSettings::default(),
            },
        )
        .await?;
    tracing::info!(company_id = %admin.company_id, chatbot_id = %bot.id, "chatbot created");
    Ok((StatusCode::CREATED, Json((&bot).into())))
}

/// One chatbot.
#[utoipa::path(get, path = "/api/company/chatbots/{id}", tag = "company", params(("id" = String, Path)),
    responses((status = 200, body = ChatbotView), (status = 404, body = ErrorBody)))]
pub async fn get_chatbot(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChatbotView>> {
    let bot = load_chatbot(&state, admin.company_id, &id).await?;
    Ok(Json((&bot).into()))
}

/// Body of `PATCH /api/company/chatbots/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatbotPatchBody {
    name: Option<String>,
    description: Option<String>,
    chatbot_type: Option<ChatbotType>,
    instructions: Option<String>,
}

/// Renames a chatbot, changes its instructions or its type.
#[utoipa::path(patch, path = "/api/company/chatbots/{id}", tag = "company", request_body = ChatbotPatchBody, params(("id" = String, Path)),
    responses((status = 200, body = ChatbotView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_chatbot(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChatbotPatchBody>,
) -> ApiResult<Json<ChatbotView>> {
    let mut bot = load_chatbot(&state, admin.company_id, &id).await?;
    if let Some(name) = body.name {
        check_text("name", &name, 1, 200)?;
        bot.name = name.trim().to_owned();
    }
    if let Some(description) = body.description {
        check_text("description", &description, 0, 2000)?;
        bot.description = description;
    }
    if let Some(instructions) = body.instructions {
        check_text("instructions", &instructions, 0, 20_000)?;
        bot.instructions = instructions;
    }
    if let Some(kind) = body.chatbot_type {
        if kind == ChatbotType::Call
            && bot.chatbot_type != ChatbotType::Call
            && !calls_enabled(&state, admin.company_id).await?
        {
            return Err(calls_disabled().with_field("chatbotType"));
        }
        bot.chatbot_type = kind;
    }
    state.store.update_chatbot(&bot).await?;
    Ok(Json((&bot).into()))
}

/// A chatbot's call settings, with the model that answers its calls.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallSettingsView {
    /// The call model (`modelType` call or both); null until chosen.
    ai_model_id: Option<ModelId>,
    #[serde(flatten)]
    settings: CallSettings,
    /// Voices the chosen model offers.
    available_voices: Vec<&'static str>,
}

/// Loads a chatbot whose call settings may be read or changed: the company must have
/// calls enabled and the chatbot must be a call chatbot.
async fn call_chatbot(state: &AppState, company: CompanyId, raw_id: &str) -> ApiResult<Chatbot> {
    let bot = load_chatbot(state, company, raw_id).await?;
    if !calls_enabled(state, company).await? {
        return Err(calls_disabled());
    }
    if bot.chatbot_type != ChatbotType::Call {
        return Err(ApiError::conflict("not_a_call_chatbot", "call settings exist only for chatbots of type `call`"));
    }
    Ok(bot)
}

async fn call_settings_view(state: &AppState, bot: &Chatbot) -> ApiResult<CallSettingsView> {
    let mut settings = bot.settings.call.clone();
    let model = match bot.call_model_id {
        Some(id) => state.store.model(id).await?,
        None => None,
    };
    if let Some(model) = &model {
        settings.voice = voices::effective_voice(model, &settings.voice).to_owned();
    }
    Ok(CallSettingsView {
        ai_model_id: bot.call_model_id,
        settings,
        available_voices: model.as_ref().map(|m| voices::voices_for(m).to_vec()).unwrap_or_default(),
    })
}

/// A call chatbot's call settings.
#[utoipa::path(get, path = "/api/company/chatbots/{id}/call-settings", tag = "company", params(("id" = String, Path)),
    responses((status = 200, body = CallSettingsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_call_settings(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CallSettingsView>> {
    let bot = call_chatbot(&state, admin.company_id, &id).await?;
    Ok(Json(call_settings_view(&state, &bot).await?))
}

/// Changes some call settings; the others keep their values.
#[utoipa::path(patch, path = "/api/company/chatbots/{id}/call-settings", tag = "company", request_body = CallSettingsPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = CallSettingsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_call_settings(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<CallSettingsPatch>,
) -> ApiResult<Json<CallSettingsView>> {
    let mut bot = call_chatbot(&state, admin.company_id, &id).await?;
    let voice_given = patch.voice.is_some();
    if let Some(raw) = &patch.ai_model_id {
        let model_id: ModelId = raw.parse().map_err(|_| ApiError::invalid("aiModelId", "is not a model id"))?;
        let model =
            state.store.model(model_id).await?.ok_or_else(|| ApiError::invalid("aiModelId", "no such model"))?;
        if !model.model_type.is_call_capable() {
            return Err(ApiError::invalid(
                "aiModelId",
                format!("{} is a chat model; choose a model of type call or both", model.display_name),
            ));
        }
        if !model.is_active {
            return Err(ApiError::invalid("aiModelId", format!("{} is not active", model.display_name)));
        }
        bot.call_model_id = Some(model.id);
    }
    let mut settings = bot.settings.call.clone();
    settings.apply(patch);
    settings.validate()?;
    let model = match bot.call_model_id {
        Some(id) => state.store.model(id).await?,
        None => None,
    };
    match &model {
        Some(model) if !voices::is_valid_voice(model, &settings.voice) => {
            if voice_given {
                return Err(ApiError::invalid(
                    "voice",
                    format!(
                        "{} has no voice {:?}; choose one of: {}",
                        model.display_name,
                        settings.voice,
                        voices::voices_for(model).join(", ")
                    ),
                ));
            }
            // The model changed under a voice of another provider: use the new model's default.
            settings.voice = voices::default_voice(model).to_owned();
        }
        None if voice_given => {
            return Err(ApiError::invalid("voice", "choose aiModelId first: voices depend on the model"));
        }
        _ => {}
    }
    bot.settings.call = settings;
    state.store.update_chatbot(&bot).await?;
    tracing::info!(company_id = %admin.company_id, chatbot_id = %bot.id, "call settings changed");
    Ok(Json(call_settings_view(&state, &bot).await?))
}

/// A chatbot's widget settings (chat options and the call button/interface options).
#[utoipa::path(get, path = "/api/company/chatbots/{id}/widget-settings", tag = "company", params(("id" = String, Path)),
    responses((status = 200, body = WidgetSettings), (status = 404, body = ErrorBody)))]
pub async fn get_widget_settings(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WidgetSettings>> {
    let bot = load_chatbot(&state, admin.company_id, &id).await?;
    Ok(Json(bot.settings.widget))
}

/// Changes some widget settings; the others keep their values.
#[utoipa::path(patch, path = "/api/company/chatbots/{id}/widget-settings", tag = "company", request_body = WidgetSettingsPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = WidgetSettings), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_widget_settings(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<WidgetSettingsPatch>,
) -> ApiResult<Json<WidgetSettings>> {
    let mut bot = load_chatbot(&state, admin.company_id, &id).await?;
    let mut widget = bot.settings.widget.clone();
    widget.apply(patch);
    widget.validate()?;
    bot.settings.widget = widget;
    state.store.update_chatbot(&bot).await?;
    Ok(Json(bot.settings.widget))
}
