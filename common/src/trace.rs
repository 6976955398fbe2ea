//! W3C trace context across the queue: the producer and the worker inject the current span's
//! context into AMQP message headers (`traceparent`, `tracestate`), and the consumer of the
//! message makes its span a child of it. Without an OpenTelemetry exporter configured the
//! propagator is a no-op and nothing is written.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(
            ShortString::from(key.to_owned()),
            AMQPValue::LongString(LongString::from(value.into_bytes())),
        );
    }
}

struct HeaderExtractor<'a>(Option<&'a FieldTable>);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0?.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .map(|h| h.inner().keys().map(|k| k.as_str()).collect())
            .unwrap_or_default()
    }
}

/// The producer span of one published message, after the OpenTelemetry messaging conventions
/// for RabbitMQ; a child of `parent` (use `Span::current()` for whatever is current).
pub fn send_span(
    parent: &tracing::Span,
    exchange: &str,
    routing_key: &str,
    message_id: &str,
) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "send",
        otel.name = %format!("send {exchange}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        messaging.message.id = %message_id,
    )
}

/// Writes `span`'s trace context into message headers.
pub fn inject(span: &tracing::Span, headers: &mut FieldTable) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers));
    });
}

/// Makes `span` a child of the trace context carried by message headers, if any.
pub fn set_parent(span: &tracing::Span, headers: Option<&FieldTable>) {
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(cx);
}
