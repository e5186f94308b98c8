//! The task serving a bridge's permits: one loop that wakes on a worker's change (a permit
//! put back, a start waiting), a permit-channel message, a pool added, or its one timer
//! (the renewal, the earliest moment a permit may be free, a reconnect).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backpressure::Sink;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::pool::{Plan, Pool};
use super::Counters;
use crate::bridge::{open, open_bound, Liveness, Status};
use crate::config::{Config, LimitsOnDisconnect};
use crate::quota_task::Down;
use crate::wire::{self, permit_channel, Call, PermitArgs, PermitNews, PermitScripts};

/// How long a clean shutdown waits for Redis to take the release of the permits.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a process renews its permits (and its presence): a third of the lease, at
/// most a second, so that a record flushed away is rebuilt quickly.
pub(crate) fn renew_every(lease: Duration) -> Duration {
    (lease / 3).min(Duration::from_secs(1))
}

/// How long a new record (a fresh namespace, a Redis restarted empty, a flush) grants no new
/// permit: a renewal, the longest a call may take, and half a renewal of margin (3.5 s with
/// the default lease, 450 ms with a lease of 600 ms). Within it every process still running
/// items records them again.
pub(crate) fn grace(lease: Duration) -> Duration {
    let every = renew_every(lease);
    every + Liveness::of(lease).response_timeout + every / 2
}

/// The longest the task waits for one call (a `PING`, the subscription, a script): two
/// response timeouts (a script Redis does not have yet is loaded, then run). redis-rs bounds
/// each request by the response timeout, but a call made while its connection manager
/// re-opens the connection first waits for that (attempts and backoff, seconds); bounded
/// here, such a call reads as unanswered and the task reconnects by itself.
fn call_bound(lease: Duration) -> Duration {
    Liveness::of(lease).response_timeout * 2
}

/// `call`, or a timeout error (unanswered: the link reads as lost) after `bound`: no black
/// hole holds the task longer.
async fn bounded<T>(bound: Duration, call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(bound, call).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
    }
}

/// The connection, while it is thought to work.
struct Conn {
    conn: ConnectionManager,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

pub(super) struct Server {
    sink: Sink,
    config: Config,
    args: PermitArgs,
    scripts: PermitScripts,
    conn: Option<Conn>,
    /// `None`: up (or not needed yet).
    down: Option<Down>,
    pools: Vec<Pool>,
    renew_at: Instant,
    renew_every: Duration,
    /// How long any one call may take ([`call_bound`]).
    call_bound: Duration,
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
        let renew_every = renew_every(config.lease);
        let args = PermitArgs {
            instance: instance.to_owned(),
            lease_ms: ms(config.lease),
            max_lease_ms: ms(config.max_remote_lease),
            grace_ms: ms(grace(config.lease)),
            channel: permit_channel(&config.namespace),
        };
        Self {
            sink,
            config: config.clone(),
            args,
            scripts: PermitScripts::new(),
            conn: None,
            down: None,
            pools: Vec::new(),
            renew_at: Instant::now(),
            renew_every,
            call_bound: call_bound(config.lease),
            status,
            counters,
        }
    }

    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            self.adopt().await;
            if self.pools.is_empty() {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = self.sink.permit_pools_changed() => continue,
                }
            }
            let wake = self.next_wake();
            if wake <= Instant::now() {
                // Due now: a stream of messages must not starve the renewal.
                self.on_timer().await;
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(push) = next_push(&mut self.conn) => self.on_push(push).await,
                _ = self.sink.permit_pools_changed() => {}
                i = changed_any(&self.pools) => self.serve(i).await,
                _ = tokio::time::sleep_until(wake) => self.on_timer().await,
            }
        }
        self.leave().await;
    }

    /// Takes on the pools added to the sink since the last look (the first one opens the
    /// connection).
    async fn adopt(&mut self) {
        let pools = self.sink.permit_pools();
        if pools.len() <= self.pools.len() {
            return;
        }
        for permits in pools.into_iter().skip(self.pools.len()) {
            self.pools.push(Pool::new(permits, &self.config.namespace));
        }
        if self.conn.is_none() && self.down.is_none() {
            self.reconnect().await;
        } else if self.down.is_some() {
            let policy = self.config.limits_on_disconnect;
            self.pools.iter_mut().for_each(|p| p.cut_off(policy));
        }
    }

    fn next_wake(&self) -> Instant {
        if let Some(down) = self.down {
            return down.retry_at;
        }
        let wanted = self.pools.iter().filter(|p| p.permits.counts().wanted);
        wanted
            .filter_map(|p| p.retry_at)
            .fold(self.renew_at, Instant::min)
    }

    async fn on_timer(&mut self) {
        if self.down.is_some() {
            return self.reconnect().await;
        }
        let now = Instant::now();
        if self.renew_at <= now {
            return self.renew_all(false).await;
        }
        for i in 0..self.pools.len() {
            if self.pools[i].retry_at.is_some_and(|at| at <= now) {
                self.pools[i].retry_at = None;
                self.serve(i).await;
            }
        }
    }

    /// Brings a pool in line with its worker: grants, revokes, and the call they need.
    async fn serve(&mut self, i: usize) {
        if self.down.is_some() {
            return self.pools[i].cut_off(self.config.limits_on_disconnect);
        }
        match self.pools[i].plan(self.config.permit_batch) {
            Plan::Nothing => {}
            Plan::Acquire(slots) => self.call(i, Call::Acquire, slots).await,
            Plan::Release(slots) => self.call(i, Call::Release, slots).await,
        }
    }

    /// Runs a script for pool `i`; a failure cuts the pool (answered: an error) or every
    /// pool (unanswered: the link is lost) off.
    async fn call(&mut self, i: usize, call: Call, slots: Vec<u32>) {
        let Some(conn) = self.conn.as_mut() else {
            return self.lost();
        };
        let pool = &mut self.pools[i];
        let limit = pool.permits.limit();
        let ran = self.scripts.run(
            &mut conn.conn,
            call,
            (&pool.keys, limit),
            &self.args,
            &slots,
        );
        match bounded(self.call_bound, ran).await {
            Ok(answer) => {
                let (gained, lost) = pool.answered(call, &slots, &answer);
                // A renewal records new slots too: after an outage, those of items that
                // ran on its local grants; after a flush, the ones the flush lost.
                Counters::add(&self.counters.acquired, gained);
                Counters::add(&self.counters.lost, lost);
                if call == Call::Release {
                    Counters::add(&self.counters.released, slots.len());
                }
            }
            Err(e) if wire::answered(&e) => {
                Counters::add(&self.counters.errors, 1);
                tracing::warn!(worker = pool.permits.worker(), error = %e, "a permit script failed; granting nothing new");
                pool.broken = true;
                pool.cut_off(LimitsOnDisconnect::Hold);
            }
            Err(_) => {
                Counters::add(&self.counters.errors, 1);
                self.lost();
            }
        }
    }

    /// Renews every pool's slots (`cover`: after an outage, also those granted locally),
    /// then brings each in line.
    async fn renew_all(&mut self, cover: bool) {
        self.renew_at = Instant::now() + self.renew_every;
        for i in 0..self.pools.len() {
            if self.pools[i].retired() {
                continue;
            }
            let slots = self.pools[i].to_renew(cover);
            self.call(i, Call::Renew, slots).await;
            if self.down.is_some() {
                return;
            }
            self.serve(i).await;
        }
    }

    async fn on_push(&mut self, push: PushInfo) {
        match push.kind {
            PushKind::Disconnection => self.lost(),
            // Resubscribed after a reconnect: releases may have been missed.
            PushKind::Subscribe if self.down.is_none() => {
                for i in 0..self.pools.len() {
                    self.serve(i).await;
                }
            }
            PushKind::Message => self.on_message(&push.data).await,
            _ => {}
        }
    }

    /// A release or a want: the pools of that worker look again. Anything else is ignored
    /// (counted): a message never grants anything by itself, the scripts decide.
    async fn on_message(&mut self, data: &[Value]) {
        let payload = match data {
            [Value::BulkString(_), Value::BulkString(payload), ..] => payload,
            _ => return Counters::add(&self.counters.ignored, 1),
        };
        let news = std::str::from_utf8(payload)
            .ok()
            .and_then(wire::decode_news);
        let (worker, from, want) = match news {
            Some(PermitNews::Free { worker, from }) => (worker, from, false),
            Some(PermitNews::Want { worker, from }) => (worker, from, true),
            None => return Counters::add(&self.counters.ignored, 1),
        };
        if from == self.args.instance {
            return;
        }
        for i in 0..self.pools.len() {
            let pool = &mut self.pools[i];
            if pool.permits.worker() != worker {
                continue;
            }
            let counts = pool.permits.counts();
            // A want matters to a pool with unused permits to let go (never one that waits
            // itself: wants answered by wants would never end); a release to one that waits.
            let serve = if want {
                !counts.wanted && counts.granted > counts.in_use
            } else {
                counts.wanted
            };
            pool.peer_wants |= want && serve;
            if serve {
                self.serve(i).await;
            }
        }
    }

    /// The link is lost: every pool follows `limits_on_disconnect`.
    fn lost(&mut self) {
        if self.down.is_some() {
            return;
        }
        Counters::add(&self.counters.disconnects, 1);
        let policy = self.config.limits_on_disconnect;
        tracing::warn!(namespace = %self.config.namespace, ?policy, "permits: lost the connection to Redis");
        self.down = Some(Down::first());
        let since = std::time::Instant::now();
        self.status.send_replace(Status::Disconnected { since });
        self.pools.iter_mut().for_each(|p| p.cut_off(policy));
    }

    /// Opens (or checks) the connection and subscribes; on success renews everything held
    /// and granted, otherwise waits twice as long for the next try.
    async fn reconnect(&mut self) {
        match self.connect().await {
            Ok(()) => {
                let was_down = self.down.take().is_some();
                self.renew_all(was_down).await;
                if self.down.is_none() {
                    self.status.send_replace(Status::Synced);
                }
            }
            Err(()) => {
                let next = match self.down {
                    Some(mut down) => {
                        down.failed_again(self.config.reconnect_max_delay);
                        down
                    }
                    None => Down::first(),
                };
                if self.down.is_none() {
                    self.lost();
                }
                self.down = Some(next);
            }
        }
    }

    async fn connect(&mut self) -> Result<(), ()> {
        if self.conn.is_none() {
            let liveness = Liveness::of(self.config.lease);
            let opened = open(&self.config, liveness);
            let opened = tokio::time::timeout(open_bound(&self.config), opened).await;
            let (conn, pushes) = opened.map_err(drop)?.map_err(drop)?;
            self.conn = Some(Conn { conn, pushes });
        }
        let conn = self.conn.as_mut().ok_or(())?;
        let ping = redis::cmd("PING");
        let pong: RedisResult<String> =
            bounded(self.call_bound, ping.query_async(&mut conn.conn)).await;
        let checked = match pong {
            Ok(_) => bounded(self.call_bound, conn.conn.subscribe(&self.args.channel)).await,
            Err(e) => Err(e),
        };
        if checked.is_err() {
            // A connection that failed its check is not tried again (one opened into a black
            // hole stays desynchronised after the path heals): the next try opens a new one.
            self.conn = None;
        }
        checked.map_err(drop)
    }

    /// On shutdown: the unused permits go back to the fleet (best effort, briefly); those
    /// of items still running lapse with their lease, so the fleet never runs more than its
    /// limit because this process left.
    async fn leave(&mut self) {
        let unused: Vec<usize> = self.pools.iter().map(|p| p.permits.revoke_all()).collect();
        if self.down.is_some() {
            return;
        }
        let release = async {
            for (i, n) in unused.into_iter().enumerate() {
                let slots: Vec<u32> = self.pools[i].held.iter().rev().take(n).copied().collect();
                if !slots.is_empty() {
                    self.call(i, Call::Release, slots).await;
                }
            }
        };
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, release).await;
    }
}

async fn next_push(conn: &mut Option<Conn>) -> Option<PushInfo> {
    match conn {
        Some(conn) => conn.pushes.recv().await,
        None => std::future::pending().await,
    }
}

/// The index of the first pool whose worker changed.
async fn changed_any(pools: &[Pool]) -> usize {
    let waits = pools.iter().enumerate().map(|(i, pool)| {
        Box::pin(async move {
            pool.permits.changed().await;
            i
        })
    });
    futures_util::future::select_all(waits).await.0
}
