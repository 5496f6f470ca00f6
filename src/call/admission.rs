//! Call admission: may this call be taken, with which chatbot and model? One decision for
//! every way in — the widget, an admin's test call, the Twilio voice webhook and the
//! WhatsApp `connect` webhook — so they refuse for the same reasons with the same codes.

use crate::providers::ProviderSettings;
use crate::store::{AccountStatus, AiModel, Chatbot, ChatbotType, IntegrationAccount, Store, StoreError};

/// Where a call comes from, as far as admission cares.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// The website widget, from a page at `origin`.
    Widget { chatbot_id: &'a str, origin: Option<&'a str> },
    /// An admin's test call (no origin check).
    Test { chatbot_id: &'a str },
    /// A phone or WhatsApp call to an integration account's number.
    Account(&'a IntegrationAccount),
}

/// Why a call is refused. Each has a stable code; the API maps them to statuses, the
/// webhooks to a polite hang-up (TwiML) or a `reject` (Graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such chatbot (or not one that takes calls from here).
    ChatbotNotFound,
    /// The integration account's number is not bound to a chatbot.
    NoChatbot,
    /// The integration account is not active (not verified, or its credentials failed).
    AccountInactive,
    /// The company has voice calls switched off.
    CallsDisabled,
    /// The chatbot is a chat chatbot.
    NotACallChatbot,
    /// The widget is not allowed on the calling page.
    OriginNotAllowed(Option<String>),
    /// No usable call model or provider right now.
    VoiceUnavailable(&'static str),
    /// An integration the chatbot depends on is failing (its credentials stopped working).
    IntegrationFailing { kind: String, name: String },
}

impl Refusal {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ChatbotNotFound => "not_found",
            Self::NoChatbot => "no_chatbot",
            Self::AccountInactive => "account_inactive",
            Self::CallsDisabled => "calls_disabled",
            Self::NotACallChatbot => "not_a_call_chatbot",
            Self::OriginNotAllowed(_) => "origin_not_allowed",
            Self::VoiceUnavailable(_) | Self::IntegrationFailing { .. } => "voice_unavailable",
        }
    }

    /// What to tell people.
    pub fn message(&self) -> String {
        match self {
            Self::ChatbotNotFound => "chatbot not found".to_owned(),
            Self::NoChatbot => "no chatbot answers calls to this number".to_owned(),
            Self::AccountInactive => "the integration account is not active".to_owned(),
            Self::CallsDisabled => "voice calls are not enabled for this chatbot's company".to_owned(),
            Self::NotACallChatbot => "this chatbot does not take voice calls".to_owned(),
            Self::OriginNotAllowed(origin) => format!(
                "calls to this chatbot are not allowed from {}",
                origin.as_deref().unwrap_or("pages without an Origin")
            ),
            Self::VoiceUnavailable(why) => format!("voice calls are temporarily unavailable: {why}"),
            Self::IntegrationFailing { kind, name } => {
                format!("voice calls are temporarily unavailable: its {kind} integration \"{name}\" is failing")
            }
        }
    }
}

/// Admission failed: refused, or the database could not say.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("call refused: {}", .0.message())]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refusal> for AdmissionError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

/// What a call needs, once every check passed.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub chatbot: Chatbot,
    pub model: AiModel,
}

/// Decides whether a call from `entry` is taken: the account is active and bound (for a
/// number), the company has calls on, the chatbot is a call chatbot allowed on the page
/// (for the widget), its model is usable with a configured provider, and no integration it
/// depends on is failing.
pub async fn admit(store: &Store, providers: &ProviderSettings, entry: Entry<'_>) -> Result<CallPlan, AdmissionError> {
    let chatbot = match entry {
        Entry::Widget { chatbot_id, .. } | Entry::Test { chatbot_id } => {
            let id = chatbot_id.parse().map_err(|_| Refusal::ChatbotNotFound)?;
            store.chatbot_for_widget(id).await?.ok_or(Refusal::ChatbotNotFound)?
        }
        Entry::Account(account) => {
            if account.status != AccountStatus::Active {
                return Err(Refusal::AccountInactive.into());
            }
            let id = account.chatbot_id.ok_or(Refusal::NoChatbot)?;
            store.chatbot(account.company_id, id).await?.ok_or(Refusal::NoChatbot)?
        }
    };
    let company = store.company(chatbot.company_id).await?.ok_or(Refusal::ChatbotNotFound)?;
    if !company.settings.features.call_enabled {
        return Err(Refusal::CallsDisabled.into());
    }
    if chatbot.chatbot_type != ChatbotType::Call {
        return Err(Refusal::NotACallChatbot.into());
    }
    if let Entry::Widget { origin, .. } = entry
        && !chatbot.settings.widget.allows_origin(origin)
    {
        return Err(Refusal::OriginNotAllowed(origin.map(str::to_owned)).into());
    }
    let model_id = chatbot.call_model_id.ok_or(Refusal::VoiceUnavailable("no call model is configured"))?;
    let model = store.model(model_id).await?.ok_or(Refusal::VoiceUnavailable("the call model no longer exists"))?;
    if !model.usable_for_calls() {
        return Err(Refusal::VoiceUnavailable("the call model is not active").into());
    }
    if !providers.is_available(&model) {
        return Err(Refusal::VoiceUnavailable("the voice provider is not configured").into());
    }
    if let Some(account) = store.failing_integration_of_chatbot(chatbot.company_id, chatbot.id).await? {
        let kind = account.account_type.to_string();
        return Err(Refusal::IntegrationFailing { kind, name: account.name }.into());
    }
    Ok(CallPlan { chatbot, model })
}
