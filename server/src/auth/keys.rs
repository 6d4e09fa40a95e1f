//! Random secrets: API keys, invitation tokens, CSRF tokens.

use headroom_core::accounts::{ApiKeyParts, ID_LEN, SECRET_LEN};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Alphanumeric characters from the OS-seeded CSPRNG.
pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Bytes from the OS-seeded CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill(&mut b[..]);
    b
}

pub fn new_api_key() -> ApiKeyParts {
    ApiKeyParts::new(random_token(ID_LEN), random_token(SECRET_LEN))
}

/// Secrets with ≥190 bits of entropy need no slow hash: SHA-256 is enough to make a
/// stolen database useless, and it keeps key checks cheap on every request.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares without leaking, through timing, how many leading bytes matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_differ() {
        let a = new_api_key();
        let b = new_api_key();
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(ApiKeyParts::parse(&a.reveal()).unwrap(), a);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
