use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Every key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "hr_";
/// Length of the public identifier part (shown in key lists).
pub const ID_LEN: usize = 8;
/// Length of the secret part (62^32 ≈ 2^190 possibilities).
pub const SECRET_LEN: usize = 32;

/// What a key may do. A request needs the scope its endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send telemetry and usage.
    Ingest,
    /// Read the organisation's data.
    Read,
    /// Change the organisation's settings.
    Write,
    /// Manage keys and members, like an owner.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?} (expected ingest, read, write or admin)"))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty set of scopes; stored as a comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Scope>", into = "Vec<Scope>")]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Result<Self, String> {
        let set: BTreeSet<Scope> = scopes.into_iter().collect();
        if set.is_empty() {
            return Err("at least one scope is required (ingest, read, write, admin)".to_owned());
        }
        Ok(Self(set))
    }

    /// `admin` stands for every scope.
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.contains(&Scope::Admin)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn to_db(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn from_db(s: &str) -> Result<Self, String> {
        Self::new(
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::parse)
                .collect::<Result<Vec<_>, _>>()?,
        )
    }
}

impl TryFrom<Vec<Scope>> for Scopes {
    type Error = String;
    fn try_from(v: Vec<Scope>) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<Scopes> for Vec<Scope> {
    fn from(s: Scopes) -> Self {
        s.0.into_iter().collect()
    }
}

/// A key string split into its public id and its secret: `hr_<id>_<secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyParts {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseKeyError {
    #[error("API key must start with \"hr_\"")]
    Prefix,
    #[error("API key is malformed (expected hr_<8 characters>_<32 characters>)")]
    Malformed,
}

impl ApiKeyParts {
    /// Assembles a key from random alphanumeric parts (the caller supplies randomness).
    pub fn new(id: String, secret: String) -> Self {
        Self { id, secret }
    }

    pub fn parse(key: &str) -> Result<Self, ParseKeyError> {
        let rest = key.strip_prefix(KEY_PREFIX).ok_or(ParseKeyError::Prefix)?;
        let (id, secret) = rest.split_once('_').ok_or(ParseKeyError::Malformed)?;
        let alnum =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !alnum(id, ID_LEN) || !alnum(secret, SECRET_LEN) {
            return Err(ParseKeyError::Malformed);
        }
        Ok(Self::new(id.to_owned(), secret.to_owned()))
    }

    /// The full key, shown to its creator once.
    pub fn reveal(&self) -> String {
        format!("{KEY_PREFIX}{}_{}", self.id, self.secret)
    }

    /// What lists show: enough to recognise a key, nothing to use it.
    pub fn display_prefix(&self) -> String {
        format!("{KEY_PREFIX}{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "hr_Ab3dEf7h_0123456789abcdefABCDEF0123456789X";

    #[test]
    fn parse_and_reveal_round_trip() {
        let key = format!("hr_Ab3dEf7h_{}", "x".repeat(32));
        let parts = ApiKeyParts::parse(&key).unwrap();
        assert_eq!(parts.id, "Ab3dEf7h");
        assert_eq!(parts.reveal(), key);
        assert_eq!(parts.display_prefix(), "hr_Ab3dEf7h");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        assert_eq!(ApiKeyParts::parse("sk_live_x"), Err(ParseKeyError::Prefix));
        assert_eq!(ApiKeyParts::parse(KEY), Err(ParseKeyError::Malformed)); // secret too long
        assert_eq!(
            ApiKeyParts::parse("hr_Ab3dEf7h"),
            Err(ParseKeyError::Malformed)
        );
        let with_symbol = format!("hr_Ab3dEf7!_{}", "x".repeat(32));
        assert_eq!(
            ApiKeyParts::parse(&with_symbol),
            Err(ParseKeyError::Malformed)
        );
    }

    #[test]
    fn admin_scope_allows_everything() {
        let admin = Scopes::new([Scope::Admin]).unwrap();
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let ingest = Scopes::new([Scope::Ingest]).unwrap();
        assert!(ingest.allows(Scope::Ingest));
        assert!(!ingest.allows(Scope::Read));
        assert!(Scopes::new([]).is_err());
    }

    #[test]
    fn scopes_survive_the_database() {
        let s = Scopes::new([Scope::Write, Scope::Ingest]).unwrap();
        assert_eq!(s.to_db(), "ingest,write");
        assert_eq!(Scopes::from_db("ingest,write").unwrap(), s);
        assert!(Scopes::from_db("ingest,root").is_err());
    }
}
