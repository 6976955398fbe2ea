//! The S3 client, configured for S3-compatible servers, and the classification of its errors.

use crate::failure::{Failure, Reason};
use crate::redact::Secret;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::{Builder as HttpBuilder, tls};
use clap::Args;
use std::time::Duration;

use crate::config::parse_duration;

/// Object storage connection. Region and credentials are always explicit: the client never
/// probes instance metadata (also set `AWS_EC2_METADATA_DISABLED=true`).
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// Endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000. Unset means AWS S3.
    #[arg(long = "s3-endpoint", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,

    /// Region to sign requests for.
    #[arg(long = "s3-region", env = "AWS_REGION")]
    pub region: String,

    /// Access key id.
    #[arg(
        long = "s3-access-key-id",
        env = "AWS_ACCESS_KEY_ID",
        hide_env_values = true
    )]
    pub access_key_id: String,

    /// Secret access key.
    #[arg(
        long = "s3-secret-access-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Secret,

    /// Session token, for temporary credentials.
    #[arg(
        long = "s3-session-token",
        env = "AWS_SESSION_TOKEN",
        hide_env_values = true
    )]
    pub session_token: Option<Secret>,

    /// Time allowed to open a connection.
    #[arg(long, env = "VADFLOW_S3_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub s3_connect_timeout: Duration,

    /// Time allowed for one attempt of an S3 call (until the response headers for downloads).
    #[arg(long, env = "VADFLOW_S3_ATTEMPT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub s3_attempt_timeout: Duration,

    /// Time allowed for an S3 call including its retries.
    #[arg(long, env = "VADFLOW_S3_OPERATION_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub s3_operation_timeout: Duration,

    /// Attempts per S3 call (the SDK's standard retry: 5xx, throttling, connection errors).
    #[arg(long, env = "VADFLOW_S3_MAX_ATTEMPTS", default_value_t = 3)]
    pub s3_max_attempts: u32,

    /// Pooled connections idle longer than this are closed. Keep it short: a connection left idle
    /// during long CPU work can stall the next request (aws-sdk-rust #1417).
    #[arg(long, env = "VADFLOW_S3_POOL_IDLE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub s3_pool_idle_timeout: Duration,
}

impl S3Args {
    /// Development settings for the local stack, for tests and tools.
    pub fn local(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> S3Args {
        S3Args {
            endpoint: Some(endpoint.to_owned()),
            region: "us-east-1".into(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: None,
            s3_connect_timeout: Duration::from_secs(5),
            s3_attempt_timeout: Duration::from_secs(30),
            s3_operation_timeout: Duration::from_secs(120),
            s3_max_attempts: 3,
            s3_pool_idle_timeout: Duration::from_secs(5),
        }
    }

    /// Builds the client: path-style addressing, checksums only when required, explicit region
    /// and credentials, timeouts, retries and a short pool idle timeout.
    pub async fn client(&self) -> anyhow::Result<aws_sdk_s3::Client> {
        if self.region.is_empty() {
            anyhow::bail!("AWS_REGION / --s3-region is empty");
        }
        if self.s3_max_attempts == 0 {
            anyhow::bail!("--s3-max-attempts must be at least 1");
        }
        let http = HttpBuilder::new()
            .pool_idle_timeout(self.s3_pool_idle_timeout)
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let creds = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "vadflow-config",
        );
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.s3_connect_timeout)
            .operation_attempt_timeout(self.s3_attempt_timeout)
            .operation_timeout(self.s3_operation_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(creds)
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(self.s3_max_attempts))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(aws_sdk_s3::Client::from_conf(conf))
    }
}

/// Classifies an S3 SDK error: missing objects, denied access and other refused requests (4xx)
/// are permanent, timeouts, 5xx, throttling and connection failures transient. `what` names the operation and object,
/// e.g. `get s3://bucket/key`.
pub fn classify<E>(err: &SdkError<E, HttpResponse>, what: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (reason, detail) = match err {
        SdkError::TimeoutError(_) => (Reason::Timeout, "timed out".to_owned()),
        SdkError::DispatchFailure(e) => {
            let reason = if e.is_timeout() {
                Reason::Timeout
            } else {
                Reason::StorageUnavailable
            };
            (reason, format!("request failed: {}", chain(err)))
        }
        SdkError::ResponseError(_) => (
            Reason::StorageUnavailable,
            format!("bad response: {}", chain(err)),
        ),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let reason = match (status, code) {
                (_, "NoSuchKey" | "NoSuchBucket" | "NotFound") | (404, _) => Reason::ObjectMissing,
                (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") | (403, _) => {
                    Reason::AccessDenied
                }
                (_, "SlowDown" | "Throttling" | "RequestTimeout") | (429 | 500..=599, _) => {
                    Reason::StorageUnavailable
                }
                (400..=499, _) => Reason::StorageRejected,
                _ => Reason::StorageUnavailable,
            };
            let msg = se.err().message().unwrap_or("");
            (
                reason,
                format!("HTTP {status} {code} {msg}").trim().to_owned(),
            )
        }
        _ => (Reason::StorageUnavailable, chain(err)),
    };
    Failure::new(reason, format!("{what}: {detail}"))
}

/// The error and its sources on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let t = e.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = e.source();
    }
    s
}
