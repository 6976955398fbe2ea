//! Configuration pieces shared by both binaries: clap argument groups with `env` fallbacks.

use crate::redact::SecretUrl;
use crate::topology::Topology;
use clap::Args;
use std::time::Duration;

/// The message broker and the topology names.
#[derive(Debug, Clone, Args)]
pub struct AmqpArgs {
    /// AMQP URL of the broker, e.g. amqp://user:pass@host:5672/%2f (amqps:// for TLS).
    #[arg(long = "amqp-url", env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: SecretUrl,

    /// Prefix of every exchange and queue name, so deployments can share a broker.
    #[arg(long, env = "VADFLOW_QUEUE_PREFIX", default_value = "vadflow")]
    pub queue_prefix: String,

    /// PEM file of the certificate authorities to trust for amqps:// (default: the system's).
    #[arg(long, env = "VADFLOW_AMQP_CA_FILE", value_name = "PEM")]
    pub amqp_ca_file: Option<std::path::PathBuf>,

    /// Delay before the first retry of a transiently failed job; each further retry waits 4× longer.
    #[arg(long, env = "VADFLOW_RETRY_BASE", default_value = "1s", value_parser = parse_duration)]
    pub retry_base: Duration,
}

impl AmqpArgs {
    /// The trusted CA certificates for amqps://, read from `--amqp-ca-file` (fails fast).
    pub fn ca_pem(&self) -> anyhow::Result<Option<String>> {
        self.amqp_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("read --amqp-ca-file {}: {e}", path.display()))
            })
            .transpose()
    }

    pub fn topology(&self) -> anyhow::Result<Topology> {
        Topology::new(&self.queue_prefix, self.retry_base).map_err(anyhow::Error::msg)
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 500ms, 30s, 5m or 1h"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    if !secs.is_finite() || !(0.0..=1.0e9).contains(&secs) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A stable id for this process, for logs, headers and result events: `$VADFLOW_WORKER_ID`,
/// else `$HOSTNAME` (the pod name on Kubernetes), else the host name, plus the process id.
pub fn instance_id() -> String {
    if let Ok(id) = std::env::var("VADFLOW_WORKER_ID")
        && !id.is_empty()
    {
        return id;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
