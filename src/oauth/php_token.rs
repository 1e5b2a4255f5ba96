//! Refresh tokens issued by the shop's PHP Glue (league/oauth2-server 8 in Spryker), for a shop
//! moving over without logging anyone out (`oauth.key_source = "spryker-env"`).
//!
//! league encrypts the refresh-token payload with defuse/php-encryption v2 in *password* mode
//! (`Crypto::encryptWithPassword`, the password being `SPRYKER_OAUTH_ENCRYPTION_KEY`) and hands
//! out the lowercase hex of
//!
//! ```text
//! DE F5 02 00 ‖ salt (32) ‖ iv (16) ‖ AES-256-CTR(ekey, iv, payload) ‖ HMAC-SHA256(akey, all before)
//! prekey = PBKDF2-HMAC-SHA256(SHA-256(password), salt, 100 000 iterations, 32 bytes)
//! akey   = HKDF-SHA256(prekey, salt, "DefusePHP|V2|KeyForAuthentication", 32)
//! ekey   = HKDF-SHA256(prekey, salt, "DefusePHP|V2|KeyForEncryption", 32)
//! ```
//!
//! (defuse's `Crypto.php`, `KeyOrPassword.php`, `Core.php`). Decryption follows defuse's order:
//! length, version header, key derivation, constant-time MAC check, then AES. The derivation is
//! deliberately slow (tens of milliseconds): callers run it on the bounded credential pool.

use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, UnboundCipherKey, AES_256};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{digest, hkdf, hmac, pbkdf2};

/// defuse's v2 header.
const HEADER: [u8; 4] = [0xDE, 0xF5, 0x02, 0x00];
const SALT_BYTES: usize = 32;
const IV_BYTES: usize = 16;
const MAC_BYTES: usize = 32;
const PBKDF2_ITERATIONS: u32 = 100_000;
const MIN_BYTES: usize = HEADER.len() + SALT_BYTES + IV_BYTES + MAC_BYTES;
/// Longer input is not a refresh token league wrote: its payload is a few hundred bytes, a
/// B2B `sub` with its permissions a few kilobytes; a request body holds at most 64 KiB anyway
/// (`server.max_body_bytes`). The derivation, not the length, is what costs.
const MAX_HEX: usize = 1 << 16;

/// Why a presented string is not a PHP refresh token this shop issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhpTokenError {
    #[error("not hex, too short or too long")]
    Format,
    #[error("not defuse v2")]
    Header,
    #[error("wrong key or altered token")]
    Mac,
    #[error("the payload is not league's")]
    Payload,
}

/// True for a string that claims to be a PHP refresh token (`def50200…`, hex, at least the
/// minimum length): worth the key derivation. Anything else is glue's or nobody's.
pub fn looks_like_php(token: &str) -> bool {
    token.len() >= MIN_BYTES * 2
        && token.len() <= MAX_HEX
        && token.len().is_multiple_of(2)
        && token
            .get(..8)
            .is_some_and(|h| h.eq_ignore_ascii_case("def50200"))
        && token.bytes().all(|b| b.is_ascii_hexdigit())
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(prekey: &[u8], salt: &[u8], info: &[u8]) -> Result<[u8; 32], PhpTokenError> {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(prekey)
        .expand(&[info], Len(32))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| PhpTokenError::Format)?;
    Ok(out)
}

/// defuse v2 `Crypto::decryptWithPassword` of a hex token: the plaintext.
pub fn decrypt(password: &[u8], token_hex: &str) -> Result<Vec<u8>, PhpTokenError> {
    if !looks_like_php(token_hex) {
        return Err(PhpTokenError::Format);
    }
    let bytes = hex::decode(token_hex).map_err(|_| PhpTokenError::Format)?;
    if bytes.len() < MIN_BYTES {
        return Err(PhpTokenError::Format);
    }
    if bytes[..HEADER.len()] != HEADER {
        return Err(PhpTokenError::Header);
    }
    let salt = &bytes[HEADER.len()..HEADER.len() + SALT_BYTES];
    let iv = &bytes[HEADER.len() + SALT_BYTES..HEADER.len() + SALT_BYTES + IV_BYTES];
    let (authenticated, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
    let ciphertext = &authenticated[HEADER.len() + SALT_BYTES + IV_BYTES..];

    let prehash = digest::digest(&digest::SHA256, password);
    let mut prekey = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(PBKDF2_ITERATIONS).expect("non-zero"),
        salt,
        prehash.as_ref(),
        &mut prekey,
    );
    let akey = hkdf(&prekey, salt, b"DefusePHP|V2|KeyForAuthentication")?;
    let ekey = hkdf(&prekey, salt, b"DefusePHP|V2|KeyForEncryption")?;
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &akey),
        authenticated,
        mac,
    )
    .map_err(|_| PhpTokenError::Mac)?;

    let iv: [u8; IV_BYTES] = iv.try_into().map_err(|_| PhpTokenError::Format)?;
    let key = UnboundCipherKey::new(&AES_256, &ekey).map_err(|_| PhpTokenError::Format)?;
    let key = DecryptingKey::ctr(key).map_err(|_| PhpTokenError::Format)?;
    let mut plaintext = ciphertext.to_vec();
    let length = key
        .decrypt(
            &mut plaintext,
            DecryptionContext::Iv128(FixedLength::from(iv)),
        )
        .map_err(|_| PhpTokenError::Format)?
        .len();
    plaintext.truncate(length);
    Ok(plaintext)
}

/// league's refresh-token payload (`RefreshTokenTrait` / `BearerTokenResponse`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PhpRefreshPayload {
    pub client_id: String,
    /// `spy_oauth_refresh_token.identifier` of its row (plain, not hashed).
    pub refresh_token_id: String,
    #[serde(default)]
    pub access_token_id: Option<String>,
    pub scopes: Vec<String>,
    /// The `sub` JSON text, copied verbatim into every token of the session.
    pub user_id: String,
    /// Seconds since the epoch.
    pub expire_time: i64,
}

/// Decrypts and parses a PHP refresh token.
pub fn open(password: &[u8], token_hex: &str) -> Result<PhpRefreshPayload, PhpTokenError> {
    let plaintext = decrypt(password, token_hex)?;
    serde_json::from_slice(&plaintext).map_err(|_| PhpTokenError::Payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_def50200_hex_of_a_possible_length_looks_like_php() {
        let minimum = format!("def50200{}", "0".repeat(MIN_BYTES * 2 - 8));
        assert!(looks_like_php(&minimum));
        assert!(looks_like_php(&minimum.to_uppercase()));
        assert!(!looks_like_php(&minimum[..minimum.len() - 2]));
        assert!(!looks_like_php(&format!("{minimum}0")));
        assert!(!looks_like_php(
            &minimum.replacen("def50200", "def50300", 1)
        ));
        assert!(!looks_like_php(&minimum.replacen('0', "g", 9)));
        assert!(!looks_like_php("def50200"));
        assert!(!looks_like_php(&"a".repeat(64)));
    }

    #[test]
    fn garbage_of_the_right_shape_fails_the_mac() {
        let garbage = format!("def50200{}", "ab".repeat(MIN_BYTES + 40 - 4));
        assert_eq!(decrypt(b"secret", &garbage), Err(PhpTokenError::Mac));
    }
}
