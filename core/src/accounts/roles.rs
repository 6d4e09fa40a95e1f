use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an organisation buys; sets its default priority for the allocation controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Standard,
    Premium,
    /// Guaranteed low latency: capacity is kept warm ahead of predicted demand.
    Guaranteed,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Standard, Tier::Premium, Tier::Guaranteed];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Premium => "premium",
            Tier::Guaranteed => "guaranteed",
        }
    }

    /// Priority given to a new organisation of this tier (higher is served first).
    pub fn default_priority(self) -> i32 {
        match self {
            Tier::Standard => 10,
            Tier::Premium => 50,
            Tier::Guaranteed => 90,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown tier {s:?} (expected standard, premium or guaranteed)"))
    }
}

/// A user's role. `Admin` is the operator's staff, across every organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Owner,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Member, Role::Owner, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }

    /// Owners (and platform admins) manage keys, members, caps, webhooks and billing.
    pub fn can_manage_organization(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Roles an organisation owner may hand out; `admin` is the operator's to give.
    pub fn grantable_by_owner(self) -> bool {
        matches!(self, Role::Member | Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (expected member, owner or admin)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>().unwrap(), t);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn higher_tiers_get_higher_priority() {
        assert!(Tier::Standard.default_priority() < Tier::Premium.default_priority());
        assert!(Tier::Premium.default_priority() < Tier::Guaranteed.default_priority());
    }

    #[test]
    fn only_owners_and_admins_manage() {
        assert!(!Role::Member.can_manage_organization());
        assert!(Role::Owner.can_manage_organization());
        assert!(Role::Admin.can_manage_organization());
        assert!(!Role::Admin.grantable_by_owner());
    }
}
