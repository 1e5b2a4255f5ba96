//! RS256 keys and the JWK Set (Spryker's `Oauth` module keeps a PEM pair in `config/Zed`).
//!
//! One private key signs; every configured public key (the signing key's own, plus old keys
//! kept for a rotation) verifies, selected by `kid`. The `kid` is the RFC 7638 thumbprint of the
//! public key, so it is stable for a key and changes when the key does.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKey};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;

use crate::settings::{Environment, Settings};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{setting}: cannot read {path}: {source}")]
    Read {
        setting: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not an RSA key in PEM format (PKCS#8 or PKCS#1 for private keys, SPKI or PKCS#1 for public keys)")]
    Parse(String),
    #[error("{name} is too short ({bits} bits; at least 2048)")]
    TooShort { name: String, bits: usize },
    #[error("{path} can be read by group or others (mode {mode:o}): run `chmod 600 {path}`")]
    Exposed { path: String, mode: u32 },
    #[error("no signing key: set oauth.private_key_path or GLUE__OAUTH__PRIVATE_KEY_PEM (only development generates one)")]
    Missing,
    #[error("SPRYKER_OAUTH_KEY_PUBLIC is not the public key of SPRYKER_OAUTH_KEY_PRIVATE")]
    SprykerPairMismatch,
    #[error("RSA key generation failed")]
    Generate,
    #[error("the signing key failed its self-test: {0}")]
    SelfTest(String),
}

/// A public key that verifies tokens.
pub struct VerificationKey {
    pub kid: String,
    pub decoding_key: DecodingKey,
    jwk: Jwk,
}

/// The private key that signs new tokens, parsed once. (jsonwebtoken's `EncodingKey` keeps
/// DER bytes and parses them again for every signature, which costs more than the signature.)
pub struct SigningKey {
    pub kid: String,
    key_pair: KeyPair,
    /// The base64url JWT header, the same for every token.
    pub header_segment: String,
}

impl SigningKey {
    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| KeyError::SelfTest("RSA signing failed".into()))?;
        Ok(signature)
    }
}

pub struct KeySet {
    pub signing: SigningKey,
    pub verification: Vec<VerificationKey>,
}

/// The JWK Set document (RFC 7517), jsonwebtoken's own types.
pub use jsonwebtoken::jwk::{Jwk, JwkSet};

impl KeySet {
    /// True when [`KeySet::load`] would generate (or reuse) development's key pair under
    /// `var/keys/`: no key is configured.
    pub fn generates_development_key(settings: &Settings) -> bool {
        let oauth = &settings.oauth;
        oauth.spryker_env.is_none()
            && oauth.private_key_pem.is_empty()
            && oauth.private_key_path.is_empty()
            && settings.environment == Environment::Development
    }

    /// Loads the keys the settings name; in development, generates (once) and reuses a key
    /// pair under `var/keys/` when none is configured.
    pub fn load(settings: &Settings) -> Result<Self, KeyError> {
        let oauth = &settings.oauth;
        if let Some(env) = &oauth.spryker_env {
            return Self::from_spryker_env(env, &oauth.verification_key_paths);
        }
        let private_pem = if !oauth.private_key_pem.is_empty() {
            oauth.private_key_pem.expose().as_bytes().to_vec()
        } else if !oauth.private_key_path.is_empty() {
            let path = Path::new(&oauth.private_key_path);
            if settings.environment == Environment::Production {
                refuse_exposed(path)?;
            }
            read("oauth.private_key_path", path)?
        } else if settings.environment == Environment::Development {
            development_key(Path::new("var/keys"))?
        } else {
            return Err(KeyError::Missing);
        };
        let mut publics = Vec::new();
        for path in &oauth.verification_key_paths {
            let pem = read("oauth.verification_key_paths", Path::new(path))?;
            if settings.environment == Environment::Production {
                // A key that verifies is as strong as one that signs: a forged token passes.
                let bits = public_modulus_bits(&pem)?;
                if bits < 2048 {
                    return Err(KeyError::TooShort {
                        name: format!("oauth.verification_key_paths ({path})"),
                        bits,
                    });
                }
            }
            publics.push((path.clone(), pem));
        }
        Self::from_pems(&private_pem, &publics)
    }

    /// The shop's pair (`oauth.key_source = "spryker-env"`): its private key signs, and its
    /// public key must be that key's own (PHP verifies with it).
    fn from_spryker_env(
        env: &crate::settings::SprykerEnv,
        verification_key_paths: &[String],
    ) -> Result<Self, KeyError> {
        let private = env.private_pem.expose().as_bytes();
        let own_kid = verification_key(
            parse_private(private)
                .map_err(|_| KeyError::Parse("SPRYKER_OAUTH_KEY_PRIVATE".into()))?
                .public_key(),
        )?
        .kid;
        let public = parse_public(env.public_pem.as_bytes())
            .map_err(|_| KeyError::Parse("SPRYKER_OAUTH_KEY_PUBLIC".into()))?;
        if verification_key(&public)?.kid != own_kid {
            return Err(KeyError::SprykerPairMismatch);
        }
        let mut publics = Vec::new();
        for path in verification_key_paths {
            publics.push((
                path.clone(),
                read("oauth.verification_key_paths", Path::new(path))?,
            ));
        }
        Self::from_pems(private, &publics)
    }

    /// Builds the set from a private key PEM and extra public key PEMs (name, bytes).
    pub fn from_pems(
        private_pem: &[u8],
        public_pems: &[(String, Vec<u8>)],
    ) -> Result<Self, KeyError> {
        let key_pair = parse_private(private_pem)?;
        let own = verification_key(key_pair.public_key())?;
        // Header members in Spryker's order, plus our kid.
        let header = format!(r#"{{"typ":"JWT","alg":"RS256","kid":"{}"}}"#, own.kid);
        let signing = SigningKey {
            kid: own.kid.clone(),
            key_pair,
            header_segment: URL_SAFE_NO_PAD.encode(header),
        };
        let mut verification = vec![own];
        for (name, pem) in public_pems {
            let public = parse_public(pem).map_err(|_| KeyError::Parse(name.clone()))?;
            let key = verification_key(&public)?;
            if !verification.iter().any(|k| k.kid == key.kid) {
                verification.push(key);
            }
        }
        Ok(KeySet {
            signing,
            verification,
        })
    }

    /// The public JWK Set document.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.verification.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    pub fn verification_key(&self, kid: &str) -> Option<&VerificationKey> {
        self.verification.iter().find(|k| k.kid == kid)
    }
}

/// The file `path` that the setting `setting` names.
fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        setting,
        path: path.display().to_string(),
        source,
    })
}

/// Production refuses a private key file that group or others can read.
fn refuse_exposed(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| KeyError::Read {
                setting: "oauth.private_key_path",
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.display().to_string(),
                mode: mode & 0o777,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn parse_private(pem_bytes: &[u8]) -> Result<KeyPair, KeyError> {
    let name = "the private key";
    let block = pem::parse(pem_bytes).map_err(|_| KeyError::Parse(name.into()))?;
    let pkcs8 = match block.tag() {
        "PRIVATE KEY" => true,
        "RSA PRIVATE KEY" => false,
        _ => return Err(KeyError::Parse(name.into())),
    };
    // aws-lc-rs refuses keys below 2048 bits like any other unreadable key: say which it is.
    if let Some(bits) = der::rsa_private_modulus_bits(block.contents(), pkcs8) {
        if bits < 2048 {
            return Err(KeyError::TooShort {
                name: name.into(),
                bits,
            });
        }
    }
    let parsed = if pkcs8 {
        KeyPair::from_pkcs8(block.contents())
    } else {
        KeyPair::from_der(block.contents())
    };
    parsed.map_err(|_| KeyError::Parse(name.into()))
}

/// Just enough DER to read an RSA private key's modulus size.
mod der {
    /// (tag, contents, rest) of the first element.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, input) = input.split_first()?;
        let (&first, input) = input.split_first()?;
        let (length, input) = if first < 0x80 {
            (usize::from(first), input)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || input.len() < count {
                return None;
            }
            let length = input[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, &input[count..])
        };
        (input.len() >= length).then(|| (tag, &input[..length], &input[length..]))
    }

    /// The bit length of the modulus `n` of a PKCS#1 `RSAPrivateKey` (inside a PKCS#8
    /// `PrivateKeyInfo` when `pkcs8`).
    pub fn rsa_private_modulus_bits(der: &[u8], pkcs8: bool) -> Option<usize> {
        const SEQUENCE: u8 = 0x30;
        const INTEGER: u8 = 0x02;
        const OCTET_STRING: u8 = 0x04;
        let (tag, body, _) = element(der)?;
        if tag != SEQUENCE {
            return None;
        }
        let rsa_key = if pkcs8 {
            let (_, _version, rest) = element(body)?;
            let (_, _algorithm, rest) = element(rest)?;
            let (tag, key, _) = element(rest)?;
            if tag != OCTET_STRING {
                return None;
            }
            let (tag, key, _) = element(key)?;
            (tag == SEQUENCE).then_some(key)?
        } else {
            body
        };
        let (_, _version, rest) = element(rsa_key)?;
        let (tag, modulus, _) = element(rest)?;
        if tag != INTEGER {
            return None;
        }
        let digits: &[u8] = {
            let start = modulus.iter().position(|b| *b != 0)?;
            &modulus[start..]
        };
        Some(digits.len() * 8 - digits[0].leading_zeros() as usize)
    }
}

/// The bit length of a PEM public key's RSA modulus.
fn public_modulus_bits(pem_bytes: &[u8]) -> Result<usize, KeyError> {
    let public = parse_public(pem_bytes)?;
    let modulus = public.modulus().big_endian_without_leading_zero();
    Ok(modulus.first().map_or(0, |first| {
        modulus.len() * 8 - first.leading_zeros() as usize
    }))
}

fn parse_public(pem_bytes: &[u8]) -> Result<PublicKey, KeyError> {
    let block = pem::parse(pem_bytes).map_err(|_| KeyError::Parse("a public key".into()))?;
    match block.tag() {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => PublicKey::from_der(block.contents())
            .map_err(|_| KeyError::Parse("a public key".into())),
        _ => Err(KeyError::Parse("a public key".into())),
    }
}

fn verification_key(public: &PublicKey) -> Result<VerificationKey, KeyError> {
    use jsonwebtoken::jwk::{
        AlgorithmParameters, CommonParameters, KeyAlgorithm, PublicKeyUse, RSAKeyParameters,
        RSAKeyType, ThumbprintHash,
    };
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    let decoding_key = DecodingKey::from_rsa_components(&n, &e)
        .map_err(|_| KeyError::Parse("a public key".into()))?;
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::RS256),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
            key_type: RSAKeyType::RSA,
            n,
            e,
        }),
    };
    // RFC 7638: SHA-256 over the required members in lexicographic order.
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| KeyError::Parse("a public key".into()))?;
    jwk.common.key_id = Some(kid.clone());
    Ok(VerificationKey {
        kid,
        decoding_key,
        jwk,
    })
}

/// A new 2048-bit RSA key pair as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_pem() -> Result<(String, String), KeyError> {
    let key_pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
    let private: Pkcs8V1Der<'static> = key_pair.as_der().map_err(|_| KeyError::Generate)?;
    let public: PublicKeyX509Der<'static> = key_pair
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Generate)?;
    Ok((
        pem::encode(&pem::Pem::new("PRIVATE KEY", private.as_ref().to_vec())),
        pem::encode(&pem::Pem::new("PUBLIC KEY", public.as_ref().to_vec())),
    ))
}

/// Writes `private.pem` (mode 0600) and `public.pem` into `dir`; refuses to overwrite.
pub fn write_key_pair(dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let private_path = dir.join("private.pem");
    let public_path = dir.join("public.pem");
    if private_path.exists() {
        return Err(KeyError::Write {
            path: private_path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
        });
    }
    let (private, public) = generate_pem()?;
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| KeyError::Write { path, source }
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(write_err(dir))?;
    write_private(&private_path, private.as_bytes()).map_err(write_err(&private_path))?;
    std::fs::write(&public_path, public).map_err(write_err(&public_path))?;
    Ok((private_path, public_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

fn development_key(dir: &Path) -> Result<Vec<u8>, KeyError> {
    let path = dir.join("private.pem");
    if !path.exists() {
        write_key_pair(dir)?;
        log::warn!(target: "glue::oauth", "generated a development signing key in {}", dir.display());
    }
    read("the development key (var/keys)", &path)
}
