//! Log-in throttling per client address and per account, so neither one address
//! nor a botnet can guess one account's password quickly.
//! Kept in process memory: with several replicas each enforces its own budget.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl LoginLimiter {
    /// Budgets are attempts per minute, refilled evenly, with the whole minute's
    /// budget available as a burst.
    pub fn new(per_ip_per_minute: NonZeroU32, per_account_per_minute: NonZeroU32) -> Self {
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(per_ip_per_minute)),
            per_account: RateLimiter::keyed(Quota::per_minute(per_account_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when this attempt is over budget; `wait` is when to retry.
    pub fn check(&self, ip: Option<IpAddr>, account: &str) -> Result<(), Duration> {
        if let Some(ip) = ip {
            self.per_ip
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose budget is full again; called periodically to bound memory.
    pub fn shrink(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    #[test]
    fn account_budget_is_enforced_across_addresses() {
        let limiter = LoginLimiter::new(n(100), n(3));
        for i in 0..3 {
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            assert!(limiter.check(Some(ip), "a@b.co").is_ok());
        }
        let wait = limiter
            .check(Some("10.0.0.9".parse().unwrap()), "a@b.co")
            .unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another account is unaffected.
        assert!(
            limiter
                .check(Some("10.0.0.9".parse().unwrap()), "c@d.co")
                .is_ok()
        );
    }

    #[test]
    fn address_budget_is_enforced_across_accounts() {
        let limiter = LoginLimiter::new(n(2), n(100));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.check(Some(ip), "a@b.co").is_ok());
        assert!(limiter.check(Some(ip), "c@d.co").is_ok());
        assert!(limiter.check(Some(ip), "e@f.co").is_err());
    }
}
