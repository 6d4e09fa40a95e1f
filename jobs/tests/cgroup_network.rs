//! The cgroup adapter's egress bandwidth limit against the real kernel: a
//! process in a group streams TCP to a peer in another network namespace
//! through a veth pair, and the rate the peer receives drops to the cap the
//! controller commands, then rises with it. Needs root, `ip`, `tc` and the
//! net_prio controller (mounted here when it is not); elsewhere it says so
//! loudly and checks nothing.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headroom_jobs::providers::bandwidth::{Bandwidth, find_net_prio};
use headroom_jobs::providers::cgroup::{Cgroups, Version};
use headroom_jobs::providers::{Desired, Provider};

fn skip(why: impl std::fmt::Display) {
    eprintln!("\n*** SKIPPED a_bandwidth_cap_slows_a_streaming_process: {why} ***\n");
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with a veth pair into it; removed on drop (which also
/// removes both ends of the pair and the qdisc on ours).
struct Peer {
    ns: String,
    host_dev: String,
    peer_ip: String,
}

impl Peer {
    fn create() -> Result<Self, String> {
        let id = std::process::id() % 10_000;
        let p = Self {
            ns: format!("hrtest{id}"),
            host_dev: format!("hrh{id}"),
            peer_ip: format!("10.251.{}.2", id % 250),
        };
        let host_ip = format!("10.251.{}.1/30", id % 250);
        let peer_cidr = format!("{}/30", p.peer_ip);
        let peer_dev = format!("hrp{id}");
        run(&["ip", "netns", "add", &p.ns])?;
        run(&[
            "ip",
            "link",
            "add",
            &p.host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &peer_dev,
        ])?;
        run(&["ip", "link", "set", &peer_dev, "netns", &p.ns])?;
        run(&["ip", "addr", "add", &host_ip, "dev", &p.host_dev])?;
        run(&["ip", "link", "set", &p.host_dev, "up"])?;
        run(&[
            "ip", "-n", &p.ns, "addr", "add", &peer_cidr, "dev", &peer_dev,
        ])?;
        run(&["ip", "-n", &p.ns, "link", "set", &peer_dev, "up"])?;
        run(&["ip", "-n", &p.ns, "link", "set", "lo", "up"])?;
        Ok(p)
    }

    /// A listener inside the namespace (bound from a thread that joined it)
    /// counting every byte it receives.
    fn receive(&self, port: u16) -> Arc<AtomicU64> {
        let received = Arc::new(AtomicU64::new(0));
        let (ns, addr, count) = (
            format!("/run/netns/{}", self.ns),
            format!("{}:{port}", self.peer_ip),
            received.clone(),
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&ns).unwrap();
            // Only this thread changes namespace.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let listener = TcpListener::bind(&addr).unwrap();
            ready_tx.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        received
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = run(&["ip", "link", "del", &self.host_dev]);
    }
}

struct Sender(Child);

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where net_prio is mounted, mounting it in a temporary directory when it
/// is nowhere (the directory is returned to unmount at the end).
fn net_prio() -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|e| e.to_string())?;
    if let Some(p) = find_net_prio(&mounts) {
        return Ok((p, None));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().to_str().unwrap().to_owned();
    run(&["mount", "-t", "cgroup", "-o", "net_prio", "none", &path])?;
    Ok((dir.path().to_owned(), Some(dir)))
}

/// Mbit/s received over `window`, after letting the rate settle.
fn rate(received: &AtomicU64, window: Duration) -> f64 {
    std::thread::sleep(Duration::from_millis(1500));
    let (b0, t0) = (received.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    (received.load(Ordering::Relaxed) - b0) as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e6
}

fn want(instances: u32, mbit_per_instance: u64) -> Desired {
    Desired {
        instances,
        warm: 0,
        min: 1,
        max: 8,
        memory_bytes: None,
        io_weight: None,
        network_bits_per_sec: Some(u64::from(instances) * mbit_per_instance * 1_000_000),
        instance_type: None,
        purchase: None,
    }
}

#[test]
fn a_bandwidth_cap_slows_a_streaming_process() {
    let mount = Path::new("/sys/fs/cgroup");
    let base = format!("headroom-nettest-{}", std::process::id());
    let cg = match Cgroups::detect(mount, &base) {
        Ok(cg) => cg,
        Err(e) => return skip(e),
    };
    for tool in ["ip", "tc"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return skip(format!("`{tool}` is not installed (Debian: iproute2)"));
        }
    }
    let peer = match Peer::create() {
        Ok(p) => p,
        Err(e) => {
            return skip(format!(
                "cannot make a network namespace and veth pair ({e}); run as root"
            ));
        }
    };
    let (prio_root, mounted) = match net_prio() {
        Ok(x) => x,
        Err(e) => return skip(format!("the net_prio controller cannot be mounted: {e}")),
    };
    let cg = cg.with_bandwidth(Bandwidth::detect(&peer.host_dev, Some(&prio_root)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let received = peer.receive(5001);
    // The sender waits for a line before connecting, so it is in the group
    // before its socket exists.
    let mut sender = Sender(
        Command::new("bash")
            .args([
                "-c",
                &format!(
                    "read _; exec 3<>/dev/tcp/{}/5001; exec cat /dev/zero >&3",
                    peer.peer_ip
                ),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let tenant = "org";
    if let Err(e) = cg.add_process(tenant, "stream", sender.0.id()) {
        return skip(format!("cgroups are not writable here ({e})"));
    }
    let cleanup = |cg: &Cgroups| {
        let _ = cg.remove(tenant, "stream");
        let roots: Vec<PathBuf> = match cg.version() {
            Version::V2 => vec![mount.to_owned()],
            Version::V1 => ["cpu", "memory", "blkio"]
                .iter()
                .map(|c| mount.join(c))
                .collect(),
        };
        for root in roots.into_iter().chain([prio_root.clone()]) {
            let _ = std::fs::remove_dir(root.join(&base).join(tenant));
            let _ = std::fs::remove_dir(root.join(&base));
        }
    };

    // One instance at 8 Mbit/s; the same command twice changes nothing.
    rt.block_on(cg.apply(tenant, "stream", &want(1, 8), "t1"))
        .unwrap();
    rt.block_on(cg.apply(tenant, "stream", &want(1, 8), "t1"))
        .unwrap();
    let in_force = rt
        .block_on(Provider::in_force(&cg, tenant, "stream"))
        .unwrap();
    assert_eq!(in_force.network_bits_per_sec, Some(8_000_000));
    assert!(want(1, 8).drift(&in_force).is_empty(), "{in_force:?}");
    writeln!(sender.0.stdin.as_mut().unwrap()).unwrap();
    let capped = rate(&received, Duration::from_secs(2));

    // Four instances: 32 Mbit/s.
    rt.block_on(cg.apply(tenant, "stream", &want(4, 8), "t2"))
        .unwrap();
    let raised = rate(&received, Duration::from_secs(2));

    // Changed behind the controller's back: the drift is named.
    let drifted = Command::new("tc")
        .args([
            "class",
            "change",
            "dev",
            &peer.host_dev,
            "parent",
            "4852:",
            "classid",
            "4852:10",
            "htb",
            "rate",
            "2mbit",
            "ceil",
            "2mbit",
        ])
        .status()
        .unwrap();
    assert!(drifted.success());
    let in_force = rt
        .block_on(Provider::in_force(&cg, tenant, "stream"))
        .unwrap();
    let drift = want(4, 8).drift(&in_force);

    // The setting removed: the cap is lifted.
    let mut none = want(4, 8);
    none.network_bits_per_sec = None;
    rt.block_on(cg.apply(tenant, "stream", &none, "t3"))
        .unwrap();
    let lifted = rt
        .block_on(Provider::in_force(&cg, tenant, "stream"))
        .unwrap();
    let unshaped = rate(&received, Duration::from_secs(1));

    drop(sender);
    cleanup(&cg);
    if let Some(dir) = &mounted {
        let _ = run(&["umount", dir.path().to_str().unwrap()]);
    }
    drop(peer);
    eprintln!(
        "egress cap 8 Mbit/s → {capped:.2} Mbit/s received; 32 Mbit/s → {raised:.2}; lifted → {unshaped:.0}"
    );
    // Payload is ~95 % of what the class sends (TCP/IP headers).
    assert!(
        (6.0..=8.4).contains(&capped),
        "capped at 8 Mbit/s but received {capped:.2}"
    );
    assert!(
        (24.0..=33.6).contains(&raised),
        "capped at 32 Mbit/s but received {raised:.2}"
    );
    assert_eq!(
        drift,
        vec!["network cap 2000000 bit/s in force, 32000000 bit/s on record".to_owned()]
    );
    assert_eq!(lifted.network_bits_per_sec, None);
    assert!(
        unshaped > 100.0,
        "the lifted cap still holds: {unshaped:.1} Mbit/s"
    );
}
