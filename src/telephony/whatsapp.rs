//! Meta Graph API: just what "Test connection" needs (shared/protocols/whatsapp-calling.md §6).

use serde::Deserialize;

use super::{RestError, malformed, unreachable};

/// A Graph API client rooted at a configurable base URL and API version.
#[derive(Clone, Debug)]
pub struct GraphApi {
    http: reqwest::Client,
    base: url::Url,
    version: String,
}

/// `GET /{version}/{phone-number-id}`, the fields we use.
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(default)]
    pub verified_name: String,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    message: Option<String>,
    code: Option<i64>,
}

impl GraphApi {
    /// A client for `base` (e.g. `https://graph.facebook.com`) and `version` (e.g. `v23.0`).
    pub fn new(http: reqwest::Client, base: url::Url, version: String) -> Self {
        Self { http, base, version }
    }

    /// Reads a business phone number with the given access token.
    pub async fn phone_number(&self, phone_number_id: &str, access_token: &str) -> Result<PhoneNumberInfo, RestError> {
        let mut url =
            self.base.join(&format!("{}/{}", self.version, phone_number_id)).map_err(|e| malformed(&self.base, e))?;
        url.query_pairs_mut().append_pair("fields", "display_phone_number,verified_name");
        let response =
            self.http.get(url.clone()).bearer_auth(access_token).send().await.map_err(|e| unreachable(&url, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unreachable(&url, e))?;
        if !status.is_success() {
            // Key on error.code (190 = bad token), not on the HTTP status, which varies.
            let error: Option<GraphErrorBody> = serde_json::from_slice(&body).ok();
            return Err(RestError::Api {
                status: status.as_u16(),
                code: error.as_ref().and_then(|e| e.error.code).unwrap_or_default(),
                message: error.and_then(|e| e.error.message).unwrap_or_else(|| status.to_string()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| malformed(&url, e))
    }
}
