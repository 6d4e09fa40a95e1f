//! The `headroom` binary as an operator runs it: exit codes, error lines, signals.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_headroom");

/// A command with a clean `HEADROOM_*` environment and a private data dir.
fn headroom(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("HEADROOM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HEADROOM_DATA_DIR", data_dir)
        .env("HEADROOM_LOG", "info")
        .env(
            "HEADROOM_MODELS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../models"),
        );
    cmd
}

/// Runs a command that must exit on its own (a start-up failure); kills it and
/// fails the test if it is still running after `secs`, instead of hanging.
fn output_within(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("still running after {secs} s: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the documented start-up failure: exit code 2 and one clear line naming `setting`.
fn assert_start_failure(out: &Output, setting: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("headroom: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(setting), "{err}");
}

#[test]
fn invalid_settings_exit_2_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("HEADROOM_ADDR", "not-an-address"),
        ("HEADROOM_DATABASE_URL", "mysql://root@localhost/headroom"),
        ("HEADROOM_HOUSEKEEPING_SCHEDULE", "whenever"),
        ("HEADROOM_SHUTDOWN_TIMEOUT_SECS", "soon"),
        ("HEADROOM_LOG_FORMAT", "yaml"),
    ];
    for (key, value) in cases {
        let out = headroom(dir.path())
            .env(key, value)
            .arg("serve")
            .output()
            .unwrap();
        assert_start_failure(&out, key);
        // Nothing else is printed: no log noise, no backtrace.
        assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
    }
}

/// Needs ONNX Runtime (`./dev test` sets ORT_DYLIB_PATH): without it the LSTM
/// is skipped with a warning instead, by design.
#[test]
fn a_missing_or_broken_lstm_model_stops_the_start_naming_the_file() {
    assert!(
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "run through ./dev test (or eval \"$(bash scripts/python-env.sh)\")"
    );
    let dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let serve = || {
        let mut cmd = headroom(dir.path());
        cmd.env("HEADROOM_MODELS_DIR", models.path())
            .env("HEADROOM_ADDR", "127.0.0.1:0")
            .arg("serve");
        cmd
    };
    let out = output_within(serve(), 60);
    assert_start_failure(&out, "forecast_lstm.json");
    // The contract present but the model the wrong shape (the wiring fixture).
    let repo_models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    std::fs::copy(
        format!("{repo_models}/forecast_lstm.json"),
        models.path().join("forecast_lstm.json"),
    )
    .unwrap();
    std::fs::copy(
        format!("{repo_models}/tiny_lstm.onnx"),
        models.path().join("forecast_lstm.onnx"),
    )
    .unwrap();
    let out = output_within(serve(), 60);
    assert_start_failure(&out, "forecast_lstm.onnx");
}

#[test]
fn unreachable_database_exits_2_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    let out = headroom(dir.path())
        .env(
            "HEADROOM_DATABASE_URL",
            "postgres://headroom:s3cret@127.0.0.1:9/headroom",
        )
        .arg("migrate")
        .output()
        .unwrap();
    assert_start_failure(&out, "HEADROOM_DATABASE_URL");
    assert!(!stderr_of(&out).contains("s3cret"), "{}", stderr_of(&out));
}

#[test]
fn an_address_in_use_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = headroom(dir.path())
        .env("HEADROOM_ADDR", &addr)
        .arg("serve")
        .output()
        .unwrap();
    assert_start_failure(&out, "HEADROOM_ADDR");
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh/nested");
    let out = headroom(&data).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(data.join("headroom.db").is_file());
    // Twice is fine.
    let out = headroom(&data).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_ready(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        let out = Command::new(BIN)
            .env("HEADROOM_ADDR", format!("127.0.0.1:{port}"))
            .arg("healthcheck")
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "server not healthy within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_shuts_down_gracefully_and_healthcheck_follows() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = headroom(dir.path())
        .env("HEADROOM_ADDR", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    assert!(err.contains("shutdown complete"), "{err}");

    // Nothing listens any more: the health check now fails (exit 1).
    let out = Command::new(BIN)
        .env("HEADROOM_ADDR", format!("127.0.0.1:{port}"))
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
