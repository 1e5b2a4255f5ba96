//! TOTP (RFC 6238) as authenticator apps expect it: HMAC-SHA-1, 6 digits, 30-second steps,
//! codes of the step before and after accepted too (clock drift), secrets shown in base32.

use aws_lc_rs::hmac;

/// Seconds per time step.
pub const STEP_S: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// The code of `secret` for time step `step` (RFC 4226's HOTP with the step as counter), with
/// `digits` digits, zero-padded.
pub fn code_at(secret: &[u8], step: i64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    let modulus = 10u32.pow(digits);
    format!("{:0width$}", binary % modulus, width = digits as usize)
}

/// The time step of unix time `now_s`.
pub fn step_of(now_s: i64) -> i64 {
    now_s.div_euclid(STEP_S)
}

/// The time step (now's or one of its two neighbours, the earliest first) whose code `code` is,
/// if any; every candidate is compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now_s: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(now_s);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let expected = code_at(secret, step, DIGITS);
        if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
            .is_ok()
            && found.is_none()
        {
            found = Some(step);
        }
    }
    found
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::fill(&mut secret[..]);
    secret
}

/// RFC 4648 base32 without padding, as `otpauth://` URIs carry secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u64::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://totp/…` URI an authenticator app reads (as a QR code or typed in).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label = format!("{issuer}:{account}");
    format!(
        "otpauth://totp/{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        percent_encode(&label),
        base32(secret),
        percent_encode(issuer)
    )
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (8 digits), secret "12345678901234567890".
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(secret, step_of(time), 8), code, "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let code = code_at(secret, step_of(now), DIGITS);
        assert_eq!(matching_step(secret, &code, now), Some(step_of(now)));
        assert_eq!(
            matching_step(secret, &code, now + STEP_S),
            Some(step_of(now))
        );
        assert_eq!(
            matching_step(secret, &code, now - STEP_S),
            Some(step_of(now))
        );
        assert_eq!(matching_step(secret, &code, now + 2 * STEP_S), None);
        assert_eq!(matching_step(secret, &code, now - 2 * STEP_S), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "１２３４５６", now), None);
        assert_eq!(matching_step(secret, "12345\0", now), None);
    }

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri("Shop Glue", "agent@shop.test", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Shop%20Glue%3Aagent@shop.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Shop%20Glue&algorithm=SHA1&digits=6&period=30"
        );
    }
}
