//! The call domain's vocabulary: where a caller came from, how a call ended, who said a
//! line, which provider answers. Plain values shared by the pure cores (`call`), the
//! providers, the API and the store, which persists them as TEXT; nothing here knows SQL.

/// Declares a string enum (stored as TEXT with a CHECK constraint): `as_str`, `FromStr`,
/// serde and OpenAPI as the same snake_case strings.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok(Self::$variant),)+ _ => Err(()) }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where the caller came from.
    CallSource {
        /// The website widget (WebRTC).
        Web = "web",
        /// WhatsApp Business calling.
        WhatsApp = "whatsapp",
        /// A phone call through Twilio.
        Twilio = "twilio",
    }
);

text_enum!(
    /// Lifecycle of a call: pending → connecting → active → completed | failed.
    CallStatus {
        /// Session created; the caller has not connected yet.
        Pending = "pending",
        /// The caller is connecting (signaling, ICE, DTLS; the provider session opening).
        Connecting = "connecting",
        /// Audio flows both ways.
        Active = "active",
        /// Ended normally.
        Completed = "completed",
        /// Ended by a failure (network, provider, ...).
        Failed = "failed",
    }
);

impl CallStatus {
    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

text_enum!(
    /// Why a call ended.
    EndReason {
        /// The caller hung up.
        CallerHangup = "caller_hangup",
        /// A human agent or admin ended it.
        AgentHangup = "agent_hangup",
        /// The caller's network went away (ICE failed or stayed disconnected).
        NetworkLost = "network_lost",
        /// The AI provider could not be reached or failed mid-call.
        ProviderError = "provider_error",
        /// The caller stayed silent past the silence timeout.
        SilenceTimeout = "silence_timeout",
        /// The call reached its maximum duration.
        MaxDuration = "max_duration",
        /// The caller said the end-call phrase (or the agent ended the call).
        EndPhrase = "end_phrase",
        /// The caller never connected before the session expired.
        Expired = "expired",
        /// The gateway shut down (or a node holding the call was lost).
        Shutdown = "shutdown",
        /// Handed over: on an agent's leg, the agent handed the caller back to the AI.
        Transferred = "transferred",
        /// An internal error.
        Error = "error",
    }
);

impl EndReason {
    /// The final status a call ending for this reason gets.
    pub fn final_status(self) -> CallStatus {
        match self {
            Self::NetworkLost | Self::ProviderError | Self::Error | Self::Shutdown => CallStatus::Failed,
            _ => CallStatus::Completed,
        }
    }
}

text_enum!(
    /// Who said a transcript line.
    TranscriptRole {
        /// The caller.
        User = "user",
        /// The AI agent.
        Agent = "agent",
        /// A human support agent who joined the call.
        HumanAgent = "human_agent",
        /// The system: tool calls, their results, notices.
        System = "system",
    }
);

text_enum!(
    /// Who serves the model.
    Provider {
        /// OpenAI (Realtime API for calls).
        OpenAi = "openai",
        /// Google (Gemini Live API for calls).
        Google = "google",
        /// Built in: plays the caller's voice back. For demos and diagnostics.
        Echo = "echo",
    }
);

/// The two wire dialects of the OpenAI Realtime API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum RealtimeDialect {
    /// The generally available API (the default).
    #[default]
    Ga,
    /// The 2024–2025 beta (header `OpenAI-Beta: realtime=v1`), needed by preview models.
    Beta,
}
