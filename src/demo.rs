//! `--demo`: a demo company with calls enabled and a call chatbot, created once.

use crate::app::AppState;
use crate::settings::{ChatbotSettings, CompanySettings};
use crate::store::{ChatbotType, NewChatbot, Provider};

/// Name of the demo company (how later runs find it again).
pub const DEMO_COMPANY: &str = "Demo Company";

/// Creates the demo company and chatbot unless they exist. Without an OpenAI key the
/// chatbot uses the echo provider, which plays the caller back.
pub async fn ensure_demo(state: &AppState) -> anyhow::Result<()> {
    let store = &state.store;
    let company = match store.company_by_name(DEMO_COMPANY).await? {
        Some(company) => company,
        None => {
            let mut settings = CompanySettings::default();
            settings.features.call_enabled = true;
            store.create_company(DEMO_COMPANY, &settings).await?
        }
    };
    let models = store.list_models(true).await?;
    let wanted = if state.config.openai_api_key.is_some() {
        (Provider::OpenAi, "gpt-realtime")
    } else {
        (Provider::Echo, "echo")
    };
    let model = models.iter().find(|m| (m.provider, m.model_id.as_str()) == wanted && m.usable_for_calls());
    let bots = store.list_chatbots(company.id).await?;
    let bot = match bots.into_iter().find(|b| b.chatbot_type == ChatbotType::Call) {
        Some(mut bot) => {
            // Follow the key: a demo started later with OPENAI_API_KEY switches to OpenAI.
            if let Some(model) = model
                && bot.call_model_id != Some(model.id)
            {
                bot.call_model_id = Some(model.id);
                bot.settings.call.voice = crate::voices::default_voice(model).to_owned();
                store.update_chatbot(&bot).await?;
            }
            bot
        }
        None => {
            let mut settings = ChatbotSettings::default();
            settings.widget.title = "Demo Support".to_owned();
            if let Some(model) = model {
                settings.call.voice = crate::voices::default_voice(model).to_owned();
            }
            store
                .create_chatbot(
                    company.id,
                    NewChatbot {
                        name: "Demo Voice Agent".to_owned(),
                        description: "Answers calls on the demo page".to_owned(),
                        chatbot_type: ChatbotType::Call,
                        call_model_id: model.map(|m| m.id),
                        instructions: "You are the friendly voice support agent of Demo Company. Keep answers short."
                            .to_owned(),
                        settings,
                    },
                )
                .await?
        }
    };
    let provider = model.map(|m| m.provider.as_str()).unwrap_or("none");
    tracing::info!(company_id = %company.id, chatbot_id = %bot.id, provider, "demo company ready");
    if provider == "echo" {
        tracing::info!("no OPENAI_API_KEY: the demo chatbot uses the echo provider (it plays your voice back)");
    }
    Ok(())
}
