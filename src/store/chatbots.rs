//! `chatbots`: a company's chatbots with their widget and call settings.

use sqlx::Row;

use super::companies::json;
use super::{Store, StoreResult, parse_enum, parse_id, parse_json};
use crate::ids::{ChatbotId, CompanyId, ModelId};
use crate::settings::ChatbotSettings;
use crate::time::{UnixMs, now_ms};

text_enum!(
    /// Chat chatbots answer messages; call chatbots answer voice calls.
    ChatbotType {
        /// Text chat.
        Chat = "chat",
        /// Voice calls.
        Call = "call",
    }
);

/// A chatbot.
#[derive(Debug, Clone)]
pub struct Chatbot {
    pub id: ChatbotId,
    pub company_id: CompanyId,
    pub name: String,
    pub description: String,
    pub chatbot_type: ChatbotType,
    /// The model answering its calls (call settings' `aiModelId`).
    pub call_model_id: Option<ModelId>,
    /// The agent's instructions (system prompt).
    pub instructions: String,
    pub settings: ChatbotSettings,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// A chatbot to create.
#[derive(Debug, Clone)]
pub struct NewChatbot {
    pub name: String,
    pub description: String,
    pub chatbot_type: ChatbotType,
    pub call_model_id: Option<ModelId>,
    pub instructions: String,
    pub settings: ChatbotSettings,
}

const COLUMNS: &str =
    "id, company_id, name, description, chatbot_type, call_model_id, instructions, settings, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Chatbot> {
    let model: Option<String> = row.try_get("call_model_id")?;
    Ok(Chatbot {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        chatbot_type: parse_enum(&row.try_get::<String, _>("chatbot_type")?, "chatbot type")?,
        call_model_id: model.as_deref().map(parse_id).transpose()?,
        instructions: row.try_get("instructions")?,
        settings: parse_json(&row.try_get::<String, _>("settings")?, "chatbot settings")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a chatbot in a company.
    pub async fn create_chatbot(&self, company: CompanyId, new: NewChatbot) -> StoreResult<Chatbot> {
        let now = now_ms();
        let bot = Chatbot {
            id: ChatbotId::new(),
            company_id: company,
            name: new.name,
            description: new.description,
            chatbot_type: new.chatbot_type,
            call_model_id: new.call_model_id,
            instructions: new.instructions,
            settings: new.settings,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO chatbots (id, company_id, name, description, chatbot_type, call_model_id, instructions, settings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(bot.id.as_string())
        .bind(company.as_string())
        .bind(&bot.name)
        .bind(&bot.description)
        .bind(bot.chatbot_type.as_str())
        .bind(bot.call_model_id.map(|m| m.as_string()))
        .bind(&bot.instructions)
        .bind(json(&bot.settings))
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(bot)
    }

    /// A company's chatbots, oldest first.
    pub async fn list_chatbots(&self, company: CompanyId) -> StoreResult<Vec<Chatbot>> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM chatbots WHERE company_id = $1 ORDER BY created_at, id"))
                .bind(company.as_string())
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(from_row).collect()
    }

    /// A chatbot of a company (None for another company's chatbot).
    pub async fn chatbot(&self, company: CompanyId, id: ChatbotId) -> StoreResult<Option<Chatbot>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM chatbots WHERE id = $1 AND company_id = $2"))
            .bind(id.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A chatbot by id alone, for the public widget API, where the chatbot id is what the
    /// embedding page names and the company follows from it.
    pub async fn chatbot_for_widget(&self, id: ChatbotId) -> StoreResult<Option<Chatbot>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM chatbots WHERE id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Saves every editable field of a chatbot (scoped to its company).
    pub async fn update_chatbot(&self, bot: &Chatbot) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE chatbots SET name = $1, description = $2, chatbot_type = $3, call_model_id = $4, instructions = $5, \
             settings = $6, updated_at = $7 WHERE id = $8 AND company_id = $9",
        )
        .bind(&bot.name)
        .bind(&bot.description)
        .bind(bot.chatbot_type.as_str())
        .bind(bot.call_model_id.map(|m| m.as_string()))
        .bind(&bot.instructions)
        .bind(json(&bot.settings))
        .bind(now_ms())
        .bind(bot.id.as_string())
        .bind(bot.company_id.as_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(chatbots_are_scoped_to_their_company, |store| {
        use crate::settings::{ChatbotSettings, CompanySettings};
        use crate::store::{ChatbotType, NewChatbot};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let new = NewChatbot {
            name: "Voice".into(),
            description: String::new(),
            chatbot_type: ChatbotType::Call,
            call_model_id: Some("00000000-0000-4000-8000-000000000103".parse().unwrap()),
            instructions: "Be brief.".into(),
            settings: ChatbotSettings::default(),
        };
        let bot = store.create_chatbot(acme.id, new).await.unwrap();
        assert!(store.chatbot(acme.id, bot.id).await.unwrap().is_some());
        assert!(store.chatbot(globex.id, bot.id).await.unwrap().is_none());
        assert_eq!(store.list_chatbots(globex.id).await.unwrap().len(), 0);

        let mut changed = bot.clone();
        changed.company_id = globex.id;
        changed.name = "Hijacked".into();
        assert!(!store.update_chatbot(&changed).await.unwrap(), "cannot update across tenants");

        let mut renamed = bot.clone();
        renamed.settings.call.voice_speed = 1.25;
        assert!(store.update_chatbot(&renamed).await.unwrap());
        let loaded = store.chatbot(acme.id, bot.id).await.unwrap().unwrap();
        assert_eq!(loaded.settings.call.voice_speed, 1.25);
        assert_eq!(loaded.call_model_id, bot.call_model_id);
    });

    store_test!(a_model_in_use_cannot_be_deleted, |store| {
        use crate::settings::{ChatbotSettings, CompanySettings};
        use crate::store::{ChatbotType, NewChatbot, StoreError};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let model = "00000000-0000-4000-8000-000000000103".parse().unwrap();
        store
            .create_chatbot(
                acme.id,
                NewChatbot {
                    name: "Voice".into(),
                    description: String::new(),
                    chatbot_type: ChatbotType::Call,
                    call_model_id: Some(model),
                    instructions: String::new(),
                    settings: ChatbotSettings::default(),
                },
            )
            .await
            .unwrap();
        assert!(matches!(store.delete_model(model).await, Err(StoreError::ForeignKey)));
        assert_eq!(store.count_chatbots_using_model(model).await.unwrap(), 1);
    });
}
