//! `headroom-agent`: collect → spool → ship, until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use headroom_agent::collect::{CollectConfig, Collector};
use headroom_agent::config::{Config, ConfigError};
use headroom_agent::ship::{ShipConfig, ShipError, Shipper};
use headroom_agent::spool::{SharedSpool, Spool};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(ConfigError::Info(e)) => e.exit(),
        Err(e) => {
            eprintln!("headroom-agent: error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("headroom-agent: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("headroom-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let spool_dir = config.spool.dir.clone();
    let spool = Spool::open(config.spool.clone())
        .map_err(|e| anyhow::anyhow!("spool directory {}: {e}", spool_dir.display()))?
        .shared();
    let mut ship_config = ShipConfig::new(&config.url, &config.api_key);
    ship_config.idle_poll = config.interval.min(std::time::Duration::from_secs(1));
    let mut shipper = Shipper::new(ship_config)?;
    let stats = shipper.stats();
    tracing::info!(
        url = %config.url,
        workload = %config.workload,
        interval_secs = config.interval.as_secs(),
        spool = %spool_dir.display(),
        processes = ?config.process_filters,
        "headroom-agent started"
    );

    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: sending what can be sent");
            cancel.cancel();
        }
    });

    let collector = tokio::spawn(collect_loop(
        CollectConfig {
            workload: config.workload.clone(),
            process_filters: config.process_filters.clone(),
        },
        config.interval,
        spool.clone(),
        cancel.clone(),
    ));

    let shipped = shipper.run(&spool, &cancel).await;
    cancel.cancel();
    collector.await.ok();
    if let Err(e @ ShipError::Unauthorized { .. }) = shipped {
        spool.lock().sync().ok();
        return Err(e.into());
    }
    shipped?;

    let emptied = shipper.drain(&spool, config.shutdown_timeout).await?;
    spool.lock().sync()?;
    let counts = stats.snapshot();
    let left = spool.pending();
    tracing::info!(
        accepted = counts.accepted,
        duplicates = counts.duplicates,
        rejected = counts.rejected,
        dropped_points = counts.dropped_points,
        left_in_spool = left,
        "headroom-agent stopped{}",
        if emptied {
            ""
        } else {
            "; the rest is sent at the next start"
        }
    );
    Ok(())
}

/// Samples every `interval` into the spool until cancelled.
async fn collect_loop(
    config: CollectConfig,
    interval: std::time::Duration,
    spool: SharedSpool,
    cancel: CancellationToken,
) {
    let Ok(mut collector) = tokio::task::spawn_blocking(move || Collector::new(config)).await
    else {
        return;
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; rates need an interval
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let sampled = tokio::task::spawn_blocking(move || {
            let points = collector.sample();
            (collector, points)
        })
        .await;
        let Ok((back, points)) = sampled else {
            tracing::error!("the collector panicked; no more samples");
            return;
        };
        collector = back;
        let appended = {
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || spool.append(&points)).await
        };
        match appended {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not write to the spool; sample lost"),
            Err(e) => tracing::error!(error = %e, "spool write task failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
