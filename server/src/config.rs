//! All configuration, in one place: `HEADROOM_*` environment variables over an
//! optional TOML file (`HEADROOM_CONFIG`), validated before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// A setting that could not be used; the message names the setting.
/// A secret from the environment: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Where Headroom keeps its files (the SQLite database by default).
    pub data_dir: PathBuf,
    /// `sqlite://...` (default: a file in `data_dir`) or `postgres://...`.
    pub database_url: String,
    /// The built web assets (`pkg/headroom.js`, `.wasm`, `.css`).
    pub site_dir: PathBuf,
    /// ONNX models shipped with the release.
    pub models_dir: PathBuf,
    /// `tracing` filter directives, e.g. `info,headroom=debug`.
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Cron expression with seconds (`sec min hour day month weekday`).
    pub housekeeping_schedule: cron::Schedule,
    /// When every active series is forecast (cron with seconds).
    pub forecast_schedule: cron::Schedule,
    /// Series whose allocation-horizon engine and anomaly detector the
    /// forecast job keeps between runs.
    pub forecast_warm_series: usize,
    /// Workloads whose controller state the allocation job keeps between
    /// ticks (stored every few ticks instead of every tick).
    pub allocate_kept_states: usize,
    /// When the model registry checks recent accuracy and scores versions when due.
    pub models_schedule: cron::Schedule,
    /// When the allocation controller ticks (cron with seconds).
    pub allocate_schedule: cron::Schedule,
    /// When budget thresholds are checked (cron with seconds).
    pub billing_schedule: cron::Schedule,
    /// When due webhook deliveries are sent (cron with seconds).
    pub webhook_schedule: cron::Schedule,
    /// Instances the platform can run: platform load (for demand multipliers)
    /// is instances in force over this. Unset: load is not measured.
    pub platform_capacity_instances: Option<u64>,
    /// Stripe's secret key (`sk_…`); unset, nothing is pushed to Stripe.
    pub stripe_secret_key: Option<Redacted>,
    /// Another Stripe API base URL (a test server); unset: Stripe itself.
    pub stripe_api_base: Option<String>,
    /// The Billing Meter's `event_name`; its value is minor currency units.
    pub stripe_meter_event: String,
    /// The signing secret (`whsec_…`) of the Stripe webhook endpoint at `/webhooks/stripe`.
    pub stripe_webhook_secret: Option<Redacted>,
    /// When closed hours are pushed to Stripe (cron with seconds).
    pub stripe_schedule: cron::Schedule,
    /// Whether webhook endpoints may be loopback or private-network addresses
    /// (off: a customer must not make the server call into its own network).
    pub webhooks_allow_private: bool,
    /// Whether the workers replay the demo organisation's traces as live
    /// telemetry (when that organisation exists; `HEADROOM_DEMO_FEED`, on
    /// unless set false).
    pub demo_feed: bool,
    /// The cgroup mount (e.g. `/sys/fs/cgroup`) for the `cgroup` allocation
    /// provider; unset, the provider is off. Groups live under
    /// `<mount>/<cgroup_base>/<organisation>/<name>`.
    pub cgroup_mount: Option<PathBuf>,
    pub cgroup_base: String,
    /// The network device whose egress the `cgroup` provider shapes with
    /// `tc` (unset: no bandwidth limits), and where the net_prio controller
    /// is mounted (unset: found in /proc/mounts).
    pub cgroup_net_device: Option<String>,
    pub cgroup_net_prio: Option<PathBuf>,
    /// The `aws` allocation provider (Auto Scaling groups), when enabled
    /// (`HEADROOM_AWS_PROVIDER`); credentials come from the AWS SDK's standard
    /// environment variables, profile or instance role.
    pub aws: Option<headroom_jobs::providers::aws::AwsSettings>,
    /// Finished background jobs older than this are pruned.
    pub job_retention: Duration,
    /// How long in-flight requests and jobs get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Where users reach Headroom; `https://...` makes session cookies `Secure`.
    pub public_url: String,
    /// A browser session ends after this long without activity...
    pub session_idle: Duration,
    /// ...and this long after log-in, whatever the activity.
    pub session_max_age: Duration,
    /// Log-in attempts allowed per minute from one address, and against one account.
    pub login_attempts_per_ip: NonZeroU32,
    pub login_attempts_per_account: NonZeroU32,
    /// Ingest: request body cap (after decompression), items per batch, requests per
    /// second per API key.
    pub ingest_max_body_bytes: usize,
    pub ingest_max_items: usize,
    pub ingest_requests_per_second: NonZeroU32,
    /// Retention of raw observations and of minute and hour rollups.
    pub raw_retention: Duration,
    pub minute_rollup_retention: Duration,
    pub hour_rollup_retention: Duration,
    /// Retention of allocation decisions, except those billing and the
    /// controller still read (applied ones, under-provisioned ticks, each
    /// workload's newest).
    pub decision_retention: Duration,
}

/// Every key the file and the environment accept (env: `HEADROOM_` + upper case).
const KEYS: &[&str] = &[
    "addr",
    "data_dir",
    "database_url",
    "site_dir",
    "models_dir",
    "log",
    "log_format",
    "housekeeping_schedule",
    "forecast_schedule",
    "forecast_warm_series",
    "allocate_kept_states",
    "models_schedule",
    "allocate_schedule",
    "billing_schedule",
    "webhook_schedule",
    "webhooks_allow_private",
    "demo_feed",
    "stripe_secret_key",
    "platform_capacity_instances",
    "stripe_api_base",
    "stripe_meter_event",
    "stripe_webhook_secret",
    "stripe_schedule",
    "cgroup_mount",
    "cgroup_base",
    "cgroup_net_device",
    "cgroup_net_prio",
    "aws_provider",
    "aws_region",
    "aws_endpoint_url",
    "job_retention_hours",
    "shutdown_timeout_secs",
    "public_url",
    "session_idle_secs",
    "session_max_secs",
    "login_attempts_per_ip",
    "login_attempts_per_account",
    "ingest_max_body_bytes",
    "ingest_max_items",
    "ingest_requests_per_second",
    "raw_retention_days",
    "minute_rollup_retention_days",
    "hour_rollup_retention_days",
    "decision_retention_days",
];

impl Config {
    /// Reads the process environment (and the file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds the config from `HEADROOM_*` variables; testable without touching
    /// the process environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("HEADROOM_"))
            .collect();
        let mut raw = match env.get("HEADROOM_CONFIG") {
            Some(path) => read_file(Path::new(path))?,
            None => BTreeMap::new(),
        };
        for key in KEYS {
            if let Some(v) = env.get(&env_name(key)) {
                raw.insert((*key).to_owned(), Source::Env(v.clone()));
            }
        }
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &BTreeMap<String, Source>) -> Result<Self, ConfigError> {
        let get = |key: &str| raw.get(key).map(|s| (s.name(key), s.value()));

        let addr = match get("addr") {
            Some((name, v)) => SocketAddr::from_str(v.trim()).map_err(|_| {
                ConfigError::new(
                    &name,
                    format!(
                        "{v:?} is not a listen address (expected host:port, e.g. 127.0.0.1:3000)"
                    ),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let data_dir = match get("data_dir") {
            Some((name, v)) if v.trim().is_empty() => {
                return Err(ConfigError::new(&name, "must not be empty"));
            }
            Some((_, v)) => PathBuf::from(v),
            None => PathBuf::from(".data"),
        };
        let database_url = match get("database_url") {
            Some((name, v)) => {
                headroom_store::Backend::from_url(v)
                    .map_err(|e| ConfigError::new(&name, e.to_string()))?;
                v.to_owned()
            }
            None => sqlite_url(&data_dir.join("headroom.db")),
        };
        let site_dir =
            get("site_dir").map_or_else(|| PathBuf::from("target/site"), |(_, v)| v.into());
        let models_dir =
            get("models_dir").map_or_else(|| PathBuf::from("models"), |(_, v)| v.into());
        let log_filter = get("log").map_or_else(|| "info".to_owned(), |(_, v)| v.to_owned());
        tracing_subscriber::EnvFilter::try_new(&log_filter).map_err(|e| {
            ConfigError::new(&name_of(raw, "log"), format!("invalid log filter: {e}"))
        })?;
        let log_format = match get("log_format") {
            None => LogFormat::Text,
            Some((_, "text")) => LogFormat::Text,
            Some((_, "json")) => LogFormat::Json,
            Some((name, v)) => {
                return Err(ConfigError::new(
                    &name,
                    format!("{v:?} is not one of: text, json"),
                ));
            }
        };
        let schedule = |key: &str, default: &str| -> Result<cron::Schedule, ConfigError> {
            match get(key) {
                Some((name, v)) => cron::Schedule::from_str(v).map_err(|e| {
                    // The parser's message draws a caret under the input on extra
                    // lines; its last line says what is wrong.
                    let e = e.to_string();
                    let why = e.lines().last().unwrap_or_default();
                    ConfigError::new(
                        &name,
                        format!("{v:?} is not a cron expression with seconds (e.g. \"0 */10 * * * *\"): {why}"),
                    )
                }),
                None => Ok(cron::Schedule::from_str(default).expect("default schedule parses")),
            }
        };
        let housekeeping_schedule = schedule("housekeeping_schedule", "0 */10 * * * *")?;
        // Five minutes: the allocation horizon's step.
        let forecast_schedule = schedule("forecast_schedule", "30 */5 * * * *")?;
        // Hourly, between forecast runs.
        // About 0.8 MB each: a few hundred megabytes by default.
        let forecast_warm_series = match raw.get("forecast_warm_series") {
            None => 500,
            Some(s) => s.value().trim().parse::<usize>().map_err(|_| {
                ConfigError::new(
                    &s.name("forecast_warm_series"),
                    format!("{:?} is not a whole number (0 keeps none)", s.value()),
                )
            })?,
        };
        // One to a few kilobytes each: a few hundred megabytes at most.
        let allocate_kept_states = match raw.get("allocate_kept_states") {
            None => 100_000,
            Some(s) => s.value().trim().parse::<usize>().map_err(|_| {
                ConfigError::new(
                    &s.name("allocate_kept_states"),
                    format!("{:?} is not a whole number (0 keeps none)", s.value()),
                )
            })?,
        };
        let models_schedule = schedule("models_schedule", "0 52 * * * *")?;
        // After the forecasts of the same five minutes.
        let allocate_schedule = schedule("allocate_schedule", "45 */5 * * * *")?;
        let billing_schedule = schedule("billing_schedule", "15 */5 * * * *")?;
        let webhook_schedule = schedule("webhook_schedule", "*/10 * * * * *")?;
        let stripe_schedule = schedule("stripe_schedule", "20 */5 * * * *")?;
        let platform_capacity_instances = match raw.get("platform_capacity_instances") {
            None => None,
            Some(_) => Some(positive(raw, "platform_capacity_instances", 1)?),
        };
        let nonempty = |key: &str| {
            get(key)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let stripe_secret_key = nonempty("stripe_secret_key").map(Redacted);
        let stripe_api_base = nonempty("stripe_api_base");
        let stripe_meter_event =
            nonempty("stripe_meter_event").unwrap_or_else(|| "headroom_usage".to_owned());
        let stripe_webhook_secret = nonempty("stripe_webhook_secret").map(Redacted);
        let flag = |key: &str| -> Result<bool, ConfigError> {
            match get(key) {
                None => Ok(false),
                Some((_, v)) if matches!(v.trim(), "1" | "true" | "yes") => Ok(true),
                Some((_, v)) if matches!(v.trim(), "0" | "false" | "no" | "") => Ok(false),
                Some((name, v)) => Err(ConfigError::new(
                    &name,
                    format!("{v:?} is not true or false"),
                )),
            }
        };
        let webhooks_allow_private = flag("webhooks_allow_private")?;
        let demo_feed = get("demo_feed").is_none() || flag("demo_feed")?;
        let aws = if flag("aws_provider")? {
            let endpoint_url = nonempty("aws_endpoint_url");
            if let Some(url) = &endpoint_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError::new(
                    &name_of(raw, "aws_endpoint_url"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            Some(headroom_jobs::providers::aws::AwsSettings {
                region: nonempty("aws_region"),
                endpoint_url,
            })
        } else {
            None
        };
        let cgroup_mount = get("cgroup_mount").map(|(_, v)| PathBuf::from(v));
        let cgroup_base =
            get("cgroup_base").map_or_else(|| "headroom".to_owned(), |(_, v)| v.to_owned());
        let cgroup_net_device = nonempty("cgroup_net_device");
        let cgroup_net_prio = get("cgroup_net_prio").map(|(_, v)| PathBuf::from(v));
        let job_retention = Duration::from_secs(3600 * positive(raw, "job_retention_hours", 168)?);
        let shutdown_timeout = Duration::from_secs(positive(raw, "shutdown_timeout_secs", 30)?);
        let public_url = match get("public_url") {
            Some((name, v)) => {
                let v = v.trim().trim_end_matches('/');
                if !(v.starts_with("http://") || v.starts_with("https://"))
                    || v.len() <= "https://".len()
                {
                    return Err(ConfigError::new(
                        &name,
                        format!("{v:?} is not an http:// or https:// URL"),
                    ));
                }
                v.to_owned()
            }
            None => format!("http://{addr}"),
        };
        let session_idle = Duration::from_secs(positive(raw, "session_idle_secs", 12 * 3600)?);
        let session_max_age =
            Duration::from_secs(positive(raw, "session_max_secs", 7 * 24 * 3600)?);
        let per_minute = |key: &str, default: u64| -> Result<NonZeroU32, ConfigError> {
            let n = positive(raw, key, default)?;
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| ConfigError::new(&name_of(raw, key), format!("{n} is too large")))
        };
        let login_attempts_per_ip = per_minute("login_attempts_per_ip", 30)?;
        let login_attempts_per_account = per_minute("login_attempts_per_account", 5)?;
        let ingest_max_body_bytes =
            positive(raw, "ingest_max_body_bytes", 16 * 1024 * 1024)? as usize;
        let ingest_max_items = positive(raw, "ingest_max_items", 10_000)? as usize;
        let ingest_requests_per_second = per_minute("ingest_requests_per_second", 50)?;
        let days = |key: &str, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(86_400 * positive(raw, key, default)?))
        };
        let raw_retention = days("raw_retention_days", 14)?;
        let minute_rollup_retention = days("minute_rollup_retention_days", 35)?;
        let hour_rollup_retention = days("hour_rollup_retention_days", 400)?;
        // A month's period and a few days to question its invoice with
        // every decision still listed.
        let decision_retention = days("decision_retention_days", 35)?;

        Ok(Self {
            addr,
            data_dir,
            database_url,
            site_dir,
            models_dir,
            log_filter,
            log_format,
            housekeeping_schedule,
            forecast_schedule,
            forecast_warm_series,
            allocate_kept_states,
            models_schedule,
            allocate_schedule,
            billing_schedule,
            webhook_schedule,
            webhooks_allow_private,
            demo_feed,
            platform_capacity_instances,
            stripe_secret_key,
            stripe_api_base,
            stripe_meter_event,
            stripe_webhook_secret,
            stripe_schedule,
            cgroup_mount,
            cgroup_base,
            cgroup_net_device,
            cgroup_net_prio,
            aws,
            job_retention,
            shutdown_timeout,
            public_url,
            session_idle,
            session_max_age,
            login_attempts_per_ip,
            login_attempts_per_account,
            ingest_max_body_bytes,
            ingest_max_items,
            ingest_requests_per_second,
            raw_retention,
            minute_rollup_retention,
            hour_rollup_retention,
            decision_retention,
        })
    }

    /// Session cookies are `Secure` whenever users reach us over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Creates the data directory if the database lives there (SQLite default).
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            ConfigError::new(
                &env_name("data_dir"),
                format!("cannot create {}: {e}", self.data_dir.display()),
            )
        })
    }
}

/// Where a raw value came from, so errors name the setting the user actually wrote.
#[derive(Debug, Clone)]
enum Source {
    Env(String),
    File(String),
}

impl Source {
    fn value(&self) -> &str {
        match self {
            Self::Env(v) | Self::File(v) => v,
        }
    }

    fn name(&self, key: &str) -> String {
        match self {
            Self::Env(_) => env_name(key),
            Self::File(_) => format!("{key} (in HEADROOM_CONFIG file)"),
        }
    }
}

fn env_name(key: &str) -> String {
    format!("HEADROOM_{}", key.to_uppercase())
}

fn name_of(raw: &BTreeMap<String, Source>, key: &str) -> String {
    raw.get(key).map_or_else(|| env_name(key), |s| s.name(key))
}

fn positive(raw: &BTreeMap<String, Source>, key: &str, default: u64) -> Result<u64, ConfigError> {
    match raw.get(key) {
        None => Ok(default),
        Some(s) => match s.value().trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::new(
                &s.name(key),
                format!("{:?} is not a positive whole number", s.value()),
            )),
        },
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, Source>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "HEADROOM_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(
            "HEADROOM_CONFIG",
            format!("{} is not valid TOML: {}", path.display(), e.message()),
        )
    })?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            return Err(ConfigError::new(
                "HEADROOM_CONFIG",
                format!(
                    "unknown key {key:?} in {} (known: {})",
                    path.display(),
                    KEYS.join(", ")
                ),
            ));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(ConfigError::new(
                    &format!("{key} (in HEADROOM_CONFIG file)"),
                    format!("expected a string or a number, found {}", other.type_str()),
                ));
            }
        };
        raw.insert(key, Source::File(value));
    }
    Ok(raw)
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_local_and_embedded() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database_url, "sqlite://.data/headroom.db");
        assert_eq!(c.job_retention, Duration::from_secs(168 * 3600));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.forecast_warm_series, 500);
        let none = Config::from_vars(vars(&[("HEADROOM_FORECAST_WARM_SERIES", "0")])).unwrap();
        assert_eq!(none.forecast_warm_series, 0, "0 keeps no engine");
        assert_eq!(c.allocate_kept_states, 100_000);
        let none = Config::from_vars(vars(&[("HEADROOM_ALLOCATE_KEPT_STATES", "0")])).unwrap();
        assert_eq!(none.allocate_kept_states, 0, "0 keeps no state");
        assert_eq!(c.decision_retention, Duration::from_secs(35 * 86_400));
        assert!(c.demo_feed, "the demo is fed unless switched off");
        let off = Config::from_vars(vars(&[("HEADROOM_DEMO_FEED", "0")])).unwrap();
        assert!(!off.demo_feed);
        assert!(Config::from_vars(vars(&[("HEADROOM_DEMO_FEED", "sometimes")])).is_err());
    }

    #[test]
    fn database_defaults_into_the_data_dir() {
        let c = Config::from_vars(vars(&[("HEADROOM_DATA_DIR", "/var/lib/hr")])).unwrap();
        assert_eq!(c.database_url, "sqlite:///var/lib/hr/headroom.db");
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            ("HEADROOM_ADDR", "localhost"),
            ("HEADROOM_DATABASE_URL", "mysql://x"),
            ("HEADROOM_LOG_FORMAT", "xml"),
            ("HEADROOM_HOUSEKEEPING_SCHEDULE", "every day"),
            ("HEADROOM_JOB_RETENTION_HOURS", "0"),
            ("HEADROOM_SHUTDOWN_TIMEOUT_SECS", "-1"),
            ("HEADROOM_DATA_DIR", " "),
            ("HEADROOM_PUBLIC_URL", "example.com"),
            ("HEADROOM_SESSION_IDLE_SECS", "0"),
            ("HEADROOM_LOGIN_ATTEMPTS_PER_ACCOUNT", "99999999999"),
            ("HEADROOM_FORECAST_WARM_SERIES", "-1"),
            ("HEADROOM_ALLOCATE_KEPT_STATES", "many"),
            ("HEADROOM_DECISION_RETENTION_DAYS", "0"),
        ];
        for (key, value) in cases {
            let err = Config::from_vars(vars(&[(key, value)])).unwrap_err();
            assert_eq!(err.setting, key, "{key}={value}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn file_values_are_overridden_by_env_and_unknown_keys_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("headroom.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:4000\"\nshutdown_timeout_secs = 5\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = Config::from_vars(vars(&[("HEADROOM_CONFIG", path)])).unwrap();
        assert_eq!(c.addr.port(), 4000);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        let c = Config::from_vars(vars(&[
            ("HEADROOM_CONFIG", path),
            ("HEADROOM_ADDR", "127.0.0.1:5000"),
        ]))
        .unwrap();
        assert_eq!(c.addr.port(), 5000);

        std::fs::write(&file, "adress = \"x\"\n").unwrap();
        let err = Config::from_vars(vars(&[("HEADROOM_CONFIG", path)])).unwrap_err();
        assert!(err.message.contains("unknown key \"adress\""), "{err}");

        std::fs::write(&file, "addr = \"nope\"\n").unwrap();
        let err = Config::from_vars(vars(&[("HEADROOM_CONFIG", path)])).unwrap_err();
        assert_eq!(err.setting, "addr (in HEADROOM_CONFIG file)");
    }
}
