//! Host metrics, sampled through `sysinfo`.
//!
//! | metric | value |
//! |---|---|
//! | `cpu` | all cores together, percent (0–100) since the last sample |
//! | `memory_used_bytes`, `memory_used_pct` | used memory (total − available) |
//! | `net_in_bytes`, `net_out_bytes` | bytes per second since the last sample, all interfaces but loopback |
//! | `disk_read_bytes`, `disk_write_bytes` | bytes per second since the last sample, summed over the block devices of mounted disks (each device once) |
//! | `process.<filter>.cpu` | processes whose name contains `<filter>`: CPU percent of one core, summed (can exceed 100) |
//! | `process.<filter>.memory_bytes` | their resident memory, summed |
//! | `process.<filter>.count` | how many processes matched |
//!
//! A process's name is what the kernel reports (on Linux at most 15 characters) or
//! its executable's file name. Rates and CPU percentages need two readings: the
//! collector takes the first when it is created.

use std::collections::HashSet;
use std::time::Instant;

use chrono::Utc;
use sysinfo::{
    DiskRefreshKind, Disks, Networks, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind,
};

use crate::point::{MAX_METRIC_LEN, MetricPoint, sanitize};

#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// The workload every point belongs to.
    pub workload: String,
    /// Substrings of process names to report on.
    pub process_filters: Vec<String>,
}

pub struct Collector {
    workload: String,
    /// (filter as given, its part of the metric name).
    filters: Vec<(String, String)>,
    system: System,
    networks: Networks,
    disks: Disks,
    last: Instant,
}

impl Collector {
    /// Takes the first reading; [`Collector::sample`] reports changes since then.
    pub fn new(config: CollectConfig) -> Self {
        // Room for "process." + name + ".memory_bytes" within the metric length limit.
        let room = MAX_METRIC_LEN - "process.".len() - ".memory_bytes".len();
        let filters = config
            .process_filters
            .into_iter()
            .filter(|f| !f.is_empty())
            .map(|f| {
                let name = sanitize(&f, room);
                (f, name)
            })
            .collect();
        let mut collector = Self {
            workload: config.workload,
            filters,
            system: System::new(),
            networks: Networks::new_with_refreshed_list(),
            disks: Disks::new_with_refreshed_list_specifics(
                DiskRefreshKind::nothing().with_io_usage(),
            ),
            last: Instant::now(),
        };
        collector.system.refresh_cpu_usage();
        collector.system.refresh_memory();
        collector.refresh_processes();
        collector
    }

    fn refresh_processes(&mut self) {
        if self.filters.is_empty() {
            return;
        }
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_exe(UpdateKind::OnlyIfNotSet),
        );
    }

    /// One reading of every metric, stamped now. Blocking (reads `/proc`): call it
    /// from a blocking task in async code.
    pub fn sample(&mut self) -> Vec<MetricPoint> {
        let now = Utc::now();
        let elapsed = self.last.elapsed().as_secs_f64().max(1e-3);
        self.last = Instant::now();

        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.networks.refresh(true);
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing().with_io_usage());
        self.refresh_processes();

        let mut out = Vec::with_capacity(7 + 3 * self.filters.len());
        let mut push = |metric: String, value: f64| {
            if value.is_finite() {
                out.push(MetricPoint::new(self.workload.clone(), metric, now, value));
            }
        };

        push("cpu".into(), f64::from(self.system.global_cpu_usage()));
        let (used, total) = (self.system.used_memory(), self.system.total_memory());
        push("memory_used_bytes".into(), used as f64);
        if total > 0 {
            push("memory_used_pct".into(), used as f64 * 100.0 / total as f64);
        }

        let (mut rx, mut tx) = (0u64, 0u64);
        for (name, data) in self.networks.list() {
            if name == "lo" {
                continue;
            }
            rx = rx.saturating_add(data.received());
            tx = tx.saturating_add(data.transmitted());
        }
        push("net_in_bytes".into(), rx as f64 / elapsed);
        push("net_out_bytes".into(), tx as f64 / elapsed);

        let (mut read, mut written) = (0u64, 0u64);
        let mut devices = HashSet::new();
        for disk in self.disks.list() {
            if !devices.insert(disk.name().to_owned()) {
                continue;
            }
            let usage = disk.usage();
            read = read.saturating_add(usage.read_bytes);
            written = written.saturating_add(usage.written_bytes);
        }
        push("disk_read_bytes".into(), read as f64 / elapsed);
        push("disk_write_bytes".into(), written as f64 / elapsed);

        for (filter, name) in &self.filters {
            let (mut cpu, mut memory, mut count) = (0f64, 0u64, 0u64);
            for process in self.system.processes().values() {
                if process.thread_kind().is_some() {
                    continue; // a thread listed as a task, not a process
                }
                let matches = process.name().to_string_lossy().contains(filter.as_str())
                    || process
                        .exe()
                        .and_then(|p| p.file_name())
                        .is_some_and(|f| f.to_string_lossy().contains(filter.as_str()));
                if matches {
                    cpu += f64::from(process.cpu_usage());
                    memory = memory.saturating_add(process.memory());
                    count += 1;
                }
            }
            push(format!("process.{name}.cpu"), cpu);
            push(format!("process.{name}.memory_bytes"), memory as f64);
            push(format!("process.{name}.count"), count as f64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{MAX_WORKLOAD_LEN, check_name};

    #[test]
    fn samples_every_metric_with_finite_values() {
        // This test process, by the name the kernel knows it by.
        let me = std::fs::read_to_string("/proc/self/comm")
            .expect("a Linux machine")
            .trim()
            .to_owned();
        let mut collector = Collector::new(CollectConfig {
            workload: "test-host".into(),
            process_filters: vec![me.clone(), "no-such-process-xyz".into()],
        });
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL * 2);
        // Some work and some disk traffic between the readings.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![7u8; 1 << 20]).unwrap();
        let points = collector.sample();

        let name = sanitize(&me, 100);
        let expected = [
            "cpu".to_owned(),
            "memory_used_bytes".into(),
            "memory_used_pct".into(),
            "net_in_bytes".into(),
            "net_out_bytes".into(),
            "disk_read_bytes".into(),
            "disk_write_bytes".into(),
            format!("process.{name}.cpu"),
            format!("process.{name}.memory_bytes"),
            format!("process.{name}.count"),
            "process.no-such-process-xyz.cpu".into(),
            "process.no-such-process-xyz.memory_bytes".into(),
            "process.no-such-process-xyz.count".into(),
        ];
        let names: Vec<&str> = points.iter().map(|p| p.metric.as_str()).collect();
        assert_eq!(names, expected, "{points:#?}");
        for p in &points {
            assert!(p.value.is_finite() && p.value >= 0.0, "{p:?}");
            assert_eq!(p.workload, "test-host");
            assert!(check_name("metric", &p.metric, MAX_METRIC_LEN).is_ok());
            assert!(check_name("workload", &p.workload, MAX_WORKLOAD_LEN).is_ok());
            assert_eq!(p.timestamp, points[0].timestamp);
        }
        let value = |m: &str| points.iter().find(|p| p.metric == m).unwrap().value;
        assert!(value("cpu") <= 100.0);
        assert!(value("memory_used_bytes") > 0.0);
        assert!(value("memory_used_pct") > 0.0 && value("memory_used_pct") <= 100.0);
        assert!(
            value(&format!("process.{name}.count")) >= 1.0,
            "finds itself"
        );
        assert!(value(&format!("process.{name}.memory_bytes")) > 0.0);
        assert_eq!(value("process.no-such-process-xyz.count"), 0.0);

        // The next sample is later and distinct (its own idempotency key).
        std::thread::sleep(std::time::Duration::from_millis(5));
        let again = collector.sample();
        assert!(again[0].timestamp > points[0].timestamp);
    }
}
