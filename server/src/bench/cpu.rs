//! CPU time spent, read from Linux's `/proc`: this process's, and that of
//! the PostgreSQL server's processes when they run on the same machine. A
//! tick's wall time on a shared machine says little about where the cores
//! went; these say how much of it the worker needs and how much the database.

/// Clock ticks per second in `/proc/*/stat` (USER_HZ, 100 in Linux's ABI).
const USER_HZ: f64 = 100.0;

/// CPU seconds consumed so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuTime {
    /// This process (all its threads), user and system.
    pub own: f64,
    /// Every live process named `postgres` (zero when there is none here).
    pub database: f64,
}

impl CpuTime {
    /// `None` where `/proc` cannot be read (not Linux).
    pub fn now() -> Option<Self> {
        let own = process_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let mut database = 0.0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            if !name
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            // Processes end while they are read: skipped.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if stat.contains("(postgres)") {
                database += process_seconds(&stat).unwrap_or(0.0);
            }
        }
        Some(Self { own, database })
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            own: self.own - earlier.own,
            database: self.database - earlier.database,
        }
    }
}

/// utime + stime of one `/proc/PID/stat` line, in seconds. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its
/// closing parenthesis: utime and stime are the 12th and 13th there.
fn process_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_after_the_command_name() {
        let line = "4242 (postgres: a (b)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(process_seconds(line), Some(3.0));
        assert_eq!(process_seconds("garbage"), None);
    }

    #[test]
    fn this_process_is_measured() {
        if let Some(t) = CpuTime::now() {
            assert!(t.own >= 0.0 && t.database >= 0.0);
        }
    }
}
