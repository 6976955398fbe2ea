//! A TCP proxy owned by a test, in front of a real server, that can cut every connection and
//! refuse new ones: a broker restart or a network failure as the client sees it, without touching
//! the server that other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct State {
    refuse: AtomicBool,
    /// While true, accepted connections wait before they are forwarded.
    hold: tokio::sync::watch::Sender<bool>,
    accepted: tokio::sync::watch::Sender<u64>,
    /// Cancelled to cut every open connection; replaced by a fresh token after each cut.
    cut: Mutex<CancellationToken>,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            refuse: AtomicBool::new(false),
            hold: tokio::sync::watch::Sender::new(false),
            accepted: tokio::sync::watch::Sender::new(0),
            cut: Mutex::new(CancellationToken::new()),
        });
        let stop = CancellationToken::new();
        let (st, stopped) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = stopped.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                st.accepted.send_modify(|n| *n += 1);
                if st.refuse.load(Ordering::SeqCst) {
                    // Accept and drop: the client sees its connection reset.
                    let _ = client.set_zero_linger();
                    drop(client);
                    continue;
                }
                let cut = st.cut.lock().expect("proxy state").clone();
                let stopped = stopped.clone();
                let mut held = st.hold.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cut.cancelled() => return,
                        _ = stopped.cancelled() => return,
                        _ = held.wait_for(|h| !*h) => {}
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = stopped.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                    let _ = client.set_zero_linger();
                });
            }
        });
        Proxy { addr, state, stop }
    }

    /// Resets every open connection.
    pub fn cut(&self) {
        let mut cut = self.state.cut.lock().expect("proxy state");
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// While on, new connections are accepted and reset at once.
    pub fn refuse(&self, on: bool) {
        self.state.refuse.store(on, Ordering::SeqCst);
    }

    /// While on, new connections are accepted but wait, silent, until it is turned off: a
    /// server that stalls.
    pub fn hold(&self, on: bool) {
        self.state.hold.send_replace(on);
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        *self.state.accepted.borrow()
    }

    /// Waits until at least `n` connections were accepted.
    pub async fn wait_accepted(&self, n: u64) {
        let mut rx = self.state.accepted.subscribe();
        let _ = rx.wait_for(|a| *a >= n).await;
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("url with a scheme");
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let userinfo = match authority.rfind('@') {
            Some(i) => &authority[..=i],
            None => "",
        };
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// The socket address of a URL's host and port (loopback names only).
pub fn upstream_of(url: &str, default_port: u16) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().expect("port")),
        None => (hostport, default_port),
    };
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}").parse().expect("loopback address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstreams() {
        assert_eq!(
            upstream_of("amqp://guest:guest@127.0.0.1:5672/%2f", 5672),
            "127.0.0.1:5672".parse().expect("addr")
        );
        assert_eq!(
            upstream_of("http://localhost:9000", 80),
            "127.0.0.1:9000".parse().expect("addr")
        );
    }
}
