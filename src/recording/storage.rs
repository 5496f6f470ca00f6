//! Where finished recordings live: a local directory (the default) or S3-compatible
//! storage, both through the `object_store` crate.
//!
//! Keys are relative (`<company>/<call>.ogg`); an S3 prefix from `GATEWAY_RECORDINGS_URL`
//! is applied here, so the database never depends on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tokio::io::AsyncReadExt;

/// Files up to this size are stored in one request; larger ones in parts of this size
/// (S3 wants parts of 5 MiB or more).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// How recordings storage is configured (from `gateway serve`'s options).
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    /// `s3://BUCKET/PREFIX`, `file:///PATH`, a path, or `None` for `<data_dir>/recordings`.
    pub url: Option<String>,
    /// The data directory (for the default).
    pub data_dir: PathBuf,
    /// An S3 endpoint other than AWS.
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints.
    pub allow_http: bool,
    /// Credentials and region; the AWS_* environment fills in what is not given.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
}

enum Backend {
    Local { fs: Arc<LocalFileSystem>, root: PathBuf },
    S3 { s3: Arc<AmazonS3>, bucket: String, prefix: String },
}

/// The recordings store. Cheap to clone.
#[derive(Clone)]
pub struct RecordingStorage {
    backend: Arc<Backend>,
}

impl std::fmt::Debug for RecordingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A storage operation that failed (after `object_store`'s own retries for S3).
pub type StorageError = object_store::Error;

impl RecordingStorage {
    /// Storage as configured: S3 for `s3://…`, else a local directory (created if needed).
    pub fn from_config(config: &StorageConfig) -> anyhow::Result<Self> {
        let url = config.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        match url {
            Some(url) if url.starts_with("s3://") => Self::s3(url, config),
            Some(url) => {
                let path = match url.strip_prefix("file://") {
                    Some(path) => PathBuf::from(path),
                    None if url.contains("://") => {
                        anyhow::bail!("GATEWAY_RECORDINGS_URL must be s3://BUCKET/PREFIX or a directory, not {url}")
                    }
                    None => PathBuf::from(url),
                };
                Self::local(&path)
            }
            None => Self::local(&config.data_dir.join("recordings")),
        }
    }

    /// A local directory, created if needed.
    pub fn local(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the recordings directory {}", root.display()))?;
        let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
        let fs = LocalFileSystem::new_with_prefix(&root).context("opening the recordings directory")?;
        Ok(Self { backend: Arc::new(Backend::Local { fs: Arc::new(fs), root }) })
    }

    fn s3(url: &str, config: &StorageConfig) -> anyhow::Result<Self> {
        let rest = url.trim_start_matches("s3://");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            anyhow::bail!("GATEWAY_RECORDINGS_URL names no bucket: {url}");
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
            ..Default::default()
        });
        if config.allow_http {
            // Only ever switched on here: AWS_ALLOW_HTTP from the environment stands otherwise.
            builder = builder.with_allow_http(true);
        }
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = config.access_key_id.as_deref().filter(|k| !k.is_empty()) {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = config.secret_access_key.as_deref().filter(|k| !k.is_empty()) {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(region) = config.region.as_deref().filter(|r| !r.is_empty()) {
            builder = builder.with_region(region);
        }
        let s3 = builder.build().context("configuring S3 recordings storage")?;
        Ok(Self {
            backend: Arc::new(Backend::S3 {
                s3: Arc::new(s3),
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            }),
        })
    }

    /// Where recordings go, for logs (never credentials).
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Local { root, .. } => format!("local directory {}", root.display()),
            Backend::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Whether this is S3-compatible storage (links are presigned there).
    pub fn is_s3(&self) -> bool {
        matches!(&*self.backend, Backend::S3 { .. })
    }

    fn location(&self, key: &str) -> ObjectPath {
        match &*self.backend {
            Backend::S3 { prefix, .. } if !prefix.is_empty() => ObjectPath::from(format!("{prefix}/{key}")),
            _ => ObjectPath::from(key),
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        match &*self.backend {
            Backend::Local { fs, .. } => fs.as_ref(),
            Backend::S3 { s3, .. } => s3.as_ref(),
        }
    }

    /// Stores the file at `file` under `key` (replacing what was there); returns its size.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64, StorageError> {
        let io = |source: std::io::Error| object_store::Error::Generic { store: "recordings", source: source.into() };
        let location = self.location(key);
        let size = tokio::fs::metadata(file).await.map_err(io)?.len();
        if size <= PART_SIZE as u64 {
            let bytes = tokio::fs::read(file).await.map_err(io)?;
            self.store().put(&location, PutPayload::from(bytes)).await?;
            return Ok(size);
        }
        let upload = self.store().put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut input = tokio::fs::File::open(file).await.map_err(io)?;
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let n = match input.read(&mut buffer).await {
                Ok(n) => n,
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(io(err));
                }
            };
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await?;
            writer.write(&buffer[..n]);
        }
        writer.finish().await?;
        Ok(size)
    }

    /// The stored bytes (tests and tools; the API hands out links instead).
    pub async fn read(&self, key: &str) -> Result<bytes::Bytes, StorageError> {
        self.store().get(&self.location(key)).await?.bytes().await
    }

    /// Deletes a stored file; one that is already gone counts as deleted.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store().delete(&self.location(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The file on local disk, for the gateway's own download route (`None` on S3).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match &*self.backend {
            Backend::Local { fs, .. } => fs.path_to_filesystem(&self.location(key)).ok(),
            Backend::S3 { .. } => None,
        }
    }

    /// A presigned S3 GET URL valid for `ttl` (`None` for local storage).
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<Option<url::Url>, StorageError> {
        match &*self.backend {
            Backend::S3 { s3, .. } => Ok(Some(s3.signed_url(axum::http::Method::GET, &self.location(key), ttl).await?)),
            Backend::Local { .. } => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: Option<&str>, data_dir: &Path) -> StorageConfig {
        StorageConfig { url: url.map(str::to_owned), data_dir: data_dir.to_path_buf(), ..Default::default() }
    }

    #[tokio::test]
    async fn local_storage_defaults_to_the_data_directory_and_round_trips_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RecordingStorage::from_config(&config(None, dir.path())).unwrap();
        assert!(!storage.is_s3());
        let file = dir.path().join("spool.ogg");
        std::fs::write(&file, b"OggS recording").unwrap();
        assert_eq!(storage.put_file("acme/call.ogg", &file).await.unwrap(), 14);
        let stored = storage.local_path("acme/call.ogg").unwrap();
        assert!(stored.starts_with(dir.path().canonicalize().unwrap().join("recordings")));
        assert_eq!(std::fs::read(&stored).unwrap(), b"OggS recording");
        assert_eq!(&storage.read("acme/call.ogg").await.unwrap()[..], b"OggS recording");
        assert!(storage.presigned_get("acme/call.ogg", Duration::from_secs(60)).await.unwrap().is_none());
        storage.delete("acme/call.ogg").await.unwrap();
        assert!(!stored.exists());
        storage.delete("acme/call.ogg").await.unwrap();
    }

    #[tokio::test]
    async fn large_files_go_up_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RecordingStorage::local(&dir.path().join("store")).unwrap();
        let file = dir.path().join("big.ogg");
        let data: Vec<u8> = (0..PART_SIZE + 12_345).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        assert_eq!(storage.put_file("a/b.ogg", &file).await.unwrap(), data.len() as u64);
        assert_eq!(storage.read("a/b.ogg").await.unwrap().to_vec(), data);
    }

    #[test]
    fn urls_name_s3_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file_url = format!("file://{}", dir.path().join("x").display());
        assert!(!RecordingStorage::from_config(&config(Some(&file_url), dir.path())).unwrap().is_s3());
        assert!(RecordingStorage::from_config(&config(Some("gs://bucket/x"), dir.path())).is_err());
        assert!(RecordingStorage::from_config(&config(Some("s3:///x"), dir.path())).is_err());
        let s3 = StorageConfig {
            url: Some("s3://calls/prod/recordings/".into()),
            access_key_id: Some("key".into()),
            secret_access_key: Some("secret".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let storage = RecordingStorage::from_config(&s3).unwrap();
        assert!(storage.is_s3());
        assert_eq!(storage.describe(), "s3://calls/prod/recordings");
        assert_eq!(storage.location("a/b.ogg").as_ref(), "prod/recordings/a/b.ogg");
    }
}
