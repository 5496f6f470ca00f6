//! From a chatbot's settings to what its call session needs: the provider session spec
//! (instructions, voice, VAD, transcription, tools), the greeting and the policies.

use serde_json::json;

use super::policy::PolicyConfig;
use super::session::{CallSetup, tools};
use crate::providers::{self, SessionSpec, ToolSpec};
use crate::store::{AiModel, Call, Chatbot};
use crate::voices;

/// What the agent is told about the tools, appended to the chatbot's instructions.
const TOOL_GUIDANCE: &str = "You are speaking with the caller on a voice call: keep answers short and \
conversational, without lists or formatting. When the caller asks about the company, its products, policies, \
prices or hours, use the search_knowledge_base tool and answer from what it returns; if it returns nothing, \
say you don't know rather than guessing. When the caller says goodbye or asks to end the call, say a short \
goodbye and then call end_call.";

/// The setup of a call on `chatbot` answered by `model`.
pub fn call_setup(call: &Call, chatbot: &Chatbot, model: AiModel) -> CallSetup {
    let settings = &chatbot.settings.call;
    let mut tools = vec![ToolSpec {
        name: tools::END_CALL.to_owned(),
        description: "End the call. Say goodbye to the caller first.".to_owned(),
        parameters: json!({"type": "object", "properties": {}}),
    }];
    if settings.knowledge_base_access {
        tools.push(ToolSpec {
            name: tools::SEARCH_KNOWLEDGE_BASE.to_owned(),
            description: "Search the company's knowledge base (business hours, policies, products, prices, \
                          procedures) and return the most relevant passages."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look up, in a few words"}},
                "required": ["query"],
            }),
        });
    }
    if settings.escalation_enabled {
        tools.push(ToolSpec {
            name: tools::ESCALATE_TO_HUMAN.to_owned(),
            description: "Hand the caller to a human team member when they ask for a person or you cannot help. \
                          The caller is put on hold while an agent is found."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why the caller needs a person, in a few words"}},
                "required": ["reason"],
            }),
        });
        tools.push(ToolSpec {
            name: tools::TAKE_MESSAGE.to_owned(),
            description: "Only after you were told that no team member is available: take a message for a call back."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The caller's name"},
                    "callbackNumber": {"type": "string", "description": "Where to call them back"},
                    "message": {"type": "string", "description": "What they need, in their words"},
                },
                "required": ["name", "callbackNumber", "message"],
            }),
        });
    }
    let instructions = match chatbot.instructions.trim() {
        "" => TOOL_GUIDANCE.to_owned(),
        own => format!("{own}\n\n{TOOL_GUIDANCE}"),
    };
    // The provider's own formats; a caller leg whose wire the provider speaks (a phone
    // line's μ-law) renegotiates them when the call starts.
    let (input, output) = providers::negotiate(None, &providers::capabilities(model.provider));
    let spec = SessionSpec {
        model: model.model_id.clone(),
        dialect: model.realtime_dialect(),
        instructions,
        voice: voices::effective_voice(&model, &settings.voice).to_owned(),
        speed: settings.voice_speed,
        vad_threshold: settings.vad_threshold,
        allow_interruption: settings.allow_interruption,
        transcription: settings.realtime_transcription,
        noise_reduction: settings.noise_suppression,
        respond: true,
        tools,
        input,
        output,
    };
    CallSetup {
        call_id: call.id,
        company_id: call.company_id,
        chatbot_id: chatbot.id,
        source: call.source,
        policy: PolicyConfig::new(settings.silence_timeout(), settings.max_duration(), &settings.end_call_phrase),
        model,
        spec,
        greeting: settings.greeting_message.clone(),
        record: settings.call_recording,
        escalation: settings.escalation_enabled.then(|| super::session::EscalationSetup {
            timeout: std::time::Duration::from_secs(u64::from(settings.escalation_timeout_seconds)),
            hold_message: settings.hold_message.trim().to_owned(),
        }),
        recording_notice: settings.recording_notice().map(str::to_owned),
    }
}
