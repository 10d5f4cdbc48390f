//! Bearer-token checks for admin and ingestion routes, shared by the native server and the Worker.
//!
//! Both sides are hashed with SHA-256 before a constant-time comparison (`subtle`), so neither the
//! token's bytes nor its length leak through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The result of checking an `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The bearer token matches.
    Granted,
    /// No `Authorization: Bearer …` header (HTTP 401).
    Missing,
    /// A bearer token that does not match (HTTP 403).
    Denied,
}

/// Check an `Authorization` header value against the configured token.
pub fn check_bearer(header: Option<&str>, token: &str) -> Auth {
    let Some(h) = header else {
        return Auth::Missing;
    };
    let h = h.trim();
    let given = match h.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => return Auth::Missing,
    };
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    if bool::from(a.as_slice().ct_eq(b.as_slice())) {
        Auth::Granted
    } else {
        Auth::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer() {
        assert_eq!(check_bearer(Some("Bearer s3cret"), "s3cret"), Auth::Granted);
        assert_eq!(
            check_bearer(Some("bearer  s3cret "), "s3cret"),
            Auth::Granted
        );
        assert_eq!(check_bearer(Some("Bearer s3cre"), "s3cret"), Auth::Denied);
        assert_eq!(check_bearer(Some("Bearer x"), "s3cret"), Auth::Denied);
        assert_eq!(check_bearer(Some("Bearer "), "s3cret"), Auth::Missing);
        assert_eq!(check_bearer(Some("Basic s3cret"), "s3cret"), Auth::Missing);
        assert_eq!(check_bearer(None, "s3cret"), Auth::Missing);
    }
}
