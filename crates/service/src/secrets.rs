//! Secrets at rest: API keys that modelplane must use later (source and
//! provider credentials) are sealed with XChaCha20-Poly1305 under a 32-byte
//! key that lives outside the database (config `secret_key` /
//! `MODELPLANE_SECRET_KEY`, or a key file created beside the SQLite data), so
//! the database file alone never reveals them.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "v1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret key must be 32 bytes, as 64 hex digits or base64")]
    BadKey,
    #[error("could not read or create the key file {0}: {1}")]
    KeyFile(String, String),
    #[error("a stored secret could not be decrypted (was the secret key changed?)")]
    Undecryptable,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// A key given as 64 hex digits or as base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<SecretBox, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| SecretError::BadKey)?
        } else {
            STANDARD.decode(text).map_err(|_| SecretError::BadKey)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretBox::new(key))
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a random
    /// key when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretBox, SecretError> {
        let file_error =
            |e: std::io::Error| SecretError::KeyFile(path.display().to_string(), e.to_string());
        match std::fs::read_to_string(path) {
            Ok(text) => SecretBox::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(file_error)?;
                    }
                }
                let key: [u8; 32] = rand::random();
                write_private(path, &hex::encode(key)).map_err(file_error)?;
                Ok(SecretBox::new(key))
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// Seals `plaintext` with a fresh random nonce: `v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption into a Vec cannot fail for inputs of this size.
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or(SecretError::Undecryptable)?;
        let bytes = STANDARD
            .decode(body)
            .map_err(|_| SecretError::Undecryptable)?;
        if bytes.len() < 24 {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let a = SecretBox::new([7; 32]);
        let sealed = a.seal("sk-live-123");
        assert!(!sealed.contains("sk-live"));
        assert_ne!(sealed, a.seal("sk-live-123"), "fresh nonce per seal");
        assert_eq!(a.open(&sealed).as_deref(), Ok("sk-live-123"));
        let b = SecretBox::new([8; 32]);
        assert_eq!(b.open(&sealed), Err(SecretError::Undecryptable));
        assert_eq!(a.open("v1:!!"), Err(SecretError::Undecryptable));
        assert_eq!(a.open("plain"), Err(SecretError::Undecryptable));
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_refuse_other_lengths() {
        assert!(SecretBox::parse(&"ab".repeat(32)).is_ok());
        assert!(SecretBox::parse(&STANDARD.encode([1u8; 32])).is_ok());
        assert_eq!(SecretBox::parse("short").err(), Some(SecretError::BadKey));
        assert_eq!(
            SecretBox::parse(&STANDARD.encode([1u8; 16])).err(),
            Some(SecretError::BadKey)
        );
    }

    #[test]
    fn a_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/secret.key");
        let first = SecretBox::load_or_create(&path).expect("created");
        let sealed = first.seal("x");
        let again = SecretBox::load_or_create(&path).expect("read back");
        assert_eq!(again.open(&sealed).as_deref(), Ok("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
