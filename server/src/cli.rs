//! Command line: `headroom [serve|migrate|worker|healthcheck]`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::startup::{Application, connect_and_migrate, shutdown_signal, worker_settings};

#[derive(Debug, Parser)]
#[command(
    name = "headroom",
    version,
    about = "Predictive capacity and billing. Settings come from HEADROOM_* environment variables."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and API (and run the background workers unless --no-worker).
    Serve {
        /// Leave background jobs to separate `headroom worker` processes.
        #[arg(long)]
        no_worker: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run the background workers only.
    Worker,
    /// Create the demo organisation with real traces (once; later runs leave it alone).
    Demo,
    /// Measure throughput against the configured database and print the figures.
    #[command(subcommand)]
    Bench(Bench),
    /// Offline evaluation on a CSV series (no database, no settings needed).
    #[command(subcommand)]
    Backtest(crate::backtest::Backtest),
    /// Exit 0 if the server at HEADROOM_ADDR answers /healthz (for container health checks).
    Healthcheck,
    /// Create a platform administrator (the operator's staff) in the operator's own
    /// organisation. The password is read from HEADROOM_ADMIN_PASSWORD.
    CreateAdmin {
        /// The administrator's e-mail address (their log-in).
        #[arg(long)]
        email: String,
        /// Name of the organisation created to hold this administrator.
        #[arg(long, default_value = "Headroom operations")]
        organization: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Usage-event ingest: HTTP, store, replay and (PostgreSQL) COPY, in one run.
    Ingest(crate::bench::IngestBench),
    /// Statistical forecasting speed on windows of the real NAB traces (no database).
    Forecast(crate::bench::forecast::ForecastBench),
    /// One allocation-controller tick over many workloads (no database).
    Controller(crate::bench::controller::ControllerBench),
    /// The allocation job's whole tick against the configured database.
    Tick(crate::bench::tick::TickBench),
    /// The forecast job's runs against the configured database, with and
    /// without the state it keeps between runs.
    ForecastJob(crate::bench::forecast_job::ForecastJobBench),
    /// Latency from a committed change to the event at browsers' streams.
    Notifications(crate::bench::notifications::NotificationBench),
}

/// Exit codes: 0 done, 1 failed while running, 2 could not start (bad config,
/// unreachable database, address in use).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Bench(Bench::Forecast(args))) = cli.command {
        // CPU only: no settings, database or runtime.
        return match crate::bench::forecast::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("headroom: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Bench(Bench::Controller(args))) = cli.command {
        return match crate::bench::controller::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("headroom: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Backtest(b)) = cli.command {
        // Pure computation on a file: no settings, runtime or logging to set up.
        return match crate::backtest::run(b, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("headroom: error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail_to_start(&e),
    };
    crate::telemetry::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("headroom: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(
        cli.command.unwrap_or(Command::Serve { no_worker: false }),
        config,
    ))
}

async fn run(command: Command, config: Config) -> ExitCode {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    match command {
        Command::Serve { no_worker } => {
            let app = match Application::build(config, !no_worker).await {
                Ok(app) => app,
                Err(e) => return fail_to_start(&e),
            };
            finish(app.run(shutdown).await)
        }
        Command::Migrate => match connect_and_migrate(&config).await {
            Ok(db) => {
                tracing::info!(backend = db.backend().as_str(), "database is up to date");
                finish(db.close().await.map_err(Into::into))
            }
            Err(e) => fail_to_start(&e),
        },
        Command::Worker => {
            let db = match connect_and_migrate(&config).await {
                Ok(db) => db,
                Err(e) => return fail_to_start(&e),
            };
            let lstm = match crate::startup::load_forecast_models(&config) {
                Ok(m) => m,
                Err(e) => return fail_to_start(&e),
            };
            tracing::info!(backend = db.backend().as_str(), "headroom worker running");
            let settings = worker_settings(&config, lstm);
            let demo = config.demo_feed.then(|| {
                tokio::spawn(crate::demo::feed_until(
                    db.clone(),
                    shutdown.clone().cancelled_owned(),
                ))
            });
            let result =
                headroom_jobs::run_workers(db.clone(), settings, shutdown.cancelled_owned())
                    .await
                    .map_err(anyhow::Error::from);
            if let Some(demo) = demo {
                demo.abort();
            }
            finish(result.and(db.close().await.map_err(Into::into)))
        }
        Command::CreateAdmin {
            email,
            organization,
        } => {
            let db = match connect_and_migrate(&config).await {
                Ok(db) => db,
                Err(e) => return fail_to_start(&e),
            };
            finish(create_admin(&db, &email, &organization).await)
        }
        Command::Demo => {
            let db = match connect_and_migrate(&config).await {
                Ok(db) => db,
                Err(e) => return fail_to_start(&e),
            };
            let keep_ms = config.raw_retention.as_millis() as i64 - 3_600_000;
            finish(match crate::demo::seed(&db, keep_ms).await {
                Ok(crate::demo::Seeded::AlreadyThere) => {
                    println!(
                        "demo organisation already present: log in as {}",
                        crate::demo::DEMO_EMAIL
                    );
                    Ok(())
                }
                Ok(crate::demo::Seeded::Created { points, password }) => {
                    println!(
                        "demo organisation created with {points} metric points from real AWS CloudWatch traces"
                    );
                    // Forecasts at once rather than at the forecast job's next run
                    // (statistical ones: the LSTM takes over from that run on).
                    let now = chrono::Utc::now().timestamp_millis();
                    match headroom_jobs::forecast::forecast_all(&db, None, now).await {
                        Ok(run) => println!("forecasts made for {} series", run.series),
                        Err(e) => {
                            tracing::warn!(error = %e, "demo forecasts left to the forecast job")
                        }
                    }
                    match password {
                        Some(p) => println!(
                            "log in as {} with password {p} (shown once)",
                            crate::demo::DEMO_EMAIL
                        ),
                        None => println!(
                            "log in as {} with HEADROOM_DEMO_PASSWORD",
                            crate::demo::DEMO_EMAIL
                        ),
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            })
        }
        Command::Bench(Bench::Ingest(args)) => finish(crate::bench::run(config, args).await),
        Command::Bench(Bench::Notifications(args)) => {
            finish(crate::bench::notifications::run(config, args).await)
        }
        Command::Bench(Bench::Tick(args)) => finish(crate::bench::tick::run(config, args).await),
        Command::Bench(Bench::ForecastJob(args)) => {
            finish(crate::bench::forecast_job::run(config, args).await)
        }
        Command::Backtest(_)
        | Command::Bench(Bench::Forecast(_))
        | Command::Bench(Bench::Controller(_)) => {
            unreachable!("handled before the runtime starts")
        }
        Command::Healthcheck => match probe(&config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("headroom: unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn fail_to_start(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("headroom: error: {e}");
    ExitCode::from(2)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("headroom: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn create_admin(
    db: &headroom_store::Db,
    email: &str,
    organization: &str,
) -> anyhow::Result<()> {
    use headroom_core::accounts::{Email, Role, Tier, check_password};
    let email = Email::parse(email)?;
    let password = std::env::var("HEADROOM_ADMIN_PASSWORD").map_err(|_| {
        anyhow::anyhow!("set HEADROOM_ADMIN_PASSWORD to the new administrator's password")
    })?;
    check_password(&password, email.as_str())?;
    let hash = crate::auth::password::hash(password).await?;
    let (org, user) = db
        .create_organization_with_user(organization, Tier::Guaranteed, &email, Role::Admin, hash)
        .await?;
    tracing::info!(user = %user.id, organization = %org.id, "platform administrator created");
    Ok(())
}

/// A minimal HTTP/1.0 GET of /healthz: the runtime image has no curl.
async fn probe(config: &Config) -> anyhow::Result<()> {
    let mut addr = config.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head)
    };
    let head = tokio::time::timeout(Duration::from_secs(5), exchange).await??;
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
        "/healthz answered {:?}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}
