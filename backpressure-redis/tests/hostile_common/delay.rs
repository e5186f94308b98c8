//! A fault-injecting TCP proxy whose latency is a delay line: each chunk is forwarded
//! `latency` after it was read, without waiting for the chunks before it to be delayed
//! (`common/proxy.rs` sleeps per chunk, so its delays add up under load). Also a black hole
//! (stop forwarding, sockets open) and a reset (drop every connection).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Switches {
    forward: bool,
    /// One way: a round trip takes twice this.
    latency: Duration,
    /// Bumped by each reset: connections made before it are dropped.
    generation: u64,
}

/// A running proxy to `127.0.0.1:upstream`; drops every connection when dropped.
pub struct DelayProxy {
    pub port: u16,
    switches: Arc<watch::Sender<Switches>>,
    accept: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Starts a proxy to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let switches = Arc::new(
            watch::channel(Switches {
                forward: true,
                latency: Duration::ZERO,
                generation: 0,
            })
            .0,
        );
        let for_accept = Arc::clone(&switches);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, upstream, for_accept.subscribe()));
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

    /// Forwards again (what was held back goes first, in order).
    pub fn forward(&self) {
        self.switches.send_modify(|s| s.forward = true);
    }

    /// Sets the round-trip latency (half of it each way).
    pub fn round_trip(&self, rtt: Duration) {
        self.switches.send_modify(|s| s.latency = rtt / 2);
    }

    /// Drops every connection open now (new ones are accepted as usual).
    pub fn reset(&self) {
        self.switches.send_modify(|s| s.generation += 1);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset();
    }
}

async fn connection(client: TcpStream, upstream: u16, mut switches: watch::Receiver<Switches>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let generation = switches.borrow().generation;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = line(client_read, server_write, switches.clone());
    let down = line(server_read, client_write, switches.clone());
    let reset = switches.wait_for(|s| s.generation != generation);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = reset => {}
    }
}

/// One direction: a reader stamping chunks and a writer sending each at its time.
async fn line(from: OwnedReadHalf, to: OwnedWriteHalf, switches: watch::Receiver<Switches>) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::select! {
        _ = read(from, tx, switches.clone()) => {}
        _ = write(to, rx, switches) => {}
    }
}

async fn read(
    mut from: OwnedReadHalf,
    tx: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
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
        let due = Instant::now() + switches.borrow().latency;
        if tx.send((due, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

async fn write(
    mut to: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut switches: watch::Receiver<Switches>,
) {
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if switches.wait_for(|s| s.forward).await.is_err() || to.write_all(&chunk).await.is_err() {
            return;
        }
    }
}
