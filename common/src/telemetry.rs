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
//!
//! Dependencies that log through the `log` crate reach tracing through [`DependencyLog`], which
//! keeps the decoders' per-packet and per-chunk lines (symphonia's "skipping junk at 40017
//! bytes", one per chunk) out of the output: their warnings are counted per thread instead, and
//! the worker reports the count as one line of its own per file ([`take_decoder_warnings`]).
//! A `RUST_LOG` that names `symphonia` prints them as they come.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::layer::{Layered, SubscriberExt};
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

/// Target prefix of the decoding libraries whose log lines are counted, not printed.
const DECODER_TARGET: &str = "symphonia";
const PROBE_TARGET: &str = "symphonia_core::formats::probe";

/// Decoder warnings seen on this thread since the last [`take_decoder_warnings`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecoderWarnings {
    pub count: u64,
    /// The first one's text.
    pub first: Option<String>,
}

thread_local! {
    static DECODER_WARNINGS: std::cell::RefCell<DecoderWarnings> = Default::default();
}

/// Returns and resets the decoder warnings counted on this thread. A file is decoded on one
/// thread from start to end, so calling this before and after it gives the file's own.
pub fn take_decoder_warnings() -> DecoderWarnings {
    DECODER_WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

/// Counts a problem that a decoder of vadflow's own found in the file being decoded on this
/// thread, with the decoding libraries' warnings: reported once per file, with the count.
pub fn decoder_warning(text: impl FnOnce() -> String) {
    DECODER_WARNINGS.with(|w| {
        let mut w = w.borrow_mut();
        w.count += 1;
        if w.first.is_none() {
            w.first = Some(text());
        }
    });
}

/// The `log` crate's logger: forwards records to tracing, except the decoders' (see the module
/// documentation).
struct DependencyLog {
    tracer: tracing_log::LogTracer,
    /// `RUST_LOG` asks for the decoders' lines.
    decoders_verbatim: bool,
}

impl log::Log for DependencyLog {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.target().starts_with(DECODER_TARGET) || self.tracer.enabled(meta)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.decoders_verbatim || !record.target().starts_with(DECODER_TARGET) {
            return self.tracer.log(record);
        }
        // The probe "skips junk" before every MP4 (its marker, `ftyp`, is 4 bytes in): not a
        // problem of the file.
        if record.level() <= log::Level::Warn && record.target() != PROBE_TARGET {
            decoder_warning(|| record.args().to_string());
        }
    }

    fn flush(&self) {}
}

type BoxedLayer = Box<dyn Layer<Layered<EnvFilter, Registry>> + Send + Sync>;

/// Installs the global subscriber for `service`. Fails on bad `LOG_FORMAT` or `RUST_LOG`.
///
/// Traces are exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (the other `OTEL_*` variables apply too); otherwise
/// no exporter, no propagator and no tracing layer exist, so they cost nothing.
pub fn init(service: &'static str) -> anyhow::Result<Telemetry> {
    let format = LogFormat::from_env()?;
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = if spec.is_empty() {
        EnvFilter::new("info")
    } else {
        EnvFilter::try_new(&spec)
            .map_err(|e| anyhow::anyhow!("RUST_LOG={spec:?} is not a valid filter: {e}"))?
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
    let subscriber = tracing_subscriber::registry().with(filter).with(layers);
    tracing::subscriber::set_global_default(subscriber)?;
    let verbatim = spec.contains(DECODER_TARGET);
    log::set_boxed_logger(Box::new(DependencyLog {
        tracer: tracing_log::LogTracer::new(),
        decoders_verbatim: verbatim,
    }))?;
    // Warnings are always let through to be counted; more only as tracing's filter allows.
    let level = tracing_log::AsLog::as_log(&tracing::level_filters::LevelFilter::current());
    log::set_max_level(level.max(log::LevelFilter::Warn));
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
