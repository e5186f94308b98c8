//! The task serving a bridge's shared rates: one loop that wakes on a worker's change (a
//! start waiting for a token, the worker closed), a pool added, a reconnect attempt ending,
//! or its one timer (the earliest moment a waiting pool's next start is allowed, the next
//! reconnect). Nothing polls: a pool whose worker waits for nothing makes no call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backpressure::Sink;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::pool::Pool;
use super::Counters;
use crate::bridge::{open, Liveness, Status, FIRST_BACKOFF};
use crate::config::Config;
use crate::quota_task::Down;
use crate::wire::{self, RateArgs, RateScript};

/// The connection, while it is thought to work.
struct Conn {
    conn: ConnectionManager,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

/// A reconnect attempt running beside the loop (a black hole must not stall the local
/// grants of `limits_on_disconnect`).
type Attempt = Pin<Box<dyn Future<Output = Option<Conn>> + Send>>;

pub(super) struct Server {
    sink: Sink,
    config: Config,
    args: RateArgs,
    script: RateScript,
    /// Every call's bound (the bridge's response timeout).
    timeout: Duration,
    conn: Option<Conn>,
    /// `None`: up (or not needed yet).
    down: Option<Down>,
    attempt: Option<Attempt>,
    pools: Vec<Pool>,
    status: watch::Sender<Status>,
    counters: Arc<Counters>,
}

impl Server {
    pub(super) fn new(
        sink: Sink,
        config: &Config,
        instance: &str,
        status: watch::Sender<Status>,
        counters: Arc<Counters>,
    ) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let args = RateArgs {
            instance: instance.to_owned(),
            lease_ms: ms(config.lease),
            max_lease_ms: ms(config.max_remote_lease),
        };
        Self {
            sink,
            config: config.clone(),
            args,
            script: RateScript::new(),
            timeout: Liveness::of(config.lease).response_timeout,
            conn: None,
            down: None,
            attempt: None,
            pools: Vec::new(),
            status,
            counters,
        }
    }

    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            self.adopt();
            if self.pools.is_empty() {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = self.sink.rate_pools_changed() => continue,
                }
            }
            let wake = self.next_wake();
            if wake.is_some_and(|at| at <= Instant::now()) {
                self.on_timer().await;
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut stop => break,
                conn = attempted(&mut self.attempt) => self.on_attempt(conn).await,
                Some(push) = next_push(&mut self.conn) => self.on_push(&push),
                _ = self.sink.rate_pools_changed() => {}
                i = changed_any(&self.pools) => self.serve(i).await,
                _ = sleep_until(wake) => self.on_timer().await,
            }
        }
    }

    /// Takes on the pools added to the sink since the last look (the first one connects).
    fn adopt(&mut self) {
        let pools = self.sink.rate_pools();
        if pools.len() <= self.pools.len() {
            return;
        }
        let policy = self.config.limits_on_disconnect;
        for tokens in pools.into_iter().skip(self.pools.len()) {
            let mut pool = Pool::new(tokens, &self.config.namespace);
            if self.down.is_some() {
                pool.cut_off(policy);
            }
            self.pools.push(pool);
        }
        if self.conn.is_none() && self.down.is_none() && self.attempt.is_none() {
            self.attempt = Some(self.connect());
        }
    }

    /// The one timer: the next reconnect, and the earliest moment a waiting pool's next
    /// start is allowed.
    fn next_wake(&self) -> Option<Instant> {
        let retry = self
            .down
            .filter(|_| self.attempt.is_none())
            .map(|d| d.retry_at);
        let pools = self.pools.iter().filter(|p| p.needs());
        pools.filter_map(|p| p.allowed_at).chain(retry).min()
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.attempt.is_none() && self.down.is_some_and(|d| d.retry_at <= now) {
            self.attempt = Some(self.connect());
        }
        for i in 0..self.pools.len() {
            if self.pools[i].allowed_at.is_some_and(|at| at <= now) {
                self.serve(i).await;
            }
        }
    }

    /// Grants pool `i` what it may have now, if a start waits: from the fleet's GCRA, or,
    /// cut off, as `limits_on_disconnect` allows.
    async fn serve(&mut self, i: usize) {
        if !self.pools[i].due(Instant::now()) {
            return;
        }
        self.pools[i].allowed_at = None;
        if self.conn.is_none() && self.down.is_none() {
            // The first connection is being opened: its end serves every pool.
            return;
        }
        if self.down.is_some() {
            let granted = self.pools[i].grant_local(self.config.limits_on_disconnect);
            return Counters::add(&self.counters.granted, granted);
        }
        self.call(i).await;
    }

    /// Asks the fleet's GCRA for pool `i`'s batch; an answered error holds that pool, an
    /// unanswered call (or one past the timeout) cuts every pool off.
    async fn call(&mut self, i: usize) {
        let Some(conn) = self.conn.as_mut() else {
            return self.lost();
        };
        Counters::add(&self.counters.calls, 1);
        let pool = &mut self.pools[i];
        let ran = self
            .script
            .run(&mut conn.conn, &pool.keys, &self.args, pool.ask());
        match tokio::time::timeout(self.timeout, ran).await {
            Ok(Ok(answer)) => {
                let granted = pool.answered(&answer);
                Counters::add(&self.counters.granted, granted);
            }
            Ok(Err(e)) if wire::answered(&e) => {
                Counters::add(&self.counters.errors, 1);
                let max = self.config.reconnect_max_delay;
                if pool.failed(FIRST_BACKOFF, max) {
                    tracing::warn!(worker = pool.tokens.worker(), error = %e, "a rate script failed; the worker starts nothing until it succeeds");
                }
            }
            Ok(Err(_)) | Err(_) => {
                Counters::add(&self.counters.errors, 1);
                self.conn = None;
                self.lost();
                self.serve_local();
            }
        }
    }

    /// Cut off: the waiting pools get what the policy allows now.
    fn serve_local(&mut self) {
        let (now, policy) = (Instant::now(), self.config.limits_on_disconnect);
        for pool in &mut self.pools {
            if pool.due(now) {
                let granted = pool.grant_local(policy);
                Counters::add(&self.counters.granted, granted);
            }
        }
    }

    fn on_push(&mut self, push: &PushInfo) {
        if push.kind == PushKind::Disconnection {
            self.lost();
            self.serve_local();
        }
    }

    /// The link is lost: every pool follows `limits_on_disconnect`.
    fn lost(&mut self) {
        if self.down.is_some() {
            return;
        }
        Counters::add(&self.counters.disconnects, 1);
        let policy = self.config.limits_on_disconnect;
        tracing::warn!(namespace = %self.config.namespace, ?policy, "shared rates: lost the connection to Redis");
        self.down = Some(Down::first());
        let since = std::time::Instant::now();
        self.status.send_replace(Status::Disconnected { since });
        self.pools.iter_mut().for_each(|p| p.cut_off(policy));
    }

    /// A reconnect attempt ended: back to the fleet's GCRA, or the next try later.
    async fn on_attempt(&mut self, conn: Option<Conn>) {
        self.attempt = None;
        let Some(conn) = conn else {
            if self.down.is_none() {
                self.lost();
                self.serve_local();
            }
            let down = self.down.get_or_insert_with(Down::first);
            down.failed_again(self.config.reconnect_max_delay);
            return;
        };
        self.conn = Some(conn);
        if self.down.take().is_some() {
            let policy = self.config.limits_on_disconnect;
            self.pools.iter_mut().for_each(|p| p.cut_off(policy));
            self.status.send_replace(Status::Synced);
        }
        for i in 0..self.pools.len() {
            self.serve(i).await;
        }
    }

    /// A reconnect attempt: the connection kept (checked by a `PING`) or a new one, all
    /// within the call timeout (a connection that fails its check is not tried again: one
    /// opened into a black hole stays desynchronised after the path heals).
    fn connect(&mut self) -> Attempt {
        let kept = self.conn.take();
        let (config, timeout) = (self.config.clone(), self.timeout);
        Box::pin(async move {
            let attempt = async move {
                let mut conn = match kept {
                    Some(conn) => conn,
                    None => {
                        let liveness = Liveness::of(config.lease);
                        let (conn, pushes) = open(&config, liveness).await.ok()?;
                        Conn { conn, pushes }
                    }
                };
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn.conn).await;
                pong.ok().map(|_| conn)
            };
            tokio::time::timeout(timeout * 2, attempt)
                .await
                .ok()
                .flatten()
        })
    }
}

async fn attempted(attempt: &mut Option<Attempt>) -> Option<Conn> {
    match attempt {
        Some(attempt) => attempt.await,
        None => std::future::pending().await,
    }
}

async fn next_push(conn: &mut Option<Conn>) -> Option<PushInfo> {
    match conn {
        Some(conn) => conn.pushes.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The index of the first pool whose worker changed.
async fn changed_any(pools: &[Pool]) -> usize {
    let waits = pools.iter().enumerate().map(|(i, pool)| {
        Box::pin(async move {
            pool.tokens.changed().await;
            i
        })
    });
    futures_util::future::select_all(waits).await.0
}
