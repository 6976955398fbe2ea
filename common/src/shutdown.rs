//! Signal handling: the first SIGTERM or SIGINT cancels a [`CancellationToken`] so the process
//! drains; a second one exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit status used when a second signal forces the process out.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Installs the handlers and returns the token they cancel. Call it once, inside the runtime.
pub fn install() -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = first,
            "shutdown requested: draining; signal again to exit now"
        );
        cancel.cancel();
        let second = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(signal = second, "second signal: exiting without draining");
        std::process::exit(FORCED_EXIT_CODE);
    });
    Ok(token)
}
