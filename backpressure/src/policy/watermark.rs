//! The queue watermark behind [`Watermark`]: its configuration and its state machine.

use std::time::Duration;

use tokio::time::Instant;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};

use super::machine::{Effect, PolicyMachine, Transition};
use super::{ChangeReason, PolicyChange, PolicyDetail, PolicyState, WindowCounts};
use crate::Level;

/// Raises a signal when the worker's own queue backs up: its depth stays at or above `high`
/// (a share of the capacity, default 0.8), or its oldest item stays older than `max_age`, for
/// `hold_for` (default 5 s); retracts it once the depth is at or below `low` (default 0.5)
/// and the oldest item is younger than `max_age`.
///
/// The shares round towards holding the signal, so that small queues behave: the queue is
/// backed up at `depth ≥ ceil(high × capacity)` (at least 1, so a full queue always counts),
/// and the signal is retracted at `depth ≤ floor(low × capacity)`. With the defaults, a
/// queue of capacity 10 raises at depth 8 and retracts at 5; one of capacity 3 raises at 3
/// and retracts at 1; capacity 1 raises at 1 and retracts at 0.
///
/// Like the other policies it raises keyed by the worker's name with a TTL it refreshes, so
/// upstream workers (or, through a shared sink, other processes) that defer on the signal
/// stop feeding a worker that cannot keep up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::{policy::Watermark, Coordinator, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let indexer = Coordinator::builder()
///     .sink(Sink::new())
///     .name("indexer")
///     .capacity(1_000)
///     .defer_on("backpressure.db") // not its own signal: producers hold, it drains
///     .policy(
///         Watermark::new("backpressure.indexer.backlog")
///             .high(0.8)
///             .low(0.5)
///             .max_age(Duration::from_secs(60)),
///     )
///     .build(|_: u64, _: WorkContext| async {})?;
/// # drop(indexer);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    pub(super) signal: String,
    pub(super) high: f64,
    pub(super) low: f64,
    pub(super) max_age: Option<Duration>,
    pub(super) hold_for: Duration,
    pub(super) ttl: Duration,
}

impl Watermark {
    /// Raise at 80 % of capacity held for 5 s, retract at 50 %, TTL 15 s.
    pub fn new(signal: impl Into<String>) -> Self {
        Self::from_spec(&PolicySpec {
            signal: Some(signal.into().into()),
            ..PolicySpec::new(PolicyKind::Watermark)
        })
    }

    /// The share of capacity at which the queue counts as backed up, in (0, 1]: from a depth
    /// of `ceil(high × capacity)`, and never less than 1.
    pub fn high(mut self, high: f64) -> Self {
        self.high = high;
        self
    }

    /// The share of capacity at or below which the signal is retracted, in [0, `high`): from
    /// a depth of `floor(low × capacity)` down.
    pub fn low(mut self, low: f64) -> Self {
        self.low = low;
        self
    }

    /// Also count the queue as backed up while its oldest item is older than this.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// How long the queue must stay backed up before the signal is raised (default 5 s).
    pub fn hold_for(mut self, hold_for: Duration) -> Self {
        self.hold_for = hold_for;
        self
    }

    /// The signal's time-to-live, refreshed every `ttl / 3` while raised (default 15 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The signal it raises.
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// Its values, as configured in the attribute or a config file.
    pub(crate) fn spec(&self) -> PolicySpec {
        PolicySpec {
            signal: Some(self.signal.clone().into()),
            high: Some(self.high),
            low: Some(self.low),
            max_age: self.max_age,
            hold_for: Some(self.hold_for),
            ttl: Some(self.ttl),
            ..PolicySpec::new(PolicyKind::Watermark)
        }
    }

    /// The policy `spec` describes, the inverse of [`spec`](Self::spec): a value `spec` does
    /// not give takes its default (from the shared rules). `spec` is expected to have passed
    /// its check.
    pub(crate) fn from_spec(spec: &PolicySpec) -> Self {
        let spec = spec.resolved();
        Self {
            signal: spec.signal.unwrap_or_default().into_owned(),
            high: spec.high.unwrap_or_default(),
            low: spec.low.unwrap_or_default(),
            max_age: spec.max_age,
            hold_for: spec.hold_for.unwrap_or_default(),
            ttl: spec.ttl.unwrap_or_default(),
        }
    }
}

/// `ratio × capacity`, read as the exact product of the decimal the user wrote: a product
/// within a rounding error of an integer is that integer (`0.55 × 100` is 55, not
/// 55.00000000000001).
fn product(ratio: f64, capacity: usize) -> f64 {
    let product = ratio * capacity as f64;
    let nearest = product.round();
    if (product - nearest).abs() <= f64::EPSILON * 4.0 * nearest.max(1.0) {
        nearest
    } else {
        product
    }
}

/// The depth at which the queue counts as backed up: `ceil(high × capacity)`, at least 1, so
/// a full queue always raises however small its capacity.
fn raise_at(high: f64, capacity: usize) -> usize {
    (product(high, capacity).ceil() as usize).max(1)
}

/// The depth at or below which a raised signal is retracted: `floor(low × capacity)`.
fn retract_at(low: f64, capacity: usize) -> usize {
    product(low, capacity).floor() as usize
}

/// The watermark's state.
#[derive(Debug)]
pub(super) struct Mark {
    config: Watermark,
    high: usize,
    low: usize,
    depth: usize,
    oldest_at: Option<Instant>,
    /// Since when the queue has been backed up, as last judged.
    since: Option<Instant>,
    raised: bool,
}

impl Mark {
    pub(super) fn new(config: Watermark, capacity: usize) -> Self {
        Self {
            high: raise_at(config.high, capacity),
            low: retract_at(config.low, capacity),
            config,
            depth: 0,
            oldest_at: None,
            since: None,
            raised: false,
        }
    }

    pub(super) fn is_raised(&self) -> bool {
        self.raised
    }

    fn backed_up(&self, now: Instant) -> bool {
        let too_old = match (self.oldest_at, self.config.max_age) {
            (Some(at), Some(max_age)) => now.saturating_duration_since(at) > max_age,
            _ => false,
        };
        self.depth >= self.high || too_old
    }

    fn drained(&self, now: Instant) -> bool {
        let young = match (self.oldest_at, self.config.max_age) {
            (Some(at), Some(max_age)) => now.saturating_duration_since(at) <= max_age,
            _ => true,
        };
        self.depth <= self.low && young
    }

    /// The queue changed; returns whether the timer task must look (a threshold crossed).
    pub(super) fn update(&mut self, depth: usize, oldest_at: Option<Instant>) -> bool {
        let crossed = (depth >= self.high) != (self.depth >= self.high)
            // While raised and low, every change may be the one that retracts.
            || (self.raised && depth <= self.low)
            || oldest_at.is_some() != self.oldest_at.is_some();
        self.depth = depth;
        self.oldest_at = oldest_at;
        crossed
    }

    /// Judges the queue at `now`: `Some(true)` to raise, `Some(false)` to retract.
    pub(super) fn tick(&mut self, now: Instant) -> Option<bool> {
        if self.backed_up(now) {
            let since = *self.since.get_or_insert(now);
            if !self.raised && now >= since + self.config.hold_for {
                self.raised = true;
                return Some(true);
            }
        } else {
            self.since = None;
            if self.raised && self.drained(now) {
                self.raised = false;
                return Some(false);
            }
        }
        None
    }

    /// When [`tick`](Self::tick) may next change its answer without a queue change.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        if self.raised {
            // Waiting for the oldest item to become young again needs no timer: an item
            // leaving the queue is a queue change.
            return None;
        }
        match self.since {
            Some(since) => Some(since + self.config.hold_for),
            None => match (self.oldest_at, self.config.max_age) {
                (Some(at), Some(max_age)) => Some(at + max_age + Duration::from_nanos(1)),
                _ => None,
            },
        }
    }

    pub(super) fn depth(&self) -> usize {
        self.depth
    }
}

impl PolicyMachine for Mark {
    fn kind(&self) -> &'static str {
        PolicyKind::Watermark.name()
    }

    fn detail(&self) -> PolicyDetail {
        PolicyDetail::Watermark {
            raise_at: self.high,
            retract_at: self.low,
        }
    }

    fn signal(&self) -> &str {
        &self.config.signal
    }

    fn ttl(&self) -> Duration {
        self.config.ttl
    }

    fn state(&self) -> PolicyState {
        PolicyState::Watermark {
            raised: self.is_raised(),
            depth: self.depth(),
        }
    }

    fn timers(&mut self, now: Instant) -> Option<Transition> {
        let before = PolicyMachine::state(self);
        let raise = self.tick(now)?;
        let (reason, effect) = if raise {
            (ChangeReason::BackedUp, Effect::Raise(Level::STOP))
        } else {
            (ChangeReason::Drained, Effect::Retract)
        };
        Some(Transition {
            change: PolicyChange {
                policy: PolicyMachine::kind(self),
                from: before,
                to: PolicyMachine::state(self),
                reason,
                counts: WindowCounts::default(),
            },
            effect,
            wake_slots: false,
        })
    }

    fn next_timer(&self) -> Option<Instant> {
        self.next_deadline()
    }

    fn watches_queue(&self) -> bool {
        true
    }

    fn stamps_items(&self) -> bool {
        self.config.max_age.is_some()
    }

    fn queue_changed(&mut self, depth: usize, oldest_at: Option<Instant>) -> bool {
        self.update(depth, oldest_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_after_hold_for_above_high_and_retracts_below_low() {
        let start = Instant::now();
        let mut mark = Mark::new(Watermark::new("s"), 100);
        mark.update(79, Some(start));
        assert_eq!(mark.tick(start), None);
        assert_eq!(mark.next_deadline(), None, "79 is below 80 %");
        assert!(
            mark.update(80, Some(start)),
            "crossing `high` needs the timer task"
        );
        assert_eq!(mark.tick(start), None);
        assert_eq!(mark.next_deadline(), Some(start + Duration::from_secs(5)));
        assert_eq!(mark.tick(start + Duration::from_secs(5)), Some(true));
        mark.update(60, Some(start));
        assert_eq!(
            mark.tick(start + Duration::from_secs(6)),
            None,
            "between low and high"
        );
        assert!(mark.update(50, Some(start)));
        assert_eq!(mark.tick(start + Duration::from_secs(7)), Some(false));
    }

    #[test]
    fn thresholds_round_towards_holding() {
        let at = |high: f64, low: f64, capacity: usize| {
            let mark = Mark::new(Watermark::new("s").high(high).low(low), capacity);
            (mark.high, mark.low)
        };
        assert_eq!(at(0.8, 0.5, 1), (1, 0));
        assert_eq!(at(0.8, 0.5, 4), (4, 2));
        assert_eq!(at(0.85, 0.5, 10), (9, 5));
        assert_eq!(
            at(0.55, 0.29, 100),
            (55, 29),
            "0.55 × 100 is 55, 0.29 × 100 is 29"
        );
        assert_eq!(at(0.7, 0.0, 10), (7, 0));
        assert_eq!(at(0.001, 0.0, 10), (1, 0), "at least 1");
    }

    #[test]
    fn a_dip_below_high_restarts_the_hold() {
        let start = Instant::now();
        let mut mark = Mark::new(Watermark::new("s"), 10);
        mark.update(9, Some(start));
        mark.tick(start);
        mark.update(5, Some(start));
        mark.tick(start + Duration::from_secs(4));
        mark.update(9, Some(start));
        assert_eq!(mark.tick(start + Duration::from_secs(6)), None);
        assert_eq!(mark.tick(start + Duration::from_secs(11)), Some(true));
    }

    #[test]
    fn an_old_head_counts_as_backed_up() {
        let start = Instant::now();
        let config = Watermark::new("s").max_age(Duration::from_secs(60));
        let mut mark = Mark::new(config, 100);
        mark.update(1, Some(start));
        assert_eq!(mark.tick(start), None);
        let old = mark.next_deadline().unwrap();
        assert_eq!(mark.tick(old), None);
        assert_eq!(mark.tick(old + Duration::from_secs(5)), Some(true));
        mark.update(0, None);
        assert_eq!(mark.tick(old + Duration::from_secs(6)), Some(false));
    }
}
