//! Which voices each model can speak with (from the protocol reference,
//! shared/protocols/realtime-protocols.md §1.4 and §2.2).

use crate::store::{AiModel, Provider, RealtimeDialect};

/// OpenAI Realtime voices in the beta dialect (the eight of 2025-02).
const OPENAI_BETA: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"];
/// OpenAI Realtime voices in the GA dialect: the beta eight plus the recommended two.
const OPENAI_GA: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];
/// The original Gemini 2.0 Live voices.
const GEMINI_2_0: &[&str] = &["Puck", "Charon", "Kore", "Fenrir", "Aoede"];
/// The current Gemini Live voice list.
const GEMINI: &[&str] = &[
    "Achernar",
    "Achird",
    "Algenib",
    "Algieba",
    "Alnilam",
    "Aoede",
    "Autonoe",
    "Callirrhoe",
    "Charon",
    "Despina",
    "Enceladus",
    "Erinome",
    "Fenrir",
    "Gacrux",
    "Iapetus",
    "Kore",
    "Laomedeia",
    "Leda",
    "Orus",
    "Pulcherrima",
    "Puck",
    "Rasalgethi",
    "Sadachbia",
    "Sadaltager",
    "Schedar",
    "Sulafat",
    "Umbriel",
    "Vindemiatrix",
    "Zephyr",
    "Zubenelgenubi",
];
/// The echo provider has no voice of its own; it plays the caller back.
const ECHO: &[&str] = &["default"];

/// The voices a model offers, in display order.
pub fn voices_for(model: &AiModel) -> &'static [&'static str] {
    match model.provider {
        Provider::OpenAi => match model.realtime_dialect() {
            RealtimeDialect::Ga => OPENAI_GA,
            RealtimeDialect::Beta => OPENAI_BETA,
        },
        Provider::Google if model.model_id.starts_with("gemini-2.0") => GEMINI_2_0,
        Provider::Google => GEMINI,
        Provider::Echo => ECHO,
    }
}

/// The voice used when none is chosen.
pub fn default_voice(model: &AiModel) -> &'static str {
    match model.provider {
        Provider::OpenAi => "alloy",
        Provider::Google => "Puck",
        Provider::Echo => "default",
    }
}

/// Whether `voice` is one of the model's voices.
pub fn is_valid_voice(model: &AiModel, voice: &str) -> bool {
    voices_for(model).contains(&voice)
}

/// The voice a call on `model` should use given the configured one (which may be empty,
/// or left over from a model of another provider).
pub fn effective_voice<'a>(model: &AiModel, configured: &'a str) -> &'a str {
    if is_valid_voice(model, configured) { configured } else { default_voice(model) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ModelType, RealtimeDialect};

    fn model(provider: Provider, id: &str, dialect: Option<RealtimeDialect>) -> AiModel {
        AiModel {
            id: crate::ids::ModelId::new(),
            provider,
            model_id: id.into(),
            display_name: id.into(),
            model_type: ModelType::Call,
            is_active: true,
            settings: crate::store::ai_models_settings(dialect),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn marin_is_ga_only() {
        assert!(is_valid_voice(&model(Provider::OpenAi, "gpt-realtime", Some(RealtimeDialect::Ga)), "marin"));
        assert!(!is_valid_voice(
            &model(Provider::OpenAi, "gpt-4o-realtime-preview-2024-10-01", Some(RealtimeDialect::Beta)),
            "marin"
        ));
    }

    #[test]
    fn provider_voices_do_not_mix() {
        let gemini = model(Provider::Google, "gemini-2.5-flash-native-audio-preview-12-2025", None);
        assert!(is_valid_voice(&gemini, "Zephyr"));
        assert!(!is_valid_voice(&gemini, "alloy"));
        assert_eq!(effective_voice(&gemini, "alloy"), "Puck");
        assert_eq!(voices_for(&gemini).len(), 30);
        assert!(!is_valid_voice(&model(Provider::Google, "gemini-2.0-flash-exp", None), "Zephyr"));
    }
}
