//! Typed identifiers. Each is a UUID parsed once at the edge (path, header, token lookup)
//! and valid from then on; in the database they are stored as their hyphenated string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The id as stored in the database and shown in the API.
            pub fn as_string(&self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

id_type!(
    /// A tenant.
    CompanyId
);
id_type!(
    /// A person using the API or the agent console.
    UserId
);
id_type!(
    /// An API token (not the token itself).
    TokenId
);
id_type!(
    /// A person's sign-in session (not its cookie token).
    SessionId
);
id_type!(
    /// A model in the AI model catalogue.
    ModelId
);
id_type!(
    /// A chatbot of a company.
    ChatbotId
);
id_type!(
    /// A Twilio or WhatsApp integration account.
    IntegrationAccountId
);
id_type!(
    /// One call, from session creation to its end.
    CallId
);
id_type!(
    /// A conversation (chat or voice call).
    ConversationId
);
id_type!(
    /// A knowledge-base category.
    CategoryId
);
id_type!(
    /// A knowledge-base document.
    DocumentId
);
id_type!(
    /// A line of a call transcript.
    TranscriptLineId
);
id_type!(
    /// The stored recording of a call.
    RecordingId
);
id_type!(
    /// An event for the company's systems (`call.started`, `call.ended`, ...).
    EventId
);
id_type!(
    /// A company's webhook endpoint.
    WebhookId
);
id_type!(
    /// One event's delivery to one webhook endpoint.
    DeliveryId
);
id_type!(
    /// A notice to a company's admins.
    NoticeId
);
id_type!(
    /// A hand-off of a call (or chat) to a human agent.
    EscalationId
);
id_type!(
    /// A message taken for the company when no agent was free.
    TicketId
);
id_type!(
    /// One agent console socket (an agent may have several), as its presence row knows it.
    PresenceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = CallId::new();
        let parsed: CallId = id.as_string().parse().unwrap();
        assert_eq!(id, parsed);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }

    #[test]
    fn ids_reject_garbage() {
        assert!("not-a-uuid".parse::<CompanyId>().is_err());
    }
}
