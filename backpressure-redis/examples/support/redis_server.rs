//! A throwaway `redis-server` for the examples: `BACKPRESSURE_REDIS_URL` if set, else one on
//! a free loopback port, killed when dropped. Included by each bench with `#[path]`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` this example started; killed on drop.
pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The URL to use, and the server if this example started one; `None` without one.
pub(crate) fn start_server() -> Option<(String, Option<Server>)> {
    if let Ok(url) = std::env::var("BACKPRESSURE_REDIS_URL") {
        return Some((url, None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..500 {
        let pong = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(100)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if pong.is_ok() {
            return Some((url, Some(server)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}
