//! A minimal HTTP/1.1 endpoint for probes and scrapes: `GET /healthz`, `GET /readyz` and
//! `GET /metrics`. One request per connection, bounded request head, nothing else served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the endpoint reports.
pub trait Probe: Send + Sync + 'static {
    /// `/readyz`: connected and consuming (false while reconnecting or draining).
    fn ready(&self) -> bool;
    /// `/metrics`: the Prometheus text exposition.
    fn metrics(&self) -> String;
}

/// Binds `addr` (fails fast) and serves until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    probe: Arc<dyn Probe>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener, probe, shutdown)
}

/// Serves on an already bound listener until `shutdown`; returns its address.
pub fn serve_on(
    listener: TcpListener,
    probe: Arc<dyn Probe>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => match a {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "http accept failed");
                        continue;
                    }
                },
            };
            let probe = probe.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), answer(stream, &*probe)).await;
            });
        }
    });
    Ok(bound)
}

async fn answer(mut stream: TcpStream, probe: &dyn Probe) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", "/readyz") if probe.ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        ("GET", "/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "not ready\n".to_owned(),
        ),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            probe.metrics(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
