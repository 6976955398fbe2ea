//! Failure classes. Every error that decides what happens to a job maps onto a [`Reason`], and
//! every reason knows whether retrying can help ([`Retry`]). The set is fixed: it is used as a
//! metric label and as the `x-vadflow-reason` header of dead letters.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether a failed job may succeed if it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying again cannot help: the input itself is at fault.
    Permanent,
    /// A dependency misbehaved; the same job may succeed later.
    Transient,
}

/// Why a job failed. Serialised in kebab-case (`object-missing`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The source object does not exist.
    ObjectMissing,
    /// The storage refused access to the object.
    AccessDenied,
    /// The bytes are not decodable audio (corrupt, truncated, not audio at all).
    InvalidAudio,
    /// The container or codec is recognised but not supported.
    UnsupportedCodec,
    /// The message is not valid MessagePack or lacks required fields.
    MalformedMessage,
    /// The message declares a wire-format version this worker does not speak.
    UnsupportedVersion,
    /// The bucket name or object key is not acceptable.
    InvalidKey,
    /// A configured limit (size, duration, channels, sample rate) was exceeded.
    LimitExceeded,
    /// An operation timed out.
    Timeout,
    /// The object storage failed (5xx, throttling, connection reset).
    StorageUnavailable,
    /// The object storage refused the request itself (a 4xx it gives no more specific code
    /// for): retrying the same request cannot help.
    StorageRejected,
    /// The job failed transiently too many times.
    RetriesExhausted,
    /// The broker dead-lettered the job after its queue's delivery limit: every delivery ended
    /// without an outcome (the worker holding it died, for instance killed for memory).
    DeliveryLimit,
    /// An unexpected internal error (a bug); treated as transient.
    Internal,
}

impl Reason {
    /// Every reason, for exhaustive tests and metric pre-registration.
    pub const ALL: [Reason; 14] = [
        Reason::ObjectMissing,
        Reason::AccessDenied,
        Reason::InvalidAudio,
        Reason::UnsupportedCodec,
        Reason::MalformedMessage,
        Reason::UnsupportedVersion,
        Reason::InvalidKey,
        Reason::LimitExceeded,
        Reason::Timeout,
        Reason::StorageUnavailable,
        Reason::StorageRejected,
        Reason::RetriesExhausted,
        Reason::DeliveryLimit,
        Reason::Internal,
    ];

    /// Whether the failure is worth retrying.
    pub fn retry(self) -> Retry {
        match self {
            Reason::ObjectMissing
            | Reason::AccessDenied
            | Reason::InvalidAudio
            | Reason::UnsupportedCodec
            | Reason::MalformedMessage
            | Reason::UnsupportedVersion
            | Reason::InvalidKey
            | Reason::LimitExceeded
            | Reason::RetriesExhausted
            | Reason::DeliveryLimit
            | Reason::StorageRejected => Retry::Permanent,
            Reason::Timeout | Reason::StorageUnavailable | Reason::Internal => Retry::Transient,
        }
    }

    /// The stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ObjectMissing => "object-missing",
            Reason::AccessDenied => "access-denied",
            Reason::InvalidAudio => "invalid-audio",
            Reason::UnsupportedCodec => "unsupported-codec",
            Reason::MalformedMessage => "malformed-message",
            Reason::UnsupportedVersion => "unsupported-version",
            Reason::InvalidKey => "invalid-key",
            Reason::LimitExceeded => "limit-exceeded",
            Reason::Timeout => "timeout",
            Reason::StorageUnavailable => "storage-unavailable",
            Reason::StorageRejected => "storage-rejected",
            Reason::RetriesExhausted => "retries-exhausted",
            Reason::DeliveryLimit => "delivery-limit",
            Reason::Internal => "internal",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure: the reason and a human-readable message naming what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }

    pub fn retry(&self) -> Retry {
        self.reason.retry()
    }

    /// Prefixes the message with context, keeping the reason.
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Failure {
            reason: self.reason,
            message: format!("{context}: {}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate name {r}");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            let json = serde_json_like(r);
            assert_eq!(json, r.as_str());
        }
        assert_eq!(Reason::parse("nope"), None);
    }

    fn serde_json_like(r: Reason) -> String {
        let bytes = rmp_serde::to_vec_named(&r).expect("serialise");
        rmp_serde::from_slice::<String>(&bytes).expect("a string")
    }

    #[test]
    fn input_faults_are_permanent_and_dependency_faults_transient() {
        assert_eq!(Reason::ObjectMissing.retry(), Retry::Permanent);
        assert_eq!(Reason::InvalidAudio.retry(), Retry::Permanent);
        assert_eq!(Reason::MalformedMessage.retry(), Retry::Permanent);
        assert_eq!(Reason::StorageUnavailable.retry(), Retry::Transient);
        assert_eq!(Reason::Timeout.retry(), Retry::Transient);
        assert_eq!(Reason::StorageRejected.retry(), Retry::Permanent);
    }
}
