//! A recording's writer task: drains the tap's queue, encodes (`media::RecordingEncoder`)
//! into a spool file on local disk, and when the call ends stores the file and its row.
//!
//! The spool file is `<company>.<call>.ogg.part` while it grows and `<company>.<call>.ogg`
//! once complete; it is removed when the recording is stored. Disk writes happen on a task
//! of their own, so a slow disk holds up neither the call nor the encoding (pages wait in
//! memory meanwhile). Whatever is left in the spool directory — a file storage refused, or
//! one a crash cut short — is sealed and stored at the next start (`recover`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use media::{RecordingEncoder, SealedStream, seal_truncated_stream};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::Recordings;
use super::tap::{EndInfo, TapAudio, TapShared};
use crate::ids::{CallId, CompanyId};
use crate::store::{NewRecording, StoreError};
use crate::time::{UnixMs, now_ms, rfc3339};

/// Room for the pages made between two hand-overs to the disk task (a page, about a
/// second of audio, is at most 4 KB at the default 32 kbit/s).
const CHUNK: usize = 16 * 1024;
/// Chunks (about a second each) waiting for the disk before pages are kept in memory instead.
const DISK_QUEUE: usize = 16;
/// Pages kept in memory for a disk that does not keep up, before the recording is given
/// up (over four hours even at the default's most, 32 kbit/s).
const MAX_BACKLOG: usize = 64 * 1024 * 1024;
/// Waits before storing again after a failure; then the file waits for the next start.
const STORE_RETRIES: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(15)];

/// Everything a writer task needs besides the service.
pub(super) struct WriterJob {
    pub call_id: CallId,
    pub company_id: CompanyId,
    pub answered_at: UnixMs,
    pub shared: Arc<TapShared>,
    pub end: oneshot::Receiver<EndInfo>,
}

/// The object key of a call's recording.
pub fn object_key(company: CompanyId, call: CallId) -> String {
    format!("{company}/{call}.ogg")
}

fn spool_name(company: CompanyId, call: CallId) -> String {
    format!("{company}.{call}.ogg")
}

/// Parses `<company>.<call>.ogg[.part]`.
fn parse_spool_name(name: &str) -> Option<(CompanyId, CallId, bool)> {
    let (stem, partial) = match name.strip_suffix(".ogg.part") {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(".ogg")?, false),
    };
    let (company, call) = stem.split_once('.')?;
    Some((company.parse().ok()?, call.parse().ok()?, partial))
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("spool file: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoder: {0}")]
    Media(#[from] media::MediaError),
    #[error("the disk has not kept up: {0} bytes of recording waited in memory")]
    Backlog(usize),
}

/// Records one call: runs until the tap finishes (or goes away), then stores the file.
pub(super) async fn run(recordings: Arc<Recordings>, job: WriterJob) {
    let span = tracing::info_span!("recording", call_id = %job.call_id, company_id = %job.company_id);
    async move {
        let (company, call) = (job.company_id, job.call_id);
        let spool = recordings.spool_dir.join(spool_name(company, call));
        let partial = spool.with_extension("ogg.part");
        match encode(&recordings, job, &partial).await {
            Ok(duration_ms) => {
                if let Err(err) = tokio::fs::rename(&partial, &spool).await {
                    tracing::error!(error = %err, "could not complete the spool file; it is stored at the next start");
                    crate::metrics::recording_finished("kept_for_retry");
                    return;
                }
                store(&recordings, company, call, &spool, duration_ms).await;
            }
            Err(err) => {
                // What reached the disk is still a recording: seal it and store it.
                tracing::error!(error = %err, "recording stopped early; storing what was written");
                recover_file(&recordings, company, call, &partial).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// Encodes the tap's frames into `partial` until the end; returns the duration.
async fn encode(recordings: &Recordings, job: WriterJob, partial: &Path) -> Result<u64, WriteError> {
    let file = tokio::fs::File::create(partial).await?;
    let (chunks, chunks_rx) = mpsc::channel::<Vec<u8>>(DISK_QUEUE);
    let disk = tokio::spawn(write_chunks(file, chunks_rx));
    let shared = job.shared.clone();
    let encoded = encode_pages(recordings, job, &chunks).await;
    // However encoding ended, what was handed to the disk is written out before the file
    // is read again.
    drop(chunks);
    let written = disk.await.map_err(|e| std::io::Error::other(e.to_string()))?;
    let summary = encoded?;
    let written = written?;
    let dropped = shared.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let stats = summary.stats;
    let refused = stats.late + stats.duplicates + stats.bad_frames + stats.beyond_end;
    crate::metrics::recording_frames_dropped(dropped + refused);
    tracing::info!(
        duration_ms = summary.duration_ms,
        bytes = written,
        // Slots each side was encoded for; the rest were silence (a stored packet, no encode).
        encoded_left = summary.encoded[0],
        encoded_right = summary.encoded[1],
        queue_full = dropped,
        late = stats.late,
        duplicates = stats.duplicates,
        bad_frames = stats.bad_frames,
        beyond_end = stats.beyond_end,
        "recording encoded"
    );
    Ok(summary.duration_ms)
}

async fn encode_pages(
    recordings: &Recordings,
    job: WriterJob,
    chunks: &mpsc::Sender<Vec<u8>>,
) -> Result<media::RecordingSummary, WriteError> {
    let WriterJob { call_id, answered_at, shared, mut end, .. } = job;
    let mut pages = Vec::with_capacity(2 * CHUNK);
    let (call, answered) = (call_id.to_string(), rfc3339(answered_at));
    let tags = [
        ("ENCODER", "voice-gateway"),
        ("CALL_ID", call.as_str()),
        ("ANSWERED_AT", answered.as_str()),
        ("LEFT", "caller"),
        ("RIGHT", "agent"),
    ];
    let mut encoder = RecordingEncoder::new(recordings.config, rand::random(), &tags, &mut pages)?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            end = &mut end => break end.ok(),
            _ = shared.wake.notified() => {}
            _ = tick.tick() => {}
        }
        drain(&shared, &mut encoder, &mut pages)?;
        // Pages go to disk as they are made (one a second), so a crash loses little.
        if !pages.is_empty() {
            hand_to_disk(chunks, &mut pages)?;
        }
    };
    drain(&shared, &mut encoder, &mut pages)?;
    if ended.is_none() {
        tracing::warn!("the call's recording tap went away without an end; ending at the last frame");
    }
    // End slot 0 means "at the last frame seen" (the encoder never cuts frames it has).
    let summary = encoder.finish(ended.map_or(0, |e| e.end_slot), &mut pages)?;
    chunks.send(pages).await.map_err(|_| std::io::Error::other("the spool file's writer stopped"))?;
    Ok(summary)
}

fn drain(shared: &TapShared, encoder: &mut RecordingEncoder, pages: &mut Vec<u8>) -> Result<(), WriteError> {
    while let Some(frame) = shared.queue.pop() {
        match &frame.audio {
            TapAudio::Pcm { rate, len, pcm } => encoder.push(frame.side, frame.slot, *rate, &pcm[..*len], pages)?,
            TapAudio::Opus { len, packet } => encoder.push_opus(frame.side, frame.slot, &packet[..*len], pages)?,
        };
    }
    Ok(())
}

/// Passes the pages to the disk task if it has room; otherwise they wait in memory.
fn hand_to_disk(chunks: &mpsc::Sender<Vec<u8>>, pages: &mut Vec<u8>) -> Result<(), WriteError> {
    match chunks.try_reserve() {
        Ok(permit) => {
            permit.send(std::mem::replace(pages, Vec::with_capacity(2 * CHUNK)));
            Ok(())
        }
        Err(mpsc::error::TrySendError::Full(())) if pages.len() <= MAX_BACKLOG => Ok(()),
        Err(mpsc::error::TrySendError::Full(())) => Err(WriteError::Backlog(pages.len())),
        Err(mpsc::error::TrySendError::Closed(())) => {
            Err(std::io::Error::other("the spool file's writer stopped").into())
        }
    }
}

/// Writes chunks to the spool file in order; flushes and syncs at the end.
async fn write_chunks(mut file: tokio::fs::File, mut chunks: mpsc::Receiver<Vec<u8>>) -> std::io::Result<u64> {
    let mut written = 0u64;
    while let Some(chunk) = chunks.recv().await {
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
        crate::metrics::recording_bytes_written(chunk.len() as u64);
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(written)
}

/// Stores a complete spool file and its row, retrying storage a few times; a file that
/// cannot be stored stays in the spool for the next start.
pub(super) async fn store(recordings: &Recordings, company: CompanyId, call: CallId, spool: &Path, duration_ms: u64) {
    let key = object_key(company, call);
    let mut waits = STORE_RETRIES.iter();
    let bytes = loop {
        match recordings.storage.put_file(&key, spool).await {
            Ok(bytes) => break bytes,
            Err(err) => {
                let next = waits.next().filter(|_| !recordings.shutdown.is_cancelled());
                let Some(wait) = next else {
                    tracing::error!(error = %err, spool = %spool.display(),
                        "could not store the recording; it stays on local disk and is stored at the next start");
                    crate::metrics::recording_finished("kept_for_retry");
                    return;
                };
                tracing::warn!(error = %err, retry_in = ?wait, "could not store the recording; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(*wait) => {}
                    _ = recordings.shutdown.cancelled() => {}
                }
            }
        }
    };
    let row = NewRecording {
        call_id: call,
        company_id: company,
        object_key: key.clone(),
        duration_ms: duration_ms as i64,
        bytes: bytes as i64,
        created_at: now_ms(),
    };
    match recordings.store.insert_recording(&row).await {
        Ok(_) | Err(StoreError::Conflict) => {
            tracing::info!(duration_ms, bytes, storage = %recordings.storage.describe(), "recording stored");
            crate::metrics::recording_finished("stored");
        }
        Err(StoreError::ForeignKey) => {
            // The call was deleted while its recording was being stored: so is the file.
            tracing::info!("the call was deleted meanwhile; deleting its recording too");
            if let Err(err) = recordings.storage.delete(&key).await {
                tracing::warn!(error = %err, "could not delete the recording of a deleted call");
            }
            crate::metrics::recording_finished("failed");
        }
        Err(err) => {
            tracing::error!(error = %err, "could not record the stored recording; it is stored again at the next start");
            crate::metrics::recording_finished("kept_for_retry");
            return;
        }
    }
    if let Err(err) = tokio::fs::remove_file(spool).await {
        tracing::warn!(error = %err, spool = %spool.display(), "could not remove the spool file");
    }
}

/// Seals a spool file (complete or cut short) and stores it; one with no audio is removed.
async fn recover_file(recordings: &Recordings, company: CompanyId, call: CallId, path: &Path) {
    let sealed = match seal_file(path).await {
        Ok(sealed) => sealed,
        Err(err) => {
            tracing::warn!(error = %err, spool = %path.display(), "an unreadable or empty spool file; removing it");
            crate::metrics::recording_finished("failed");
            let _ = tokio::fs::remove_file(path).await;
            return;
        }
    };
    let complete = recordings.spool_dir.join(spool_name(company, call));
    if path != complete
        && let Err(err) = tokio::fs::rename(path, &complete).await
    {
        tracing::error!(error = %err, spool = %path.display(), "could not complete a spool file");
        return;
    }
    store(recordings, company, call, &complete, sealed.duration_ms()).await;
}

/// Reads a spool file, seals it if it was cut short, and writes it back if it changed.
async fn seal_file(path: &Path) -> anyhow::Result<SealedStream> {
    let mut bytes = tokio::fs::read(path).await?;
    let sealed = seal_truncated_stream(&mut bytes)?;
    if sealed.repaired {
        let temporary = path.with_extension("sealing");
        tokio::fs::write(&temporary, &bytes).await?;
        tokio::fs::rename(&temporary, path).await?;
    }
    Ok(sealed)
}

/// Stores whatever an earlier run left in the spool directory.
pub(super) async fn recover(recordings: Arc<Recordings>) {
    let mut entries = match tokio::fs::read_dir(&recordings.spool_dir).await {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(error = %err, "could not read the recordings spool directory");
            return;
        }
    };
    let mut found: Vec<(CompanyId, CallId, PathBuf)> = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        if let Some((company, call, _)) = name.to_str().and_then(parse_spool_name) {
            found.push((company, call, entry.path()));
        }
    }
    if found.is_empty() {
        return;
    }
    tracing::info!(files = found.len(), "storing recordings left on local disk by an earlier run");
    for (company, call, path) in found {
        if recordings.shutdown.is_cancelled() {
            break;
        }
        let span = tracing::info_span!("recording", call_id = %call, company_id = %company);
        recover_file(&recordings, company, call, &path).instrument(span).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_names_round_trip() {
        let (company, call) = (CompanyId::new(), CallId::new());
        let name = spool_name(company, call);
        assert_eq!(parse_spool_name(&name), Some((company, call, false)));
        assert_eq!(parse_spool_name(&format!("{name}.part")), Some((company, call, true)));
        assert_eq!(parse_spool_name("notes.txt"), None);
        assert_eq!(parse_spool_name("x.y.ogg"), None);
        assert_eq!(object_key(company, call), format!("{company}/{call}.ogg"));
    }
}
