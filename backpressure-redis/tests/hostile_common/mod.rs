//! Helpers of the hostile tests (`tests/hostile_*.rs`, next to `common/`): bridges with a
//! policy, fences that prove a bridge has read the channel up to now, forged floods.
#![allow(dead_code, unreachable_pub)]

pub mod delay;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::{connect, Bridge, Config, OnDisconnect, Status};

use crate::common::{wait_until, RedisServer};

/// How long a positive wait may take: generous, for a loaded machine (real time).
pub const WAIT: Duration = Duration::from_secs(30);
/// The namespace of every hostile test.
pub const NS: &str = "ns";

/// A bridge's settings in [`NS`], reconnecting quickly.
pub fn config(url: &str, instance: &str, lease: Duration, policy: OnDisconnect) -> Config {
    Config::new(url)
        .namespace(NS)
        .instance(instance)
        .lease(lease)
        .on_disconnect(policy)
        .reconnect_max_delay(Duration::from_millis(200))
}

/// A fresh sink bridged with [`config`]; panics unless `connect` succeeds.
pub async fn bridge(
    url: &str,
    instance: &str,
    lease: Duration,
    policy: OnDisconnect,
) -> (Sink, Bridge) {
    let sink = Sink::new();
    let bridge = connect(sink.clone(), config(url, instance, lease, policy))
        .await
        .expect("connect");
    (sink, bridge)
}

/// Asserts that `bridge` reaches `Synced` within [`WAIT`].
pub async fn synced(bridge: &Bridge) {
    let status = bridge.wait_for(WAIT, |s| *s == Status::Synced).await;
    assert_eq!(status, Status::Synced, "{bridge:?}");
}

/// Whether `sink` holds `name` under `key` (`None`: an unkeyed entry).
pub fn has(sink: &Sink, name: &str, key: Option<&str>) -> bool {
    sink.snapshot()
        .iter()
        .any(|s| &*s.name == name && s.key.as_deref() == key)
}

/// Raises `name` in `from` and waits until `to` mirrors it: `to` has then read every message
/// published on the channel before the raise (one connection, in order), or a snapshot
/// taken after them (a resync may apply the fence before the messages queued behind it).
pub async fn fence(from: &Sink, to: &Sink, name: &str) {
    from.raise(name).unwrap();
    assert!(
        wait_until(to, WAIT, |s| s.is_raised(name)).await,
        "the fence {name} did not arrive"
    );
}

/// Publishes `count` messages on the channel of [`NS`] in one script (no other message
/// comes between them): `template` as in `common::publish_raw`, plus `{i}` (1..=count).
/// With `in_sequence` each takes the next number of the counter (`{seq}`); otherwise
/// `{seq}` is left to the template. Returns the counter after the flood.
pub fn flood(
    server: &RedisServer,
    template: &str,
    count: u32,
    ttl: Duration,
    in_sequence: bool,
) -> u64 {
    let script = redis::Script::new(
        r#"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local epoch = redis.call('GET', KEYS[2]) or ''
        for i = 1, tonumber(ARGV[4]) do
          local p = ARGV[2]
          if ARGV[5] == '1' then
            p = string.gsub(p, '{seq}', tostring(redis.call('INCR', KEYS[1])))
          end
          p = string.gsub(p, '{epoch}', epoch)
          p = string.gsub(p, '{i}', tostring(i))
          p = string.gsub(p, '{now}', string.format('%.0f', now))
          p = string.gsub(p, '{expiry}', string.format('%.0f', now + tonumber(ARGV[3])))
          redis.call('PUBLISH', ARGV[1], p)
        end
        return tonumber(redis.call('GET', KEYS[1]) or '0')
        "#,
    );
    script
        .key(backpressure_redis::__private::seq_key(NS))
        .key(backpressure_redis::__private::epoch_key(NS))
        .arg(backpressure_redis::__private::channel(NS))
        .arg(template)
        .arg(ttl.as_millis() as u64)
        .arg(count)
        .arg(if in_sequence { "1" } else { "0" })
        .invoke(&mut server.raw())
        .expect("flood")
}

/// Every status a bridge reports from now on, with when (a background task; stops with the
/// bridge).
pub struct StatusLog {
    log: std::sync::Arc<std::sync::Mutex<Vec<(tokio::time::Instant, Status)>>>,
}

impl StatusLog {
    /// Starts recording `bridge`'s status changes (the current status first).
    pub fn start(bridge: &Bridge) -> Self {
        let mut watch = bridge.watch_status();
        let log = std::sync::Arc::new(std::sync::Mutex::new(vec![(
            tokio::time::Instant::now(),
            *watch.borrow_and_update(),
        )]));
        let into = std::sync::Arc::clone(&log);
        tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                let status = *watch.borrow_and_update();
                into.lock()
                    .unwrap()
                    .push((tokio::time::Instant::now(), status));
            }
        });
        Self { log }
    }

    /// The statuses reported in `[from, to]`, and the one in force at `from`.
    pub fn between(&self, from: tokio::time::Instant, to: tokio::time::Instant) -> Vec<Status> {
        let log = self.log.lock().unwrap();
        let before = log
            .iter()
            .rev()
            .find(|(at, _)| *at <= from)
            .map(|(_, s)| *s);
        before
            .into_iter()
            .chain(
                log.iter()
                    .filter(|(at, _)| *at > from && *at <= to)
                    .map(|(_, s)| *s),
            )
            .collect()
    }

    /// When `bridge` first reported a status matching `what` after `from`.
    pub fn first_after(
        &self,
        from: tokio::time::Instant,
        what: impl Fn(&Status) -> bool,
    ) -> Option<tokio::time::Instant> {
        let log = self.log.lock().unwrap();
        log.iter()
            .find(|(at, s)| *at >= from && what(s))
            .map(|(at, _)| *at)
    }
}
