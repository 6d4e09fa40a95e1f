//! Egress bandwidth limits for control groups, with `tc`.
//!
//! Each limited group gets an HTB class on one network device, and the
//! group's `net_prio.ifpriomap` gives its sockets' packets on that device the
//! class id as their priority. HTB puts a packet whose priority names one of
//! its classes straight into that class, so no classifier is needed (kernels
//! are often built without the cgroup classifier); packets of every other
//! process carry no such priority and leave unshaped (HTB `default 0`).
//!
//! `net_prio` is a cgroup v1 controller; it can be mounted beside a v2
//! hierarchy, as it is unused there. Its groups mirror the cgroup provider's:
//! `<net_prio mount>/<base>/<tenant>/<group>`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Our HTB root's handle major ("HR"), so an operator's own qdisc numbering
/// on the device is recognisable as not ours.
const MAJOR: u32 = 0x4852;
/// Class minors handed out to groups.
const MINORS: std::ops::RangeInclusive<u32> = 0x10..=0xfff0;

#[derive(Debug, thiserror::Error)]
pub enum BandwidthError {
    #[error("network device {0:?} does not exist on this machine")]
    NoDevice(String),
    #[error(
        "the net_prio cgroup controller is not mounted (mount it with `mount -t cgroup -o net_prio none <dir>` and set HEADROOM_CGROUP_NET_PRIO, or let it be found in /proc/mounts)"
    )]
    NoNetPrio,
    #[error("`tc {args}` failed: {message}")]
    Tc { args: String, message: String },
    #[error("no free traffic class left on {0}")]
    NoClassLeft(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BandwidthError {
    /// Whether trying again may help (a busy file, a `tc` that raced).
    pub fn transient(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Tc { .. })
    }
}

/// Limits on one device.
#[derive(Debug, Clone)]
pub struct Bandwidth {
    device: String,
    net_prio: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BandwidthError + '_ {
    move |source| BandwidthError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the `net_prio` controller is mounted, from a `/proc/mounts` text.
pub fn find_net_prio(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "net_prio"))
            .then(|| PathBuf::from(f[1]))
    })
}

/// A rate as `tc` prints it (`8Mbit`, `800Kbit`, `1Gbit`, `500bit`), in bits/s.
pub fn parse_rate(s: &str) -> Option<u64> {
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: f64 = n.parse().ok()?;
    let mult = match unit {
        "bit" | "" => 1.0,
        "Kbit" => 1e3,
        "Mbit" => 1e6,
        "Gbit" => 1e9,
        "Tbit" => 1e12,
        _ => return None,
    };
    Some((n * mult).round() as u64)
}

/// The class minor a `net_prio.ifpriomap` gives `device`, if it is one of ours.
fn minor_in(priomap: &str, device: &str) -> Option<u32> {
    priomap.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (dev, prio) = (f.next()?, f.next()?.parse::<u32>().ok()?);
        (dev == device && prio >> 16 == MAJOR && MINORS.contains(&(prio & 0xffff)))
            .then_some(prio & 0xffff)
    })
}

fn tc(args: &[&str]) -> Result<String, BandwidthError> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| BandwidthError::Tc {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BandwidthError::Tc {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

impl Bandwidth {
    /// Limits on `device`, with the `net_prio` hierarchy at `net_prio` or,
    /// when `None`, wherever `/proc/mounts` says it is.
    pub fn detect(device: &str, net_prio: Option<&Path>) -> Result<Self, BandwidthError> {
        if device.is_empty()
            || device.contains('/')
            || !Path::new("/sys/class/net").join(device).exists()
        {
            return Err(BandwidthError::NoDevice(device.to_owned()));
        }
        let net_prio = match net_prio {
            Some(p) => p.to_owned(),
            None => std::fs::read_to_string("/proc/mounts")
                .ok()
                .and_then(|m| find_net_prio(&m))
                .ok_or(BandwidthError::NoNetPrio)?,
        };
        if !net_prio.join("net_prio.ifpriomap").is_file() {
            return Err(BandwidthError::NoNetPrio);
        }
        Ok(Self {
            device: device.to_owned(),
            net_prio,
        })
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// The `net_prio` hierarchy's root.
    pub fn root(&self) -> &Path {
        &self.net_prio
    }

    fn handle(minor: u32) -> String {
        format!("{MAJOR:x}:{minor:x}")
    }

    /// Our HTB qdisc at the device's root, put there unless it already is.
    fn ensure_root(&self) -> Result<(), BandwidthError> {
        let shown = tc(&["qdisc", "show", "dev", &self.device, "root"])?;
        if shown.starts_with(&format!("qdisc htb {MAJOR:x}: root")) {
            return Ok(());
        }
        tracing::warn!(device = %self.device, was = %shown.trim(), "replacing the root qdisc with Headroom's HTB (unlimited traffic is sent unshaped)");
        tc(&[
            "qdisc",
            "replace",
            "dev",
            &self.device,
            "root",
            "handle",
            &format!("{MAJOR:x}:"),
            "htb",
            "default",
            "0",
        ])
        .map(drop)
    }

    /// The group's class minor: the one it has, or the lowest no other
    /// group under `scope` (the provider's base directory) holds.
    fn minor_for(&self, group: &Path, scope: &Path) -> Result<u32, BandwidthError> {
        let map = group.join("net_prio.ifpriomap");
        if let Some(m) = std::fs::read_to_string(&map)
            .ok()
            .and_then(|s| minor_in(&s, &self.device))
        {
            return Ok(m);
        }
        let mut taken = Vec::new();
        // <base>/<tenant>/<group>
        if let Ok(tenants) = std::fs::read_dir(scope) {
            for t in tenants.flatten().filter(|e| e.path().is_dir()) {
                for g in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
                    if let Some(m) = std::fs::read_to_string(g.path().join("net_prio.ifpriomap"))
                        .ok()
                        .and_then(|s| minor_in(&s, &self.device))
                    {
                        taken.push(m);
                    }
                }
            }
        }
        MINORS
            .into_iter()
            .find(|m| !taken.contains(m))
            .ok_or_else(|| BandwidthError::NoClassLeft(self.device.clone()))
    }

    /// Caps the egress of `group`'s processes on the device at
    /// `bits_per_sec`. Idempotent: the same rate again changes nothing.
    pub fn set(&self, group: &Path, scope: &Path, bits_per_sec: u64) -> Result<(), BandwidthError> {
        let minor = self.minor_for(group, scope)?;
        self.ensure_root()?;
        let bits = bits_per_sec.max(8_000);
        let rate = format!("{bits}bit");
        // tc's default burst is one timer tick of traffic and wraps at
        // gigabit rates; 10 ms of traffic (at least a few packets) instead.
        let burst = format!("{}b", (bits / 8 / 100).max(16_000));
        // Classes never borrow (ceil = rate), so the quantum only has to be
        // in the range HTB accepts without complaint.
        let quantum = (bits / 8 / 10).clamp(1_514, 200_000).to_string();
        tc(&[
            "class",
            "replace",
            "dev",
            &self.device,
            "parent",
            &format!("{MAJOR:x}:"),
            "classid",
            &Self::handle(minor),
            "htb",
            "rate",
            &rate,
            "ceil",
            &rate,
            "burst",
            &burst,
            "cburst",
            &burst,
            "quantum",
            &quantum,
        ])?;
        let map = group.join("net_prio.ifpriomap");
        std::fs::write(&map, format!("{} {}", self.device, (MAJOR << 16) | minor)).map_err(io(&map))
    }

    /// The cap in force for `group`, bits/s; `None` when it has none.
    pub fn in_force(&self, group: &Path) -> Result<Option<u64>, BandwidthError> {
        let Some(minor) = std::fs::read_to_string(group.join("net_prio.ifpriomap"))
            .ok()
            .and_then(|s| minor_in(&s, &self.device))
        else {
            return Ok(None);
        };
        let shown = tc(&[
            "class",
            "show",
            "dev",
            &self.device,
            "classid",
            &Self::handle(minor),
        ])?;
        let mut words = shown.split_whitespace();
        Ok(words
            .by_ref()
            .find(|w| *w == "rate")
            .and(words.next())
            .and_then(parse_rate))
    }

    /// Lifts the cap: the group's packets are no longer classified and its
    /// class is deleted.
    pub fn clear(&self, group: &Path) -> Result<(), BandwidthError> {
        let map = group.join("net_prio.ifpriomap");
        let Some(minor) = std::fs::read_to_string(&map)
            .ok()
            .and_then(|s| minor_in(&s, &self.device))
        else {
            return Ok(());
        };
        std::fs::write(&map, format!("{} 0", self.device)).map_err(io(&map))?;
        match tc(&[
            "class",
            "del",
            "dev",
            &self.device,
            "classid",
            &Self::handle(minor),
        ]) {
            Ok(_) => Ok(()),
            // Already gone (the qdisc was replaced by hand, say).
            Err(BandwidthError::Tc { message, .. })
                if message.contains("No such file") || message.contains("Cannot find") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_tc_prints_them() {
        assert_eq!(parse_rate("8Mbit"), Some(8_000_000));
        assert_eq!(parse_rate("800Kbit"), Some(800_000));
        assert_eq!(parse_rate("1.5Gbit"), Some(1_500_000_000));
        assert_eq!(parse_rate("500bit"), Some(500));
        assert_eq!(parse_rate("8MiB"), None);
        assert_eq!(parse_rate("fast"), None);
    }

    #[test]
    fn net_prio_is_found_in_mounts() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
                      cgroup /sys/fs/cgroup/net_cls,net_prio cgroup rw,net_cls,net_prio 0 0\n";
        assert_eq!(
            find_net_prio(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/net_cls,net_prio"))
        );
        assert_eq!(
            find_net_prio("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"),
            None
        );
    }

    #[test]
    fn only_our_classes_on_our_device_count() {
        let prio = |minor: u32| (MAJOR << 16) | minor;
        let map = format!("lo 0\neth0 {}\nveth1 {}\n", prio(0x20), prio(0x30));
        assert_eq!(minor_in(&map, "eth0"), Some(0x20));
        assert_eq!(minor_in(&map, "veth1"), Some(0x30));
        assert_eq!(minor_in(&map, "lo"), None);
        // Someone else's priority (another qdisc's major) is not ours.
        assert_eq!(minor_in("eth0 65552\n", "eth0"), None);
    }

    #[test]
    fn a_new_group_gets_the_lowest_free_class() {
        let root = tempfile::tempdir().unwrap();
        let scope = root.path().join("headroom");
        for (t, g, m) in [("a", "web", 0x10), ("b", "db", 0x12)] {
            let d = scope.join(t).join(g);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("net_prio.ifpriomap"),
                format!("lo 0\neth0 {}\n", (MAJOR << 16) | m),
            )
            .unwrap();
        }
        let fresh = scope.join("a").join("batch");
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::write(fresh.join("net_prio.ifpriomap"), "lo 0\neth0 0\n").unwrap();
        let bw = Bandwidth {
            device: "eth0".into(),
            net_prio: root.path().to_owned(),
        };
        assert_eq!(bw.minor_for(&fresh, &scope).unwrap(), 0x11);
        // A group that has one keeps it.
        assert_eq!(
            bw.minor_for(&scope.join("b").join("db"), &scope).unwrap(),
            0x12
        );
    }
}
