//! `call_recordings`: where each call's recording is stored and what it holds.

use sqlx::Row;

use super::{Store, StoreResult, parse_id};
use crate::ids::{CallId, CompanyId, RecordingId};
use crate::time::UnixMs;

/// The format of every recording: stereo Ogg Opus.
pub const RECORDING_FORMAT: &str = "ogg/opus";

/// A stored recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub id: RecordingId,
    pub call_id: CallId,
    pub company_id: CompanyId,
    /// Where the file is, relative to the storage root.
    pub object_key: String,
    /// `ogg/opus`.
    pub format: String,
    pub duration_ms: i64,
    pub bytes: i64,
    pub created_at: UnixMs,
}

/// A recording to store.
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub call_id: CallId,
    pub company_id: CompanyId,
    pub object_key: String,
    pub duration_ms: i64,
    pub bytes: i64,
    /// When the file was stored (the retention clock starts here).
    pub created_at: UnixMs,
}

const COLUMNS: &str = "id, call_id, company_id, object_key, format, duration_ms, bytes, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Recording> {
    Ok(Recording {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        call_id: parse_id(&row.try_get::<String, _>("call_id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        object_key: row.try_get("object_key")?,
        format: row.try_get("format")?,
        duration_ms: row.try_get("duration_ms")?,
        bytes: row.try_get("bytes")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Records a stored recording. [`super::StoreError::Conflict`] if the call has one
    /// already; [`super::StoreError::ForeignKey`] if the call (or company) is gone.
    pub async fn insert_recording(&self, new: &NewRecording) -> StoreResult<Recording> {
        let recording = Recording {
            id: RecordingId::new(),
            call_id: new.call_id,
            company_id: new.company_id,
            object_key: new.object_key.clone(),
            format: RECORDING_FORMAT.to_owned(),
            duration_ms: new.duration_ms,
            bytes: new.bytes,
            created_at: new.created_at,
        };
        // The call must belong to the company: a recording can never cross tenants.
        let done = sqlx::query(
            "INSERT INTO call_recordings (id, call_id, company_id, object_key, format, duration_ms, bytes, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM calls WHERE id = $9 AND company_id = $10)",
        )
        .bind(recording.id.as_string())
        .bind(recording.call_id.as_string())
        .bind(recording.company_id.as_string())
        .bind(&recording.object_key)
        .bind(&recording.format)
        .bind(recording.duration_ms)
        .bind(recording.bytes)
        .bind(recording.created_at)
        .bind(recording.call_id.as_string())
        .bind(recording.company_id.as_string())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(super::StoreError::ForeignKey);
        }
        Ok(recording)
    }

    /// The recording of a company's call.
    pub async fn recording_for_call(&self, company: CompanyId, call: CallId) -> StoreResult<Option<Recording>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM call_recordings WHERE call_id = $1 AND company_id = $2"))
            .bind(call.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A recording by id, whoever's it is: for signed links, whose signature names it.
    pub async fn recording(&self, id: RecordingId) -> StoreResult<Option<Recording>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM call_recordings WHERE id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Up to `limit` of a company's recordings stored before `cutoff`, oldest first.
    pub async fn recordings_created_before(
        &self,
        company: CompanyId,
        cutoff: UnixMs,
        limit: i64,
    ) -> StoreResult<Vec<Recording>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_recordings WHERE company_id = $1 AND created_at < $2 \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(company.as_string())
        .bind(cutoff)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Forgets a recording (its file is deleted first by the caller). False if it was gone.
    pub async fn delete_recording(&self, company: CompanyId, id: RecordingId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM call_recordings WHERE id = $1 AND company_id = $2")
            .bind(id.as_string())
            .bind(company.as_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(a_recording_belongs_to_its_call_and_company, |store| {
        use crate::settings::{ChatbotSettings, CompanySettings};
        use crate::store::{CallSource, ChatbotType, NewCall, NewChatbot, NewRecording, StoreError};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let bot = store
            .create_chatbot(
                acme.id,
                NewChatbot {
                    name: "Voice".into(),
                    description: String::new(),
                    chatbot_type: ChatbotType::Call,
                    call_model_id: None,
                    instructions: String::new(),
                    settings: ChatbotSettings::default(),
                },
            )
            .await
            .unwrap();
        let new_call = || NewCall {
            company_id: acme.id,
            chatbot_id: bot.id,
            source: CallSource::Web,
            is_test: false,
            caller: None,
            provider: "openai".into(),
            model_id: "gpt-realtime".into(),
            node_id: "node-a".into(),
            token_hash: None,
            token_expires_at: None,
            integration_account_id: None,
            external_id: None,
        };
        let (old_call, new_call) =
            (store.create_call(new_call()).await.unwrap(), store.create_call(new_call()).await.unwrap());
        let record = |call, at| NewRecording {
            call_id: call,
            company_id: acme.id,
            object_key: format!("{}/{call}.ogg", acme.id),
            duration_ms: 61_000,
            bytes: 123_456,
            created_at: at,
        };
        let old = store.insert_recording(&record(old_call.id, 1_000)).await.unwrap();
        let fresh = store.insert_recording(&record(new_call.id, 5_000)).await.unwrap();
        assert_eq!(old.format, "ogg/opus");
        assert!(matches!(store.insert_recording(&record(old_call.id, 2_000)).await, Err(StoreError::Conflict)));
        let foreign = NewRecording { company_id: globex.id, ..record(crate::ids::CallId::new(), 1) };
        assert!(matches!(store.insert_recording(&foreign).await, Err(StoreError::ForeignKey)), "no such call");
        let crossed = NewRecording { company_id: globex.id, ..record(old_call.id, 1) };
        assert!(
            matches!(store.insert_recording(&crossed).await, Err(StoreError::ForeignKey)),
            "another company's call"
        );

        assert_eq!(store.recording_for_call(acme.id, old_call.id).await.unwrap(), Some(old.clone()));
        assert_eq!(store.recording_for_call(globex.id, old_call.id).await.unwrap(), None);
        assert_eq!(store.recording(fresh.id).await.unwrap(), Some(fresh.clone()));
        let due = store.recordings_created_before(acme.id, 5_000, 10).await.unwrap();
        assert_eq!(due, vec![old.clone()]);
        assert!(store.recordings_created_before(globex.id, i64::MAX, 10).await.unwrap().is_empty());

        assert!(!store.delete_recording(globex.id, old.id).await.unwrap(), "only by its own company");
        assert!(store.delete_recording(acme.id, old.id).await.unwrap());
        assert!(!store.delete_recording(acme.id, old.id).await.unwrap());
        assert!(store.recording_for_call(acme.id, old_call.id).await.unwrap().is_none());
    });
}
