//! Connecting to RabbitMQ and publishing with publisher confirms.

use crate::redact::redact_url;
use crate::wire::CONTENT_TYPE;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a publish did not end in a positive confirm.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The channel or connection failed; the message may or may not have arrived.
    #[error("broker error while publishing: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker returned the mandatory message: no queue is bound for it.
    #[error("message to exchange {exchange:?} with routing key {routing_key:?} was unroutable")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    /// The broker refused the message (nack), for instance because a queue rejected it.
    #[error("broker nacked the message to exchange {exchange:?}")]
    Nacked { exchange: String },
}

/// Opens a connection named `name` (shown in the management UI).
///
/// Errors never include the password of `url`.
pub async fn connect(url: &str, name: &str) -> Result<Connection, ConnectError> {
    connect_tls(url, None, name).await
}

/// Like [`connect`], trusting the certificate authorities in `ca_pem` (PEM) for `amqps://`
/// instead of the system's.
pub async fn connect_tls(
    url: &str,
    ca_pem: Option<&str>,
    name: &str,
) -> Result<Connection, ConnectError> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(name.as_bytes().to_vec()));
    let err = |source| ConnectError {
        url: redact_url(url),
        source,
    };
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: ca_pem.map(str::to_owned),
    };
    let runtime = lapin::runtime::default_runtime().map_err(err)?;
    Connection::connect_with_config(url, props, tls, runtime)
        .await
        .map_err(err)
}

/// Like [`connect_tls`], retrying an unreachable broker (refused, reset, restarting) with backoff
/// for at most `budget`; a refused login fails at once.
pub async fn connect_retrying(
    url: &str,
    ca_pem: Option<&str>,
    name: &str,
    budget: std::time::Duration,
) -> Result<Connection, ConnectError> {
    let what = format!("the broker {}", redact_url(url));
    crate::retry::with_backoff(
        &what,
        budget,
        |e: &ConnectError| crate::retry::broker_unreachable(&e.source),
        || connect_tls(url, ca_pem, name),
    )
    .await
}

/// A failed connection attempt, naming the (redacted) URL.
#[derive(Debug, thiserror::Error)]
#[error("connect to AMQP broker {url}: {source}")]
pub struct ConnectError {
    pub url: String,
    #[source]
    pub source: lapin::Error,
}

/// Opens a channel with publisher confirms enabled.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Properties of every vadflow message: persistent, MessagePack, timestamped.
pub fn message_properties(message_id: &str, headers: FieldTable) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from(CONTENT_TYPE))
        .with_timestamp(now)
        .with_headers(headers);
    match ShortString::try_new(message_id) {
        Ok(id) => props.with_message_id(id),
        Err(_) => props,
    }
}

/// Publishes a persistent, mandatory message and waits for the broker's confirm.
///
/// The channel must be in confirm mode ([`confirm_channel`]).
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), PublishError> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            props,
        )
        .await?
        .await?;
    check_confirmation(confirm, exchange, routing_key)
}

/// Turns a confirmation into success only for a positive, non-returned confirm.
pub fn check_confirmation(
    confirm: Confirmation,
    exchange: &str,
    routing_key: &str,
) -> Result<(), PublishError> {
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        }),
        Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked {
            exchange: exchange.to_owned(),
        }),
    }
}
