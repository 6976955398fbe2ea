//! The `worker` binary fails fast, with a clear message, on missing or invalid configuration.
//! (Being an integration test of this package, it also makes `cargo test` build the binary,
//! which the workspace's process-level tests run.)

use std::process::Command;

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_worker"));
    c.env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn prints_its_version() {
    let out = worker().arg("--version").output().expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn refuses_to_start_without_broker_and_storage_settings() {
    let out = worker().output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--amqp-url") && err.contains("--results-bucket"),
        "{err}"
    );
}

#[test]
fn rejects_invalid_analysis_settings_naming_them() {
    let dir = std::env::temp_dir();
    let out = worker()
        .args(["vad", "--mode", "7", "--out"])
        .arg(&dir)
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode 7"), "{err}");

    let out = worker()
        .args(["vad", "--outputs", "segments.json,mp4", "--out"])
        .arg(&dir)
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mp4"));
}

#[test]
fn an_unreadable_amqp_ca_file_fails_before_connecting() {
    let out = worker()
        .env("AMQP_URL", "amqps://u:p@127.0.0.1:1/%2f")
        .env("VADFLOW_AMQP_CA_FILE", "/nonexistent/ca.pem")
        .env("VADFLOW_RESULTS_BUCKET", "results")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "id")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("LOG_FORMAT", "text")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
