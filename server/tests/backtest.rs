//! `headroom backtest …` as a user runs it: CSV in, CSV out, clear errors.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_headroom");

fn backtest(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("backtest")
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Five days at 5-minute steps: a daily cycle plus a little deterministic noise.
fn write_series(path: &Path, rows: usize) {
    let mut s = String::from("timestamp,value\n");
    let start = chrono::NaiveDate::from_ymd_opt(2014, 2, 14)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for i in 0..rows {
        let t = start + chrono::Duration::minutes(5 * i as i64);
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        let v = 50.0 + 20.0 * phase.sin() + ((i * 7919) % 13) as f64 / 4.0;
        s += &format!("{},{v}\n", t.format("%Y-%m-%d %H:%M:%S"));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn forecast_writes_one_row_per_origin_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    write_series(&input, 1440);
    for model in ["auto", "ets", "snaive"] {
        let out = backtest(&[
            "forecast",
            "--input",
            input.to_str().unwrap(),
            "--horizon",
            "6",
            "--every",
            "100",
            "--min-train",
            "600",
            "--model",
            model,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = stdout_of(&out);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("origin,h,p10,p50,p90"));
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
            .collect();
        // Origins 599, 699, …, 1399 (1399 + 6 = 1405 <= 1439; 1499 is past the end).
        let origins: Vec<usize> = rows.iter().step_by(6).map(|r| r[0] as usize).collect();
        assert_eq!(
            origins,
            (599..=1399).step_by(100).collect::<Vec<_>>(),
            "{model}"
        );
        assert_eq!(rows.len(), origins.len() * 6);
        for r in &rows {
            assert!((1.0..=6.0).contains(&r[1]));
            assert!(
                r[2] <= r[3] && r[3] <= r[4],
                "{model}: quantiles cross in {r:?}"
            );
        }
        // A daily cycle of amplitude 20 is forecast well within its range.
        let mean_abs_err: f64 = rows
            .iter()
            .map(|r| {
                let i = r[0] as usize + r[1] as usize;
                let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
                (r[3] - (50.0 + 20.0 * phase.sin() + 1.5)).abs()
            })
            .sum::<f64>()
            / rows.len() as f64;
        assert!(mean_abs_err < 5.0, "{model}: mean abs error {mean_abs_err}");
    }
}

#[test]
fn anomalies_score_every_row_and_flag_a_sustained_jump() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    write_series(&input, 1440);
    // Replace rows 1300..1310 with a jump far outside the daily range.
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for line in lines.iter_mut().skip(1 + 1300).take(10) {
        let ts = line.split(',').next().unwrap().to_owned();
        *line = format!("{ts},400");
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let out = backtest(&["anomalies", "--input", input.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout_of(&out);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "timestamp,score,is_anomaly");
    assert_eq!(rows.len(), 1441);
    assert!(rows[1].starts_with("2014-02-14 00:00:00,"));
    let flagged: Vec<usize> = rows[1..]
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ends_with(",1"))
        .map(|(i, _)| i)
        .collect();
    assert!(
        flagged.contains(&1301),
        "the jump's second row: {flagged:?}"
    );
    assert!(
        flagged.iter().all(|i| (1300..1320).contains(i)),
        "nothing else in an ordinary series: {flagged:?}"
    );
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.csv");
    write_series(&short, 50);
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,value\n2014-02-14 00:00:00,1\n2014-02-14 00:05:00,lots\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.csv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["forecast", "--input", short.to_str().unwrap()],
            "too short",
        ),
        (vec!["forecast", "--input", bad.to_str().unwrap()], "line 3"),
        (
            vec!["forecast", "--input", missing.to_str().unwrap()],
            "cannot read",
        ),
        (
            vec![
                "forecast",
                "--input",
                short.to_str().unwrap(),
                "--horizon",
                "0",
                "--min-train",
                "10",
            ],
            "horizon",
        ),
        (
            vec!["anomalies", "--input", bad.to_str().unwrap()],
            "not a number",
        ),
        (
            vec![
                "anomalies",
                "--input",
                short.to_str().unwrap(),
                "--threshold=-1",
            ],
            "--threshold",
        ),
    ];
    for (args, needle) in cases {
        let out = backtest(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "no partial CSV on error: {args:?}");
    }
}

#[test]
fn readiness_replays_events_and_reports_its_brier_score() {
    let dir = tempfile::tempdir().unwrap();
    // Events every 20 s during 09:00-12:00 on three days, nothing otherwise.
    let events = dir.path().join("events.csv");
    let mut csv = String::from("timestamp,type\n");
    for day in 0..3 {
        let start = 1_700_000_000 - 1_700_000_000 % 86_400 + day * 86_400 + 9 * 3600;
        for i in 0..540 {
            csv += &format!("{},api_call\n", start + i * 20);
        }
    }
    std::fs::write(&events, csv).unwrap();
    let out = backtest(&[
        "readiness",
        "--events",
        events.to_str().unwrap(),
        "--warmup",
        "3600",
        "--every",
        "65",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = stdout_of(&out);
    let rows: Vec<(f64, bool)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2] == "1")
        })
        .collect();
    assert_eq!(text.lines().next(), Some("timestamp,probability,occurred"));
    assert!(rows.iter().all(|(p, _)| (0.0..=1.0).contains(p)));
    // Inside the busy hours an event every 20 s: within 10 s about half the time;
    // the predictions there must be well above those of the idle hours.
    let busy: Vec<f64> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
    let idle_mean = rows.iter().filter(|r| !r.1).map(|r| r.0).sum::<f64>()
        / rows.iter().filter(|r| !r.1).count() as f64;
    let busy_mean = busy.iter().sum::<f64>() / busy.len() as f64;
    assert!(
        busy_mean > 0.3 && idle_mean < 0.15,
        "busy {busy_mean} idle {idle_mean}"
    );
    assert!(
        err.contains("Brier") && err.contains("reliability"),
        "{err}"
    );

    // Drawn from a series, seeded: the same seed gives the same replay.
    let series = dir.path().join("s.csv");
    write_series(&series, 600);
    let args = [
        "readiness",
        "--from-series",
        series.to_str().unwrap(),
        "--warmup",
        "3600",
    ];
    let a = backtest(&args);
    let b = backtest(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);

    for (args, needle) in [
        (vec!["readiness"], "--events"),
        (
            vec![
                "readiness",
                "--events",
                series.to_str().unwrap(),
                "--within=0",
            ],
            "--within",
        ),
        (
            vec![
                "readiness",
                "--from-series",
                series.to_str().unwrap(),
                "--mean-gap=-1",
            ],
            "--mean-gap",
        ),
    ] {
        let out = backtest(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// The shipped LSTM through the backtest (needs ORT_DYLIB_PATH, as `./dev test` sets).
#[test]
fn forecast_with_the_lstm_and_a_clear_error_without_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    write_series(&input, 1440);
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    let out = backtest(&[
        "forecast",
        "--input",
        input.to_str().unwrap(),
        "--horizon",
        "12",
        "--every",
        "100",
        "--min-train",
        "600",
        "--model",
        "lstm",
        "--models-dir",
        models,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rows: Vec<Vec<f64>> = stdout_of(&out)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 9 * 12, "origins 599..=1399 every 100");
    for r in &rows {
        assert!(r[2] <= r[3] && r[3] <= r[4], "{r:?}");
        let i = r[0] as usize + r[1] as usize;
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        let truth = 50.0 + 20.0 * phase.sin() + 1.5;
        // A smooth daily cycle of amplitude 20: the LSTM must be near it.
        assert!((r[3] - truth).abs() < 12.0, "{r:?} truth {truth}");
    }

    let missing = dir.path().join("no-models");
    let out = backtest(&[
        "forecast",
        "--input",
        input.to_str().unwrap(),
        "--min-train",
        "600",
        "--model",
        "lstm",
        "--models-dir",
        missing.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("forecast_lstm.json"), "{err}");
}
