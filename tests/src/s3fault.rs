//! An HTTP fault proxy in front of the S3 server, owned by a test. Each connection carries one
//! request (the proxy asks the server to close after it), and each request independently meets
//! one of: a 503 SlowDown, a 500 InternalError, a connection reset, a stalled response (the head
//! and a few body bytes, then nothing), or a clean pass, at configured rates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Fault rates, in requests per thousand.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub slow_down: u32,
    pub internal_error: u32,
    pub reset: u32,
    pub stall: u32,
}

/// How many requests met each fault.
#[derive(Debug, Default)]
pub struct Counts {
    pub passed: AtomicU64,
    pub slow_down: AtomicU64,
    pub internal_error: AtomicU64,
    pub reset: AtomicU64,
    pub stall: AtomicU64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "passed={} slowdown_503={} internal_500={} resets={} stalls={}",
            g(&self.passed),
            g(&self.slow_down),
            g(&self.internal_error),
            g(&self.reset),
            g(&self.stall)
        )
    }
}

#[derive(Debug, Default)]
struct Shared {
    slow_down: AtomicU32,
    internal_error: AtomicU32,
    reset: AtomicU32,
    stall: AtomicU32,
    counts: Counts,
}

/// A running fault proxy; it stops when dropped.
#[derive(Debug)]
pub struct S3Faults {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

enum Fault {
    Pass,
    SlowDown,
    InternalError,
    Reset,
    Stall,
}

impl S3Faults {
    pub async fn start(upstream: SocketAddr, rates: Rates) -> S3Faults {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind S3 proxy");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let proxy = S3Faults { addr, shared, stop };
        proxy.set_rates(rates);
        let (shared, stop) = (proxy.shared.clone(), proxy.stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok((c, _)) => c,
                        Err(_) => continue,
                    },
                };
                let (shared, stop) = (shared.clone(), stop.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = serve(client, upstream, &shared) => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn set_rates(&self, r: Rates) {
        self.shared.slow_down.store(r.slow_down, Ordering::Relaxed);
        self.shared
            .internal_error
            .store(r.internal_error, Ordering::Relaxed);
        self.shared.reset.store(r.reset, Ordering::Relaxed);
        self.shared.stall.store(r.stall, Ordering::Relaxed);
    }

    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for S3Faults {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn choose(s: &Shared) -> Fault {
    let roll = fastrand::u32(0..1000);
    let mut edge = 0;
    for (rate, fault) in [
        (&s.slow_down, Fault::SlowDown),
        (&s.internal_error, Fault::InternalError),
        (&s.reset, Fault::Reset),
        (&s.stall, Fault::Stall),
    ] {
        edge += rate.load(Ordering::Relaxed);
        if roll < edge {
            return fault;
        }
    }
    Fault::Pass
}

fn error_response(status: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test's fault proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads up to the end of the request head; returns the head and any body bytes read after it.
async fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
}

/// The head with `Connection: close`, so the server closes after one response.
fn one_shot(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 20);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, s: &Shared) {
    let Some((head, early_body)) = read_head(&mut client).await else {
        return;
    };
    let fault = choose(s);
    let c = &s.counts;
    match fault {
        Fault::SlowDown | Fault::InternalError => {
            let (status, code, counter) = if matches!(fault, Fault::SlowDown) {
                ("503 Slow Down", "SlowDown", &c.slow_down)
            } else {
                (
                    "500 Internal Server Error",
                    "InternalError",
                    &c.internal_error,
                )
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = client.write_all(&error_response(status, code)).await;
            let _ = client.shutdown().await;
            return;
        }
        Fault::Reset => {
            c.reset.fetch_add(1, Ordering::Relaxed);
            let _ = client.set_zero_linger();
            return;
        }
        Fault::Pass | Fault::Stall => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if server.write_all(&one_shot(&head)).await.is_err()
        || server.write_all(&early_body).await.is_err()
    {
        return;
    }
    if matches!(fault, Fault::Pass) {
        c.passed.fetch_add(1, Ordering::Relaxed);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    }
    // Stall: send the request on, pass back the response head and a few bytes, then nothing
    // until the client gives up.
    c.stall.fetch_add(1, Ordering::Relaxed);
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_r, &mut server_w).await;
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 8192];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match server_r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(got.len(), |p| p + 4);
    let cut = (head_end + 512).min(got.len());
    let _ = client_w.write_all(&got[..cut]).await;
    // Hold the connection until the client closes it (the upload task ends then).
    let _ = upload.await;
}
