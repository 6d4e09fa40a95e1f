//! Where allocation decisions are carried out. Each adapter applies a desired
//! allocation idempotently (applying the same one twice changes nothing) and
//! reads back what is in force, so the controller can repair drift.

pub mod aws;
pub mod bandwidth;
pub mod cgroup;

use std::future::Future;

use headroom_core::allocate::spot::Purchase;

/// What a workload should have in force, in provider-neutral terms. Fields a
/// provider does not manage are ignored by it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Instances serving (at least 1 where a provider cannot run zero).
    pub instances: u32,
    /// Warm (stopped, ready) instances beside them.
    pub warm: u32,
    /// The workload's bounds, which the provider enforces too where it can.
    pub min: u32,
    pub max: u32,
    /// Memory limit for the whole fleet (cgroup).
    pub memory_bytes: Option<u64>,
    /// Relative I/O weight (cgroup), from the workload's priority.
    pub io_weight: Option<u32>,
    /// Egress bandwidth cap for the whole fleet, bits/s (cgroup, with `tc`).
    pub network_bits_per_sec: Option<u64>,
    /// The instance type to run (AWS launch template), when Headroom manages it.
    pub instance_type: Option<String>,
    /// Spot or on-demand for new capacity, when it was decided this time.
    pub purchase: Option<Purchase>,
}

/// What a provider reports in force. `None` for what it does not manage;
/// `instances: None` means no limit is in force at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InForce {
    pub instances: Option<u32>,
    pub warm: Option<u32>,
    pub bounds: Option<(u32, u32)>,
    pub memory_bytes: Option<u64>,
    pub network_bits_per_sec: Option<u64>,
    pub instance_type: Option<String>,
    /// Share of capacity above the base bought on demand, 0–100 (AWS).
    pub on_demand_percent: Option<u32>,
}

impl Desired {
    /// Where what is in force differs from this, one phrase each; empty when
    /// nothing drifted.
    pub fn drift(&self, f: &InForce) -> Vec<String> {
        let mut out = Vec::new();
        match f.instances {
            Some(n) if n == self.instances => {}
            Some(n) => out.push(format!(
                "{n} instances in force, {} on record",
                self.instances
            )),
            None => out.push(format!(
                "no limit in force, {} instances on record",
                self.instances
            )),
        }
        if let Some(w) = f.warm
            && w != self.warm
        {
            out.push(format!(
                "{w} warm instances in force, {} on record",
                self.warm
            ));
        }
        if let Some((lo, hi)) = f.bounds
            && (lo, hi) != (self.min, self.max)
        {
            out.push(format!(
                "bounds {lo}..{hi} in force, {}..{} on record",
                self.min, self.max
            ));
        }
        if let Some(want) = self.memory_bytes
            && f.memory_bytes != Some(want)
        {
            out.push(format!(
                "memory limit {} in force, {want} bytes on record",
                f.memory_bytes
                    .map_or("none".to_owned(), |b| format!("{b} bytes"))
            ));
        }
        // tc reports rates rounded to kbit/s.
        if let Some(want) = self.network_bits_per_sec
            && f.network_bits_per_sec
                .is_none_or(|b| b.abs_diff(want) > (want / 1000).max(1000))
        {
            out.push(format!(
                "network cap {} in force, {want} bit/s on record",
                f.network_bits_per_sec
                    .map_or("none".to_owned(), |b| format!("{b} bit/s"))
            ));
        }
        if let Some(want) = &self.instance_type
            && f.instance_type.as_ref() != Some(want)
        {
            out.push(format!(
                "instance type {} in force, {want} on record",
                f.instance_type.as_deref().unwrap_or("unknown")
            ));
        }
        if let (Some(p), Some(have)) = (&self.purchase, f.on_demand_percent) {
            let want = on_demand_percent(p);
            if want != have {
                out.push(format!("{have} % on demand in force, {want} % decided"));
            }
        }
        out
    }
}

/// The on-demand share a purchase choice stands for.
pub fn on_demand_percent(p: &Purchase) -> u32 {
    match p {
        Purchase::Spot { .. } => 0,
        Purchase::OnDemand { .. } => 100,
    }
}

/// Why a command failed, and whether trying again soon may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
    pub transient: bool,
}

impl ProviderError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A place capacity is commanded. `tenant` is the organisation, `target` the
/// workload's reference at the provider (a cgroup name, an Auto Scaling
/// group); an adapter never acts on a target outside the tenant's.
pub trait Provider {
    /// Puts `want` in force. `token` is the decision's command id: the same
    /// token twice is the same command (client tokens where the API has them).
    fn apply(
        &self,
        tenant: &str,
        target: &str,
        want: &Desired,
        token: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// What is in force now.
    fn in_force(
        &self,
        tenant: &str,
        target: &str,
    ) -> impl Future<Output = Result<InForce, ProviderError>> + Send;
}

/// The providers a worker has, each configured or not (and why not).
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub cgroups: Option<Result<cgroup::Cgroups, String>>,
    pub aws: Option<Result<aws::Aws, String>>,
}

fn configured<'a, T>(
    p: Option<&'a Result<T, String>>,
    name: &str,
    how: &str,
) -> Result<&'a T, ProviderError> {
    match p {
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => Err(ProviderError::permanent(format!(
            "the {name} provider is unavailable: {e}"
        ))),
        None => Err(ProviderError::permanent(format!(
            "the {name} provider is not enabled on this server ({how})"
        ))),
    }
}

impl Providers {
    pub fn cgroup(&self) -> Result<&cgroup::Cgroups, ProviderError> {
        configured(self.cgroups.as_ref(), "cgroup", "HEADROOM_CGROUP_MOUNT")
    }

    pub fn aws(&self) -> Result<&aws::Aws, ProviderError> {
        configured(self.aws.as_ref(), "aws", "HEADROOM_AWS_PROVIDER")
    }

    /// [`Provider::apply`] on the provider named `kind`.
    pub async fn apply(
        &self,
        kind: &str,
        tenant: &str,
        target: &str,
        want: &Desired,
        token: &str,
    ) -> Result<(), ProviderError> {
        match kind {
            "cgroup" => Provider::apply(self.cgroup()?, tenant, target, want, token).await,
            "aws" => self.aws()?.apply(tenant, target, want, token).await,
            other => Err(ProviderError::permanent(format!(
                "provider {other:?} is not available in this build"
            ))),
        }
    }

    /// [`Provider::in_force`] on the provider named `kind`.
    pub async fn in_force(
        &self,
        kind: &str,
        tenant: &str,
        target: &str,
    ) -> Result<InForce, ProviderError> {
        match kind {
            "cgroup" => Provider::in_force(self.cgroup()?, tenant, target).await,
            "aws" => self.aws()?.in_force(tenant, target).await,
            other => Err(ProviderError::permanent(format!(
                "provider {other:?} is not available in this build"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_core::allocate::spot::OnDemandWhy;

    fn want() -> Desired {
        Desired {
            instances: 3,
            warm: 1,
            min: 1,
            max: 10,
            memory_bytes: None,
            io_weight: None,
            network_bits_per_sec: None,
            instance_type: Some("t3.large".into()),
            purchase: None,
        }
    }

    #[test]
    fn nothing_drifted_when_everything_matches() {
        let f = InForce {
            instances: Some(3),
            warm: Some(1),
            bounds: Some((1, 10)),
            memory_bytes: None,
            network_bits_per_sec: None,
            instance_type: Some("t3.large".into()),
            on_demand_percent: Some(0),
        };
        assert!(want().drift(&f).is_empty());
    }

    #[test]
    fn each_difference_is_named() {
        let f = InForce {
            instances: Some(5),
            warm: Some(0),
            bounds: Some((0, 10)),
            memory_bytes: Some(1),
            network_bits_per_sec: None,
            instance_type: Some("t3.small".into()),
            on_demand_percent: Some(0),
        };
        let mut w = want();
        w.purchase = Some(Purchase::OnDemand {
            why: OnDemandWhy::Volatile,
        });
        let d = w.drift(&f);
        assert_eq!(d.len(), 5, "{d:?}");
        assert!(d[0].contains("5 instances in force, 3 on record"));
        assert!(d[3].contains("t3.small"));
        assert!(d[4].contains("0 % on demand"));
    }

    #[test]
    fn a_network_cap_within_tc_rounding_has_not_drifted() {
        let mut w = want();
        w.instance_type = None;
        w.network_bits_per_sec = Some(12_345_678);
        let at = |bits| InForce {
            instances: Some(3),
            network_bits_per_sec: bits,
            ..Default::default()
        };
        // tc shows 12345Kbit.
        assert!(w.drift(&at(Some(12_345_000))).is_empty());
        assert_eq!(
            w.drift(&at(Some(2_000_000))),
            vec!["network cap 2000000 bit/s in force, 12345678 bit/s on record".to_owned()]
        );
        assert_eq!(
            w.drift(&at(None)),
            vec!["network cap none in force, 12345678 bit/s on record".to_owned()]
        );
    }

    #[test]
    fn no_limit_in_force_is_drift() {
        let mut w = want();
        w.instance_type = None;
        let d = w.drift(&InForce::default());
        assert_eq!(
            d,
            vec!["no limit in force, 3 instances on record".to_owned()]
        );
    }
}
