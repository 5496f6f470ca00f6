//! `ai_models`: the catalogue of models master admins offer to chatbots.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::companies::json;
use super::{Store, StoreResult, parse_enum, parse_id, parse_json};
use crate::domain::{Provider, RealtimeDialect};
use crate::ids::ModelId;
use crate::time::{UnixMs, now_ms};

text_enum!(
    /// What a model may be used for.
    ModelType {
        /// Text chat only.
        Chat = "chat",
        /// Realtime voice calls only.
        Call = "call",
        /// Both.
        Both = "both",
    }
);

impl ModelType {
    /// Whether models of this type can answer calls.
    pub fn is_call_capable(self) -> bool {
        matches!(self, Self::Call | Self::Both)
    }
}

/// Provider details of a model (`ai_models.settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSettings {
    /// OpenAI: which Realtime dialect the model speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_dialect: Option<RealtimeDialect>,
    /// Google: Live API version in the URL path (`v1beta` by default, `v1alpha` for 2.0 experimental models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_api_version: Option<String>,
}

/// A model of the catalogue.
#[derive(Debug, Clone)]
pub struct AiModel {
    pub id: ModelId,
    pub provider: Provider,
    pub model_id: String,
    pub display_name: String,
    pub model_type: ModelType,
    pub is_active: bool,
    pub settings: ModelSettings,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

impl AiModel {
    /// Whether a chatbot may use this model for calls right now.
    pub fn usable_for_calls(&self) -> bool {
        self.is_active && self.model_type.is_call_capable()
    }

    /// The Realtime dialect (OpenAI models).
    pub fn realtime_dialect(&self) -> RealtimeDialect {
        self.settings.realtime_dialect.unwrap_or_default()
    }
}

/// A model to add.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub provider: Provider,
    pub model_id: String,
    pub display_name: String,
    pub model_type: ModelType,
    pub is_active: bool,
    pub settings: ModelSettings,
}

/// Changes to a model; None keeps the field.
#[derive(Debug, Clone, Default)]
pub struct ModelPatch {
    pub display_name: Option<String>,
    pub model_type: Option<ModelType>,
    pub is_active: Option<bool>,
    pub settings: Option<ModelSettings>,
}

const COLUMNS: &str = "id, provider, model_id, display_name, model_type, is_active, settings, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<AiModel> {
    Ok(AiModel {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        provider: parse_enum(&row.try_get::<String, _>("provider")?, "provider")?,
        model_id: row.try_get("model_id")?,
        display_name: row.try_get("display_name")?,
        model_type: parse_enum(&row.try_get::<String, _>("model_type")?, "model type")?,
        is_active: row.try_get::<i64, _>("is_active")? != 0,
        settings: parse_json(&row.try_get::<String, _>("settings")?, "model settings")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The catalogue; with `call_capable`, only models of type call or both.
    pub async fn list_models(&self, call_capable: bool) -> StoreResult<Vec<AiModel>> {
        let filter = if call_capable { "WHERE model_type IN ('call', 'both')" } else { "" };
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM ai_models {filter} ORDER BY provider, display_name, id"))
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(from_row).collect()
    }

    /// One model.
    pub async fn model(&self, id: ModelId) -> StoreResult<Option<AiModel>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM ai_models WHERE id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Adds a model; `Conflict` if the provider already has that model id.
    pub async fn create_model(&self, new: NewModel) -> StoreResult<AiModel> {
        let now = now_ms();
        let id = ModelId::new();
        sqlx::query(
            "INSERT INTO ai_models (id, provider, model_id, display_name, model_type, is_active, settings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.as_string())
        .bind(new.provider.as_str())
        .bind(&new.model_id)
        .bind(&new.display_name)
        .bind(new.model_type.as_str())
        .bind(i64::from(new.is_active))
        .bind(json(&new.settings))
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(AiModel {
            id,
            provider: new.provider,
            model_id: new.model_id,
            display_name: new.display_name,
            model_type: new.model_type,
            is_active: new.is_active,
            settings: new.settings,
            created_at: now,
            updated_at: now,
        })
    }

    /// Changes a model; None if it does not exist.
    pub async fn update_model(&self, id: ModelId, patch: ModelPatch) -> StoreResult<Option<AiModel>> {
        let Some(mut model) = self.model(id).await? else { return Ok(None) };
        if let Some(name) = patch.display_name {
            model.display_name = name;
        }
        if let Some(kind) = patch.model_type {
            model.model_type = kind;
        }
        if let Some(active) = patch.is_active {
            model.is_active = active;
        }
        if let Some(settings) = patch.settings {
            model.settings = settings;
        }
        model.updated_at = now_ms();
        sqlx::query(
            "UPDATE ai_models SET display_name = $1, model_type = $2, is_active = $3, settings = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&model.display_name)
        .bind(model.model_type.as_str())
        .bind(i64::from(model.is_active))
        .bind(json(&model.settings))
        .bind(model.updated_at)
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        Ok(Some(model))
    }

    /// Deletes a model; `ForeignKey` while a chatbot still uses it for calls.
    pub async fn delete_model(&self, id: ModelId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM ai_models WHERE id = $1").bind(id.as_string()).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Chatbots whose calls use this model (to explain a refused delete).
    pub async fn count_chatbots_using_model(&self, id: ModelId) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM chatbots WHERE call_model_id = $1")
            .bind(id.as_string())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(seeded_catalogue_has_chat_and_call_models, |store| {
        use crate::store::{ModelType, Provider};
        let all = store.list_models(false).await.unwrap();
        let chat: Vec<_> =
            all.iter().filter(|m| m.model_type == ModelType::Chat).map(|m| m.model_id.as_str()).collect();
        for id in ["gpt-5.2", "gpt-5-mini", "gpt-5-nano", "gemini-3-pro-preview", "gemini-3-flash-preview"] {
            assert!(chat.contains(&id), "{id} seeded as chat");
        }
        let call = store.list_models(true).await.unwrap();
        let ids: Vec<_> = call.iter().map(|m| m.model_id.as_str()).collect();
        for id in ["gpt-4o-realtime-preview-2024-10-01", "gemini-2.0-flash-exp", "gpt-realtime"] {
            assert!(ids.contains(&id), "{id} seeded as call");
        }
        assert!(call.iter().all(|m| m.model_type.is_call_capable()));
        let beta = call.iter().find(|m| m.model_id == "gpt-4o-realtime-preview-2024-10-01").unwrap();
        assert_eq!(beta.realtime_dialect(), crate::store::RealtimeDialect::Beta);
        assert!(call.iter().any(|m| m.provider == Provider::Google && m.model_id.contains("native-audio")));
    });

    store_test!(models_are_created_updated_and_deleted, |store| {
        use crate::store::{ModelPatch, ModelType, NewModel, Provider, StoreError};
        let new = || NewModel {
            provider: Provider::OpenAi,
            model_id: "gpt-realtime-mini".into(),
            display_name: "Mini".into(),
            model_type: ModelType::Call,
            is_active: true,
            settings: Default::default(),
        };
        let model = store.create_model(new()).await.unwrap();
        assert!(matches!(store.create_model(new()).await, Err(StoreError::Conflict)));
        let patched = store
            .update_model(
                model.id,
                ModelPatch { model_type: Some(ModelType::Both), is_active: Some(false), ..Default::default() },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(patched.model_type, ModelType::Both);
        assert!(!patched.usable_for_calls());
        assert!(store.delete_model(model.id).await.unwrap());
        assert!(store.model(model.id).await.unwrap().is_none());
        assert!(!store.delete_model(model.id).await.unwrap());
    });
}
