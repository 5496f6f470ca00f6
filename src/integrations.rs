//! Integration accounts (Twilio, WhatsApp Business): what an admin may send, how it is
//! sealed and shown, and the connection test against the provider's real API. An account
//! whose credentials this gateway cannot open (sealed with a key it no longer has) is still
//! listed, as `credentials_unreadable`, and repaired by entering its secrets again;
//! [`reseal_all`] moves every account to the newest key (`gateway keys rotate`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::crypto::{self, Sealer};
use crate::ids::{CompanyId, IntegrationAccountId};
use crate::settings::FieldError;
use crate::store::{AccountStatus, AccountType, IntegrationAccount, Store, StoreResult};
use crate::telephony::RestError;
use crate::telephony::twilio::TwilioRest;
use crate::telephony::whatsapp::GraphApi;
use crate::time::{now_ms, rfc3339, rfc3339_opt};

/// Body of `POST /api/company/integration-accounts` and of its PATCH (where every field
/// is optional and secrets are replaced only when given).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationInput {
    /// `twilio` or `whatsapp` (create only).
    pub account_type: Option<AccountType>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// E.164, e.g. `+15551234567` (spaces, dashes and parentheses are removed).
    pub phone_number: Option<String>,
    /// The call chatbot that answers calls to this account (null to unset).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub chatbot_id: Option<Option<String>>,
    /// Twilio: `AC` + 32 hex digits.
    pub account_sid: Option<String>,
    /// Twilio: the account's auth token (secret).
    pub auth_token: Option<String>,
    /// WhatsApp: WhatsApp Business Account id.
    pub business_account_id: Option<String>,
    /// WhatsApp: phone number id.
    pub phone_number_id: Option<String>,
    /// WhatsApp: a system-user access token (secret).
    pub access_token: Option<String>,
    /// WhatsApp: the Meta app secret that signs webhooks (secret).
    pub app_secret: Option<String>,
}

/// Distinguishes "absent" (keep) from `null` (clear) in a PATCH.
fn double_option<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(de).map(Some)
}

/// The secrets of an account, sealed as one JSON document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
}

impl Secrets {
    /// Seals the secrets for account `id`.
    pub fn seal(&self, sealer: &Sealer, id: &str) -> crypto::Sealed {
        let json = serde_json::to_vec(self).expect("secrets serialise");
        sealer.seal(&json, id.as_bytes())
    }

    /// Opens an account's secrets.
    pub fn open(sealer: &Sealer, account: &IntegrationAccount) -> Result<Self, crypto::CryptoError> {
        let bytes = sealer.open(&account.credentials, account.id.as_string().as_bytes())?;
        serde_json::from_slice(&bytes).map_err(|_| crypto::CryptoError::Tampered)
    }
}

/// Why an account's credentials cannot be opened, in words for its `lastError` and the logs.
pub fn unreadable_reason(err: &crypto::CryptoError) -> String {
    match err {
        crypto::CryptoError::UnknownKey(id) => format!(
            "the credentials were sealed with encryption key {id}, which is not configured: restore that key, \
             or enter the secrets again (PATCH)"
        ),
        _ => "the credentials cannot be opened with the configured encryption keys: enter the secrets again (PATCH)"
            .to_owned(),
    }
}

/// The secrets an account of this type holds, by field name: what re-entering them means.
fn secret_fields(account_type: AccountType) -> &'static [&'static str] {
    match account_type {
        AccountType::Twilio => &["authToken"],
        AccountType::WhatsApp => &["accessToken", "appSecret"],
    }
}

/// A validated new account.
pub struct ValidatedAccount {
    pub account_type: AccountType,
    pub name: String,
    pub description: String,
    pub phone_number: String,
    pub chatbot_id: Option<String>,
    pub public_config: Map<String, Value>,
    pub secrets: Secrets,
}

fn required<'a>(value: &'a Option<String>, field: &'static str) -> Result<&'a str, FieldError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(FieldError { field, message: "is required".into() }),
    }
}

fn invalid(field: &'static str, message: &str) -> FieldError {
    FieldError { field, message: message.into() }
}

/// `+` and 7–15 digits, after removing spaces, dashes, dots and parentheses.
pub fn normalize_e164(text: &str) -> Option<String> {
    let cleaned: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = cleaned.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
    ok.then_some(cleaned)
}

fn check_account_sid(sid: &str) -> Result<(), FieldError> {
    let hex = sid.strip_prefix("AC").unwrap_or("");
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("accountSid", "must be AC followed by 32 hexadecimal digits"));
    }
    Ok(())
}

fn check_secret(value: &str, field: &'static str, min: usize, max: usize) -> Result<(), FieldError> {
    if value.len() < min || value.len() > max || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError { field, message: format!("must be {min}–{max} characters without spaces") });
    }
    Ok(())
}

fn check_numeric_id(value: &str, field: &'static str) -> Result<(), FieldError> {
    if !(5..=32).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(field, "must be a numeric id"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1–200 characters"));
    }
    Ok(())
}

fn check_description(text: &str) -> Result<(), FieldError> {
    if text.chars().count() > 1000 {
        return Err(invalid("description", "must be at most 1000 characters"));
    }
    Ok(())
}

impl IntegrationInput {
    /// Validates a create request.
    pub fn validate_new(&self) -> Result<ValidatedAccount, FieldError> {
        let account_type =
            self.account_type.ok_or_else(|| invalid("accountType", "is required (twilio or whatsapp)"))?;
        let name = required(&self.name, "name")?.to_owned();
        check_name(&name)?;
        let description = self.description.clone().unwrap_or_default();
        check_description(&description)?;
        let phone_number = normalize_e164(required(&self.phone_number, "phoneNumber")?)
            .ok_or_else(|| invalid("phoneNumber", "must be an E.164 number like +15551234567"))?;
        let mut public_config = Map::new();
        let mut secrets = Secrets::default();
        match account_type {
            AccountType::Twilio => {
                self.refuse_fields(&["businessAccountId", "phoneNumberId", "accessToken", "appSecret"])?;
                let sid = required(&self.account_sid, "accountSid")?;
                check_account_sid(sid)?;
                let token = required(&self.auth_token, "authToken")?;
                check_secret(token, "authToken", 16, 128)?;
                public_config.insert("accountSid".into(), sid.into());
                secrets.auth_token = Some(token.to_owned());
            }
            AccountType::WhatsApp => {
                self.refuse_fields(&["accountSid", "authToken"])?;
                let waba = required(&self.business_account_id, "businessAccountId")?;
                check_numeric_id(waba, "businessAccountId")?;
                let pnid = required(&self.phone_number_id, "phoneNumberId")?;
                check_numeric_id(pnid, "phoneNumberId")?;
                let token = required(&self.access_token, "accessToken")?;
                check_secret(token, "accessToken", 20, 2048)?;
                let secret = required(&self.app_secret, "appSecret")?;
                check_secret(secret, "appSecret", 16, 128)?;
                public_config.insert("businessAccountId".into(), waba.into());
                public_config.insert("phoneNumberId".into(), pnid.into());
                // Meta echoes this in the webhook subscription handshake; it is shown to
                // the admin (who pastes it into the Meta dashboard), not a credential.
                public_config.insert("verifyToken".into(), crypto::new_token("").into());
                secrets.access_token = Some(token.to_owned());
                secrets.app_secret = Some(secret.to_owned());
            }
        }
        Ok(ValidatedAccount {
            account_type,
            name,
            description,
            phone_number,
            chatbot_id: self.chatbot_id.clone().flatten(),
            public_config,
            secrets,
        })
    }

    fn has_field(&self, field: &str) -> bool {
        match field {
            "accountSid" => self.account_sid.is_some(),
            "authToken" => self.auth_token.is_some(),
            "businessAccountId" => self.business_account_id.is_some(),
            "phoneNumberId" => self.phone_number_id.is_some(),
            "accessToken" => self.access_token.is_some(),
            "appSecret" => self.app_secret.is_some(),
            _ => false,
        }
    }

    fn refuse_fields(&self, fields: &[&'static str]) -> Result<(), FieldError> {
        match fields.iter().find(|f| self.has_field(f)) {
            Some(field) => Err(invalid(field, "does not apply to this account type")),
            None => Ok(()),
        }
    }

    /// The first secret of an account of this type that the request does not carry: a
    /// PATCH repairing unreadable credentials must carry them all.
    pub fn missing_secret(&self, account_type: AccountType) -> Option<&'static str> {
        secret_fields(account_type).iter().copied().find(|f| !self.has_field(f))
    }

    /// Applies a PATCH to a stored account (secrets already opened). Returns whether
    /// anything that the connection test checks changed, in which case the account goes
    /// back to inactive until tested again.
    pub fn apply_patch(&self, account: &mut IntegrationAccount, secrets: &mut Secrets) -> Result<bool, FieldError> {
        if let Some(kind) = self.account_type
            && kind != account.account_type
        {
            return Err(invalid("accountType", "cannot be changed; create a new account instead"));
        }
        let mut reverify = false;
        if let Some(name) = &self.name {
            check_name(name)?;
            account.name = name.trim().to_owned();
        }
        if let Some(description) = &self.description {
            check_description(description)?;
            account.description = description.clone();
        }
        if let Some(number) = &self.phone_number {
            let number = normalize_e164(number)
                .ok_or_else(|| invalid("phoneNumber", "must be an E.164 number like +15551234567"))?;
            reverify |= number != account.phone_number;
            account.phone_number = number;
        }
        match account.account_type {
            AccountType::Twilio => {
                self.refuse_fields(&["businessAccountId", "phoneNumberId", "accessToken", "appSecret"])?;
                if let Some(sid) = &self.account_sid {
                    check_account_sid(sid)?;
                    reverify |= account.public_config.get("accountSid").and_then(Value::as_str) != Some(sid);
                    account.public_config.insert("accountSid".into(), sid.clone().into());
                }
                if let Some(token) = &self.auth_token {
                    check_secret(token, "authToken", 16, 128)?;
                    reverify = true;
                    secrets.auth_token = Some(token.clone());
                }
            }
            AccountType::WhatsApp => {
                self.refuse_fields(&["accountSid", "authToken"])?;
                if let Some(waba) = &self.business_account_id {
                    check_numeric_id(waba, "businessAccountId")?;
                    account.public_config.insert("businessAccountId".into(), waba.clone().into());
                }
                if let Some(pnid) = &self.phone_number_id {
                    check_numeric_id(pnid, "phoneNumberId")?;
                    reverify |= account.public_config.get("phoneNumberId").and_then(Value::as_str) != Some(pnid);
                    account.public_config.insert("phoneNumberId".into(), pnid.clone().into());
                }
                if let Some(token) = &self.access_token {
                    check_secret(token, "accessToken", 20, 2048)?;
                    reverify = true;
                    secrets.access_token = Some(token.clone());
                }
                if let Some(secret) = &self.app_secret {
                    check_secret(secret, "appSecret", 16, 128)?;
                    secrets.app_secret = Some(secret.clone());
                }
            }
        }
        Ok(reverify)
    }
}

/// An account as the API shows it: identifiers in full, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub account_type: AccountType,
    pub name: String,
    pub description: String,
    pub phone_number: String,
    pub chatbot_id: Option<String>,
    /// Where to point the provider's webhook.
    pub webhook_url: String,
    pub status: ShownStatus,
    pub last_verified_at: Option<String>,
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    /// WhatsApp: the verify token to enter in the Meta dashboard with the webhook URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An account's status as listed: the stored one, unless its credentials cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShownStatus {
    /// Verified; calls are accepted.
    Active,
    /// Not verified yet, or the last test failed.
    Inactive,
    /// Sealed with a key this gateway does not have: `lastError` says which; PATCH the
    /// secrets to repair it.
    CredentialsUnreadable,
}

/// The webhook URL of an account, built from `GATEWAY_PUBLIC_URL`.
pub fn webhook_url(public_base: &str, account: &IntegrationAccount) -> String {
    match account.account_type {
        AccountType::Twilio => format!("{public_base}/api/webhooks/twilio/{}/voice", account.id),
        AccountType::WhatsApp => format!("{public_base}/api/webhooks/whatsapp/{}", account.id),
    }
}

impl AccountView {
    /// The view of an account; `secrets` (opened) are only used for their masks. When they
    /// could not be opened the account shows as `credentials_unreadable`, with the reason.
    pub fn new(
        account: &IntegrationAccount,
        secrets: Result<&Secrets, &crypto::CryptoError>,
        public_base: &str,
    ) -> Self {
        let config = |key: &str| account.public_config.get(key).and_then(Value::as_str).map(str::to_owned);
        let none = Secrets::default();
        let (status, last_error, secrets) = match secrets {
            Ok(secrets) => {
                let status = match account.status {
                    AccountStatus::Active => ShownStatus::Active,
                    AccountStatus::Inactive => ShownStatus::Inactive,
                };
                (status, account.last_error.clone(), secrets)
            }
            Err(err) => (ShownStatus::CredentialsUnreadable, Some(unreadable_reason(err)), &none),
        };
        let masked = |secret: &Option<String>| secret.as_deref().map(crypto::mask);
        Self {
            id: account.id.to_string(),
            account_type: account.account_type,
            name: account.name.clone(),
            description: account.description.clone(),
            phone_number: account.phone_number.clone(),
            chatbot_id: account.chatbot_id.map(|c| c.to_string()),
            webhook_url: webhook_url(public_base, account),
            status,
            last_verified_at: rfc3339_opt(account.last_verified_at),
            last_error,
            account_sid: config("accountSid"),
            auth_token: masked(&secrets.auth_token),
            business_account_id: config("businessAccountId"),
            phone_number_id: config("phoneNumberId"),
            access_token: masked(&secrets.access_token),
            app_secret: masked(&secrets.app_secret),
            verify_token: config("verifyToken"),
            created_at: rfc3339(account.created_at),
            updated_at: rfc3339(account.updated_at),
        }
    }
}

/// One check of a connection test.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Stable name: `connection`, `credentials`, `account_status`, `phone_number`, ...
    pub name: &'static str,
    pub passed: bool,
    pub message: String,
}

/// Result of `POST /api/company/integration-accounts/{id}/test`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// Every check passed; the account is now active.
    pub ok: bool,
    pub checks: Vec<Check>,
    pub status: AccountStatus,
    pub last_verified_at: Option<String>,
    pub last_error: Option<String>,
    pub tested_at: String,
}

fn pass(name: &'static str, message: impl Into<String>) -> Check {
    Check { name, passed: true, message: message.into() }
}

fn fail(name: &'static str, message: impl Into<String>) -> Check {
    Check { name, passed: false, message: message.into() }
}

/// Runs the connection test and records its outcome on `account` (status, times, error).
pub async fn test_connection(
    account: &mut IntegrationAccount,
    secrets: &Secrets,
    twilio: &TwilioRest,
    graph: &GraphApi,
) -> TestReport {
    let checks = match account.account_type {
        AccountType::Twilio => test_twilio(account, secrets, twilio).await,
        AccountType::WhatsApp => test_whatsapp(account, secrets, graph).await,
    };
    let ok = checks.iter().all(|c| c.passed);
    let now = now_ms();
    if ok {
        account.status = AccountStatus::Active;
        account.last_verified_at = Some(now);
        account.last_error = None;
    } else {
        account.status = AccountStatus::Inactive;
        account.last_error = checks.iter().find(|c| !c.passed).map(|c| c.message.clone());
    }
    TestReport {
        ok,
        checks,
        status: account.status,
        last_verified_at: rfc3339_opt(account.last_verified_at),
        last_error: account.last_error.clone(),
        tested_at: rfc3339(now),
    }
}

async fn test_twilio(account: &IntegrationAccount, secrets: &Secrets, twilio: &TwilioRest) -> Vec<Check> {
    let sid = account.public_config.get("accountSid").and_then(Value::as_str).unwrap_or_default();
    let token = secrets.auth_token.as_deref().unwrap_or_default();
    let mut checks = Vec::new();
    let fetched = match twilio.fetch_account(sid, token).await {
        Err(RestError::Unreachable { host, reason }) => {
            checks.push(fail("connection", format!("could not reach Twilio ({host}): {reason}")));
            return checks;
        }
        Err(RestError::Api { status: 401, .. }) | Err(RestError::Api { code: 20003, .. }) => {
            checks.push(pass("connection", "Connected to Twilio"));
            checks.push(fail(
                "credentials",
                "invalid auth token: Twilio refused the Account SID and Auth Token (error 20003)",
            ));
            return checks;
        }
        Err(RestError::Api { status: 404, .. }) => {
            checks.push(pass("connection", "Connected to Twilio"));
            checks.push(fail("credentials", format!("account {sid} was not found (error 20404)")));
            return checks;
        }
        Err(other) => {
            checks.push(fail("connection", format!("Twilio answered with an error: {other}")));
            return checks;
        }
        Ok(fetched) => fetched,
    };
    checks.push(pass("connection", "Successfully connected to Twilio"));
    checks.push(pass(
        "credentials",
        format!("Account SID verified and auth token validated ({})", fetched.friendly_name),
    ));
    if fetched.status == "active" {
        let trial = if fetched.account_type == "Trial" {
            " (trial account: calls are restricted to verified numbers)"
        } else {
            ""
        };
        checks.push(pass("account_status", format!("Account is active{trial}")));
    } else {
        checks.push(fail("account_status", format!("Account is {}, not active", fetched.status)));
    }
    match twilio.incoming_numbers(sid, token, &account.phone_number).await {
        Ok(numbers) => match numbers.first() {
            Some(number) if number.capabilities.voice => {
                checks.push(pass("phone_number", format!("Phone number {} is active for voice", number.phone_number)))
            }
            Some(number) => checks
                .push(fail("phone_number", format!("Phone number {} cannot receive voice calls", number.phone_number))),
            None => checks.push(fail(
                "phone_number",
                format!("number not owned: {} is not a phone number of this Twilio account", account.phone_number),
            )),
        },
        Err(err) => checks.push(fail("phone_number", format!("could not list the account's numbers: {err}"))),
    }
    checks
}

async fn test_whatsapp(account: &IntegrationAccount, secrets: &Secrets, graph: &GraphApi) -> Vec<Check> {
    let pnid = account.public_config.get("phoneNumberId").and_then(Value::as_str).unwrap_or_default();
    let token = secrets.access_token.as_deref().unwrap_or_default();
    let mut checks = Vec::new();
    match graph.phone_number(pnid, token).await {
        Err(RestError::Unreachable { host, reason }) => {
            checks.push(fail("connection", format!("could not reach the Graph API ({host}): {reason}")));
        }
        Err(RestError::Api { code: 190, message, .. }) => {
            checks.push(pass("connection", "Connected to the WhatsApp Business API"));
            checks.push(fail("access_token", format!("invalid access token: {message} (code 190)")));
        }
        Err(RestError::Api { code: 803, .. }) | Err(RestError::Api { status: 404, .. }) => {
            checks.push(pass("connection", "Connected to the WhatsApp Business API"));
            checks.push(pass("access_token", "Access token accepted"));
            checks.push(fail("phone_number_id", format!("phone number id {pnid} was not found")));
        }
        Err(RestError::Api { status: 403, message, code }) => {
            checks.push(pass("connection", "Connected to the WhatsApp Business API"));
            checks.push(fail(
                "access_token",
                format!("the access token may not use phone number {pnid}: {message} (code {code})"),
            ));
        }
        Err(other) => checks.push(fail("connection", format!("the Graph API answered with an error: {other}"))),
        Ok(info) => {
            checks.push(pass("connection", "Connected to the WhatsApp Business API"));
            checks.push(pass("access_token", "Access token validated"));
            checks.push(pass(
                "phone_number_id",
                format!("Phone number id {} verified ({})", info.id, info.verified_name),
            ));
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            if digits(&info.display_phone_number) == digits(&account.phone_number) {
                checks.push(pass("phone_number", format!("Phone number {} matches", info.display_phone_number)));
            } else {
                checks.push(fail(
                    "phone_number",
                    format!("phone number id {pnid} is {}, not {}", info.display_phone_number, account.phone_number),
                ));
            }
        }
    }
    checks
}

/// An account whose credentials this gateway cannot open.
#[derive(Debug, Clone)]
pub struct UnreadableAccount {
    pub id: IntegrationAccountId,
    pub company_id: CompanyId,
    pub name: String,
    /// The key its credentials name.
    pub key_id: String,
    /// Why, in words.
    pub reason: String,
}

impl UnreadableAccount {
    fn new(account: &IntegrationAccount, err: &crypto::CryptoError) -> Self {
        Self {
            id: account.id,
            company_id: account.company_id,
            name: account.name.clone(),
            key_id: account.credentials.key_id.clone(),
            reason: unreadable_reason(err),
        }
    }
}

/// Every account (of every company) whose credentials the configured keys cannot open:
/// startup warns about each.
pub async fn unreadable_accounts(store: &Store, sealer: &Sealer) -> StoreResult<Vec<UnreadableAccount>> {
    let accounts = store.all_integration_accounts().await?;
    Ok(accounts
        .iter()
        .filter_map(|account| Secrets::open(sealer, account).err().map(|err| UnreadableAccount::new(account, &err)))
        .collect())
}

/// What [`reseal_all`] did.
#[derive(Debug, Default)]
pub struct Rotation {
    /// Accounts sealed again with the newest key.
    pub resealed: u64,
    /// Accounts that already used it.
    pub already_current: u64,
    /// Accounts changed by someone else between reading and re-sealing (sealed with the
    /// newest key by that change; run again to be sure).
    pub changed_meanwhile: u64,
    /// Accounts no configured key opens: they keep their sealed value until repaired.
    pub unreadable: Vec<UnreadableAccount>,
}

/// Seals every account's credentials again with the newest key (`gateway keys rotate`), so
/// that older keys can be dropped. Safe beside a running gateway: a row is only replaced
/// if it still holds what was read.
pub async fn reseal_all(store: &Store, sealer: &Sealer) -> StoreResult<Rotation> {
    let mut rotation = Rotation::default();
    for account in store.all_integration_accounts().await? {
        match sealer.reseal(&account.credentials, account.id.as_string().as_bytes()) {
            Ok(None) => rotation.already_current += 1,
            Ok(Some(sealed)) => {
                if store.reseal_integration_credentials(account.id, &account.credentials, &sealed).await? {
                    rotation.resealed += 1;
                } else {
                    rotation.changed_meanwhile += 1;
                }
            }
            Err(err) => rotation.unreadable.push(UnreadableAccount::new(&account, &err)),
        }
    }
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(normalize_e164("+1 (555) 123-4567").as_deref(), Some("+15551234567"));
        assert_eq!(normalize_e164("5551234567"), None);
        assert_eq!(normalize_e164("+0123456789"), None);
        assert_eq!(normalize_e164("+1"), None);
    }

    #[test]
    fn twilio_accounts_need_a_well_formed_sid_and_token() {
        let input = IntegrationInput {
            account_type: Some(AccountType::Twilio),
            name: Some("Main".into()),
            phone_number: Some("+15551234567".into()),
            account_sid: Some("AC123".into()),
            auth_token: Some("0123456789abcdef0123456789abcdef".into()),
            ..Default::default()
        };
        assert_eq!(input.validate_new().err().unwrap().field, "accountSid");
        let input = IntegrationInput { account_sid: Some(format!("AC{}", "a".repeat(32))), ..input };
        let ok = input.validate_new().unwrap();
        assert_eq!(ok.secrets.auth_token.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert!(!ok.public_config.contains_key("authToken"));
    }

    #[test]
    fn whatsapp_accounts_get_a_verify_token_and_refuse_twilio_fields() {
        let input = IntegrationInput {
            account_type: Some(AccountType::WhatsApp),
            name: Some("WA".into()),
            phone_number: Some("+15559876543".into()),
            business_account_id: Some("123456789".into()),
            phone_number_id: Some("106853218861309".into()),
            access_token: Some("EAAG".to_owned() + &"x".repeat(40)),
            app_secret: Some("1222e786b144d0e85b9f365372d93676".into()),
            ..Default::default()
        };
        let ok = input.validate_new().unwrap();
        assert!(ok.public_config.get("verifyToken").and_then(Value::as_str).is_some_and(|t| t.len() >= 32));
        let bad = IntegrationInput { auth_token: Some("x".repeat(32)), ..input };
        assert_eq!(bad.validate_new().err().unwrap().field, "authToken");
    }

    #[test]
    fn a_repair_must_carry_every_secret_of_the_account_type() {
        let twilio = IntegrationInput { name: Some("x".into()), ..Default::default() };
        assert_eq!(twilio.missing_secret(AccountType::Twilio), Some("authToken"));
        let twilio = IntegrationInput { auth_token: Some("t".into()), ..twilio };
        assert_eq!(twilio.missing_secret(AccountType::Twilio), None);
        let whatsapp = IntegrationInput { access_token: Some("t".into()), ..Default::default() };
        assert_eq!(whatsapp.missing_secret(AccountType::WhatsApp), Some("appSecret"));
    }

    #[test]
    fn accounts_whose_credentials_cannot_be_opened_show_as_unreadable() {
        use base64::Engine;
        let key = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
        let old = Sealer::from_key_list(&format!("old:{}", key(1))).unwrap();
        let id = IntegrationAccountId::new();
        let secrets = Secrets { auth_token: Some("0123456789abcdef0123456789abcdef".into()), ..Default::default() };
        let account = IntegrationAccount {
            id,
            company_id: CompanyId::new(),
            account_type: AccountType::Twilio,
            name: "Main".into(),
            description: String::new(),
            phone_number: "+15551234567".into(),
            chatbot_id: None,
            public_config: Map::new(),
            credentials: secrets.seal(&old, &id.as_string()),
            status: AccountStatus::Active,
            last_verified_at: None,
            last_error: None,
            failed_at: None,
            created_at: 0,
            updated_at: 0,
        };
        let opened = Secrets::open(&old, &account);
        let view = AccountView::new(&account, opened.as_ref(), "https://gw.example");
        assert_eq!((view.status, view.auth_token.as_deref()), (ShownStatus::Active, Some("••••cdef")));

        let new = Sealer::from_key_list(&format!("new:{}", key(2))).unwrap();
        let opened = Secrets::open(&new, &account);
        let view = AccountView::new(&account, opened.as_ref(), "https://gw.example");
        assert_eq!(view.status, ShownStatus::CredentialsUnreadable);
        assert_eq!(view.auth_token, None);
        assert!(view.last_error.unwrap().contains("encryption key old"));
        assert_eq!(serde_json::to_value(ShownStatus::CredentialsUnreadable).unwrap(), "credentials_unreadable");
    }
}
