//! The key TOTP secrets are stored under (`oauth.mfa_key_path`): AES-256-GCM from aws-lc-rs, with
//! the agent's id as associated data, so a database dump alone cannot produce codes and a row
//! moved to another agent does not decrypt.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;

/// The development and test key, written on first use when no path is configured.
const DEVELOPMENT_KEY: &str = "var/keys/mfa.key";

pub struct SecretCipher {
    key: LessSafeKey,
}

/// A stored secret that does not decrypt under the configured key.
#[derive(Debug, thiserror::Error)]
#[error("a stored TOTP secret does not decrypt under oauth.mfa_key_path (another key, or an altered row)")]
pub struct Undecryptable;

impl SecretCipher {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .ok()
            .map(|key| SecretCipher {
                key: LessSafeKey::new(key),
            })
    }

    /// The key `path` holds: base64 of 32 random bytes (`openssl rand -base64 32`). Production
    /// refuses a file that group or others can read.
    pub fn load(path: &Path, production: bool) -> Result<Self, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("oauth.mfa_key_path: cannot read {shown}: {e}"))?;
        #[cfg(unix)]
        if production {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("oauth.mfa_key_path: cannot read {shown}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "oauth.mfa_key_path: {shown} is readable by group or others (mode {:o}): chmod 600 it",
                    mode & 0o777
                ));
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                format!("oauth.mfa_key_path: {shown} must hold base64 of 32 random bytes (openssl rand -base64 32)")
            })?;
        Self::from_bytes(&bytes).ok_or_else(|| "oauth.mfa_key_path: unusable key".to_string())
    }

    /// Development and tests without a configured path: `var/keys/mfa.key`, written (0600) on
    /// first use.
    pub fn development() -> Result<Self, String> {
        let path = Path::new(DEVELOPMENT_KEY);
        if !path.exists() {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes[..]);
            let text = base64::engine::general_purpose::STANDARD.encode(bytes) + "\n";
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, text.as_bytes())
                        .map_err(|e| format!("cannot write {DEVELOPMENT_KEY}: {e}"))?;
                    log::warn!(target: "glue::mfa", "generated a development key for TOTP secrets in {DEVELOPMENT_KEY}");
                }
                // Another process wrote it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot write {DEVELOPMENT_KEY}: {e}")),
            }
        }
        Self::load(path, false)
    }

    /// `nonce ‖ ciphertext ‖ tag` of `secret`, bound to `id_user`.
    pub fn seal(&self, id_user: i32, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id_user.to_be_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any secret of this size");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    /// The secret `sealed` holds for `id_user`.
    pub fn open(&self, id_user: i32, sealed: &[u8]) -> Result<Vec<u8>, Undecryptable> {
        if sealed.len() < NONCE_LEN {
            return Err(Undecryptable);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Undecryptable)?;
        let mut buffer = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(id_user.to_be_bytes()), &mut buffer)
            .map_err(|_| Undecryptable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_agent_and_key() {
        let cipher = SecretCipher::from_bytes(&[7u8; 32]).unwrap();
        let sealed = cipher.seal(42, b"12345678901234567890");
        assert_eq!(cipher.open(42, &sealed).unwrap(), b"12345678901234567890");
        assert!(cipher.open(43, &sealed).is_err());
        let other = SecretCipher::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(42, &sealed).is_err());
        let mut altered = sealed.clone();
        altered[20] ^= 1;
        assert!(cipher.open(42, &altered).is_err());
        assert!(cipher.open(42, &sealed[..5]).is_err());
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
    }
}
