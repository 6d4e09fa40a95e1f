//! The agent's settings: flags, or the same in `HEADROOM_AGENT_*` environment
//! variables. The API key comes from `HEADROOM_AGENT_KEY` only, never a flag (flags
//! show in `ps`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::point::{MAX_WORKLOAD_LEN, check_name, sanitize};
use crate::spool::SpoolConfig;

pub const KEY_VAR: &str = "HEADROOM_AGENT_KEY";

#[derive(Debug, Parser)]
#[command(
    name = "headroom-agent",
    version,
    about = "Collects host metrics, spools them on disk and ships them to Headroom.",
    after_help = "The API key (scope `ingest`) is read from HEADROOM_AGENT_KEY only."
)]
struct Cli {
    /// Headroom's base URL, e.g. http://127.0.0.1:3000 (plain HTTP).
    #[arg(long, env = "HEADROOM_AGENT_URL", value_name = "URL")]
    url: Option<String>,
    /// Workload the host's points belong to [default: the host name].
    #[arg(long, env = "HEADROOM_AGENT_WORKLOAD", value_name = "NAME")]
    workload: Option<String>,
    /// Seconds between samples (1 to 3600).
    #[arg(
        long,
        env = "HEADROOM_AGENT_INTERVAL_SECS",
        value_name = "SECS",
        default_value = "10"
    )]
    interval_secs: String,
    /// Directory of the on-disk spool.
    #[arg(
        long,
        env = "HEADROOM_AGENT_SPOOL_DIR",
        value_name = "DIR",
        default_value = ".headroom-agent/spool"
    )]
    spool_dir: PathBuf,
    /// Upper bound of the spool's size on disk; when full, the oldest points go.
    #[arg(
        long,
        env = "HEADROOM_AGENT_SPOOL_MAX_BYTES",
        value_name = "BYTES",
        default_value = "67108864"
    )]
    spool_max_bytes: String,
    /// Report on processes whose name contains this (repeat, or comma-separate).
    #[arg(
        long = "process",
        env = "HEADROOM_AGENT_PROCESSES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    processes: Vec<String>,
    /// Log filter (`tracing` directives, e.g. `info,headroom_agent=debug`).
    #[arg(
        long,
        env = "HEADROOM_AGENT_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    log: String,
    /// Seconds to keep sending after SIGTERM or Ctrl-C; the rest stays spooled.
    #[arg(
        long,
        env = "HEADROOM_AGENT_SHUTDOWN_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "5"
    )]
    shutdown_timeout_secs: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    pub api_key: String,
    pub workload: String,
    pub interval: Duration,
    pub spool: SpoolConfig,
    pub process_filters: Vec<String>,
    pub log_filter: String,
    pub shutdown_timeout: Duration,
}

#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version`: print it and exit 0.
    Info(clap::Error),
    /// One line naming the setting.
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Info(e) => write!(f, "{e}"),
            Self::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

impl Config {
    /// From the process's arguments and environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_parts(std::env::args_os(), std::env::var(KEY_VAR).ok())
    }

    /// From these arguments (the first is the program name), the `HEADROOM_AGENT_*`
    /// environment for settings not given as flags, and this key.
    pub fn from_parts(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
        api_key: Option<String>,
    ) -> Result<Self, ConfigError> {
        let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                ConfigError::Info(e)
            }
            _ => invalid(one_line(&e.render().to_string())),
        })?;

        let url = cli.url.ok_or_else(|| {
            invalid("HEADROOM_AGENT_URL (or --url) is required, e.g. http://127.0.0.1:3000")
        })?;
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|e| invalid(format!("HEADROOM_AGENT_URL: {url:?} is not a URL ({e})")))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid(
                    "HEADROOM_AGENT_URL: https is not supported by this build (plain HTTP only); \
                     use an http:// URL, e.g. to a TLS-terminating proxy on this host",
                ));
            }
            other => {
                return Err(invalid(format!(
                    "HEADROOM_AGENT_URL: {other}:// is not supported; use http://host:port"
                )));
            }
        }
        if parsed.host_str().is_none_or(str::is_empty)
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(invalid(format!(
                "HEADROOM_AGENT_URL: {url:?} must be http://host[:port][/path] without query"
            )));
        }

        let api_key = api_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "{KEY_VAR} is required: an API key with the ingest scope (hr_...)"
                ))
            })?;
        if !api_key.starts_with("hr_") || api_key.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(format!(
                "{KEY_VAR} does not look like a Headroom API key (hr_...)"
            )));
        }

        let workload = match cli.workload {
            Some(w) => {
                check_name("HEADROOM_AGENT_WORKLOAD", &w, MAX_WORKLOAD_LEN).map_err(invalid)?;
                w
            }
            None => {
                let host = sysinfo::System::host_name().unwrap_or_default();
                let w = sanitize(&host, MAX_WORKLOAD_LEN);
                if w.is_empty() {
                    return Err(invalid(
                        "HEADROOM_AGENT_WORKLOAD is required: the host name is unknown",
                    ));
                }
                w
            }
        };

        let interval = number("HEADROOM_AGENT_INTERVAL_SECS", &cli.interval_secs, 1, 3600)?;
        let max_bytes = number(
            "HEADROOM_AGENT_SPOOL_MAX_BYTES",
            &cli.spool_max_bytes,
            64 * 1024,
            u64::MAX,
        )?;
        let shutdown = number(
            "HEADROOM_AGENT_SHUTDOWN_TIMEOUT_SECS",
            &cli.shutdown_timeout_secs,
            0,
            3600,
        )?;
        if cli.spool_dir.as_os_str().is_empty() {
            return Err(invalid("HEADROOM_AGENT_SPOOL_DIR must not be empty"));
        }
        let process_filters: Vec<String> = cli
            .processes
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        tracing_subscriber::EnvFilter::try_new(&cli.log).map_err(|e| {
            invalid(format!(
                "HEADROOM_AGENT_LOG: {:?} is not a filter ({e})",
                cli.log
            ))
        })?;

        Ok(Self {
            url: parsed.as_str().trim_end_matches('/').to_owned(),
            api_key,
            workload,
            interval: Duration::from_secs(interval),
            spool: SpoolConfig::new(cli.spool_dir, max_bytes),
            process_filters,
            log_filter: cli.log,
            shutdown_timeout: Duration::from_secs(shutdown),
        })
    }
}

fn number(name: &str, raw: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) if max == u64::MAX => {
            Err(invalid(format!("{name} must be at least {min} (got {n})")))
        }
        Ok(n) => Err(invalid(format!(
            "{name} must be between {min} and {max} (got {n})"
        ))),
        Err(_) => Err(invalid(format!("{name}: {raw:?} is not a whole number"))),
    }
}

/// Clap's message without its usage lines and hints, on one line.
fn one_line(rendered: &str) -> String {
    let head = rendered.split("\n\n").next().unwrap_or(rendered);
    let text = head.split_whitespace().collect::<Vec<_>>().join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "hr_abc_def";

    fn load(args: &[&str], key: Option<&str>) -> Result<Config, String> {
        let mut all = vec!["headroom-agent"];
        all.extend_from_slice(args);
        Config::from_parts(all, key.map(str::to_owned)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_complete_configuration_loads() {
        let c = load(
            &[
                "--url",
                "http://127.0.0.1:3000/",
                "--workload",
                "web-1",
                "--interval-secs",
                "15",
                "--process",
                "nginx,postgres",
                "--process",
                " redis ",
            ],
            Some(KEY),
        )
        .unwrap();
        assert_eq!(c.url, "http://127.0.0.1:3000");
        assert_eq!(c.workload, "web-1");
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.process_filters, ["nginx", "postgres", "redis"]);
        assert_eq!(c.spool.max_bytes, 64 * 1024 * 1024);
        assert_eq!(c.api_key, KEY);
    }

    #[test]
    fn each_mistake_is_one_line_naming_the_setting() {
        let url = ["--url", "http://127.0.0.1:3000"];
        let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (vec![], Some(KEY), "HEADROOM_AGENT_URL"),
            (vec!["--url", "https://h.example"], Some(KEY), "https"),
            (vec!["--url", "not a url"], Some(KEY), "HEADROOM_AGENT_URL"),
            (url.to_vec(), None, "HEADROOM_AGENT_KEY"),
            (url.to_vec(), Some("secret"), "HEADROOM_AGENT_KEY"),
            (
                [&url[..], &["--interval-secs", "0"]].concat(),
                Some(KEY),
                "HEADROOM_AGENT_INTERVAL_SECS",
            ),
            (
                [&url[..], &["--interval-secs", "ten"]].concat(),
                Some(KEY),
                "HEADROOM_AGENT_INTERVAL_SECS",
            ),
            (
                [&url[..], &["--spool-max-bytes", "10"]].concat(),
                Some(KEY),
                "HEADROOM_AGENT_SPOOL_MAX_BYTES",
            ),
            (
                [&url[..], &["--workload", "my app"]].concat(),
                Some(KEY),
                "HEADROOM_AGENT_WORKLOAD",
            ),
            (
                [&url[..], &["--log", "info,=x=y"]].concat(),
                Some(KEY),
                "HEADROOM_AGENT_LOG",
            ),
            ([&url[..], &["--bogus"]].concat(), Some(KEY), "--bogus"),
        ];
        for (args, key, needle) in cases {
            let err = load(&args, key).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(!err.contains("secret"), "the key is never echoed: {err}");
        }
    }
}
