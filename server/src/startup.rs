//! Builds the application from a validated config and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use headroom_jobs::lstm::LstmForecaster;
use headroom_jobs::{WorkerSettings, run_workers, setup_queue};
use headroom_store::{Db, redact};
use leptos::prelude::LeptosOptions;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::ingest::IngestSettings;
use crate::api::ingest::body::Limits;
use crate::api::ingest::feed::Feed;
use crate::auth::rate_limit::LoginLimiter;
use crate::config::Config;
use crate::http::{self, AppState, AuthSettings};
use crate::telemetry;

/// Why the app could not start; each names the setting to look at.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("HEADROOM_DATABASE_URL: cannot use database {url}: {source}")]
    Database {
        url: String,
        #[source]
        source: headroom_store::StoreError,
    },
    #[error("HEADROOM_DATABASE_URL: cannot set up the job queue in {url}: {source}")]
    Queue {
        url: String,
        #[source]
        source: headroom_jobs::WorkerError,
    },
    #[error("HEADROOM_ADDR: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HEADROOM_MODELS_DIR: {0}")]
    Model(#[from] headroom_jobs::lstm::LstmError),
}

/// Connects to the database and brings its schema (application and job queue) up to date.
pub async fn connect_and_migrate(config: &Config) -> Result<Db, StartError> {
    let url = redact(&config.database_url);
    if config.database_url.starts_with("sqlite:") {
        config.prepare_data_dir()?;
    }
    let db = Db::connect(&config.database_url)
        .await
        .map_err(|source| StartError::Database {
            url: url.clone(),
            source,
        })?;
    db.migrate().await.map_err(|source| StartError::Database {
        url: url.clone(),
        source,
    })?;
    setup_queue(&db)
        .await
        .map_err(|source| StartError::Queue { url, source })?;
    Ok(db)
}

/// The LSTM forecaster, for processes that run the forecast job. Without the
/// ONNX Runtime library the job runs statistical models only (a warning); with
/// it, a missing or malformed model is a start-up error naming the file.
pub fn load_forecast_models(config: &Config) -> Result<Option<Arc<LstmForecaster>>, StartError> {
    if let Err(e) = headroom_jobs::inference::init_runtime(None) {
        tracing::warn!(error = %e, "ONNX Runtime unavailable: the LSTM forecaster cannot run (statistical forecasts still do)");
        return Ok(None);
    }
    let model = LstmForecaster::load(&config.models_dir)?;
    tracing::info!(version = %model.spec().version, "LSTM forecaster loaded");
    Ok(Some(Arc::new(model)))
}

pub fn worker_settings(config: &Config, lstm: Option<Arc<LstmForecaster>>) -> WorkerSettings {
    WorkerSettings {
        lstm,
        housekeeping_schedule: config.housekeeping_schedule.clone(),
        forecast_schedule: config.forecast_schedule.clone(),
        forecast_warm_series: config.forecast_warm_series,
        allocate_kept_states: config.allocate_kept_states,
        models_schedule: config.models_schedule.clone(),
        allocate_schedule: config.allocate_schedule.clone(),
        billing_schedule: config.billing_schedule.clone(),
        platform_capacity_instances: config.platform_capacity_instances,
        webhook_schedule: config.webhook_schedule.clone(),
        stripe: config
            .stripe_secret_key
            .clone()
            .map(|key| headroom_jobs::stripe::StripeSettings {
                secret_key: key.0,
                api_base: config.stripe_api_base.clone(),
                event_name: config.stripe_meter_event.clone(),
            }),
        stripe_schedule: config.stripe_schedule.clone(),
        cgroups: config.cgroup_mount.as_ref().map(|mount| {
            use headroom_jobs::providers::{bandwidth::Bandwidth, cgroup::Cgroups};
            let cg = Cgroups::detect(mount, &config.cgroup_base).map_err(|e| e.to_string())?;
            match &config.cgroup_net_device {
                Some(dev) => Bandwidth::detect(dev, config.cgroup_net_prio.as_deref())
                    .map(|bw| cg.with_bandwidth(bw))
                    .map_err(|e| format!("HEADROOM_CGROUP_NET_DEVICE: {e}")),
                None => Ok(cg),
            }
        }),
        aws: config.aws.clone(),
        job_retention: config.job_retention,
        shutdown_timeout: config.shutdown_timeout,
        telemetry_retention: headroom_store::telemetry::Retention {
            raw_ms: config.raw_retention.as_millis() as i64,
            minute_ms: config.minute_rollup_retention.as_millis() as i64,
            hour_ms: config.hour_rollup_retention.as_millis() as i64,
        },
        decision_retention: config.decision_retention,
    }
}

/// A bound, migrated, ready-to-run application.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    config: Arc<Config>,
    with_worker: bool,
    lstm: Option<Arc<LstmForecaster>>,
}

impl Application {
    pub async fn build(config: Config, with_worker: bool) -> Result<Self, StartError> {
        let db = connect_and_migrate(&config).await?;
        let lstm = if with_worker {
            load_forecast_models(&config)?
        } else {
            None
        };
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let leptos = LeptosOptions::builder()
            .output_name("headroom")
            .site_root(config.site_dir.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .build();
        let auth = AuthSettings {
            session_idle: config.session_idle,
            session_max_age: config.session_max_age,
            secure_cookies: config.secure_cookies(),
            login_limiter: LoginLimiter::new(
                config.login_attempts_per_ip,
                config.login_attempts_per_account,
            ),
        };
        let ingest = IngestSettings::new(
            Limits {
                max_bytes: config.ingest_max_body_bytes,
                max_items: config.ingest_max_items,
            },
            config.ingest_requests_per_second,
            Duration::from_secs(300),
            config.raw_retention,
        );
        let feed = Feed::new(&db);
        let state = AppState {
            db,
            leptos,
            metrics: telemetry::metrics_handle(),
            auth: Arc::new(auth),
            ingest: Arc::new(ingest),
            feed,
            notifications: crate::notifications::Hub::new(),
            cgroup_provider: config.cgroup_mount.is_some(),
            aws_provider: config.aws.is_some(),
            webhooks_allow_private: config.webhooks_allow_private,
            stripe_webhook_secret: config.stripe_webhook_secret.clone().map(|s| s.0),
            platform_load_measured: config.platform_capacity_instances.is_some(),
        };
        Ok(Self {
            listener,
            state,
            config: Arc::new(config),
            with_worker,
            lstm,
        })
    }

    /// The address actually bound (differs from the config when it asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The live feed of newly ingested data (subscribe before it is sent).
    pub fn feed(&self) -> &Feed {
        &self.state.feed
    }

    /// Serves until `shutdown` is cancelled; then stops accepting, lets in-flight
    /// requests and jobs finish (bounded by the shutdown timeout) and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let db = self.state.db.clone();
        let grace = self.config.shutdown_timeout;
        let limiter_state = self.state.auth.clone();
        let relay = tokio::spawn(self.state.feed.clone().relay());
        let hub = self.state.notifications.clone();
        // Other processes' notifications are read at the latest this often
        // (PostgreSQL announces them at once; this process's wake the hub).
        let hub_task = tokio::spawn(hub.clone().run(db.clone(), Duration::from_millis(250)));
        let app = http::router(self.state);
        tracing::info!(%addr, backend = db.backend().as_str(), worker = self.with_worker, "headroom listening");

        let worker = self.with_worker.then(|| {
            let settings = worker_settings(&self.config, self.lstm.clone());
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(run_workers(db.clone(), settings, stop))
        });
        // The demo's traces go on with the workers that act on them.
        let demo = (self.with_worker && self.config.demo_feed).then(|| {
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(crate::demo::feed_until(db.clone(), stop))
        });

        // Throttling state for addresses and accounts that went quiet is dropped hourly.
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                limiter_state.login_limiter.shrink();
            }
        });
        let server = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });

        shutdown.cancelled().await;
        // Open event streams end now instead of holding the drain up.
        hub.close();
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: finishing in-flight work"
        );
        let drained = tokio::time::timeout(grace, async {
            let http = server.await;
            let jobs = match worker {
                Some(handle) => Some(handle.await),
                None => None,
            };
            (http, jobs)
        })
        .await;
        match drained {
            Ok((http, jobs)) => {
                http??;
                if let Some(jobs) = jobs {
                    jobs??;
                }
                tracing::info!("shutdown complete");
            }
            Err(_) => tracing::warn!("shutdown timeout reached; abandoning unfinished work"),
        }
        sweeper.abort();
        if let Some(demo) = demo {
            demo.abort();
        }
        relay.abort();
        hub_task.abort();
        db.close().await?;
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
