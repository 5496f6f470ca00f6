//! Passwords of people: the rules a new password meets, Argon2id hashes stored as PHC
//! strings (`$argon2id$v=19$m=19456,t=2,p=1$…`, OWASP's recommended parameters, which are
//! the `argon2` crate's defaults), and verification that costs the same whether or not
//! the account exists.
//!
//! Hashing takes tens of milliseconds of CPU and 19 MiB of memory by design: callers on the
//! async runtime run it with `spawn_blocking`, behind the sign-in rate limits.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// Fewest characters a password may have (NIST SP 800-63B's floor).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most bytes a password may have: enough for any passphrase, bounded for the hash's sake.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password has at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("a password may not contain control characters (a line break in a piped password, say)")]
    ControlCharacter,
}

/// Checks a new password against the rules.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::ControlCharacter);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// The Argon2id PHC string of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("Argon2 with default parameters hashes any password under 4 GiB")
        .to_string()
}

/// Whether `password` matches the stored PHC string. Without one (unknown account, no
/// password set) or with an unreadable one, a throwaway hash is checked instead, so the
/// answer takes as long as a real check and says nothing about whether the account exists.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
    let real = parsed.is_some();
    let decoy;
    let hash = match parsed {
        Some(hash) => hash,
        None => {
            decoy = DECOY.get_or_init(|| hash_password(&crate::crypto::new_token("decoy_")));
            PasswordHash::new(decoy).expect("the decoy is a PHC string")
        }
    };
    let matches = Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
    real && matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_phc_strings() {
        let a = hash_password("correct horse battery");
        let b = hash_password("correct horse battery");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
    }

    #[test]
    fn the_right_password_verifies_and_others_do_not() {
        let stored = hash_password("correct horse battery");
        assert!(verify_password("correct horse battery", Some(&stored)));
        assert!(!verify_password("correct horse batterY", Some(&stored)));
        assert!(!verify_password("correct horse battery", None), "no account, no match");
        assert!(!verify_password("correct horse battery", Some("not a phc string")));
    }

    #[test]
    fn new_passwords_follow_the_rules() {
        assert_eq!(check_new_password("short"), Err(PasswordError::TooShort));
        assert_eq!(check_new_password("ünïcödé"), Err(PasswordError::TooShort), "7 characters");
        assert_eq!(check_new_password("with a\nline break"), Err(PasswordError::ControlCharacter));
        assert_eq!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)), Err(PasswordError::TooLong));
        assert_eq!(check_new_password("eight ch"), Ok(()));
    }
}
