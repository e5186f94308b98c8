//! Building a coordinator.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::{validate_name, Pattern};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::{validate, CoordinatorConfig, MaxDefer};
use super::context::{ContextShared, WorkContext};
use super::gate::Gate;
use super::handle::Coordinator;
use super::outcome::HandlerOutcome;
use super::rate::RateGate;
use super::retry_book::{CloneFn, DeadLetterCallback, Retrying};
use super::retrying::run_retry_timer;
use super::slot::{run_slot, SlotGuard, Spawner};
use super::state::{ItemCare, Shared, SkipCallback};
use super::telemetry::Labels;
use crate::connector::{Permits, RateTokens};
use crate::error::BuildError;
use crate::policy::{Host, Policies, Policy};
use crate::retry::{DeadLetter, Retry};
use crate::Sink;

/// Configures and builds a [`Coordinator`]. Every value is checked by
/// [`build`](Self::build), which reports the first bad one as a [`BuildError`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::{error::BuildError, Coordinator, MaxDefer, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BuildError> {
/// let coordinator = Coordinator::builder()
///     .sink(Sink::new())
///     .concurrency(8)
///     .capacity(1_000)
///     .defer_on("backpressure.*, db.overloaded")
///     .resume_on("backpressure.override")
///     .cancel_on("shutdown.*")
///     .on_skip(|job: String| eprintln!("skipped {job}"))
///     .defer_check_interval(Duration::from_millis(100))
///     .max_defer(MaxDefer::Never)
///     .build(|job: String, _ctx: WorkContext| async move { println!("{job}") })?;
/// # drop(coordinator);
///
/// let err = Coordinator::<u8>::builder().concurrency(0).build(|_, _| async {}).unwrap_err();
/// assert_eq!(err, BuildError::ZeroConcurrency);
/// # Ok(()) }
/// ```
pub struct CoordinatorBuilder<T> {
    config: CoordinatorConfig,
    sink: Option<Sink>,
    on_skip: Option<SkipCallback<T>>,
    /// The retry options and `T::clone`, captured where `T: Clone` is known.
    retry: Option<(Retry, CloneFn<T>)>,
    on_dead_letter: Option<DeadLetterCallback<T>>,
    name: Option<String>,
    policies: Vec<Policy>,
}

impl<T: Send + 'static> Coordinator<T> {
    /// A builder with the .NET original's defaults: concurrency 4, capacity 200, `defer_on`
    /// `backpressure.*`, re-check every 50 ms, start anyway after 200 re-checks (10 s), on the
    /// global sink `"default"`.
    pub fn builder() -> CoordinatorBuilder<T> {
        CoordinatorBuilder::new()
    }
}

impl<T: Send + 'static> CoordinatorBuilder<T> {
    fn new() -> Self {
        Self {
            config: CoordinatorConfig::default(),
            sink: None,
            on_skip: None,
            retry: None,
            on_dead_letter: None,
            name: None,
            policies: Vec::new(),
        }
    }

    /// Replaces every option with `config` (the sink and skip callback are kept).
    pub fn config(mut self, config: CoordinatorConfig) -> Self {
        self.config = config;
        self
    }

    /// The sink to watch. Default: the global sink `"default"`.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Number of items handled at once. Default 4; allowed 1 to
    /// [`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.config.concurrency = concurrency;
        self
    }

    /// Queue capacity; `enqueue` waits while it is full. Default 200; must be at least 1.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity;
        self
    }

    /// Signals matching this pattern (glob, comma-separated list) hold back new work.
    /// Default `backpressure.*`.
    pub fn defer_on(mut self, pattern: impl Into<String>) -> Self {
        self.config.defer_on = Some(pattern.into());
        self
    }

    /// Never defer on signals (pausing still works).
    pub fn no_defer(mut self) -> Self {
        self.config.defer_on = None;
        self
    }

    /// Signals matching this pattern let work start even while a `defer_on` signal is active.
    pub fn resume_on(mut self, pattern: impl Into<String>) -> Self {
        self.config.resume_on = Some(pattern.into());
        self
    }

    /// While a signal matching this pattern is active, items that would start are skipped:
    /// counted in [`Stats::skipped`](crate::Stats::skipped) and handed to the
    /// [`on_skip`](Self::on_skip) callback.
    pub fn cancel_on(mut self, pattern: impl Into<String>) -> Self {
        self.config.cancel_on = Some(pattern.into());
        self
    }

    /// The worker's name: the key under which its [policies](crate::policy) raise their
    /// signals, and the `worker` label of its metrics and traces. Registered workers use
    /// their registered name.
    ///
    /// It must be a valid signal key (1 to 256 bytes of ASCII letters, digits and
    /// `. _ - : /`); [`build`](Self::build) rejects any other with [`BuildError::Name`].
    /// Give every coordinator whose policies share a sink its own name: two owners of one
    /// name share their verdicts' entries, so one retracting ends the other's.
    ///
    /// Without a name, the coordinator's policies raise under a key of its own,
    /// `coordinator-<n>` with `n` counted per process, so two unnamed coordinators never
    /// retract each other's verdicts; its metrics and traces are labelled `coordinator`.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::{error::BuildError, Coordinator, Sink, WorkContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = Coordinator::<u8>::builder()
    ///     .sink(Sink::new())
    ///     .name("smtp relay")
    ///     .build(|_, _: WorkContext| async {})
    ///     .unwrap_err();
    /// assert!(matches!(err, BuildError::Name { .. }));
    /// assert!(err.to_string().contains("character ' ' at byte 4 is not allowed"), "{err}");
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a health policy ([`Breaker`](crate::policy::Breaker), [`Adaptive`](crate::policy::Adaptive))
    /// that raises a signal on this coordinator's sink from its own outcomes. For the
    /// coordinator to hold on its own verdict, its `defer_on` must match the policy's
    /// signal (the default `backpressure.*` does for signals named `backpressure.…`).
    pub fn policy(mut self, policy: impl Into<Policy>) -> Self {
        self.policies.push(policy.into());
        self
    }

    /// Receives every item skipped by `cancel_on`, so nothing is silently lost.
    pub fn on_skip(mut self, callback: impl Fn(T) + Send + Sync + 'static) -> Self {
        self.on_skip = Some(Box::new(callback));
        self
    }

    /// Retries failed items (an `Err`, a panic, a timeout) as `retry` says, and keeps those
    /// whose last attempt fails as dead letters; see [`retry`](crate::retry). Retrying hands
    /// the handler a copy of the item for each attempt, hence `T: Clone`.
    ///
    /// A due retry obeys the gate like any item (a worker held by an open breaker does not
    /// retry into it), and every accepted item keeps its place in `capacity` until its final
    /// outcome: running and waiting for a retry included.
    pub fn retry(self, retry: Retry) -> Self
    where
        T: Clone,
    {
        self.retry_with(retry, T::clone)
    }

    /// [`retry`](Self::retry) with the item's `clone` handed over: the registry's way, whose
    /// `Clone` bound the attribute checks on the item type.
    pub(crate) fn retry_with(mut self, retry: Retry, clone: fn(&T) -> T) -> Self {
        self.retry = Some((retry, clone));
        self
    }

    /// Receives each dead letter (an item whose last attempt failed) instead of the
    /// worker's buffer. Needs [`retry`](Self::retry); runs on the slot that ran the item,
    /// with no lock held. A panic in it is caught and logged.
    pub fn on_dead_letter(
        mut self,
        callback: impl Fn(DeadLetter<T>) + Send + Sync + 'static,
    ) -> Self {
        self.on_dead_letter = Some(Box::new(callback));
        self
    }

    /// How many dead letters the worker keeps when no callback takes them; the oldest is
    /// dropped (counted, logged) beyond it. Default 1,000; at least 1.
    pub fn dead_letters(mut self, limit: usize) -> Self {
        self.config.dead_letters = limit;
        self
    }

    /// At most `rate.limit` starts per `rate.per` (see [`limit`](crate::limit)): one timer
    /// per coordinator waits for the next allowed start. Default: no rate limit.
    ///
    /// A [`shared`](crate::limit::Rate::shared) rate is the whole fleet's: the sink must be
    /// connected first ([`build`](Self::build) refuses an unconnected one with
    /// [`BuildError::SharedRateNeedsBridge`]), and a start waits, without a timer, for the
    /// connector's grant of a token.
    pub fn rate(mut self, rate: crate::limit::Rate) -> Self {
        self.config.rate = Some(rate);
        self
    }

    /// At most `limit` items of this worker run at once across every process sharing its
    /// sink through a connector (`backpressure-redis`), as well as at most `concurrency` in
    /// this one. The sink must be connected first: [`build`](Self::build) refuses an
    /// unconnected one ([`BuildError::GlobalConcurrencyNeedsBridge`]).
    pub fn global_concurrency(mut self, limit: usize) -> Self {
        self.config.global_concurrency = Some(limit);
        self
    }

    /// How long one attempt may run (see [`CoordinatorConfig::timeout`]). Must be positive.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// The unit of [`max_defer_attempts`](Self::max_defer_attempts) (the .NET original's
    /// `DeferCheckInterval`). Held slots do not re-check on it: they sleep until a signal or
    /// control change, or the head's `max_defer` deadline. Default 50 ms; must be positive.
    pub fn defer_check_interval(mut self, interval: Duration) -> Self {
        self.config.defer_check_interval = interval;
        self
    }

    /// Start a held item anyway after `attempts × defer_check_interval`. Default 200.
    pub fn max_defer_attempts(mut self, attempts: u32) -> Self {
        self.config.max_defer = MaxDefer::Attempts(attempts);
        self
    }

    /// How long an item may be held before it starts anyway, or [`MaxDefer::Never`].
    ///
    /// Only plain signals are timed out: an item held by a breaker's verdict (an entry with a
    /// [`Phase`](crate::Phase), open or half-open) waits for the verdict however long it
    /// lasts, and its clock starts afresh once only plain signals hold it.
    pub fn max_defer(mut self, max_defer: MaxDefer) -> Self {
        self.config.max_defer = max_defer;
        self
    }

    /// Checks the configuration and starts the slots on the current tokio runtime.
    ///
    /// The handler gets each item with a [`WorkContext`] and returns `()` or
    /// `Result<(), E>` with `E: Display + Send + 'static`.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a zero concurrency, capacity, check interval or `max_defer`, a
    /// pattern that does not compile, a [`name`](Self::name) that is not a valid signal
    /// key, a bad policy value, or when called outside a tokio runtime.
    pub fn build<F, Fut>(self, handler: F) -> Result<Coordinator<T>, BuildError>
    where
        F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        let config = self.config;
        validate(&config)?;
        let owner = Owner::new(self.name)?;
        let patterns = compile_patterns(&config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let retrying = retrying(self.retry, self.on_dead_letter, config.dead_letters)?;

        let sink = self.sink.unwrap_or_else(|| crate::sink("default"));
        let permits = permits(&config, &sink, owner.key())?;
        let rate_tokens = rate_tokens(&config, &sink, owner.key())?;
        let wake = Arc::new(Notify::new());
        let gate = Gate::new(&sink, &wake, owner.label(), patterns);
        let context = Arc::new(ContextShared {
            token: CancellationToken::new(),
            sink,
            owner: Default::default(),
        });
        let policies = Policies::new(
            self.policies,
            &context.sink,
            owner.key(),
            config.capacity,
            config.defer_on.as_deref(),
        )?;
        let labels = Labels {
            sink: context.sink.name().unwrap_or("standalone").into(),
            worker: owner.label().into(),
        };
        let shared = Arc::new(Shared::new(
            gate,
            wake,
            context,
            config,
            ItemCare {
                on_skip: self.on_skip,
                retrying,
                permits,
                rate_tokens,
            },
            policies,
            labels,
        ));
        attach_quotas(&shared);
        if let Some(retrying) = &shared.retrying {
            let timer = Arc::clone(&retrying.timer);
            runtime.spawn(run_retry_timer(Arc::downgrade(&shared), timer));
        }
        let host: Arc<dyn Host> = shared.clone();
        shared.policies.start(Arc::downgrade(&host), &runtime);
        Ok(Coordinator::from_parts(shared, spawner(runtime, handler)))
    }
}

/// The `defer_on`, `resume_on` and `cancel_on` patterns, compiled.
fn compile_patterns(config: &CoordinatorConfig) -> Result<[Option<Pattern>; 3], BuildError> {
    let compile = |field: &'static str, pattern: &Option<String>| {
        pattern
            .as_deref()
            .map(Pattern::parse)
            .transpose()
            .map_err(|source| BuildError::Pattern { field, source })
    };
    Ok([
        compile("defer_on", &config.defer_on)?,
        compile("resume_on", &config.resume_on)?,
        compile("cancel_on", &config.cancel_on)?,
    ])
}

/// A worker's permits of its `global_concurrency`, if it has one: only on a sink that a
/// connector serves.
fn permits(
    config: &CoordinatorConfig,
    sink: &Sink,
    key: &str,
) -> Result<Option<Permits>, BuildError> {
    let Some(limit) = config.global_concurrency else {
        return Ok(None);
    };
    if !sink.serves_permits() {
        return Err(BuildError::GlobalConcurrencyNeedsBridge);
    }
    Ok(Some(Permits::new(key, limit)))
}

/// A worker's tokens of its shared `rate`, if it has one: only on a sink that a connector
/// serves.
fn rate_tokens(
    config: &CoordinatorConfig,
    sink: &Sink,
    key: &str,
) -> Result<Option<RateTokens>, BuildError> {
    let Some(rate) = config.rate.filter(|rate| rate.shared) else {
        return Ok(None);
    };
    if !sink.serves_rates() {
        return Err(BuildError::SharedRateNeedsBridge);
    }
    Ok(Some(RateTokens::new(key, rate)))
}

/// Keeps a worker's permits and shared rate's tokens on its sink, for the connector to serve;
/// a grant wakes its held slots.
fn attach_quotas<T: Send + 'static>(shared: &Arc<Shared<T>>) {
    let wake = || -> Box<dyn Fn() + Send + Sync> {
        let weak = Arc::downgrade(shared);
        Box::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.gate_changed();
            }
        })
    };
    if let Some(permits) = &shared.permits {
        permits.on_grant(wake());
        shared.context.sink.add_permits(permits.clone());
    }
    if let Some(tokens) = shared.rate.as_ref().and_then(RateGate::tokens) {
        tokens.on_grant(wake());
        shared.context.sink.add_rate_tokens(tokens.clone());
    }
}

/// A worker's retry side, if it has `retry(...)`: checked, with its dead-letter callback.
fn retrying<T>(
    retry: Option<(Retry, CloneFn<T>)>,
    on_dead_letter: Option<DeadLetterCallback<T>>,
    limit: usize,
) -> Result<Option<Retrying<T>>, BuildError> {
    match (retry, on_dead_letter) {
        (None, Some(_)) => Err(BuildError::DeadLetterWithoutRetry),
        (None, None) => Ok(None),
        (Some((retry, clone)), callback) => {
            retry.check()?;
            Ok(Some(Retrying::new(retry, clone, callback, limit)))
        }
    }
}

/// Who a coordinator is: the name it was given, or a process-unique key for its policies.
enum Owner {
    Named(String),
    Unnamed { key: String },
}

impl Owner {
    /// Checks `name` against the signal-key rules, or numbers an unnamed coordinator.
    fn new(name: Option<String>) -> Result<Self, BuildError> {
        static UNNAMED: AtomicU64 = AtomicU64::new(1);
        match name {
            Some(name) => {
                validate_name(&name).map_err(|source| BuildError::Name { source })?;
                Ok(Self::Named(name))
            }
            None => {
                let n = UNNAMED.fetch_add(1, Ordering::Relaxed);
                Ok(Self::Unnamed {
                    key: format!("coordinator-{n}"),
                })
            }
        }
    }

    /// The key its policies raise under.
    fn key(&self) -> &str {
        match self {
            Self::Named(name) | Self::Unnamed { key: name } => name,
        }
    }

    /// The `worker` label of its metrics and traces.
    fn label(&self) -> &str {
        match self {
            Self::Named(name) => name,
            Self::Unnamed { .. } => "coordinator",
        }
    }
}

/// Spawns the slots of a coordinator running `handler` on `runtime`.
fn spawner<T, F, Fut>(runtime: tokio::runtime::Handle, handler: F) -> Spawner<T>
where
    T: Send + 'static,
    F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    let handler = Arc::new(handler);
    Box::new(move |shared| {
        // The guard exists before the task: if tokio drops the task unpolled (its runtime is
        // shutting down or gone), the guard still gives the slot back.
        let slot = SlotGuard::new(shared);
        runtime.spawn(run_slot(slot, Arc::clone(&handler)));
    })
}

impl<T> fmt::Debug for CoordinatorBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorBuilder")
            .field("config", &self.config)
            .field("sink", &self.sink)
            .field("on_skip", &self.on_skip.is_some())
            .field("retry", &self.retry.as_ref().map(|(retry, _)| retry))
            .field("on_dead_letter", &self.on_dead_letter.is_some())
            .field("name", &self.name)
            .field("policies", &self.policies)
            .finish()
    }
}
