//! Company admin API for calls: test calls (spec 2.7), call history with transcripts,
//! transcript downloads, and deleting a call with everything it left.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiQuery;
use super::path_id;
use super::widget::{SessionView, open_session};
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::ids::{CallId, ChatbotId, UserId};
use crate::store::{Call, CallFilter, CallSource, CallStatus, EndReason, TranscriptLine, TranscriptRole};
use crate::time::{rfc3339, rfc3339_opt};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/chatbots/{id}/test-call", post(test_call))
        .route("/api/company/calls", get(list_calls))
        .route("/api/company/calls/{id}", get(get_call).delete(delete_call))
        .route("/api/company/calls/{id}/transcript", get(download_transcript))
}

/// Opens a test call on one of the company's chatbots: the same session as the widget's,
/// without the origin check, marked `isTest` on the call.
#[utoipa::path(post, path = "/api/company/chatbots/{id}/test-call", tag = "calls", params(("id" = String, Path)),
    responses((status = 201, body = SessionView), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn test_call(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let chatbot: ChatbotId = path_id(&id, "chatbot")?;
    state.store.chatbot(admin.company_id, chatbot).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    let session = open_session(&state, &id, None, true).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// A call as the API shows it.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    id: CallId,
    chatbot_id: ChatbotId,
    source: CallSource,
    status: CallStatus,
    end_reason: Option<EndReason>,
    is_test: bool,
    provider: Option<String>,
    model_id: Option<String>,
    created_at: String,
    answered_at: Option<String>,
    ended_at: Option<String>,
    duration_ms: Option<i64>,
    rating: Option<i64>,
    rating_comment: Option<String>,
    error_message: Option<String>,
    /// Who called: the caller's number (phone), WhatsApp id, or the page's origin (web).
    caller: Option<String>,
    /// Whether a human support agent is on the call now (it stays `active`).
    with_human: bool,
    /// The support agent who took the call over, when their media joined, and when they
    /// left it (handed the caller back, or the call ended); null when no agent joined.
    human_agent_id: Option<UserId>,
    human_joined_at: Option<String>,
    human_left_at: Option<String>,
    /// Whether the call has a recording (`GET /api/company/calls/{id}/recording`); shown on
    /// a single call only.
    #[serde(skip_serializing_if = "Option::is_none")]
    has_recording: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript: Option<Vec<LineView>>,
}

/// A final transcript line.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    seq: i64,
    role: TranscriptRole,
    content: String,
    offset_ms: i64,
}

impl CallView {
    fn new(call: Call, transcript: Option<Vec<TranscriptLine>>) -> Self {
        Self {
            with_human: call.with_human(),
            human_agent_id: call.human_agent_id,
            human_joined_at: rfc3339_opt(call.human_joined_at),
            human_left_at: rfc3339_opt(call.human_left_at),
            caller: call.caller,
            has_recording: None,
            id: call.id,
            chatbot_id: call.chatbot_id,
            source: call.source,
            status: call.status,
            end_reason: call.end_reason,
            is_test: call.is_test,
            provider: call.provider,
            model_id: call.model_id,
            created_at: rfc3339(call.created_at),
            answered_at: rfc3339_opt(call.answered_at),
            ended_at: rfc3339_opt(call.ended_at),
            duration_ms: call.duration_ms,
            rating: call.rating,
            rating_comment: call.rating_comment,
            error_message: call.error_message,
            transcript: transcript.map(|lines| {
                lines
                    .into_iter()
                    .map(|l| LineView { seq: l.seq, role: l.role, content: l.content, offset_ms: l.offset_ms })
                    .collect()
            }),
        }
    }
}

/// The call history's query: `?limit=` and filters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many calls, the most recent first (1–200, default 50).
    #[serde(default)]
    limit: Option<i64>,
    /// Only this chatbot's calls.
    #[serde(default)]
    chatbot_id: Option<String>,
    /// Only calls from `web`, `twilio` or `whatsapp`.
    #[serde(default)]
    source: Option<String>,
    /// Only calls in this status (`pending`, `connecting`, `active`, `completed`, `failed`).
    #[serde(default)]
    status: Option<String>,
    /// Only calls created at or after this instant (RFC 3339, e.g. `2026-11-25T00:00:00+01:00`).
    #[serde(default)]
    from: Option<String>,
    /// Only calls created before this instant (RFC 3339).
    #[serde(default)]
    to: Option<String>,
}

fn one_of<T: std::str::FromStr + std::fmt::Display + Copy>(
    field: &'static str,
    raw: Option<&str>,
    all: &[T],
) -> ApiResult<Option<T>> {
    raw.map(|text| {
        text.parse().map_err(|_| {
            let names: Vec<String> = all.iter().map(ToString::to_string).collect();
            ApiError::invalid(field, format!("must be one of {}", names.join(", ")))
        })
    })
    .transpose()
}

fn instant(field: &'static str, raw: Option<&str>) -> ApiResult<Option<crate::time::UnixMs>> {
    raw.map(|text| {
        chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 time like 2026-11-25T00:00:00Z"))
    })
    .transpose()
}

impl ListQuery {
    fn filter(&self) -> ApiResult<CallFilter> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be 1 to 200"));
        }
        let chatbot = self
            .chatbot_id
            .as_deref()
            .map(|raw| {
                raw.trim().parse::<ChatbotId>().map_err(|_| ApiError::invalid("chatbotId", "is not a chatbot id"))
            })
            .transpose()?;
        let filter = CallFilter {
            chatbot,
            source: one_of("source", self.source.as_deref(), CallSource::ALL)?,
            status: one_of("status", self.status.as_deref(), CallStatus::ALL)?,
            created_from: instant("from", self.from.as_deref())?,
            created_before: instant("to", self.to.as_deref())?,
            limit,
        };
        if let (Some(from), Some(to)) = (filter.created_from, filter.created_before)
            && to < from
        {
            return Err(ApiError::invalid("to", "must not be before `from`"));
        }
        Ok(filter)
    }
}

/// The company's most recent calls, newest first, optionally filtered by chatbot, source,
/// status and creation time (`from` inclusive, `to` exclusive). A chatbot of another
/// company finds nothing.
#[utoipa::path(get, path = "/api/company/calls", tag = "calls", params(ListQuery),
    responses((status = 200, body = [CallView]), (status = 422, body = ErrorBody)))]
pub async fn list_calls(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<CallView>>> {
    let calls = state.store.list_calls(admin.company_id, &query.filter()?).await?;
    Ok(Json(calls.into_iter().map(|c| CallView::new(c, None)).collect()))
}

/// One call with its transcript.
#[utoipa::path(get, path = "/api/company/calls/{id}", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = CallView), (status = 404, body = ErrorBody)))]
pub async fn get_call(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CallView>> {
    let id: CallId = path_id(&id, "call")?;
    let call = state.store.call_for_company(admin.company_id, id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let transcript = state.store.transcript(id).await?;
    let recorded = state.store.recording_for_call(admin.company_id, id).await?.is_some();
    Ok(Json(CallView { has_recording: Some(recorded), ..CallView::new(call, Some(transcript)) }))
}

/// Deletes one of the company's calls that has ended, with its transcript and its
/// recording (the stored file first: if storage does not answer, nothing is deleted).
#[utoipa::path(delete, path = "/api/company/calls/{id}", tag = "calls", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`call_not_ended`: the call is live"),
        (status = 503, body = ErrorBody, description = "`storage_unavailable`")))]
pub async fn delete_call(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: CallId = path_id(&id, "call")?;
    let call = state.store.call_for_company(admin.company_id, id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    if !call.status.is_final() {
        return Err(ApiError::conflict("call_not_ended", "a live call cannot be deleted; end it first"));
    }
    if let Some(recording) = state.store.recording_for_call(admin.company_id, id).await? {
        state.recordings.delete_file(&recording).await.map_err(super::recordings::storage_unavailable)?;
    }
    if !state.store.delete_call(admin.company_id, id).await? {
        return Err(ApiError::not_found("call"));
    }
    tracing::info!(call_id = %id, company_id = %admin.company_id, "call deleted with its transcript and recording");
    Ok(StatusCode::NO_CONTENT)
}

/// `?format=` of a transcript download.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    #[serde(default)]
    format: Option<String>,
}

/// A transcript as downloaded in JSON.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptDownload {
    call_id: CallId,
    /// When the call was answered (offsets count from here); null if it never was.
    answered_at: Option<String>,
    lines: Vec<TranscriptEntry>,
}

/// One line of a downloaded transcript.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    seq: i64,
    role: TranscriptRole,
    text: String,
    /// Milliseconds since the call was answered (the recording's clock too).
    offset_ms: i64,
}

/// Downloads a call's transcript as a file: `format=txt` (one line per entry:
/// `[HH:MM:SS.mmm] role: text`) or `format=json` (the default).
#[utoipa::path(get, path = "/api/company/calls/{id}/transcript", tag = "calls",
    params(("id" = String, Path), ("format" = Option<String>, Query, description = "`txt` or `json` (default)")),
    responses((status = 200, body = TranscriptDownload, description = "An attachment: JSON, or text with `format=txt`"),
        (status = 400, body = ErrorBody, description = "`invalid_format`"), (status = 404, body = ErrorBody)))]
pub async fn download_transcript(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TranscriptQuery>,
) -> ApiResult<Response> {
    let text = match query.format.as_deref() {
        None | Some("json") => false,
        Some("txt") => true,
        Some(_) => {
            return Err(ApiError::bad_request("invalid_format", "format must be `txt` or `json`").with_field("format"));
        }
    };
    let id: CallId = path_id(&id, "call")?;
    let call = state.store.call_for_company(admin.company_id, id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let lines = state.store.transcript(id).await?;
    let (body, content_type, extension) = if text {
        (transcript_text(&lines), "text/plain; charset=utf-8", "txt")
    } else {
        let download = TranscriptDownload {
            call_id: id,
            answered_at: rfc3339_opt(call.answered_at),
            lines: lines
                .into_iter()
                .map(|l| TranscriptEntry { seq: l.seq, role: l.role, text: l.content, offset_ms: l.offset_ms })
                .collect(),
        };
        (serde_json::to_string_pretty(&download).map_err(ApiError::internal)?, "application/json", "json")
    };
    let disposition = format!("attachment; filename=\"call-{id}-transcript.{extension}\"");
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).map_err(ApiError::internal)?);
    Ok(response)
}

/// `[HH:MM:SS.mmm] role: text` per line. A line's own line breaks and other control
/// characters become spaces, so one entry is always one line of the file.
fn transcript_text(lines: &[TranscriptLine]) -> String {
    let mut out = String::new();
    for line in lines {
        let text: String = line.content.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        out.push_str(&format!("[{}] {}: {}\n", format_offset(line.offset_ms), line.role, text.trim()));
    }
    out
}

/// `HH:MM:SS.mmm` of an offset in milliseconds.
fn format_offset(ms: i64) -> String {
    let ms = ms.max(0);
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64, role: TranscriptRole, content: &str, offset_ms: i64) -> TranscriptLine {
        TranscriptLine { seq, role, content: content.into(), item_id: None, offset_ms }
    }

    #[test]
    fn offsets_read_as_hours_minutes_seconds_and_milliseconds() {
        assert_eq!(format_offset(0), "00:00:00.000");
        assert_eq!(format_offset(61_250), "00:01:01.250");
        assert_eq!(format_offset(3_723_004), "01:02:03.004");
        assert_eq!(format_offset(-5), "00:00:00.000");
    }

    #[test]
    fn a_text_transcript_has_one_line_per_entry_with_offset_and_role() {
        let text = transcript_text(&[
            line(0, TranscriptRole::Agent, "Hi! How can I help?", 1_200),
            line(1, TranscriptRole::User, "My order\nnever came\r\u{7}", 4_050),
            line(2, TranscriptRole::System, "search_knowledge_base(orders)", 4_900),
        ]);
        assert_eq!(
            text,
            "[00:00:01.200] agent: Hi! How can I help?\n\
             [00:00:04.050] user: My order never came\n\
             [00:00:04.900] system: search_knowledge_base(orders)\n"
        );
    }
}
