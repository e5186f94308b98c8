//! The bridge: a background task between a local sink and a Redis namespace.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    Level, Pattern, RaiseOptions, SignalEvent, SignalEventKind, Sink, Subscription,
};
use futures_util::{FutureExt, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{Config, OnDisconnect, RedisUrl};
use crate::error::Error;
use crate::wire::{self, Keys, Message, Op, Reject, RemoteEntry, Scripts};

/// The first reconnect delay; it doubles up to `reconnect_max_delay`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How many ready local events one publish round takes at most.
const BATCH: usize = 64;

/// How long a clean shutdown waits for Redis to take the retraction of its entries.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The bridge's view of its connection to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connected, subscribed, and the local mirror matches the last snapshot plus every
    /// event since.
    Synced,
    /// Connected; taking a fresh snapshot (after a (re)subscription or a sequence gap).
    Resyncing,
    /// Redis is unreachable since `since`; remote entries follow the
    /// [`OnDisconnect`] policy, local raises and retracts are published on reconnect.
    Disconnected {
        /// When the connection was lost.
        since: std::time::Instant,
    },
}

/// Counters of a bridge, for monitoring. Every rejected input is counted here and logged
/// once per kind (at WARN) through `tracing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Channel messages that are not messages of this format at all.
    pub malformed_messages: u64,
    /// Well-formed messages or snapshot entries with an invalid name, key, instance or level.
    pub invalid_entries: u64,
    /// Remote entries announcing a remaining lease above `max_remote_lease`.
    pub absurd_leases: u64,
    /// Gaps in the sequence numbers (each triggers a resync).
    pub sequence_gaps: u64,
    /// Snapshots taken (the first sync included).
    pub resyncs: u64,
    /// Script calls that published this process's changes.
    pub published: u64,
    /// Remote raises and retracts applied to the local sink.
    pub applied: u64,
    /// Failed Redis calls (each one makes the bridge reconnect).
    pub redis_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    malformed: AtomicU64,
    invalid: AtomicU64,
    absurd: AtomicU64,
    gaps: AtomicU64,
    resyncs: AtomicU64,
    published: AtomicU64,
    applied: AtomicU64,
    redis_errors: AtomicU64,
    warned: [AtomicBool; 4],
}

#[derive(Clone, Copy)]
enum Warn {
    Malformed = 0,
    Invalid = 1,
    Absurd = 2,
    Redis = 3,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this is the first warning of its kind (later ones are only counted).
    fn first(&self, kind: Warn) -> bool {
        !self.warned[kind as usize].swap(true, Ordering::Relaxed)
    }

    fn snapshot(&self) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            malformed_messages: get(&self.malformed),
            invalid_entries: get(&self.invalid),
            absurd_leases: get(&self.absurd),
            sequence_gaps: get(&self.gaps),
            resyncs: get(&self.resyncs),
            published: get(&self.published),
            applied: get(&self.applied),
            redis_errors: get(&self.redis_errors),
        }
    }
}

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

    /// Stops the bridge: retracts this process's entries from Redis (so that other
    /// processes drop them at once instead of at the end of their lease) and the mirrored
    /// entries of other processes from the local sink, then ends the background task.
    pub async fn shutdown(mut self) {
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
/// [`Error::Connect`] if the server cannot be reached; [`Error::Timeout`] if the first
/// sync does not finish within `connect_timeout`.
pub async fn connect(sink: Sink, config: Config) -> Result<Bridge, Error> {
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
    let url = config.url.clone();
    let connect_error = |e: redis::RedisError| Error::Connect {
        url: url.redacted(),
        reason: url.scrub(&e.to_string()),
    };
    let client = redis::Client::open(url.expose()).map_err(|e| Error::InvalidUrl {
        url: url.redacted(),
        reason: url.scrub(&e.to_string()),
    })?;
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(connect_error)?;

    let (push_tx, pushes) = mpsc::unbounded_channel();
    let manager_config = ConnectionManagerConfig::new()
        .set_push_sender(push_tx)
        .set_automatic_resubscription()
        .set_number_of_retries(1)
        .set_min_delay(FIRST_BACKOFF)
        .set_max_delay(config.reconnect_max_delay)
        .set_connection_timeout(Some(config.connect_timeout.min(Duration::from_secs(2))))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn = ConnectionManager::new_with_config(client, manager_config)
        .await
        .map_err(connect_error)?;
    let keys = Keys::new(&config.namespace);
    conn.subscribe(&keys.channel).await.map_err(connect_error)?;

    // Subscribe to the sink before the first snapshot of it, so no local change is missed.
    let local = sink.subscribe();
    let (status_tx, status) = watch::channel(Status::Resyncing);
    let counters = Arc::new(Counters::default());
    let instance: Arc<str> = instance.into();
    let (stop, stopped) = oneshot::channel();
    let task = Task {
        sink,
        share,
        instance: Arc::clone(&instance),
        lease: config.lease,
        max_remote_lease: config.max_remote_lease,
        policy: config.on_disconnect,
        reconnect_max: config.reconnect_max_delay.max(FIRST_BACKOFF),
        keys,
        scripts: Scripts::new(),
        conn,
        pushes,
        local,
        status: status_tx,
        counters: Arc::clone(&counters),
        own: HashMap::new(),
        mirrors: HashMap::new(),
        instances: HashMap::new(),
        last_seq: None,
        need_resync: true,
        first_subscription: true,
        connected: true,
        backoff: FIRST_BACKOFF,
        retry_at: Instant::now(),
        renew_at: Instant::now() + config.lease / 3,
    };
    let task = tokio::spawn(task.run(stopped));
    let bridge = Bridge {
        instance,
        namespace: config.namespace.as_str().into(),
        url: config.url,
        status,
        counters,
        stop: Some(stop),
        task: Some(task),
    };
    let status = bridge
        .wait_for(config.connect_timeout, |s| *s == Status::Synced)
        .await;
    if status != Status::Synced {
        let url = bridge.url.redacted();
        bridge.shutdown().await;
        return Err(Error::Timeout {
            url,
            timeout: config.connect_timeout,
        });
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

/// A (name, key) pair of the local sink.
type EntryId = (Arc<str>, Option<Arc<str>>);

/// One of this process's shared entries.
#[derive(Debug, Clone, Copy)]
struct Own {
    /// When Redis lets it expire (local clock estimate), if published.
    remote_expiry: Option<Instant>,
    /// Whether `remote_expiry` was set by the entry's local TTL rather than by the lease: if
    /// the entry's TTL is refreshed locally (which emits no event), the bridge must notice
    /// before Redis lets it expire.
    ttl_limited: bool,
}

/// A remote entry mirrored into the local sink.
#[derive(Debug, Clone, Copy)]
struct Mirror {
    expires_at: Instant,
    /// The level it was last mirrored with (kept when `HoldUntilReconnect` makes it
    /// permanent).
    level: Level,
}

/// One of this process's shared entries as the local sink has it.
#[derive(Debug, Clone, Copy)]
struct Local {
    expires_at: Option<Instant>,
    level: Level,
}

struct Task {
    sink: Sink,
    share: Pattern,
    instance: Arc<str>,
    lease: Duration,
    max_remote_lease: Duration,
    policy: OnDisconnect,
    reconnect_max: Duration,
    keys: Keys,
    scripts: Scripts,
    conn: ConnectionManager,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    local: Subscription,
    status: watch::Sender<Status>,
    counters: Arc<Counters>,
    /// This process's shared entries.
    own: HashMap<EntryId, Own>,
    /// Other processes' entries mirrored locally, by local (name, `instance/key`).
    mirrors: HashMap<EntryId, Mirror>,
    /// Other instances seen recently: local keys prefixed by one of them are mirrors, never
    /// published back.
    instances: HashMap<Arc<str>, Instant>,
    /// The sequence number of the last message applied; `None` until the first snapshot.
    last_seq: Option<u64>,
    need_resync: bool,
    /// Whether the confirmation of the initial subscription is still to come.
    first_subscription: bool,
    connected: bool,
    backoff: Duration,
    retry_at: Instant,
    renew_at: Instant,
}

impl Task {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            if self.connected && self.need_resync {
                self.resync().await;
                continue;
            }
            let wake_at = self.next_wake();
            tokio::select! {
                biased;
                _ = &mut stop => break,
                push = self.pushes.recv() => match push {
                    Some(push) => self.on_push(push),
                    None => break,
                },
                event = self.local.next() => match event {
                    Some(Ok(event)) => self.on_local(event).await,
                    // Missed local events: the next full sync rebuilds the own entries
                    // from the sink itself.
                    Some(Err(_lagged)) => self.renew().await,
                    None => break,
                },
                _ = tokio::time::sleep_until(wake_at) => self.on_timer().await,
            }
        }
        self.leave().await;
    }

    fn set_status(&self, status: Status) {
        self.status.send_if_modified(|current| {
            let changed = match (*current, status) {
                (Status::Disconnected { .. }, Status::Disconnected { .. }) => false,
                (a, b) => a != b,
            };
            if changed {
                *current = status;
            }
            changed
        });
    }

    fn next_wake(&self) -> Instant {
        if !self.connected {
            return self.retry_at;
        }
        let margin = (self.lease / 10).min(Duration::from_millis(100));
        self.own
            .values()
            .filter(|own| own.ttl_limited)
            .filter_map(|own| own.remote_expiry)
            .map(|at| at.checked_sub(margin).unwrap_or(at))
            .fold(self.renew_at, Instant::min)
    }

    async fn on_timer(&mut self) {
        if !self.connected {
            self.reconnect().await;
            return;
        }
        if Instant::now() >= self.renew_at {
            self.renew().await;
            return;
        }
        // An entry whose local TTL limited its lease is about to expire in Redis: republish
        // if its TTL was refreshed locally meanwhile (a refresh emits no event).
        let local = self.local_own();
        let refreshed = self.own.iter().any(|(id, own)| {
            own.ttl_limited
                && matches!(
                    (local.get(id).and_then(|l| l.expires_at), own.remote_expiry),
                    (Some(at), Some(remote)) if at > remote + Duration::from_millis(1)
                )
        });
        if refreshed {
            self.renew().await;
        } else {
            for own in self.own.values_mut() {
                own.ttl_limited = false;
            }
        }
    }

    /// Tries to reach Redis again; on success, resubscribes and schedules a resync.
    async fn reconnect(&mut self) {
        let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut self.conn).await;
        let subscribed = match ping {
            Ok(_) => self.conn.subscribe(&self.keys.channel).await,
            Err(e) => Err(e),
        };
        match subscribed {
            Ok(()) => {
                tracing::info!(namespace = %self.keys.channel, "reconnected to Redis");
                self.connected = true;
                self.need_resync = true;
                self.backoff = FIRST_BACKOFF;
                self.set_status(Status::Resyncing);
            }
            Err(_) => {
                self.backoff = (self.backoff * 2).min(self.reconnect_max);
                self.retry_at = Instant::now() + self.backoff;
            }
        }
    }

    fn on_redis_error(&mut self, error: &redis::RedisError) {
        Counters::bump(&self.counters.redis_errors);
        if self.counters.first(Warn::Redis) {
            tracing::warn!(
                channel = %self.keys.channel,
                error = ?error.kind(),
                "Redis call failed; reconnecting (later failures are only counted)"
            );
        }
        self.disconnected();
    }

    fn disconnected(&mut self) {
        self.need_resync = true;
        self.last_seq = None;
        if !self.connected {
            return;
        }
        self.connected = false;
        self.backoff = FIRST_BACKOFF;
        self.retry_at = Instant::now() + FIRST_BACKOFF;
        self.set_status(Status::Disconnected {
            since: std::time::Instant::now(),
        });
        tracing::warn!(channel = %self.keys.channel, policy = ?self.policy, "lost the connection to Redis");
        let now = Instant::now();
        match self.policy {
            OnDisconnect::KeepUntilLeaseEnds => {}
            OnDisconnect::Drop => {
                for ((name, key), _) in self.mirrors.drain() {
                    if let Some(key) = key {
                        let _ = self.sink.retract_keyed(&name, &key);
                    }
                }
            }
            OnDisconnect::HoldUntilReconnect => {
                self.mirrors.retain(|(name, key), mirror| {
                    if mirror.expires_at <= now {
                        return false;
                    }
                    if let Some(key) = key {
                        // Raising an active entry again without a TTL makes it permanent.
                        let options = RaiseOptions::new().key(&**key).level(mirror.level);
                        let _ = self.sink.raise_with(name, options);
                    }
                    true
                });
            }
        }
    }

    fn on_push(&mut self, push: PushInfo) {
        match push.kind {
            PushKind::Disconnection => self.disconnected(),
            PushKind::Subscribe if std::mem::take(&mut self.first_subscription) => {
                // The confirmation of the subscription made before the first sync, which
                // that sync already covers; it may arrive after it, and must not undo it.
                self.connected = true;
            }
            PushKind::Subscribe => {
                // A (re)subscription: whatever was published meanwhile is unknown.
                self.connected = true;
                self.need_resync = true;
                self.set_status(Status::Resyncing);
            }
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    return self.malformed();
                };
                if !matches!(&channel, Value::BulkString(c) if *c == self.keys.channel.as_bytes()) {
                    return;
                }
                let Value::BulkString(payload) = payload else {
                    return self.malformed();
                };
                match wire::decode(&payload) {
                    Ok(message) => {
                        if self.in_sequence(message.seq) {
                            self.apply(message);
                        }
                    }
                    Err(Reject::Malformed) => self.malformed(),
                    Err(Reject::Invalid(seq)) => {
                        if self.in_sequence(seq) {
                            self.invalid("an invalid name, key, instance or level");
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether a message with this sequence number is the next one; a gap schedules a
    /// resync, a number already covered is skipped.
    fn in_sequence(&mut self, seq: u64) -> bool {
        let Some(last) = self.last_seq else {
            return false; // Not synced yet: the coming snapshot covers it.
        };
        if seq <= last {
            return false;
        }
        if seq == last + 1 {
            self.last_seq = Some(seq);
            return true;
        }
        Counters::bump(&self.counters.gaps);
        tracing::debug!(last, seq, "sequence gap; resyncing");
        self.need_resync = true;
        self.last_seq = None;
        self.set_status(Status::Resyncing);
        false
    }

    fn malformed(&self) {
        Counters::bump(&self.counters.malformed);
        if self.counters.first(Warn::Malformed) {
            tracing::warn!(channel = %self.keys.channel, "ignored a malformed message (later ones are only counted)");
        }
    }

    fn invalid(&self, what: &str) {
        Counters::bump(&self.counters.invalid);
        if self.counters.first(Warn::Invalid) {
            tracing::warn!(channel = %self.keys.channel, "ignored a remote entry with {what} (later ones are only counted)");
        }
    }

    fn apply(&mut self, message: Message) {
        let entry = &message.entry;
        if *entry.instance == *self.instance || !self.share.matches(&entry.name) {
            return;
        }
        match message.op {
            Op::Raise => {
                if let Some(remaining) = self.acceptable(entry) {
                    self.mirror(entry, remaining);
                } else {
                    self.unmirror(entry);
                }
            }
            Op::Retract => self.unmirror(entry),
        }
    }

    /// The remaining lease of a remote entry, if it is still live and not absurd.
    fn acceptable(&self, entry: &RemoteEntry) -> Option<Duration> {
        let remaining = entry.remaining()?;
        if remaining > self.max_remote_lease {
            Counters::bump(&self.counters.absurd);
            if self.counters.first(Warn::Absurd) {
                tracing::warn!(
                    channel = %self.keys.channel,
                    signal = %entry.name,
                    lease_ms = remaining.as_millis() as u64,
                    "ignored a remote entry with an absurd lease (later ones are only counted)"
                );
            }
            return None;
        }
        Some(remaining)
    }

    fn mirror(&mut self, entry: &RemoteEntry, remaining: Duration) {
        let key = wire::mirror_key(&entry.instance, entry.key.as_deref());
        // `entry_from_parts` has checked the level is at most 1000.
        let level = Level::from_per_mille(entry.level);
        let now = Instant::now();
        self.instances.insert(Arc::clone(&entry.instance), now);
        let options = RaiseOptions::new()
            .key(key.as_str())
            .ttl(remaining)
            .level(level);
        match self.sink.raise_with(&entry.name, options) {
            Ok(()) => {
                Counters::bump(&self.counters.applied);
                self.mirrors.insert(
                    (Arc::clone(&entry.name), Some(key.into())),
                    Mirror {
                        expires_at: now + remaining,
                        level,
                    },
                );
            }
            Err(_) => self.invalid("a key too long once prefixed by its instance"),
        }
    }

    fn unmirror(&mut self, entry: &RemoteEntry) {
        let key = wire::mirror_key(&entry.instance, entry.key.as_deref());
        let id: EntryId = (Arc::clone(&entry.name), Some(key.into()));
        if self.mirrors.remove(&id).is_some() {
            Counters::bump(&self.counters.applied);
        }
        if let (name, Some(key)) = &id {
            let _ = self.sink.retract_keyed(name, key);
        }
    }

    /// Whether a local key belongs to an entry mirrored from another instance.
    fn is_mirror_key(&self, key: &str) -> bool {
        let instance = wire::key_instance(key);
        instance != &*self.instance && self.instances.contains_key(instance)
    }

    fn is_own(&self, name: &str, key: Option<&str>) -> bool {
        self.share.matches(name) && !key.is_some_and(|key| self.is_mirror_key(key))
    }

    /// Handles a local event and whatever other local events are ready, publishing the
    /// net change in one or two script calls.
    async fn on_local(&mut self, first: SignalEvent) {
        let mut touched: Vec<EntryId> = Vec::new();
        let mut event = Some(first);
        while let Some(e) = event.take() {
            // Whether the entry is active after the event: a raise, or a live entry re-raised
            // with another level (republished with the level the sink has now); or gone.
            // Policy changes are informational and never published.
            let active = match e.kind {
                SignalEventKind::Raised | SignalEventKind::LevelChanged => Some(true),
                SignalEventKind::Retracted | SignalEventKind::Expired => Some(false),
                SignalEventKind::PolicyChanged => None,
            };
            let id: EntryId = (e.name, e.key);
            if let Some(active) = active {
                if id.1.as_deref().is_some_and(|key| self.is_mirror_key(key)) {
                    if !active {
                        self.mirrors.remove(&id);
                    }
                } else if self.share.matches(&id.0) {
                    if active {
                        self.own.entry(id.clone()).or_insert(Own {
                            remote_expiry: None,
                            ttl_limited: false,
                        });
                    } else {
                        self.own.remove(&id);
                    }
                    touched.push(id);
                }
            }
            if touched.len() < BATCH {
                if let Some(Some(Ok(next))) = self.local.next().now_or_never() {
                    event = Some(next);
                }
            }
        }
        if touched.is_empty() || !self.connected || self.need_resync {
            return; // The next full sync publishes the own entries as they are then.
        }
        touched.sort();
        touched.dedup();
        let (raised, retracted): (Vec<EntryId>, Vec<EntryId>) = touched
            .into_iter()
            .partition(|id| self.own.contains_key(id));
        if !raised.is_empty() {
            let local = self.local_own();
            // An entry already gone from the sink has a Retracted or Expired event coming,
            // which retracts it from Redis.
            let entries: Vec<(EntryId, Local)> = raised
                .into_iter()
                .filter_map(|id| local.get(&id).map(|now| (id, *now)))
                .collect();
            if !entries.is_empty() {
                if let Err(e) = self.publish_raises(entries, false).await {
                    return self.on_redis_error(&e);
                }
            }
        }
        if !retracted.is_empty() {
            let mut invocation = self.scripts.retract.prepare_invoke();
            invocation
                .key(&self.keys.entries)
                .key(&self.keys.levels)
                .key(&self.keys.seq)
                .arg(&self.keys.channel)
                .arg(&*self.instance);
            for (name, key) in &retracted {
                invocation.arg(&**name).arg(key.as_deref().unwrap_or(""));
            }
            let result: redis::RedisResult<Option<String>> =
                invocation.invoke_async(&mut self.conn).await;
            match result {
                Ok(_) => Counters::bump(&self.counters.published),
                Err(e) => self.on_redis_error(&e),
            }
        }
    }

    /// This process's shared entries as the sink has them now, with their local expiry and
    /// level.
    fn local_own(&self) -> HashMap<EntryId, Local> {
        self.sink
            .snapshot()
            .into_iter()
            .filter(|s| self.is_own(&s.name, s.key.as_deref()))
            .map(|s| {
                let local = Local {
                    expires_at: s.expires_at,
                    level: s.level,
                };
                ((s.name, s.key), local)
            })
            .collect()
    }

    /// Raises (or renews) `entries` in Redis with their current level; `full` also removes
    /// every other entry of this instance there.
    async fn publish_raises(
        &mut self,
        entries: Vec<(EntryId, Local)>,
        full: bool,
    ) -> redis::RedisResult<()> {
        let now = Instant::now();
        let mut invocation = self.scripts.sync.prepare_invoke();
        invocation
            .key(&self.keys.entries)
            .key(&self.keys.levels)
            .key(&self.keys.seq)
            .arg(&self.keys.channel)
            .arg(&*self.instance)
            .arg(if full { "1" } else { "0" });
        let mut sent = Vec::with_capacity(entries.len());
        for (id, local) in entries {
            let left = local.expires_at.map(|at| at.saturating_duration_since(now));
            let (ttl, ttl_limited) = match left {
                Some(left) if left < self.lease => (left, true),
                _ => (self.lease, false),
            };
            let ttl_ms = ttl.as_millis().max(1) as u64;
            invocation
                .arg(&*id.0)
                .arg(id.1.as_deref().unwrap_or(""))
                .arg(local.level.per_mille())
                .arg(ttl_ms);
            sent.push((id, now + ttl, ttl_limited));
        }
        let _: Option<String> = invocation.invoke_async(&mut self.conn).await?;
        Counters::bump(&self.counters.published);
        for (id, remote_expiry, ttl_limited) in sent {
            if let Some(own) = self.own.get_mut(&id) {
                own.remote_expiry = Some(remote_expiry);
                own.ttl_limited = ttl_limited;
            }
        }
        Ok(())
    }

    /// Re-reads the own entries from the sink and publishes all of them (renewing their
    /// leases), removing this instance's other entries from Redis.
    async fn renew(&mut self) {
        self.renew_at = Instant::now() + self.lease / 3;
        let local = self.local_own();
        self.own.retain(|id, _| local.contains_key(id));
        for id in local.keys() {
            self.own.entry(id.clone()).or_insert(Own {
                remote_expiry: None,
                ttl_limited: false,
            });
        }
        let horizon = Instant::now() - self.lease.saturating_mul(10);
        let mirrors = &self.mirrors;
        self.instances.retain(|instance, seen| {
            *seen > horizon
                || mirrors
                    .keys()
                    .any(|(_, key)| key.as_deref().map(wire::key_instance) == Some(instance))
        });
        if !self.connected || self.need_resync {
            return;
        }
        if let Err(e) = self.publish_raises(local.into_iter().collect(), true).await {
            self.on_redis_error(&e);
        }
    }

    /// Publishes every own entry, then replaces the mirrors with a fresh snapshot.
    async fn resync(&mut self) {
        self.set_status(Status::Resyncing);
        Counters::bump(&self.counters.resyncs);
        self.need_resync = false;
        self.renew().await;
        if !self.connected || self.need_resync {
            return;
        }
        let result: redis::RedisResult<Vec<String>> = self
            .scripts
            .snapshot
            .key(&self.keys.entries)
            .key(&self.keys.levels)
            .key(&self.keys.seq)
            .arg(&self.keys.channel)
            .invoke_async(&mut self.conn)
            .await;
        let fields = match result {
            Ok(fields) => fields,
            Err(e) => return self.on_redis_error(&e),
        };
        let (seq, now_ms) = match fields.as_slice() {
            [seq, now, ..] => (seq.parse::<u64>(), now.parse::<u64>()),
            _ => return self.malformed(),
        };
        let (Ok(seq), Ok(now_ms)) = (seq, now_ms) else {
            return self.malformed();
        };
        let mut fresh: HashMap<EntryId, Mirror> = HashMap::new();
        for chunk in fields[2..].chunks(3) {
            let [member, expiry, level] = chunk else {
                self.invalid("a truncated snapshot entry");
                continue;
            };
            let parsed = wire::split_member(member).and_then(|(instance, name, key)| {
                let expiry = expiry
                    .parse::<f64>()
                    .ok()
                    .filter(|e| e.is_finite() && *e >= 0.0)?;
                let level = level.parse::<u16>().ok()?;
                wire::entry_from_parts(instance, name, key, level, now_ms, expiry as u64)
            });
            let Some(entry) = parsed else {
                self.invalid("an invalid snapshot entry");
                continue;
            };
            if *entry.instance == *self.instance || !self.share.matches(&entry.name) {
                continue;
            }
            let Some(remaining) = self.acceptable(&entry) else {
                continue;
            };
            self.mirror(&entry, remaining);
            let key = wire::mirror_key(&entry.instance, entry.key.as_deref());
            let id: EntryId = (Arc::clone(&entry.name), Some(key.into()));
            if let Some(mirror) = self.mirrors.get(&id) {
                fresh.insert(id, *mirror);
            }
        }
        for ((name, key), _) in self.mirrors.iter() {
            if !fresh.contains_key(&(Arc::clone(name), key.clone())) {
                if let Some(key) = key {
                    let _ = self.sink.retract_keyed(name, key);
                }
            }
        }
        self.mirrors = fresh;
        self.last_seq = Some(seq);
        self.set_status(Status::Synced);
    }

    /// On shutdown: retract own entries from Redis, mirrors from the sink.
    async fn leave(&mut self) {
        if self.connected {
            let mut invocation = self.scripts.sync.prepare_invoke();
            invocation
                .key(&self.keys.entries)
                .key(&self.keys.levels)
                .key(&self.keys.seq)
                .arg(&self.keys.channel)
                .arg(&*self.instance)
                .arg("1");
            let call = invocation.invoke_async::<Option<String>>(&mut self.conn);
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, call).await;
        }
        for ((name, key), _) in self.mirrors.drain() {
            if let Some(key) = key {
                let _ = self.sink.retract_keyed(&name, &key);
            }
        }
    }
}
