//! Signed bundles: Ed25519 over the artifact's content hash.
//!
//! A built artifact carries `content_hash` = SHA-256 of the canonical JSON of its definitions, and
//! [`bundle::load_artifact`] recomputes it, so signing the hash signs every
//! definition. The signed message is domain-separated so a tailor signature can never be replayed as a
//! signature over anything else:
//!
//! ```text
//! tailor-bundle-signature-v1\n<bundle id>\n<bundle version>\n<content hash>
//! ```
//!
//! The artifact's `signature` field is `ed25519:<key id>:<128 hex digits>`, where the key id is the first
//! 16 hex digits of SHA-256 over the 32-byte public key (it names the key; it proves nothing).
//!
//! Keys are 32 bytes written as 64 hex digits: the secret key file holds the Ed25519 seed, the public key
//! file the compressed point. Verification uses `verify_strict` (no malleable or small-order signatures).
//!
//! Pure: signing needs the seed from the caller (the CLI draws it from the OS), verification needs nothing.

use crate::bundle::{self, Artifact, CheckedBundle};
use crate::diagnostic::Diagnostics;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

const DOMAIN: &str = "tailor-bundle-signature-v1";

/// A public key trusted to sign bundles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A bundle-signing secret key.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material, not even in debug output.
        write!(f, "SecretKey({})", self.public().key_id())
    }
}

/// Why a key could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

fn hex32(text: &str, what: &str) -> Result<[u8; 32], KeyError> {
    let t = text.trim();
    let t = t.strip_prefix("ed25519:").unwrap_or(t);
    let bytes = from_hex(t).ok_or_else(|| KeyError(format!("{what} is not hex")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| KeyError(format!("{what} must be 32 bytes (64 hex digits)")))
}

impl SecretKey {
    /// From the 32-byte seed (the CLI draws it from the operating system's random source).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// From the text of a secret key file (64 hex digits, optionally prefixed by `ed25519:`).
    pub fn from_text(text: &str) -> Result<SecretKey, KeyError> {
        hex32(text, "the secret key").map(SecretKey::from_seed)
    }

    /// The text of a secret key file.
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", to_hex(&self.0.to_bytes()))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
}

impl PublicKey {
    /// From the text of a public key file or flag (64 hex digits, optionally prefixed by `ed25519:`).
    pub fn from_text(text: &str) -> Result<PublicKey, KeyError> {
        let b = hex32(text, "the public key")?;
        VerifyingKey::from_bytes(&b)
            .map(PublicKey)
            .map_err(|_| KeyError("the public key is not a valid Ed25519 point".into()))
    }

    /// The text of a public key file.
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", to_hex(&self.0.to_bytes()))
    }

    /// First 16 hex digits of SHA-256 over the key bytes.
    pub fn key_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(self.0.to_bytes());
        to_hex(d.get(..8).unwrap_or_default())
    }
}

fn message(id: &str, version: &str, hash: &str) -> String {
    format!("{DOMAIN}\n{id}\n{version}\n{hash}")
}

/// Sign an artifact in place (replacing any previous signature).
pub fn sign(artifact: &mut Artifact, key: &SecretKey) {
    let msg = message(&artifact.id, &artifact.version, &artifact.content_hash);
    let sig: Signature = key.0.sign(msg.as_bytes());
    artifact.signature = Some(format!(
        "ed25519:{}:{}",
        key.public().key_id(),
        to_hex(&sig.to_bytes())
    ));
}

/// Why a bundle was refused.
#[derive(Debug)]
pub enum Rejection {
    /// Not a valid bundle (HTTP 422): every diagnostic.
    Invalid(Diagnostics),
    /// Signatures are required and this artifact has none (HTTP 403).
    Unsigned,
    /// The signature is malformed, by an untrusted key, or does not verify (HTTP 403).
    BadSignature(String),
    /// The signature is good but the definitions were changed after signing (HTTP 403).
    Tampered,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Invalid(d) => write!(f, "the bundle has {} error(s)", d.error_count()),
            Rejection::Unsigned => f.write_str("the bundle is not signed and this server requires signed bundles"),
            Rejection::BadSignature(why) => write!(f, "the bundle signature was refused: {why}"),
            Rejection::Tampered => f.write_str("the bundle was modified after it was signed: its definitions do not hash to the signed content hash"),
        }
    }
}

/// Check a signature over the artifact's claimed id, version and content hash.
fn verify_claim(a: &ClaimedArtifact, trusted: &[PublicKey]) -> Result<(), Rejection> {
    let Some(sig) = &a.signature else {
        return Err(Rejection::Unsigned);
    };
    let mut parts = sig.splitn(3, ':');
    let (Some("ed25519"), Some(key_id), Some(hex)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::BadSignature(
            "expected `ed25519:<key id>:<signature hex>`".into(),
        ));
    };
    let bytes = from_hex(hex)
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| Rejection::BadSignature("the signature is not 64 bytes of hex".into()))?;
    let sig = Signature::from_bytes(&bytes);
    let Some(key) = trusted.iter().find(|k| k.key_id() == key_id) else {
        return Err(Rejection::BadSignature(format!(
            "key `{key_id}` is not trusted by this server"
        )));
    };
    let msg = message(&a.id, &a.version, &a.content_hash);
    key.0
        .verify_strict(msg.as_bytes(), &sig)
        .map_err(|_| Rejection::BadSignature("the signature does not verify".into()))
}

/// The fields a signature covers, read without checking the definitions.
#[derive(serde::Deserialize)]
struct ClaimedArtifact {
    #[serde(default)]
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    content_hash: String,
    #[serde(default)]
    signature: Option<String>,
}

/// Load an artifact, requiring a valid signature by one of `trusted` when it is not empty.
///
/// Order matters: the signature is checked before the definitions, so an unsigned or forged artifact is
/// refused as such (403) whatever else is wrong with it, and a signed artifact whose definitions were
/// edited afterwards is reported as [`Rejection::Tampered`], not as an ordinary hash mismatch.
pub fn load_verified(json: &[u8], trusted: &[PublicKey]) -> Result<CheckedBundle, Rejection> {
    if !trusted.is_empty() && json.len() <= bundle::MAX_ARTIFACT_BYTES {
        // A document that is not even an artifact falls through to the full diagnostics below.
        if let Ok(claim) = serde_json::from_slice::<ClaimedArtifact>(json) {
            verify_claim(&claim, trusted)?;
        }
    }
    match bundle::load_artifact(json) {
        // With keys configured, reaching here means the claim parsed and its signature verified.
        Ok(c) => Ok(c),
        Err(d) if !trusted.is_empty() && d.items().iter().any(|x| x.code == "hash-mismatch") => {
            Err(Rejection::Tampered)
        }
        Err(d) => Err(Rejection::Invalid(d)),
    }
}

impl From<Rejection> for crate::wire::ErrorResponse {
    /// The answer every HTTP adapter gives a refused deploy: `invalid_bundle` (422) with every
    /// diagnostic, or `unsigned_bundle` / `bad_signature` / `tampered_bundle` (403).
    fn from(r: Rejection) -> crate::wire::ErrorResponse {
        use crate::wire::ErrorResponse;
        match r {
            Rejection::Invalid(d) => {
                let n = d.error_count();
                ErrorResponse {
                    code: "invalid_bundle".into(),
                    message: format!(
                        "the bundle has {n} error{}; the previous bundle keeps serving",
                        if n == 1 { "" } else { "s" }
                    ),
                    errors: d.into_vec(),
                }
            }
            Rejection::Unsigned => ErrorResponse::new("unsigned_bundle", r.to_string()),
            Rejection::BadSignature(_) => ErrorResponse::new("bad_signature", r.to_string()),
            Rejection::Tampered => ErrorResponse::new("tampered_bundle", r.to_string()),
        }
    }
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nib in [b >> 4, b & 15] {
            if let Some(&c) = DIGITS.get(usize::from(nib)) {
                s.push(char::from(c));
            }
        }
    }
    s
}

/// Parse hex (either case); `None` on odd length or a non-hex digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    b.chunks_exact(2)
        .map(|p| match p {
            [h, l] => Some(nib(*h)? << 4 | nib(*l)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("AbCd").unwrap(), vec![0xab, 0xcd]);
    }

    #[test]
    fn key_text_round_trip() {
        let k = SecretKey::from_seed([7; 32]);
        let again = SecretKey::from_text(&k.to_text()).unwrap();
        assert_eq!(again.public(), k.public());
        let p = PublicKey::from_text(&k.public().to_text()).unwrap();
        assert_eq!(p, k.public());
        assert!(PublicKey::from_text("abcd").is_err());
        assert!(!format!("{k:?}").contains(&to_hex(&[7; 32])));
    }

    // RFC 8032 test 1: the seed and public key are the published vector, so the key derivation and
    // encoding are interoperable with any other Ed25519 implementation.
    #[test]
    fn rfc8032_vector() {
        let seed =
            from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let k = SecretKey::from_seed(seed.try_into().unwrap());
        assert_eq!(
            k.public().to_text(),
            "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = k.0.sign(b"");
        assert_eq!(to_hex(&sig.to_bytes()), "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    }
}
