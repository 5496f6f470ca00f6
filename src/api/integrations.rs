//! Company admin API: Twilio and WhatsApp integration accounts, and their connection test.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiJson;
use super::path_id;
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::ids::{ChatbotId, CompanyId, IntegrationAccountId};
use crate::integrations::{AccountView, IntegrationInput, Secrets, TestReport, test_connection, unreadable_reason};
use crate::store::{AccountStatus, ChatbotType, IntegrationAccount, NewIntegrationAccount};
use crate::time::now_ms;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/integration-accounts", get(list_accounts).post(create_account))
        .route("/api/company/integration-accounts/{id}", get(get_account).patch(update_account).delete(delete_account))
        .route("/api/company/integration-accounts/{id}/test", post(test_account))
}

/// The view of an account; one this gateway cannot open still shows, as `credentials_unreadable`.
fn view(state: &AppState, account: &IntegrationAccount) -> AccountView {
    AccountView::new(account, Secrets::open(&state.sealer, account).as_ref(), &state.public_base)
}

fn unreadable(err: &crate::crypto::CryptoError) -> ApiError {
    ApiError::conflict("credentials_unreadable", unreadable_reason(err))
}

async fn load(state: &AppState, company: CompanyId, raw_id: &str) -> ApiResult<IntegrationAccount> {
    let id: IntegrationAccountId = path_id(raw_id, "integration account")?;
    state.store.integration_account(company, id).await?.ok_or_else(|| ApiError::not_found("integration account"))
}

/// The chatbot named for an account must be one of the company's call chatbots.
async fn check_chatbot(state: &AppState, company: CompanyId, raw: Option<&str>) -> ApiResult<Option<ChatbotId>> {
    let Some(raw) = raw else { return Ok(None) };
    let id: ChatbotId = raw.parse().map_err(|_| ApiError::invalid("chatbotId", "is not a chatbot id"))?;
    let bot =
        state.store.chatbot(company, id).await?.ok_or_else(|| ApiError::invalid("chatbotId", "no such chatbot"))?;
    if bot.chatbot_type != ChatbotType::Call {
        return Err(ApiError::invalid("chatbotId", "must be a chatbot of type `call`"));
    }
    Ok(Some(id))
}

/// The active company's integration accounts (credentials masked).
#[utoipa::path(get, path = "/api/company/integration-accounts", tag = "integrations",
    responses((status = 200, body = [AccountView]), (status = 403, body = ErrorBody)))]
pub async fn list_accounts(admin: CompanyAdmin, State(state): State<AppState>) -> ApiResult<Json<Vec<AccountView>>> {
    let accounts = state.store.list_integration_accounts(admin.company_id).await?;
    Ok(Json(accounts.iter().map(|a| view(&state, a)).collect()))
}

/// Adds a Twilio or WhatsApp account. It stays inactive until a connection test passes.
#[utoipa::path(post, path = "/api/company/integration-accounts", tag = "integrations", request_body = IntegrationInput,
    responses((status = 201, body = AccountView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_account(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let valid = input.validate_new()?;
    let chatbot_id = check_chatbot(&state, admin.company_id, valid.chatbot_id.as_deref()).await?;
    let id = IntegrationAccountId::new();
    let account = state
        .store
        .create_integration_account(
            admin.company_id,
            NewIntegrationAccount {
                id,
                account_type: valid.account_type,
                name: valid.name,
                description: valid.description,
                phone_number: valid.phone_number,
                chatbot_id,
                public_config: valid.public_config,
                credentials: valid.secrets.seal(&state.sealer, &id.as_string()),
            },
        )
        .await?;
    tracing::info!(company_id = %admin.company_id, account_id = %id, kind = %account.account_type, "integration account created");
    Ok((StatusCode::CREATED, Json(view(&state, &account))))
}

/// One account.
#[utoipa::path(get, path = "/api/company/integration-accounts/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)))]
pub async fn get_account(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    let account = load(&state, admin.company_id, &id).await?;
    Ok(Json(view(&state, &account)))
}

/// Changes an account. Secrets are replaced only when given; changing what the connection
/// test checks makes the account inactive until it is tested again. An account whose
/// credentials cannot be opened (`credentials_unreadable`) is repaired by a PATCH carrying
/// all its secrets; without them it is 409 `credentials_unreadable` and nothing changes.
#[utoipa::path(patch, path = "/api/company/integration-accounts/{id}", tag = "integrations", request_body = IntegrationInput,
    params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "credentials_unreadable: send every secret of the account"), (status = 422, body = ErrorBody)))]
pub async fn update_account(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult<Json<AccountView>> {
    let mut account = load(&state, admin.company_id, &id).await?;
    let mut secrets = match Secrets::open(&state.sealer, &account) {
        Ok(secrets) => secrets,
        Err(err) => {
            if let Some(field) = input.missing_secret(account.account_type) {
                return Err(unreadable(&err).with_field(field));
            }
            tracing::info!(company_id = %admin.company_id, account_id = %account.id, "unreadable credentials re-entered");
            Secrets::default()
        }
    };
    let reverify = input.apply_patch(&mut account, &mut secrets)?;
    if let Some(chatbot) = &input.chatbot_id {
        account.chatbot_id = check_chatbot(&state, admin.company_id, chatbot.as_deref()).await?;
    }
    if reverify {
        account.status = AccountStatus::Inactive;
        account.last_error = Some("credentials changed; run the connection test".to_owned());
    }
    account.credentials = secrets.seal(&state.sealer, &account.id.as_string());
    state.store.update_integration_account(&account).await?;
    let account = load(&state, admin.company_id, &id).await?;
    Ok(Json(view(&state, &account)))
}

/// Deletes an account.
#[utoipa::path(delete, path = "/api/company/integration-accounts/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_account(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: IntegrationAccountId = path_id(&id, "integration account")?;
    if !state.store.delete_integration_account(admin.company_id, id).await? {
        return Err(ApiError::not_found("integration account"));
    }
    tracing::info!(company_id = %admin.company_id, account_id = %id, "integration account deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Tests the account's credentials against Twilio or the Graph API, for real, and
/// records the outcome (status, lastVerifiedAt, lastError).
#[utoipa::path(post, path = "/api/company/integration-accounts/{id}/test", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, body = TestReport), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "credentials_unreadable")))]
pub async fn test_account(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TestReport>> {
    let mut account = load(&state, admin.company_id, &id).await?;
    let secrets = Secrets::open(&state.sealer, &account).map_err(|err| unreadable(&err))?;
    let was_active = account.status == AccountStatus::Active;
    let report = test_connection(&mut account, &secrets, &state.twilio, &state.graph).await;
    state.store.update_integration_account(&account).await?;
    if was_active && !report.ok {
        // Credentials that worked before and fail now: the account is failing, which the
        // company's systems and the admin console hear about.
        let error = report.last_error.as_deref().unwrap_or("the connection test failed");
        state.store.report_integration_failure(admin.company_id, account.id, error, now_ms()).await?;
    }
    tracing::info!(company_id = %admin.company_id, account_id = %account.id, ok = report.ok, "integration account tested");
    Ok(Json(report))
}
