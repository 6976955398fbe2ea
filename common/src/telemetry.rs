//! Telemetry, initialised once per process and flushed on exit.
//!
//! Logs go to stderr. The format is JSON when `LOG_FORMAT=json`, human-readable text when
//! `LOG_FORMAT=text`, and otherwise JSON unless stderr is a terminal: a terminal gets text, a
//! container log collector gets one JSON object per line. `RUST_LOG` sets the levels (default
//! `info`), for log lines and exported spans alike.
//!
//! The level filter is global, never per layer: with a per-layer filter, a dependency's
//! `enabled!` check for a level the filter refuses leaves a stale "disabled" mark that swallows
//! the next event on that thread (tokio-rs/tracing#2704), so lines vanished whenever `RUST_LOG`
//! had a per-target directive.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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
    tracer_provider: Option<SdkTracerProvider>,
}

/// Whether the standard `OTEL_*` variables ask for trace export.
fn otlp_configured() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let exporter_none = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
    !disabled
        && !exporter_none
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

type BoxedLayer = Box<dyn Layer<Layered<EnvFilter, Registry>> + Send + Sync>;

/// Installs the global subscriber for `service`. Fails on bad `LOG_FORMAT` or `RUST_LOG`.
///
/// Traces are exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (the other `OTEL_*` variables apply too); otherwise
/// no exporter, no propagator and no tracing layer exist, so they cost nothing.
pub fn init(service: &'static str) -> anyhow::Result<Telemetry> {
    let format = LogFormat::from_env()?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| anyhow::anyhow!("RUST_LOG={spec:?} is not a valid filter: {e}"))?,
        _ => EnvFilter::new("info"),
    };
    let logs: BoxedLayer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            // The job span (job_id, bucket, key, attempt) goes on every line inside it.
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut layers = vec![logs];
    let mut tracer_provider = None;
    if otlp_configured() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| anyhow::anyhow!("OTLP trace exporter: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        let tracer = provider.tracer(service);
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).boxed());
        tracer_provider = Some(provider);
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()?;
    Ok(Telemetry {
        service,
        tracer_provider,
    })
}

impl Telemetry {
    /// Flushes buffered spans (if exporting) before the process exits.
    pub fn shutdown(self) {
        tracing::debug!(service = self.service, "flushing telemetry");
        if let Some(provider) = self.tracer_provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}
