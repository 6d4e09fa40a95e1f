//! The cgroup adapter against the real kernel: a CPU-burning child is given a
//! quota and its measured CPU use drops to it. Needs root and a writable
//! cgroup hierarchy; elsewhere it says so loudly and checks nothing.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use headroom_jobs::providers::cgroup::{Cgroups, Version};

/// CPU seconds a process has used (from /proc, nanoseconds when available).
fn cpu_seconds(pid: u32) -> f64 {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        && let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
    {
        return ns / 1e9;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Share of one core the process used over `window`.
fn usage(pid: u32, window: Duration) -> f64 {
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64()
}

struct Burner(Child);

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_cpu_quota_caps_a_burning_process() {
    let mount = Path::new("/sys/fs/cgroup");
    let base = format!("headroom-test-{}", std::process::id());
    let cg = match Cgroups::detect(mount, &base) {
        Ok(cg) => cg,
        Err(e) => {
            eprintln!("\n*** SKIPPED a_cpu_quota_caps_a_burning_process: {e} ***\n");
            return;
        }
    };
    let burner = Burner(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let pid = burner.0.id();
    if let Err(e) = cg.add_process("org", "burner", pid) {
        eprintln!(
            "\n*** SKIPPED a_cpu_quota_caps_a_burning_process: cgroups are not writable here ({e}); run as root on a machine with cgroup v1 or v2 ***\n"
        );
        return;
    }
    let cleanup = |cg: &Cgroups| {
        let _ = cg.remove("org", "burner");
        for controller in ["", "cpu", "memory", "blkio"] {
            let root = if cg.version() == Version::V2 {
                mount.to_owned()
            } else {
                mount.join(controller)
            };
            let _ = std::fs::remove_dir(root.join(&base).join("org"));
            let _ = std::fs::remove_dir(root.join(&base));
        }
    };

    cg.set_cpu("org", "burner", 0.2).unwrap();
    // Applying the same allocation again changes nothing (idempotent).
    cg.set_cpu("org", "burner", 0.2).unwrap();
    assert_eq!(cg.in_force("org", "burner").unwrap().cpu_cores, Some(0.2));
    std::thread::sleep(Duration::from_millis(300));
    let capped = usage(pid, Duration::from_secs(2));
    // Raised: it gets more (up to what the machine has free).
    cg.set_cpu("org", "burner", 0.6).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let raised = usage(pid, Duration::from_secs(2));
    drop(burner);
    cleanup(&cg);
    eprintln!(
        "cgroup {:?}: capped at 0.2 → {capped:.3} cores; at 0.6 → {raised:.3} cores",
        cg.version()
    );
    assert!(capped <= 0.25, "capped at 0.2 cores but used {capped:.3}");
    assert!(
        capped >= 0.1,
        "capped at 0.2 cores but used only {capped:.3}"
    );
    assert!(raised <= 0.7, "capped at 0.6 cores but used {raised:.3}");
    assert!(
        raised > capped + 0.15,
        "raising the quota gave nothing: {capped:.3} → {raised:.3}"
    );
}
