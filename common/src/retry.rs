//! Retrying a connection for a bounded time: short-lived commands (`producer enqueue`, `status`,
//! `register`, `dlq replay`, `migrate`) meet a broker or database that is restarting or failing
//! over, and should ride it out rather than fail on the first refused connection. Errors that
//! retrying cannot fix (a wrong password, a bad URL) fail at once.

use crate::session::Backoff;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Runs `attempt` until it succeeds, fails with an error `transient` rejects, or `budget` has
/// passed (then the last error is returned). Waits between attempts with [`Backoff`], never
/// past the budget.
pub async fn with_backoff<T, E, F, Fut>(
    what: &str,
    budget: Duration,
    transient: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + budget;
    let mut backoff = Backoff::new();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                let delay = backoff.next_delay().min(deadline - now);
                tracing::warn!(
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    left_ms = (deadline - now).as_millis() as u64,
                    "cannot reach {what}; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a broker error is about reaching the broker (worth retrying), not about what was
/// asked of it: refused, reset or timed-out connections, a missed heartbeat, a connection that
/// closed during the handshake. A refused login is the broker's answer, not an outage.
pub fn broker_unreachable(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        lapin::ErrorKind::IOError(_)
            | lapin::ErrorKind::MissingHeartbeatError
            | lapin::ErrorKind::InvalidConnectionState(_)
            | lapin::ErrorKind::InvalidChannelState(..)
    ) || matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 320)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_within_the_budget_only() {
        let calls = AtomicU32::new(0);
        let out: Result<u32, String> = with_backoff(
            "thing",
            Duration::from_secs(10),
            |_| true,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err(format!("down {n}"))
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(out, Ok(3));

        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let out: Result<(), String> = with_backoff(
            "thing",
            Duration::from_secs(5),
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("down".to_owned())
            },
        )
        .await;
        assert!(out.is_err());
        assert!(started.elapsed() >= Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(6));
        assert!(calls.load(Ordering::SeqCst) > 2);

        let calls = AtomicU32::new(0);
        let out: Result<(), String> = with_backoff(
            "thing",
            Duration::from_secs(5),
            |e: &String| e != "wrong password",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("wrong password".to_owned())
            },
        )
        .await;
        assert!(out.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "permanent errors are not retried"
        );
    }
}
