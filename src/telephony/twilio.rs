//! Twilio REST: just what "Test connection" needs (shared/protocols/twilio-protocol.md §5).

use serde::Deserialize;

use super::{RestError, malformed, unreachable};

/// A Twilio REST client rooted at a configurable base URL (`TWILIO_API_BASE_URL`).
#[derive(Clone, Debug)]
pub struct TwilioRest {
    http: reqwest::Client,
    base: url::Url,
}

/// `GET /2010-04-01/Accounts/{Sid}.json`, the fields we use.
#[derive(Debug, Clone, Deserialize)]
pub struct TwilioAccount {
    pub sid: String,
    #[serde(default)]
    pub friendly_name: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// `Trial` or `Full`.
    #[serde(rename = "type", default)]
    pub account_type: String,
}

/// An entry of `IncomingPhoneNumbers.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct IncomingNumber {
    pub phone_number: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub voice_url: Option<String>,
}

/// What a number can do.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub voice: bool,
}

#[derive(Deserialize)]
struct NumberPage {
    incoming_phone_numbers: Vec<IncomingNumber>,
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioRest {
    /// A client for `base` (e.g. `https://api.twilio.com`).
    pub fn new(http: reqwest::Client, base: url::Url) -> Self {
        Self { http, base }
    }

    /// Fetches the account with HTTP Basic (SID, auth token).
    pub async fn fetch_account(&self, sid: &str, token: &str) -> Result<TwilioAccount, RestError> {
        let url = self.url(&format!("2010-04-01/Accounts/{sid}.json"))?;
        self.get(url, sid, token).await
    }

    /// The account's numbers equal to `number` (E.164); empty when it owns none.
    pub async fn incoming_numbers(
        &self,
        sid: &str,
        token: &str,
        number: &str,
    ) -> Result<Vec<IncomingNumber>, RestError> {
        let mut url = self.url(&format!("2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"))?;
        url.query_pairs_mut().append_pair("PhoneNumber", number);
        let page: NumberPage = self.get(url, sid, token).await?;
        // PhoneNumber is a pattern filter on Twilio's side: keep exact matches only.
        Ok(page.incoming_phone_numbers.into_iter().filter(|n| n.phone_number == number).collect())
    }

    fn url(&self, path: &str) -> Result<url::Url, RestError> {
        self.base.join(path).map_err(|e| malformed(&self.base, e))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: url::Url, sid: &str, token: &str) -> Result<T, RestError> {
        let response =
            self.http.get(url.clone()).basic_auth(sid, Some(token)).send().await.map_err(|e| unreachable(&url, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unreachable(&url, e))?;
        if !status.is_success() {
            let error: Option<TwilioErrorBody> = serde_json::from_slice(&body).ok();
            return Err(RestError::Api {
                status: status.as_u16(),
                code: error.as_ref().and_then(|e| e.code).unwrap_or_default(),
                message: error.and_then(|e| e.message).unwrap_or_else(|| status.to_string()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| malformed(&url, e))
    }
}
