//! Secrets at rest and bearer tokens.
//!
//! Credentials are sealed with AES-256-GCM: a fresh 96-bit nonce per record, the record's
//! id as associated data (so a sealed blob cannot be moved to another row), and the id of
//! the key that sealed it stored beside it, so old keys can keep opening old records while
//! new records use the current key.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured key is not base64 of 32 bytes.
    #[error("encryption key must be base64 of exactly 32 bytes")]
    BadKey,
    /// The record was sealed with a key this node does not have.
    #[error("no encryption key with id {0} is configured")]
    UnknownKey(String),
    /// The blob was altered, or sealed for another record.
    #[error("sealed data failed authentication")]
    Tampered,
}

/// A named AES-256-GCM key.
struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
    /// HMAC-SHA256 keyed with the raw key, for deriving keys for other purposes.
    deriver: hmac::Hmac<Sha256>,
}

impl SealingKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        // The key id is a fingerprint, not the key: 8 hex digits of its SHA-256.
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        let deriver = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { id, cipher, deriver })
    }

    fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        Self::from_bytes(&bytes)
    }
}

/// A sealed secret as stored: which key sealed it, and `base64(nonce || ciphertext+tag)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// Nonce and ciphertext, base64.
    pub blob: String,
}

/// Seals with the current key; opens with the current or any previous key.
pub struct Sealer {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.current.id).finish_non_exhaustive()
    }
}

/// Where the encryption key came from, so startup can warn about a generated one.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    /// GATEWAY_ENCRYPTION_KEY.
    Configured,
    /// Read from the data directory, where an earlier development run generated it.
    DevelopmentFile,
    /// Generated just now into the data directory.
    GeneratedNow,
}

impl Sealer {
    /// A sealer from base64 keys.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self, CryptoError> {
        Ok(Self {
            current: SealingKey::from_base64(current)?,
            previous: previous.iter().map(|k| SealingKey::from_base64(k)).collect::<Result<_, _>>()?,
        })
    }

    /// The configured key, or in development a key kept in `<data_dir>/encryption.key`
    /// (generated on first use).
    pub fn from_config_or_dev_file(
        configured: Option<&str>,
        previous: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<(Self, KeySource)> {
        let previous: Vec<&str> =
            previous.map(|p| p.split(',').map(str::trim).filter(|k| !k.is_empty()).collect()).unwrap_or_default();
        if let Some(key) = configured.filter(|k| !k.trim().is_empty()) {
            return Ok((Self::new(key, &previous)?, KeySource::Configured));
        }
        let path = data_dir.join("encryption.key");
        if path.exists() {
            let key = std::fs::read_to_string(&path)?;
            return Ok((Self::new(&key, &previous)?, KeySource::DevelopmentFile));
        }
        std::fs::create_dir_all(data_dir)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let key = STANDARD.encode(bytes);
        write_private_file(&path, &key)?;
        Ok((Self::new(&key, &previous)?, KeySource::GeneratedNow))
    }

    /// A 32-byte key for another purpose (e.g. signing recording links), derived from the
    /// current encryption key as HMAC-SHA256(key, `label`): one configured secret serves
    /// several uses without any two of them sharing a key, and the derived key reveals
    /// nothing about the encryption key.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = self.current.deriver.clone();
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Id of the key new records are sealed with.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for the record identified by `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        let mut blob = Vec::with_capacity(nonce.len() + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Sealed { key_id: self.current.id.clone(), blob: STANDARD.encode(blob) }
    }

    /// Opens a sealed record; fails if it was altered or sealed for another `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let blob = STANDARD.decode(&sealed.blob).map_err(|_| CryptoError::Tampered)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Tampered);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// A new random secret token: `prefix` followed by 43 characters of base64url (256 bits).
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token: hex SHA-256. Tokens carry 256 random bits, so a plain
/// hash is enough (no password-style stretching needed) and lookups stay indexable.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Shows only the last four characters of a secret, as `••••1a2b`.
pub fn mask(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if secret.chars().count() <= 8 { "••••".to_owned() } else { format!("••••{tail}") }
}

/// Constant-time equality for secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        STANDARD.encode([7u8; 32])
    }

    #[test]
    fn sealed_secrets_open_only_for_their_record() {
        let sealer = Sealer::new(&key(), &[]).unwrap();
        let sealed = sealer.seal(b"s3cret", b"record-1");
        assert!(!sealed.blob.contains("s3cret"));
        assert_eq!(sealer.open(&sealed, b"record-1").unwrap(), b"s3cret");
        assert!(matches!(sealer.open(&sealed, b"record-2"), Err(CryptoError::Tampered)));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let sealer = Sealer::new(&key(), &[]).unwrap();
        assert_ne!(sealer.seal(b"x", b"r").blob, sealer.seal(b"x", b"r").blob);
    }

    #[test]
    fn previous_keys_still_open_old_records() {
        let old = Sealer::new(&key(), &[]).unwrap();
        let sealed = old.seal(b"token", b"r");
        let new_key = STANDARD.encode([9u8; 32]);
        let rotated = Sealer::new(&new_key, &[&key()]).unwrap();
        assert_ne!(rotated.key_id(), old.key_id());
        assert_eq!(rotated.open(&sealed, b"r").unwrap(), b"token");
        let without = Sealer::new(&new_key, &[]).unwrap();
        assert!(matches!(without.open(&sealed, b"r"), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn tampered_blobs_are_refused() {
        let sealer = Sealer::new(&key(), &[]).unwrap();
        let mut sealed = sealer.seal(b"token", b"r");
        let mut bytes = STANDARD.decode(&sealed.blob).unwrap();
        bytes[14] ^= 1;
        sealed.blob = STANDARD.encode(bytes);
        assert!(matches!(sealer.open(&sealed, b"r"), Err(CryptoError::Tampered)));
    }

    #[test]
    fn derived_keys_differ_by_label_and_by_encryption_key() {
        let sealer = Sealer::new(&key(), &[]).unwrap();
        let links = sealer.derive_key("recording links");
        assert_eq!(links, sealer.derive_key("recording links"));
        assert_ne!(links, sealer.derive_key("something else"));
        assert_ne!(links, [7u8; 32]);
        let other = Sealer::new(&STANDARD.encode([9u8; 32]), &[]).unwrap();
        assert_ne!(links, other.derive_key("recording links"));
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(Sealer::new(&STANDARD.encode([1u8; 16]), &[]).is_err());
        assert!(Sealer::new("not base64!", &[]).is_err());
    }

    #[test]
    fn masks_show_only_the_last_four_characters() {
        assert_eq!(mask("0123456789abcdef1a2b"), "••••1a2b");
        assert_eq!(mask("short"), "••••");
    }

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let t = new_token("gw_");
        assert!(t.starts_with("gw_") && t.len() == 3 + 43);
        assert_ne!(t, new_token("gw_"));
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_eq!(token_hash(&t).len(), 64);
    }

    #[test]
    fn dev_key_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = Sealer::from_config_or_dev_file(None, None, dir.path()).unwrap();
        assert_eq!(source, KeySource::GeneratedNow);
        let (_, source) = Sealer::from_config_or_dev_file(None, None, dir.path()).unwrap();
        assert_eq!(source, KeySource::DevelopmentFile);
    }
}
