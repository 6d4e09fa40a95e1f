use std::future::Future;
use std::time::Duration;

use apalis::layers::retry::RetryPolicy;
use apalis::prelude::*;
use apalis_cron::CronScheduler;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use headroom_store::{Backend, Db};
use thiserror::Error;

use crate::allocate::{self, AllocateJob};
use crate::billing::{self, BillingJob};
use crate::forecast::{self, ForecastJob};
use crate::housekeeping::{self, Housekeeping};
use crate::webhooks::{self, WebhookJob};

#[derive(Debug, Error)]
pub enum WorkerError {
    #[error("job queue setup failed: {0}")]
    Queue(String),
    #[error("worker stopped with an error: {0}")]
    Monitor(String),
}

/// Settings for the background workers, validated by the server's config.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub housekeeping_schedule: cron::Schedule,
    pub job_retention: Duration,
    /// How long in-flight jobs may run after shutdown is requested.
    pub shutdown_timeout: Duration,
    pub telemetry_retention: headroom_store::telemetry::Retention,
    /// Allocation decisions older than this are pruned (billing's are kept).
    pub decision_retention: Duration,
    pub forecast_schedule: cron::Schedule,
    /// Series whose allocation-horizon engine (about 0.8 MB) and anomaly
    /// detector the forecast job keeps between runs (0: every run replays).
    pub forecast_warm_series: usize,
    /// Workloads whose controller state the allocation job keeps between
    /// ticks (stored every few ticks instead of every tick; 0: none kept).
    pub allocate_kept_states: usize,
    /// When the model registry checks recent accuracy (and scores versions
    /// when due).
    pub models_schedule: cron::Schedule,
    /// When the allocation controller ticks.
    pub allocate_schedule: cron::Schedule,
    /// When budget thresholds are checked and closed hours recorded.
    pub billing_schedule: cron::Schedule,
    /// Instances the platform can run (demand multipliers); `None`: not measured.
    pub platform_capacity_instances: Option<u64>,
    /// When due webhook deliveries are sent.
    pub webhook_schedule: cron::Schedule,
    /// Stripe, when configured, and when closed hours are pushed to it.
    pub stripe: Option<crate::stripe::StripeSettings>,
    pub stripe_schedule: cron::Schedule,
    /// The cgroup provider when configured (or why it cannot be used).
    pub cgroups: Option<Result<crate::providers::cgroup::Cgroups, String>>,
    /// Where the AWS provider connects, when it is enabled.
    pub aws: Option<crate::providers::aws::AwsSettings>,
    /// The global LSTM, when ONNX Runtime and the model are available.
    pub lstm: Option<std::sync::Arc<crate::lstm::LstmForecaster>>,
}

const HOUSEKEEPING_QUEUE: &str = "housekeeping";
const FORECAST_QUEUE: &str = "forecast";
const ALLOCATE_QUEUE: &str = "allocate";
const BILLING_QUEUE: &str = "billing";
const WEBHOOK_QUEUE: &str = "webhooks";
const STRIPE_QUEUE: &str = "stripe";
const MODELS_QUEUE: &str = "models";

/// Runs every worker until `shutdown` resolves, then lets in-flight jobs finish
/// (up to `shutdown_timeout`). Scheduled ticks are written to the job queue in the
/// application database first, so a tick survives a restart and is retried on error.
pub async fn run_workers(
    db: Db,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    crate::setup_queue(&db).await?;
    let ctx = Housekeeping {
        db: db.clone(),
        job_retention: settings.job_retention,
        telemetry_retention: settings.telemetry_retention,
        decision_retention: settings.decision_retention,
    };
    let schedule = settings.housekeeping_schedule.clone();
    // The forecast job hands each new allocation forecast to the allocation
    // job of this process, which reads only what it was not handed.
    let handover = std::sync::Arc::new(crate::handover::Handover::new());
    let forecast_ctx = ForecastJob {
        db: db.clone(),
        handover: handover.clone(),
        lstm: settings.lstm.clone(),
        warm: std::sync::Arc::new(crate::warm::Warm::new(settings.forecast_warm_series)),
        schedule: settings.forecast_schedule.clone(),
    };
    let forecast_schedule = settings.forecast_schedule.clone();
    let models_ctx = crate::models::ModelJob {
        db: db.clone(),
        lstm: settings.lstm.clone(),
    };
    let models_schedule = settings.models_schedule.clone();
    let aws = match &settings.aws {
        Some(a) => Some(Ok(crate::providers::aws::Aws::connect(a).await)),
        None => None,
    };
    let allocate_ctx = AllocateJob {
        db: db.clone(),
        providers: crate::providers::Providers {
            cgroups: settings.cgroups.clone(),
            aws,
        },
        memory: std::sync::Arc::new(crate::allocate::TickMemory::new(
            settings.allocate_kept_states,
            handover,
        )),
    };
    let allocate_schedule = settings.allocate_schedule.clone();
    let billing_ctx = BillingJob {
        db: db.clone(),
        platform_capacity_instances: settings.platform_capacity_instances,
    };
    let billing_schedule = settings.billing_schedule.clone();
    let webhook_ctx = WebhookJob::new(db.clone());
    let webhook_schedule = settings.webhook_schedule.clone();
    let stripe_ctx = match &settings.stripe {
        Some(s) => Some(
            crate::stripe::StripeJob::new(db.clone(), s.clone())
                .map_err(|e| WorkerError::Queue(format!("Stripe client: {e}")))?,
        ),
        None => None,
    };
    let stripe_schedule = settings.stripe_schedule.clone();
    // Worker names are registrations in the queue tables; a process killed
    // without deregistering would block a restart under the same names until
    // its heartbeat expired, so each process registers its own.
    let instance = format!("{}-{}", std::process::id(), &headroom_store::new_id()[24..]);
    let monitor = Monitor::new().shutdown_timeout(settings.shutdown_timeout);
    // Each schedule is piped into a queue in the application database, so a
    // tick survives a restart and is retried on error. A macro rather than a
    // function: the SQLite and PostgreSQL storages are different types whose
    // common bounds in apalis' builder are impractical to spell out.
    macro_rules! register_all {
        ($storage:expr) => {{
            let storage = $storage;
            let [
                housekeeping_name,
                forecast_name,
                allocate_name,
                billing_name,
                webhooks_name,
                stripe_name,
                models_name,
            ] = [
                "housekeeping",
                "forecast",
                "allocate",
                "billing",
                "webhooks",
                "stripe",
                "models",
            ]
            .map(|w| format!("{w}@{instance}"));
            let (forecast_storage, allocate_storage, billing_storage) =
                (storage.clone(), storage.clone(), storage.clone());
            let (webhook_storage, stripe_storage, models_storage) =
                (storage.clone(), storage.clone(), storage.clone());
            monitor
                .register(move |_restarts| {
                    WorkerBuilder::new(housekeeping_name.clone())
                        .backend(
                            CronScheduler::new(schedule.clone())
                                .pipe_to(storage(HOUSEKEEPING_QUEUE)),
                        )
                        .retry(RetryPolicy::retries(3))
                        .data(ctx.clone())
                        .build(housekeeping::run)
                })
                .register(move |_restarts| {
                    WorkerBuilder::new(forecast_name.clone())
                        .backend(
                            CronScheduler::new(forecast_schedule.clone())
                                .pipe_to(forecast_storage(FORECAST_QUEUE)),
                        )
                        .retry(RetryPolicy::retries(2))
                        .data(forecast_ctx.clone())
                        .build(forecast::run)
                })
                .register(move |_restarts| {
                    WorkerBuilder::new(allocate_name.clone())
                        .backend(
                            CronScheduler::new(allocate_schedule.clone())
                                .pipe_to(allocate_storage(ALLOCATE_QUEUE)),
                        )
                        .retry(RetryPolicy::retries(2))
                        .data(allocate_ctx.clone())
                        .build(allocate::run)
                })
                .register(move |_restarts| {
                    WorkerBuilder::new(billing_name.clone())
                        .backend(
                            CronScheduler::new(billing_schedule.clone())
                                .pipe_to(billing_storage(BILLING_QUEUE)),
                        )
                        .retry(RetryPolicy::retries(2))
                        .data(billing_ctx.clone())
                        .build(billing::run)
                })
                .register(move |_restarts| {
                    WorkerBuilder::new(webhooks_name.clone())
                        .backend(
                            CronScheduler::new(webhook_schedule.clone())
                                .pipe_to(webhook_storage(WEBHOOK_QUEUE)),
                        )
                        // A tick that fails is superseded by the next one.
                        .retry(RetryPolicy::retries(0))
                        .data(webhook_ctx.clone())
                        .build(webhooks::run)
                })
                .register(move |_restarts| {
                    WorkerBuilder::new(stripe_name.clone())
                        .backend(
                            CronScheduler::new(stripe_schedule.clone())
                                .pipe_to(stripe_storage(STRIPE_QUEUE)),
                        )
                        // Unsent pushes stay pending and the next tick re-sends them.
                        .retry(RetryPolicy::retries(0))
                        .data(stripe_ctx.clone())
                        .build(crate::stripe::run)
                })
                .register(move |_restarts| {
                    WorkerBuilder::new(models_name.clone())
                        .backend(
                            CronScheduler::new(models_schedule.clone())
                                .pipe_to(models_storage(MODELS_QUEUE)),
                        )
                        // The next tick checks again.
                        .retry(RetryPolicy::retries(0))
                        .data(models_ctx.clone())
                        .build(crate::models::run)
                })
        }};
    }
    let monitor = match db.backend() {
        Backend::Sqlite => {
            let pool = db.sqlite_pool().expect("sqlite pool").clone();
            register_all!(move |queue: &str| {
                SqliteStorage::new(&pool).with_config(apalis_sqlite::Config::default().queue(queue))
            })
        }
        Backend::Postgres => {
            let pool = db.postgres_pool().expect("postgres pool").clone();
            register_all!(move |queue: &str| {
                PostgresStorage::new(&pool)
                    .with_config(apalis_postgres::Config::default().queue(queue))
            })
        }
    };
    monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(|e| WorkerError::Monitor(e.to_string()))
}
