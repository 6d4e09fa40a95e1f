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

fn scale_rows(out: &Output) -> Vec<(usize, Option<f64>, u32)> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout_of(out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("index,demand,capacity"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                (!f[1].is_empty()).then(|| f[1].parse().unwrap()),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn scale_replays_every_row_with_demand_scaled_to_the_median() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    write_series(&input, 700);
    for policy in ["predictive", "reactive", "static"] {
        let rows = scale_rows(&backtest(&[
            "scale",
            "--input",
            input.to_str().unwrap(),
            "--policy",
            policy,
            "--median-units",
            "20",
        ]));
        assert_eq!(rows.len(), 700, "{policy}");
        assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i));
        let mut d: Vec<f64> = rows.iter().filter_map(|r| r.1).collect();
        d.sort_by(f64::total_cmp);
        let median = (d[349] + d[350]) / 2.0;
        assert!((median - 20.0).abs() < 1e-9, "{policy}: median {median}");
        assert!(rows.iter().all(|r| r.2 >= 1), "{policy}");
    }
}

#[test]
fn scale_ups_wait_for_the_delay_and_static_never_scales_down() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    let mut s = String::from("timestamp,value\n");
    for i in 0..40 {
        let v = if (10..20).contains(&i) { 50.0 } else { 10.0 };
        s += &format!("{},{v}\n", 1_400_000_000 + i * 300);
    }
    std::fs::write(&input, s).unwrap();
    let rows = scale_rows(&backtest(&[
        "scale",
        "--input",
        input.to_str().unwrap(),
        "--policy",
        "static",
        "--target",
        "1",
        "--delay-steps",
        "3",
    ]));
    let cap: Vec<u32> = rows.iter().map(|r| r.2).collect();
    // Demand (median 10 → 10 units) jumps to 50 at row 10: capacity 50 from row 13.
    assert_eq!(&cap[..13], &[10; 13]);
    assert!(cap[13..].iter().all(|c| *c == 50), "{cap:?}");

    // The HPA scales back down once the stabilisation window has passed.
    let rows = scale_rows(&backtest(&[
        "scale",
        "--input",
        input.to_str().unwrap(),
        "--policy",
        "reactive",
        "--target",
        "1",
    ]));
    let cap: Vec<u32> = rows.iter().map(|r| r.2).collect();
    assert_eq!((cap[10], cap[11], cap[19]), (10, 50, 50));
    assert_eq!(cap[21], 10, "{cap:?}");
}

#[test]
fn scale_decisions_never_see_later_rows() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    write_series(&a, 600);
    // Same series with its last 99 rows pushed away from the median (up 40x
    // above it, down 40x below it), so the median the demand is scaled by, and
    // with it every earlier row's demand, stays the same.
    let text = std::fs::read_to_string(&a).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let value = |l: &str| l.split_once(',').unwrap().1.parse::<f64>().unwrap();
    let mut sorted: Vec<f64> = lines[1..].iter().map(|l| value(l)).collect();
    sorted.sort_by(f64::total_cmp);
    let (m1, m2) = (sorted[299], sorted[300]);
    for line in lines.iter_mut().skip(502) {
        let (ts, _) = line.split_once(',').unwrap();
        let v = value(line);
        let v = if v > m2 {
            v * 40.0
        } else if v < m1 {
            v / 40.0
        } else {
            v
        };
        *line = format!("{ts},{v}");
    }
    std::fs::write(&b, lines.join("\n") + "\n").unwrap();
    for policy in ["predictive", "reactive"] {
        let run = |p: &Path| {
            scale_rows(&backtest(&[
                "scale",
                "--input",
                p.to_str().unwrap(),
                "--policy",
                policy,
                "--median-units",
                "1000",
            ]))
        };
        let (ra, rb) = (run(&a), run(&b));
        let cap = |r: &[(usize, Option<f64>, u32)]| r.iter().map(|x| x.2).collect::<Vec<_>>();
        let med = |r: &[(usize, Option<f64>, u32)]| {
            let mut d: Vec<f64> = r.iter().filter_map(|x| x.1).collect();
            d.sort_by(f64::total_cmp);
            (d[299] + d[300]) / 2.0
        };
        assert!((med(&ra) - med(&rb)).abs() < 1e-6);
        assert_eq!(cap(&ra)[..501], cap(&rb)[..501], "{policy}");
        assert_ne!(
            cap(&ra)[501..],
            cap(&rb)[501..],
            "{policy}: the surge changed nothing"
        );
    }
}

#[test]
fn scale_bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    write_series(&input, 50);
    let out = backtest(&[
        "scale",
        "--input",
        input.to_str().unwrap(),
        "--policy",
        "reactive",
        "--target",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target must be in (0, 1]"));
    let zeros = dir.path().join("z.csv");
    std::fs::write(&zeros, "timestamp,value\n1,0\n2,0\n").unwrap();
    let out = backtest(&[
        "scale",
        "--input",
        zeros.to_str().unwrap(),
        "--policy",
        "static",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no non-zero value"));
    let out = backtest(&[
        "scale",
        "--input",
        input.to_str().unwrap(),
        "--policy",
        "bogus",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
