//! The `producer` binary fails fast, with a clear message, on missing or invalid configuration.

use std::process::Command;

fn producer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_producer"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn enqueue_requires_its_settings() {
    let out = producer()
        .args(["enqueue", "--since", "yesterday"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--database-url") && err.contains("--amqp-url"),
        "{err}"
    );
}

#[test]
fn enqueue_rejects_a_bad_time_before_connecting() {
    let out = producer()
        .args(["enqueue", "--since", "last tuesday"])
        // Unreachable addresses: the error must come from parsing, before any connection.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("AMQP_URL", "amqp://nobody:secret@127.0.0.1:1/%2f")
        .env("LOG_FORMAT", "text")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("last tuesday") && err.contains("is not a time"),
        "{err}"
    );
}

#[test]
fn connection_errors_never_show_the_password() {
    let out = producer()
        .args(["migrate"])
        .env("DATABASE_URL", "postgres://user:hunter2@127.0.0.1:1/db")
        .env("LOG_FORMAT", "json")
        // Retried (connection refused is an outage), so the retry lines are checked too.
        .env("VADFLOW_CONNECT_TIMEOUT", "1s")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(err.contains("cannot reach the database"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
}
