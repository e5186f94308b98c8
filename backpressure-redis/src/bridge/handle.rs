//! The handle users hold, and [`connect`], which checks the settings and starts the task.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Pattern, Sink};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo};
use tokio::sync::{mpsc, oneshot, watch};

use super::clock::Clock;
use super::inbound::Inbound;
use super::link::{Link, Liveness, Status, FIRST_BACKOFF};
use super::outbound::Outbound;
use super::probes::Lender;
use super::stats::{BridgeStats, Counters};
use super::task::Task;
use crate::config::{Config, RedisUrl};
use crate::error::Error;
use crate::permits::{PermitServer, PermitStats};
use crate::rates::{RateServer, RateStats};
use crate::wire::{self, Keys, Remote};

/// A running bridge between a local [`Sink`] and a Redis namespace, made by
/// [`connect`](crate::connect).
///
/// The work happens in a background task: local raises and retracts never wait for Redis.
/// Dropping the bridge stops that task and retracts this process's entries from Redis in
/// the background (best effort); [`shutdown`](Self::shutdown) does the same and waits for
/// it. Either way the mirrored entries of other processes are retracted from the local sink.
pub struct Bridge {
    instance: Arc<str>,
    namespace: Arc<str>,
    url: RedisUrl,
    status: watch::Receiver<Status>,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The permits of the sink's workers with `global_concurrency`.
    permits: Option<PermitServer>,
    /// The shared rates of the sink's workers with `rate(..., shared = true)`.
    rates: Option<RateServer>,
}

impl Bridge {
    /// This process's instance id in the namespace: its entries appear in other processes'
    /// sinks keyed `instance` (unkeyed raises) or `instance/key`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The namespace this bridge shares signals in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The current status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver of status changes (`changed().await` wakes on each transition).
    ///
    /// Keep its borrows short: a `Ref` (from `borrow()`, or the one `wait_for` returns)
    /// holds the channel's lock, and while one is held the bridge's task cannot publish the
    /// next status and waits, blocking its thread. Copy the status out instead, or use
    /// [`wait_for`](Self::wait_for).
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until the status satisfies `done`, at most `timeout`; returns the status then
    /// (which may not satisfy `done` if the time ran out).
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&Status) -> bool) -> Status {
        let mut status = self.status.clone();
        let _ = tokio::time::timeout(timeout, status.wait_for(|s| done(s))).await;
        let now = *status.borrow();
        now
    }

    /// The counters.
    pub fn stats(&self) -> BridgeStats {
        self.counters.snapshot()
    }

    /// The status of the permits' own connection (workers with `global_concurrency`):
    /// `Disconnected` while their limits follow
    /// [`limits_on_disconnect`](crate::Config::limits_on_disconnect); `Synced` otherwise
    /// (also while no worker of the sink has `global_concurrency`).
    ///
    /// Keep its borrows short, as with [`watch_status`](Self::watch_status): while a `Ref`
    /// is held, the permits' task cannot publish the next status and waits (so do the
    /// workers' permits).
    pub fn permit_status(&self) -> watch::Receiver<Status> {
        self.permits
            .as_ref()
            .map_or_else(|| watch::channel(Status::Synced).1, PermitServer::status)
    }

    /// The permits' counters.
    pub fn permit_stats(&self) -> PermitStats {
        self.permits
            .as_ref()
            .map_or_else(PermitStats::default, PermitServer::stats)
    }

    /// The status of the shared rates' own connection (workers with
    /// `rate(..., shared = true)`): `Disconnected` while their rates follow
    /// [`limits_on_disconnect`](crate::Config::limits_on_disconnect), from a call that
    /// failed until a reconnect; `Synced` otherwise (also while no worker of the sink has a
    /// shared rate). Calls are made only while a start waits, so a link lost while none
    /// waits shows when the next one does (or when the connection reports it closed).
    pub fn rate_status(&self) -> watch::Receiver<Status> {
        self.rates
            .as_ref()
            .map_or_else(|| watch::channel(Status::Synced).1, RateServer::status)
    }

    /// The shared rates' counters.
    pub fn rate_stats(&self) -> RateStats {
        self.rates
            .as_ref()
            .map_or_else(RateStats::default, RateServer::stats)
    }

    /// Stops the bridge: retracts this process's entries from Redis (so that other
    /// processes drop them at once instead of at the end of their lease) and the mirrored
    /// entries of other processes from the local sink, then ends the background task.
    pub async fn shutdown(mut self) {
        if let Some(permits) = self.permits.take() {
            permits.shutdown().await;
        }
        if let Some(rates) = self.rates.take() {
            rates.shutdown().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("instance", &self.instance)
            .field("status", &self.status())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Connects `sink` to the namespace of `config` and returns once the first sync is done:
/// the other processes' signals are in `sink`, and this process's shared signals are in
/// Redis.
///
/// An unreachable server at start is an error, not a degraded start: a process that comes
/// up silently unconnected would ignore every peer's signals while looking healthy, and a
/// wrong URL or password would only show up in a status nobody looks at. Fail fast, and let
/// the supervisor (systemd, Kubernetes) restart the process; once connected, the bridge
/// survives outages, reconnecting with capped backoff and reporting
/// [`Status::Disconnected`].
///
/// # Errors
///
/// [`Error::InvalidUrl`], [`Error::Namespace`], [`Error::Instance`], [`Error::Share`],
/// [`Error::Lease`] for bad settings; [`Error::NoRuntime`] outside tokio;
/// [`Error::Connect`] if the server cannot be reached; [`Error::Denied`] if its ACL denies
/// this user the namespace's keys, channel or commands; [`Error::Timeout`] if the first
/// sync does not finish within `connect_timeout`.
pub async fn connect(sink: Sink, config: Config) -> Result<Bridge, Error> {
    let (instance, share) = check(&config)?;
    let liveness = Liveness::of(config.lease);
    let (conn, pushes) = open(&config, liveness).await?;
    let mut remote = Remote::new(Keys::new(&config.namespace), conn);
    remote
        .subscribe()
        .await
        .map_err(|e| connect_error(&config, &e))?;

    let instance: Arc<str> = instance.into();
    let parts = Parts {
        instance: Arc::clone(&instance),
        share,
        probe_every: liveness.probe_every,
    };
    let (sink_for_permits, config_for_permits) = (sink.clone(), config.clone());
    let (mut task, status, counters) = assemble(sink, &config, remote, pushes, parts);
    if let Err(e) = task.first_sync().await {
        return Err(connect_error(&config, &e));
    }
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(task.run(stopped));
    let bridge = Bridge {
        instance,
        namespace: config.namespace.as_str().into(),
        url: config.url,
        status,
        counters,
        stop: Some(stop),
        task: Some(task),
        permits: None,
        rates: None,
    };
    let mut bridge = first_sync(bridge, config.connect_timeout).await?;
    bridge.permits = Some(PermitServer::start(
        sink_for_permits.clone(),
        &config_for_permits,
        &bridge.instance,
    ));
    bridge.rates = Some(RateServer::start(
        sink_for_permits,
        &config_for_permits,
        &bridge.instance,
    ));
    Ok(bridge)
}

/// What `connect` has worked out for the task.
struct Parts {
    instance: Arc<str>,
    share: Pattern,
    probe_every: Duration,
}

/// Builds the task for a connection just subscribed, with the status it reports and its
/// counters.
fn assemble(
    sink: Sink,
    config: &Config,
    remote: Remote,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    parts: Parts,
) -> (Task, watch::Receiver<Status>, Arc<Counters>) {
    let Parts {
        instance,
        share,
        probe_every,
    } = parts;
    // Subscribe to the sink before the first snapshot of it, so no local change is missed.
    let local = sink.subscribe();
    let (status_tx, status) = watch::channel(Status::Resyncing);
    let counters = Arc::new(Counters::new(remote.channel()));
    let (probe_outbox, probe_messages) = mpsc::unbounded_channel();
    let lender = Lender::new(sink.clone(), Arc::clone(&instance));
    let inbound = Inbound::new(
        sink.clone(),
        share.clone(),
        Arc::clone(&instance),
        config,
        Arc::clone(&counters),
        probe_outbox.clone(),
    );
    let outbound = Outbound::new(sink, share, instance, config.lease, Arc::clone(&counters));
    let task = Task {
        remote,
        pushes,
        local,
        link: Link::new(
            status_tx,
            config.reconnect_max_delay,
            resync_floor(config.lease),
        ),
        inbound,
        outbound,
        lender,
        probe_outbox,
        probe_messages,
        counters: Arc::clone(&counters),
        probe_every,
        clock: Clock::new(probe_every),
        refused: None,
    };
    (task, status, counters)
}

/// The least time between two resyncs: a tenth of the lease, at most a second.
fn resync_floor(lease: Duration) -> Duration {
    (lease / 10).min(Duration::from_secs(1))
}

/// Checks the settings; returns the instance id and the share pattern.
fn check(config: &Config) -> Result<(String, Pattern), Error> {
    backpressure::validate_name(&config.namespace).map_err(|source| Error::Namespace {
        namespace: config.namespace.clone(),
        source,
    })?;
    let instance = match &config.instance {
        Some(instance) => instance.clone(),
        None => default_instance(),
    };
    if !wire::valid_instance(&instance) {
        return Err(Error::Instance(instance));
    }
    let share = Pattern::parse(&config.share)?;
    if config.lease < Duration::from_millis(30) || config.lease > config.max_remote_lease {
        return Err(Error::Lease(config.lease));
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoRuntime);
    }
    Ok((instance, share))
}

/// [`Error::Denied`] if the server's ACL refused the call, otherwise [`Error::Connect`].
fn connect_error(config: &Config, e: &redis::RedisError) -> Error {
    let url = &config.url;
    if wire::denied(e) {
        return Error::Denied {
            url: url.redacted(),
            namespace: config.namespace.clone(),
            reason: url.scrub(&e.to_string()),
        };
    }
    Error::Connect {
        url: url.redacted(),
        reason: url.scrub(&e.to_string()),
    }
}

/// Connection attempts of [`open`] after the first one fails.
const OPEN_RETRIES: u32 = 1;

/// How long one connection attempt (TCP, `HELLO`) may take.
fn attempt_timeout(config: &Config) -> Duration {
    config.connect_timeout.min(Duration::from_secs(2))
}

/// The longest [`open`] takes: each of its attempts bounded by its timeout, and the backoff
/// before each retry (at most `reconnect_max_delay`, which redis-rs's jitter may double).
pub(crate) fn open_bound(config: &Config) -> Duration {
    attempt_timeout(config) * (OPEN_RETRIES + 1) + config.reconnect_max_delay * 2 * OPEN_RETRIES
}

/// Opens a RESP3 connection manager that sends pushes to the returned receiver and
/// resubscribes by itself after a reconnect.
pub(crate) async fn open(
    config: &Config,
    liveness: Liveness,
) -> Result<(ConnectionManager, mpsc::UnboundedReceiver<PushInfo>), Error> {
    let url = &config.url;
    let client = redis::Client::open(url.expose()).map_err(|e| Error::InvalidUrl {
        url: url.redacted(),
        reason: url.scrub(&e.to_string()),
    })?;
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))
        .map_err(|e| connect_error(config, &e))?;

    let (push_tx, pushes) = mpsc::unbounded_channel();
    let manager_config = ConnectionManagerConfig::new()
        .set_push_sender(push_tx)
        .set_automatic_resubscription()
        .set_number_of_retries(OPEN_RETRIES as usize)
        .set_min_delay(FIRST_BACKOFF)
        .set_max_delay(config.reconnect_max_delay)
        .set_connection_timeout(Some(attempt_timeout(config)))
        .set_response_timeout(Some(liveness.response_timeout));
    let conn = ConnectionManager::new_with_config(client, manager_config)
        .await
        .map_err(|e| connect_error(config, &e))?;
    Ok((conn, pushes))
}

/// Waits for the first sync; a bridge that does not get there within `timeout` is shut
/// down again.
async fn first_sync(bridge: Bridge, timeout: Duration) -> Result<Bridge, Error> {
    let status = bridge.wait_for(timeout, |s| *s == Status::Synced).await;
    if status != Status::Synced {
        let url = bridge.url.redacted();
        bridge.shutdown().await;
        return Err(Error::Timeout { url, timeout });
    }
    Ok(bridge)
}

/// `<host>-<pid>-<random>`, made of signal-name characters only.
fn default_instance() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host: String = std::env::var("HOSTNAME")
        .unwrap_or_else(|_| "host".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        hasher.finish() & 0xff_ffff
    )
}
