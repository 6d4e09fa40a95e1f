//! Linux control groups, for processes on the machine Headroom runs on: CPU
//! quota, memory limit and block-I/O weight, on the unified (v2) hierarchy or
//! the v1 controllers, whichever the machine mounts; egress bandwidth with
//! `tc` where a device is configured (see [`super::bandwidth`]).
//!
//! Groups live under one root Headroom is given (e.g. `/sys/fs/cgroup/headroom`
//! on v2, or `headroom` inside each v1 controller), each organisation in its
//! own subdirectory, so one tenant can never name another's group or any group
//! outside Headroom's.

use std::path::{Path, PathBuf};

use super::bandwidth::{Bandwidth, BandwidthError};
use super::{Desired, Provider, ProviderError};

/// CFS period used for quotas (the kernel's default).
const PERIOD_US: u64 = 100_000;

/// CPU cores one instance stands for.
pub const CORES_PER_INSTANCE: f64 = 1.0;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no writable cgroup hierarchy at {0} (neither cgroup v2 nor the v1 cpu controller)")]
    NoHierarchy(PathBuf),
    #[error(
        "group name {0:?} must be 1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    BadName(String),
    #[error("{what} must be positive and finite, got {value}")]
    BadValue { what: &'static str, value: f64 },
    #[error("the {0} controller is not available on this machine")]
    Unsupported(&'static str),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a network bandwidth limit needs HEADROOM_CGROUP_NET_DEVICE (the device to shape) and the net_prio controller"
    )]
    NoBandwidth,
    #[error("network bandwidth: {0}")]
    Network(#[from] BandwidthError),
}

/// Which hierarchy the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What is in force for a group, as read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InForce {
    /// CPU cores of quota; `None` when unlimited.
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Egress cap on the configured device, bits/s.
    pub network_bits_per_sec: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Cgroups {
    /// The cgroup mount (`/sys/fs/cgroup`).
    mount: PathBuf,
    /// Headroom's own directory name under the mount (v2) or under each v1
    /// controller.
    base: String,
    version: Version,
    /// Egress limits, when a device is configured.
    bandwidth: Option<Bandwidth>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A group (or tenant, or base) name: one path component, no way out.
pub fn check_name(name: &str) -> Result<(), CgroupError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::BadName(name.to_owned()))
    }
}

impl Cgroups {
    /// Finds the hierarchy mounted at `mount` and uses `base` under it.
    pub fn detect(mount: &Path, base: &str) -> Result<Self, CgroupError> {
        check_name(base)?;
        let version = if mount.join("cgroup.controllers").is_file() {
            Version::V2
        } else if mount.join("cpu").join("cgroup.procs").is_file() {
            Version::V1
        } else {
            return Err(CgroupError::NoHierarchy(mount.to_owned()));
        };
        Ok(Self {
            mount: mount.to_owned(),
            base: base.to_owned(),
            version,
            bandwidth: None,
        })
    }

    /// Also caps groups' egress bandwidth through `bw`.
    pub fn with_bandwidth(mut self, bw: Bandwidth) -> Self {
        self.bandwidth = Some(bw);
        self
    }

    pub fn bandwidth(&self) -> Option<&Bandwidth> {
        self.bandwidth.as_ref()
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The directory of `tenant`'s `group` for `controller` (v1), created
    /// with its parents when `create`.
    fn dir(
        &self,
        controller: &'static str,
        tenant: &str,
        group: &str,
        create: bool,
    ) -> Result<PathBuf, CgroupError> {
        check_name(tenant)?;
        check_name(group)?;
        // net_prio exists only as a v1 hierarchy, wherever it is mounted.
        let (root, unified) = match (controller, self.version) {
            ("net_prio", _) => (
                self.bandwidth
                    .as_ref()
                    .ok_or(CgroupError::NoBandwidth)?
                    .root()
                    .to_owned(),
                false,
            ),
            (_, Version::V2) => (self.mount.clone(), true),
            (_, Version::V1) => (self.mount.join(controller), false),
        };
        if !unified && !root.is_dir() {
            return Err(CgroupError::Unsupported(controller));
        }
        let mut dir = root;
        for part in [self.base.as_str(), tenant, group] {
            dir.push(part);
            if create && !dir.is_dir() {
                std::fs::create_dir(&dir).map_err(io(&dir))?;
                if unified {
                    // Children need the controllers delegated by their parent.
                    self.delegate(dir.parent().expect("has a parent"))?;
                }
            }
        }
        Ok(dir)
    }

    fn delegate(&self, parent: &Path) -> Result<(), CgroupError> {
        let file = parent.join("cgroup.subtree_control");
        // Only what the parent itself has; errors for busy roots are the
        // kernel's "no internal processes" rule and are reported.
        let available = std::fs::read_to_string(parent.join("cgroup.controllers"))
            .map_err(io(&parent.join("cgroup.controllers")))?;
        let wanted: Vec<String> = ["cpu", "memory", "io"]
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        std::fs::write(&file, wanted.join(" ")).map_err(io(&file))
    }

    fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
        let path = dir.join(file);
        std::fs::write(&path, value).map_err(io(&path))
    }

    fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
        let path = dir.join(file);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(io(&path))
    }

    /// The v1 hierarchies (or the one v2 one, `""`) a group has a directory
    /// in; net_prio when bandwidth is configured.
    fn hierarchies(&self) -> Vec<&'static str> {
        let mut out = match self.version {
            Version::V2 => vec![""],
            Version::V1 => ["cpu", "memory", "blkio"]
                .into_iter()
                .filter(|c| *c == "cpu" || self.mount.join(c).is_dir())
                .collect(),
        };
        if self.bandwidth.is_some() {
            out.push("net_prio");
        }
        out
    }

    /// Moves a process into the group (in every hierarchy on v1).
    pub fn add_process(&self, tenant: &str, group: &str, pid: u32) -> Result<(), CgroupError> {
        for c in self.hierarchies() {
            let dir = self.dir(c, tenant, group, true)?;
            Self::write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Caps the group's egress on the configured device at `bits_per_sec`.
    pub fn set_network(
        &self,
        tenant: &str,
        group: &str,
        bits_per_sec: u64,
    ) -> Result<(), CgroupError> {
        let bw = self.bandwidth.as_ref().ok_or(CgroupError::NoBandwidth)?;
        let dir = self.dir("net_prio", tenant, group, true)?;
        bw.set(&dir, &bw.root().join(&self.base), bits_per_sec)?;
        Ok(())
    }

    /// Lifts the group's egress cap, if it has one (and bandwidth is configured).
    pub fn clear_network(&self, tenant: &str, group: &str) -> Result<(), CgroupError> {
        let Some(bw) = &self.bandwidth else {
            return Ok(());
        };
        let dir = self.dir("net_prio", tenant, group, false)?;
        if dir.is_dir() {
            bw.clear(&dir)?;
        }
        Ok(())
    }

    /// Caps the group at `cores` CPUs (e.g. 0.5 = half of one core).
    pub fn set_cpu(&self, tenant: &str, group: &str, cores: f64) -> Result<(), CgroupError> {
        if !(cores.is_finite() && cores > 0.0) {
            return Err(CgroupError::BadValue {
                what: "cpu cores",
                value: cores,
            });
        }
        let quota = ((cores * PERIOD_US as f64).round() as u64).max(1_000);
        let dir = self.dir("cpu", tenant, group, true)?;
        match self.version {
            Version::V2 => Self::write(&dir, "cpu.max", &format!("{quota} {PERIOD_US}")),
            Version::V1 => {
                Self::write(&dir, "cpu.cfs_period_us", &PERIOD_US.to_string())?;
                Self::write(&dir, "cpu.cfs_quota_us", &quota.to_string())
            }
        }
    }

    pub fn set_memory(&self, tenant: &str, group: &str, bytes: u64) -> Result<(), CgroupError> {
        let dir = self.dir("memory", tenant, group, true)?;
        match self.version {
            Version::V2 => Self::write(&dir, "memory.max", &bytes.to_string()),
            Version::V1 => Self::write(&dir, "memory.limit_in_bytes", &bytes.to_string()),
        }
    }

    /// Relative block-I/O weight, 1..=10000 (v2) or 10..=1000 (v1), clamped.
    pub fn set_io_weight(&self, tenant: &str, group: &str, weight: u32) -> Result<(), CgroupError> {
        match self.version {
            Version::V2 => {
                let dir = self.dir("io", tenant, group, true)?;
                if !dir.join("io.weight").exists() {
                    return Err(CgroupError::Unsupported("io"));
                }
                Self::write(
                    &dir,
                    "io.weight",
                    &format!("default {}", weight.clamp(1, 10_000)),
                )
            }
            Version::V1 => {
                let dir = self.dir("blkio", tenant, group, true)?;
                // With the BFQ scheduler the file is blkio.bfq.weight.
                for file in ["blkio.weight", "blkio.bfq.weight"] {
                    if dir.join(file).exists() {
                        return Self::write(&dir, file, &weight.clamp(10, 1000).to_string());
                    }
                }
                Err(CgroupError::Unsupported("blkio"))
            }
        }
    }

    /// What is in force now; `None` fields for a group never limited.
    pub fn in_force(&self, tenant: &str, group: &str) -> Result<InForce, CgroupError> {
        let cpu_dir = self.dir("cpu", tenant, group, false)?;
        let mem_dir = self.dir("memory", tenant, group, false)?;
        if !cpu_dir.is_dir() {
            return Ok(InForce {
                cpu_cores: None,
                memory_bytes: None,
                network_bits_per_sec: None,
            });
        }
        let cpu_cores = match self.version {
            Version::V2 => {
                let max = Self::read(&cpu_dir, "cpu.max")?;
                let mut parts = max.split_whitespace();
                match (parts.next(), parts.next()) {
                    (Some("max"), _) | (None, _) => None,
                    (Some(q), Some(p)) => Some(parse_f64(q)? / parse_f64(p)?),
                    (Some(_), None) => None,
                }
            }
            Version::V1 => {
                let q: i64 = Self::read(&cpu_dir, "cpu.cfs_quota_us")?
                    .parse()
                    .unwrap_or(-1);
                let p = parse_f64(&Self::read(&cpu_dir, "cpu.cfs_period_us")?)?;
                (q > 0).then(|| q as f64 / p)
            }
        };
        let memory_bytes = if mem_dir.is_dir() {
            let file = match self.version {
                Version::V2 => "memory.max",
                Version::V1 => "memory.limit_in_bytes",
            };
            Self::read(&mem_dir, file)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                // v1 reports "no limit" as a huge page-rounded number.
                .filter(|b| *b < (1u64 << 62))
        } else {
            None
        };
        let network_bits_per_sec = match &self.bandwidth {
            Some(bw) => {
                let dir = self.dir("net_prio", tenant, group, false)?;
                if dir.is_dir() {
                    bw.in_force(&dir)?
                } else {
                    None
                }
            }
            None => None,
        };
        Ok(InForce {
            cpu_cores,
            memory_bytes,
            network_bits_per_sec,
        })
    }

    /// Removes the group (it must have no processes left), and its traffic
    /// class.
    pub fn remove(&self, tenant: &str, group: &str) -> Result<(), CgroupError> {
        self.clear_network(tenant, group)?;
        for c in self.hierarchies() {
            let Ok(dir) = self.dir(c, tenant, group, false) else {
                continue;
            };
            if dir.is_dir() {
                std::fs::remove_dir(&dir).map_err(io(&dir))?;
            }
        }
        Ok(())
    }
}

impl From<CgroupError> for ProviderError {
    fn from(e: CgroupError) -> Self {
        Self {
            // Files that could not be written may be a passing state (a busy
            // group); anything else is configuration.
            transient: match &e {
                CgroupError::Io { .. } => true,
                CgroupError::Network(b) => b.transient(),
                _ => false,
            },
            message: e.to_string(),
        }
    }
}

/// One instance is [`CORES_PER_INSTANCE`] cores of quota; the memory limit is
/// for the whole group; I/O weight where the machine has the controller.
impl Provider for Cgroups {
    async fn apply(
        &self,
        tenant: &str,
        group: &str,
        want: &Desired,
        _token: &str,
    ) -> Result<(), ProviderError> {
        // Writing a value is idempotent; no token is needed. A limit that
        // cannot be applied here fails the command before anything changes.
        if want.network_bits_per_sec.is_some() && self.bandwidth.is_none() {
            return Err(CgroupError::NoBandwidth.into());
        }
        let instances = want.instances.max(1);
        self.set_cpu(tenant, group, f64::from(instances) * CORES_PER_INSTANCE)?;
        if let Some(bytes) = want.memory_bytes {
            self.set_memory(tenant, group, bytes)?;
        }
        if let Some(weight) = want.io_weight {
            match self.set_io_weight(tenant, group, weight) {
                Ok(()) | Err(CgroupError::Unsupported(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match want.network_bits_per_sec {
            Some(bits) => self.set_network(tenant, group, bits)?,
            // The workload's setting was removed: nothing stays capped.
            None => self.clear_network(tenant, group)?,
        }
        Ok(())
    }

    async fn in_force(&self, tenant: &str, group: &str) -> Result<super::InForce, ProviderError> {
        let f = Cgroups::in_force(self, tenant, group)?;
        Ok(super::InForce {
            instances: f
                .cpu_cores
                .map(|c| (c / CORES_PER_INSTANCE).round().max(0.0) as u32),
            memory_bytes: f.memory_bytes,
            network_bits_per_sec: f.network_bits_per_sec,
            ..Default::default()
        })
    }
}

fn parse_f64(s: &str) -> Result<f64, CgroupError> {
    s.parse::<f64>().map_err(|_| CgroupError::Io {
        path: PathBuf::from(s),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_root() {
        for bad in ["..", "../x", "a/b", "", ".hidden", "x y"] {
            assert!(
                matches!(check_name(bad), Err(CgroupError::BadName(_))),
                "{bad}"
            );
        }
        check_name("web-1_a.b").unwrap();
    }

    #[test]
    fn a_fake_v2_tree_gets_cpu_max_and_reads_it_back() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory io").unwrap();
        let cg = Cgroups::detect(root.path(), "headroom").unwrap();
        assert_eq!(cg.version(), Version::V2);
        // Directories on a plain filesystem lack the kernel's files: seed them
        // as the kernel would once the parents exist.
        let base = root.path().join("headroom");
        std::fs::create_dir_all(base.join("org-1")).unwrap();
        for d in [root.path().to_owned(), base.clone(), base.join("org-1")] {
            std::fs::write(d.join("cgroup.controllers"), "cpu memory io").unwrap();
        }
        cg.set_cpu("org-1", "web", 1.5).unwrap();
        let dir = base.join("org-1").join("web");
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "150000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(base.join("org-1").join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +io"
        );
        assert_eq!(cg.in_force("org-1", "web").unwrap().cpu_cores, Some(1.5));
        assert!(matches!(
            cg.set_cpu("org-1", "web", 0.0),
            Err(CgroupError::BadValue { .. })
        ));
    }
}
