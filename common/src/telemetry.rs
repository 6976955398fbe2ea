//! Telemetry, initialised once per process and flushed on exit.
//!
//! Logs go to stderr. The format is JSON when `LOG_FORMAT=json`, human-readable text when
//! `LOG_FORMAT=text`, and otherwise JSON unless stderr is a terminal: a terminal gets text, a
//! container log collector gets one JSON object per line. `RUST_LOG` sets the levels (default
//! `info`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// Chooses from `LOG_FORMAT` and whether stderr is a terminal.
    pub fn from_env() -> anyhow::Result<LogFormat> {
        match std::env::var("LOG_FORMAT").ok().as_deref() {
            Some("json") => Ok(LogFormat::Json),
            Some("text") => Ok(LogFormat::Text),
            None | Some("") => Ok(if std::io::stderr().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            }),
            Some(other) => anyhow::bail!("LOG_FORMAT={other:?}: expected json or text"),
        }
    }
}

/// Handle to the installed telemetry; call [`Telemetry::shutdown`] before exiting.
#[derive(Debug)]
#[must_use = "call shutdown() before exit to flush telemetry"]
pub struct Telemetry {
    service: &'static str,
}

/// Installs the global subscriber for `service`. Fails on bad `LOG_FORMAT` or `RUST_LOG`.
pub fn init(service: &'static str) -> anyhow::Result<Telemetry> {
    let format = LogFormat::from_env()?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| anyhow::anyhow!("RUST_LOG={spec:?} is not a valid filter: {e}"))?,
        _ => EnvFilter::new("info"),
    };
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    // The job span (job_id, bucket, key, attempt) goes on every line inside it.
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(Telemetry { service })
}

impl Telemetry {
    /// Flushes whatever is buffered. Logs are written synchronously, so this only records the exit.
    pub fn shutdown(self) {
        tracing::debug!(service = self.service, "telemetry flushed");
    }
}
