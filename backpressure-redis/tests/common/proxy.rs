//! A fault-injecting TCP proxy for the tests: accepts on a loopback port, connects each
//! client to the upstream port and forwards both ways, with switches for latency, a black
//! hole (stop forwarding but keep every socket open, like a network partition: what was
//! sent waits, and TCP's own back-pressure stops the senders) and a reset (drop every
//! connection).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Switches {
    forward: bool,
    latency: Duration,
    /// Bumped by each reset: connections made before it are dropped.
    generation: u64,
}

/// A running proxy; stops (and drops every connection) when dropped.
pub struct Proxy {
    pub port: u16,
    switches: Arc<watch::Sender<Switches>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let (switches, _) = watch::channel(Switches {
            forward: true,
            latency: Duration::ZERO,
            generation: 0,
        });
        let switches = Arc::new(switches);
        let for_accept = Arc::clone(&switches);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let switches = for_accept.subscribe();
                tokio::spawn(connection(client, upstream, switches));
            }
        });
        Self {
            port,
            switches,
            accept,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops forwarding in both directions; every socket stays open.
    pub fn black_hole(&self) {
        self.switches.send_modify(|s| s.forward = false);
    }

    /// Forwards again (what was held back goes through first, in order).
    pub fn forward(&self) {
        self.switches.send_modify(|s| s.forward = true);
    }

    /// Delays every chunk by `latency`, in both directions.
    pub fn latency(&self, latency: Duration) {
        self.switches.send_modify(|s| s.latency = latency);
    }

    /// Drops every connection open now (new ones are accepted as usual).
    pub fn reset(&self) {
        self.switches.send_modify(|s| s.generation += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset();
    }
}

/// Forwards one client connection until either side closes or a reset.
async fn connection(client: TcpStream, upstream: u16, mut switches: watch::Receiver<Switches>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let generation = switches.borrow().generation;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, switches.clone());
    let down = pump(server_read, client_write, switches.clone());
    let reset = switches.wait_for(|s| s.generation != generation);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = reset => {}
    }
    // Dropping both halves of both sockets closes them.
}

/// Copies chunks from `from` to `to`, each only while forwarding is on.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut switches: watch::Receiver<Switches>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // A black hole reads nothing more: the sender's writes pile up in TCP buffers.
        if switches.wait_for(|s| s.forward).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let latency = switches.borrow().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // A chunk read just before the black hole began waits for its end.
        if switches.wait_for(|s| s.forward).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
