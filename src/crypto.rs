//! Secrets at rest and bearer tokens.
//!
//! Credentials are sealed with AES-256-GCM: a fresh 96-bit nonce per record, the record's
//! id as associated data (so a sealed blob cannot be moved to another row), and the id of
//! the key that sealed it stored beside it. A [`Sealer`] holds a ring of keys, newest
//! last: it seals with the newest and opens with whichever key a record names, so keys
//! can be rotated (docs/deployment.md) without re-entering credentials.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why loading keys, sealing or opening failed. Messages name keys by id or position,
/// never by their material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A configured key is not base64 of 32 bytes.
    #[error("encryption key {0} must be base64 of exactly 32 bytes")]
    BadKey(String),
    /// The list of keys is malformed (bad or repeated id, no key at all).
    #[error("encryption keys: {0}")]
    BadKeyList(String),
    /// The record was sealed with a key this node does not have.
    #[error("no encryption key with id {0} is configured")]
    UnknownKey(String),
    /// The blob was altered, or sealed for another record (or with another key of the same id).
    #[error("sealed data failed authentication")]
    Tampered,
}

/// A named AES-256-GCM key.
struct SealingKey {
    /// What records sealed with it store: the name given in the key list, or the fingerprint.
    id: String,
    /// 8 hex digits of the key's SHA-256: how records sealed before keys had names find it.
    fingerprint: String,
    cipher: Aes256Gcm,
    /// A key for MACs (signed links, one-time stream tokens), derived from the sealing key
    /// so that the two uses never share a key.
    mac_key: [u8; 32],
}

impl SealingKey {
    /// `name` is the id from `id:base64`; `what` names the key in errors.
    fn from_base64(name: Option<&str>, text: &str, what: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKey(what.to_owned()))?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey(what.to_owned()));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey(what.to_owned()))?;
        let fingerprint = hex::encode(&Sha256::digest(&bytes)[..4]);
        let id = name.map_or_else(|| fingerprint.clone(), str::to_owned);
        let mac_key = hmac_sha256(&bytes, b"voice-gateway mac key v1");
        Ok(Self { id, fingerprint, cipher, mac_key })
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

/// Seals with the newest key; opens with any key of the ring.
pub struct Sealer {
    /// Never empty; the newest key is last.
    keys: Vec<SealingKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_ids", &self.key_ids().collect::<Vec<_>>()).finish()
    }
}

/// Where the encryption keys came from, so startup can warn about a generated one.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    /// GATEWAY_ENCRYPTION_KEYS, GATEWAY_ENCRYPTION_KEY_FILE or GATEWAY_ENCRYPTION_KEY.
    Configured,
    /// Read from the data directory, where an earlier development run generated it.
    DevelopmentFile,
    /// Generated just now into the data directory.
    GeneratedNow,
}

/// The key settings, as configured (see `gateway serve --help`). At most one of `keys`,
/// `key_file` and `key` may be set; `previous` only goes with `key` (or the development key).
#[derive(Debug, Clone, Default)]
pub struct KeySettings {
    /// `GATEWAY_ENCRYPTION_KEYS`: `id:base64` entries separated by commas, newest last.
    pub keys: Option<String>,
    /// `GATEWAY_ENCRYPTION_KEY_FILE`: a file of such entries, one per line (`#` comments).
    pub key_file: Option<PathBuf>,
    /// `GATEWAY_ENCRYPTION_KEY`: one base64 key, named by its fingerprint.
    pub key: Option<String>,
    /// `GATEWAY_PREVIOUS_ENCRYPTION_KEYS`: older base64 keys beside `key`, comma-separated.
    pub previous: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Sealer {
    /// A sealer from base64 keys: `current` seals, `previous` (and `current`) open.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self, CryptoError> {
        let mut keys = Vec::with_capacity(previous.len() + 1);
        for (i, key) in previous.iter().enumerate() {
            keys.push(SealingKey::from_base64(None, key, &format!("#{} of the previous keys", i + 1))?);
        }
        keys.push(SealingKey::from_base64(None, current, "(the current key)")?);
        Ok(Self { keys })
    }

    /// A sealer from a key list: entries `id:base64` (or a bare `base64`, named by its
    /// fingerprint) separated by commas or new lines, newest last; blank lines and lines
    /// starting with `#` are skipped. Ids are 1–64 letters, digits, `.`, `_` or `-`.
    pub fn from_key_list(text: &str) -> Result<Self, CryptoError> {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        let mut keys: Vec<SealingKey> = Vec::new();
        for (i, entry) in entries.enumerate() {
            let key = match entry.split_once(':') {
                Some((id, key)) => {
                    let id = id.trim();
                    let valid = (1..=64).contains(&id.len())
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                    if !valid {
                        return Err(CryptoError::BadKeyList(format!(
                            "entry #{} has an invalid id (1–64 letters, digits, '.', '_' or '-')",
                            i + 1
                        )));
                    }
                    SealingKey::from_base64(Some(id), key, &format!("{id:?}"))?
                }
                None => SealingKey::from_base64(None, entry, &format!("#{}", i + 1))?,
            };
            if keys.iter().any(|k| k.id == key.id) {
                return Err(CryptoError::BadKeyList(format!("the id {:?} is used twice", key.id)));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKeyList("no key is listed".into()));
        }
        Ok(Self { keys })
    }

    /// The configured keys, or in development a key kept in `<data_dir>/encryption.key`
    /// (generated on first use).
    pub fn load(settings: &KeySettings, data_dir: &Path) -> anyhow::Result<(Self, KeySource)> {
        Self::load_or_generate(settings, data_dir, true)
    }

    /// Like [`Sealer::load`], but never generates a development key: for commands that
    /// work on what is already sealed (`gateway keys rotate`).
    pub fn load_existing(settings: &KeySettings, data_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self::load_or_generate(settings, data_dir, false)?.0)
    }

    fn load_or_generate(settings: &KeySettings, data_dir: &Path, generate: bool) -> anyhow::Result<(Self, KeySource)> {
        let key_file = settings.key_file.as_ref().filter(|p| !p.as_os_str().is_empty());
        let (keys, key) = (given(&settings.keys), given(&settings.key));
        let configured = usize::from(keys.is_some()) + usize::from(key_file.is_some()) + usize::from(key.is_some());
        if configured > 1 {
            anyhow::bail!(
                "set only one of GATEWAY_ENCRYPTION_KEYS, GATEWAY_ENCRYPTION_KEY_FILE and GATEWAY_ENCRYPTION_KEY"
            );
        }
        let previous: Vec<&str> = given(&settings.previous)
            .map(|p| p.split(',').map(str::trim).filter(|k| !k.is_empty()).collect())
            .unwrap_or_default();
        if !previous.is_empty() && (keys.is_some() || key_file.is_some()) {
            anyhow::bail!(
                "GATEWAY_PREVIOUS_ENCRYPTION_KEYS goes with GATEWAY_ENCRYPTION_KEY only: list older keys in \
                 GATEWAY_ENCRYPTION_KEYS (or the key file) instead, newest last"
            );
        }
        if let Some(list) = keys {
            return Ok((Self::from_key_list(list)?, KeySource::Configured));
        }
        if let Some(path) = key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read GATEWAY_ENCRYPTION_KEY_FILE {}: {e}", path.display()))?;
            return Ok((Self::from_key_list(&text)?, KeySource::Configured));
        }
        if let Some(key) = key {
            return Ok((Self::new(key, &previous)?, KeySource::Configured));
        }
        let path = data_dir.join("encryption.key");
        if path.exists() {
            let key = std::fs::read_to_string(&path)?;
            return Ok((Self::new(&key, &previous)?, KeySource::DevelopmentFile));
        }
        if !generate {
            anyhow::bail!(
                "no encryption keys: set GATEWAY_ENCRYPTION_KEYS, GATEWAY_ENCRYPTION_KEY_FILE or GATEWAY_ENCRYPTION_KEY \
                 (or run where the development key {} is)",
                path.display()
            );
        }
        std::fs::create_dir_all(data_dir)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let key = STANDARD.encode(bytes);
        write_private_file(&path, &key)?;
        Ok((Self::new(&key, &previous)?, KeySource::GeneratedNow))
    }

    fn newest(&self) -> &SealingKey {
        self.keys.last().expect("a sealer has at least one key")
    }

    /// Id of the key new records are sealed with.
    pub fn key_id(&self) -> &str {
        &self.newest().id
    }

    /// Ids of every key, oldest first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The key a record names: by id, else by fingerprint (records sealed before the key
    /// was given a name in GATEWAY_ENCRYPTION_KEYS store its fingerprint).
    fn key_for(&self, id: &str) -> Option<&SealingKey> {
        self.keys.iter().rev().find(|k| k.id == id).or_else(|| self.keys.iter().rev().find(|k| k.fingerprint == id))
    }

    /// Whether a record sealed with key `id` can be opened here.
    pub fn has_key(&self, id: &str) -> bool {
        self.key_for(id).is_some()
    }

    /// Seals `plaintext` for the record identified by `aad`, with the newest key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let key = self.newest();
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        let mut blob = Vec::with_capacity(nonce.len() + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Sealed { key_id: key.id.clone(), blob: STANDARD.encode(blob) }
    }

    /// Opens a sealed record; fails if its key is missing, or it was altered or sealed
    /// for another `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.key_for(&sealed.key_id).ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let blob = STANDARD.decode(&sealed.blob).map_err(|_| CryptoError::Tampered)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Tampered);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| CryptoError::Tampered)
    }

    /// A MAC of `message` for the purpose `label` (distinct labels never validate each
    /// other's MACs), with the newest key: base64url, 43 characters.
    pub fn mac(&self, label: &str, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(labelled_mac(&self.newest().mac_key, label, message))
    }

    /// Whether `mac` is [`Self::mac`] of `message` for `label` under any key of the ring
    /// (so MACs made before a key rotation stay valid until they expire); constant-time.
    pub fn verify_mac(&self, label: &str, message: &[u8], mac: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(mac.trim()) else { return false };
        self.keys.iter().rev().any(|key| constant_time_eq(&labelled_mac(&key.mac_key, label, message), &given))
    }

    /// The record sealed again with the newest key, or `None` when it already is.
    pub fn reseal(&self, sealed: &Sealed, aad: &[u8]) -> Result<Option<Sealed>, CryptoError> {
        if sealed.key_id == self.key_id() {
            return Ok(None);
        }
        let plaintext = self.open(sealed, aad)?;
        Ok(Some(self.seal(&plaintext, aad)))
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

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn labelled_mac(key: &[u8; 32], label: &str, message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(label.as_bytes());
    mac.update(&[0]);
    mac.update(message);
    mac.finalize().into_bytes().into()
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

    #[test]
    fn macs_are_bound_to_their_label_and_message_and_survive_a_key_rotation() {
        let old_key = STANDARD.encode([1u8; 32]);
        let new_key = STANDARD.encode([2u8; 32]);
        let old = Sealer::from_key_list(&format!("a:{old_key}")).unwrap();
        let rotated = Sealer::from_key_list(&format!("a:{old_key},b:{new_key}")).unwrap();
        let mac = old.mac("stream", b"call-1");
        assert_eq!(mac.len(), 43);
        assert!(old.verify_mac("stream", b"call-1", &mac));
        assert!(!old.verify_mac("stream", b"call-2", &mac), "another message");
        assert!(!old.verify_mac("link", b"call-1", &mac), "another purpose");
        assert!(!old.verify_mac("stream", b"call-1", "not base64!"));
        assert!(rotated.verify_mac("stream", b"call-1", &mac), "made before the rotation");
        assert_ne!(rotated.mac("stream", b"call-1"), mac, "new MACs use the newest key");
    }

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
    fn keys_must_be_32_bytes() {
        assert!(Sealer::new(&STANDARD.encode([1u8; 16]), &[]).is_err());
        assert!(Sealer::new("not base64!", &[]).is_err());
        let err = Sealer::from_key_list(&format!("a:{}", STANDARD.encode([1u8; 16]))).unwrap_err();
        assert_eq!(err.to_string(), "encryption key \"a\" must be base64 of exactly 32 bytes");
    }

    #[test]
    fn key_lists_name_their_keys_newest_last() {
        let list = format!("old:{},\n# a comment\nnew:{}\n", key(), STANDARD.encode([9u8; 32]));
        let sealer = Sealer::from_key_list(&list).unwrap();
        assert_eq!(sealer.key_ids().collect::<Vec<_>>(), ["old", "new"]);
        assert_eq!(sealer.seal(b"x", b"r").key_id, "new");
        let bare = Sealer::from_key_list(&key()).unwrap();
        assert_eq!(bare.key_id(), Sealer::new(&key(), &[]).unwrap().key_id(), "a bare key is named by its fingerprint");
    }

    #[test]
    fn key_lists_refuse_bad_or_repeated_ids_and_emptiness() {
        let k = key();
        assert!(matches!(Sealer::from_key_list(&format!("a:{k},a:{k}")), Err(CryptoError::BadKeyList(_))));
        assert!(matches!(Sealer::from_key_list(&format!("bad id:{k}")), Err(CryptoError::BadKeyList(_))));
        assert!(matches!(Sealer::from_key_list(" , \n# only a comment"), Err(CryptoError::BadKeyList(_))));
        let err = Sealer::from_key_list("k1:AAAA").unwrap_err().to_string();
        assert!(!err.contains("AAAA"), "errors never show key material: {err}");
    }

    #[test]
    fn records_sealed_with_an_unnamed_key_open_once_it_is_named() {
        let legacy = Sealer::new(&key(), &[]).unwrap().seal(b"token", b"r");
        let named = Sealer::from_key_list(&format!("2024:{},2025:{}", key(), STANDARD.encode([9u8; 32]))).unwrap();
        assert!(named.has_key(&legacy.key_id));
        assert_eq!(named.open(&legacy, b"r").unwrap(), b"token");
    }

    #[test]
    fn resealing_moves_a_record_to_the_newest_key() {
        let old = Sealer::from_key_list(&format!("k1:{}", key())).unwrap();
        let sealed = old.seal(b"token", b"r");
        let both = Sealer::from_key_list(&format!("k1:{},k2:{}", key(), STANDARD.encode([9u8; 32]))).unwrap();
        let moved = both.reseal(&sealed, b"r").unwrap().expect("sealed with an older key");
        assert_eq!(moved.key_id, "k2");
        assert!(both.reseal(&moved, b"r").unwrap().is_none(), "already on the newest key");
        let only_new = Sealer::from_key_list(&format!("k2:{}", STANDARD.encode([9u8; 32]))).unwrap();
        assert_eq!(only_new.open(&moved, b"r").unwrap(), b"token", "the old key can be dropped");
        assert!(matches!(only_new.open(&sealed, b"r"), Err(CryptoError::UnknownKey(id)) if id == "k1"));
    }

    #[test]
    fn one_source_of_keys_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let both = KeySettings { keys: Some(format!("a:{}", key())), key: Some(key()), ..Default::default() };
        assert!(Sealer::load(&both, dir.path()).is_err());
        let previous_with_list =
            KeySettings { keys: Some(format!("a:{}", key())), previous: Some(key()), ..Default::default() };
        assert!(Sealer::load(&previous_with_list, dir.path()).is_err());
        let file = dir.path().join("keys");
        std::fs::write(&file, format!("# rotated 2026-01\nk1:{}\nk2:{}\n", key(), STANDARD.encode([9u8; 32]))).unwrap();
        let (sealer, source) =
            Sealer::load(&KeySettings { key_file: Some(file), ..Default::default() }, dir.path()).unwrap();
        assert_eq!((sealer.key_id(), source), ("k2", KeySource::Configured));
        assert!(!dir.path().join("encryption.key").exists(), "no development key when keys are configured");
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
        assert!(Sealer::load_existing(&KeySettings::default(), dir.path()).is_err(), "only generated when serving");
        let (_, source) = Sealer::load(&KeySettings::default(), dir.path()).unwrap();
        assert_eq!(source, KeySource::GeneratedNow);
        let (_, source) = Sealer::load(&KeySettings::default(), dir.path()).unwrap();
        assert_eq!(source, KeySource::DevelopmentFile);
    }
}
