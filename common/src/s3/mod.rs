//! The S3 client, configured for S3-compatible servers, and the classification of its errors.

use crate::failure::{Failure, Reason};
use crate::redact::Secret;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::{Builder as HttpBuilder, tls};
use clap::Args;
use std::time::Duration;

use crate::config::parse_duration;
use aws_config::provider_config::ProviderConfig;

pub mod credentials;
mod sse;
pub use sse::{Sse, SseMode};

/// Object storage connection. Credentials are static keys when given, otherwise the standard
/// AWS chain ([`credentials`]); instance metadata is asked only when the user has not set
/// `AWS_EC2_METADATA_DISABLED=true`.
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// Endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000. Unset means AWS S3.
    #[arg(long = "s3-endpoint", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,

    /// Region to sign requests for. Unset: AWS_REGION / AWS_DEFAULT_REGION, then the profile's
    /// region; with --s3-endpoint and none of those, us-east-1.
    #[arg(long = "s3-region", env = "AWS_REGION")]
    pub region: Option<String>,

    /// Access key id (with --s3-secret-access-key). Unset: the standard AWS credential chain.
    #[arg(
        long = "s3-access-key-id",
        env = "AWS_ACCESS_KEY_ID",
        hide_env_values = true,
        requires = "secret_access_key"
    )]
    pub access_key_id: Option<String>,

    /// Secret access key.
    #[arg(
        long = "s3-secret-access-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        requires = "access_key_id"
    )]
    pub secret_access_key: Option<Secret>,

    /// Session token, for temporary credentials.
    #[arg(
        long = "s3-session-token",
        env = "AWS_SESSION_TOKEN",
        hide_env_values = true
    )]
    pub session_token: Option<Secret>,

    /// Named profile of the shared config and credentials files (~/.aws/config,
    /// ~/.aws/credentials; AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE). Only that profile is
    /// used: a name the files lack is an error.
    #[arg(long = "s3-profile", env = "AWS_PROFILE")]
    pub profile: Option<String>,

    /// Bucket addressing: auto is virtual-hosted style on AWS and path style with
    /// --s3-endpoint.
    #[arg(
        long,
        env = "VADFLOW_S3_ADDRESSING",
        value_enum,
        default_value = "auto"
    )]
    pub s3_addressing: Addressing,

    /// Server-side encryption of every object vadflow writes: AES256 (SSE-S3) or aws:kms.
    #[arg(long, env = "VADFLOW_S3_SSE", value_enum)]
    pub s3_sse: Option<SseMode>,

    /// KMS key id or ARN for --s3-sse aws:kms (default: the account's S3 key).
    #[arg(long, env = "VADFLOW_S3_SSE_KMS_KEY_ID")]
    pub s3_sse_kms_key_id: Option<String>,

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

/// `--s3-addressing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Addressing {
    /// Virtual-hosted style on AWS, path style with a custom endpoint.
    Auto,
    /// `https://endpoint/bucket/key`.
    Path,
    /// `https://bucket.endpoint/key`.
    Virtual,
}

impl S3Args {
    /// Development settings for the local stack, for tests and tools.
    pub fn local(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> S3Args {
        S3Args {
            endpoint: Some(endpoint.to_owned()),
            region: Some("us-east-1".into()),
            access_key_id: Some(access_key_id.to_owned()),
            secret_access_key: Some(Secret::new(secret_access_key)),
            session_token: None,
            profile: None,
            s3_addressing: Addressing::Auto,
            s3_sse: None,
            s3_sse_kms_key_id: None,
            s3_connect_timeout: Duration::from_secs(5),
            s3_attempt_timeout: Duration::from_secs(30),
            s3_operation_timeout: Duration::from_secs(120),
            s3_max_attempts: 3,
            s3_pool_idle_timeout: Duration::from_secs(5),
        }
    }

    /// Whether requests use path-style addressing.
    pub fn path_style(&self) -> bool {
        match self.s3_addressing {
            Addressing::Path => true,
            Addressing::Virtual => false,
            Addressing::Auto => self.endpoint.is_some(),
        }
    }

    /// Builds the client: checksums only when required, the region and credentials resolved
    /// once (the credential source is logged), addressing, encryption, timeouts, retries and a
    /// short pool idle timeout. Fails fast on a missing region or credentials.
    pub async fn client(&self) -> anyhow::Result<aws_sdk_s3::Client> {
        if self.s3_max_attempts == 0 {
            anyhow::bail!("--s3-max-attempts must be at least 1");
        }
        let sse = match (self.s3_sse, &self.s3_sse_kms_key_id) {
            (Some(SseMode::Aes256), Some(_)) => {
                anyhow::bail!("--s3-sse-kms-key-id needs --s3-sse aws:kms, not AES256")
            }
            (None, Some(_)) => anyhow::bail!("--s3-sse-kms-key-id needs --s3-sse aws:kms"),
            (Some(mode), key) => Some(Sse {
                mode,
                kms_key_id: key.clone(),
            }),
            (None, None) => None,
        };
        let http = HttpBuilder::new()
            .pool_idle_timeout(self.s3_pool_idle_timeout)
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // Every provider (region and credential chains) gets this HTTP client: the SDK has
        // none of its own here, and a provider without one panics.
        let base_conf = ProviderConfig::default().with_http_client(http.clone());
        let region = self.resolve_region(&base_conf).await?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.s3_connect_timeout)
            .operation_attempt_timeout(self.s3_attempt_timeout)
            .operation_timeout(self.s3_operation_timeout)
            .build();
        let provider_conf = base_conf.with_region(Some(region.clone()));
        let (source, creds) = match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => (
                "static keys (--s3-access-key-id / AWS_ACCESS_KEY_ID)",
                credentials::static_keys(
                    id,
                    secret.expose(),
                    self.session_token.as_ref().map(Secret::expose),
                ),
            ),
            (None, None) => {
                let chosen = credentials::choose(
                    &provider_conf,
                    self.profile.as_deref(),
                    self.s3_attempt_timeout.min(Duration::from_secs(15)),
                )
                .await?;
                (chosen.name, chosen.provider)
            }
            _ => {
                anyhow::bail!("give both --s3-access-key-id and --s3-secret-access-key, or neither")
            }
        };
        tracing::info!(
            source,
            region = %region,
            path_style = self.path_style(),
            sse = ?self.s3_sse,
            "{}", S3_CREDENTIALS
        );
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
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
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(self.path_style())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(sse) = sse {
            conf = conf.interceptor(sse);
        }
        Ok(aws_sdk_s3::Client::from_conf(conf.build()))
    }

    async fn resolve_region(&self, conf: &ProviderConfig) -> anyhow::Result<Region> {
        if let Some(r) = self.region.as_deref() {
            anyhow::ensure!(!r.is_empty(), "AWS_REGION / --s3-region is empty");
            return Ok(Region::new(r.to_owned()));
        }
        use aws_config::meta::region::RegionProviderChain;
        let mut profile = aws_config::profile::ProfileFileRegionProvider::builder().configure(conf);
        if let Some(p) = &self.profile {
            profile = profile.profile_name(p);
        }
        let mut chain = RegionProviderChain::first_try(
            aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(profile.build());
        if !credentials::imds_disabled() {
            chain = chain.or_else(
                aws_config::imds::region::ImdsRegionProvider::builder()
                    .configure(conf)
                    .build(),
            );
        }
        match chain.region().await {
            Some(r) => Ok(r),
            None if self.endpoint.is_some() => Ok(Region::new("us-east-1")),
            None => anyhow::bail!(
                "no S3 region: set --s3-region / AWS_REGION (or a region in the AWS profile)"
            ),
        }
    }
}

/// The log message naming the credential source, once per client.
pub const S3_CREDENTIALS: &str = "S3 client ready";

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
