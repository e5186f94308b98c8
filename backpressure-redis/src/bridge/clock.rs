//! Noticing that the task stalled: a timer that fires late, or a message read long after
//! Redis sent it (the process was frozen, or starved), so that what it says is stale.

use std::time::Duration;

use tokio::time::Instant;

/// When the task reads too late to trust what it reads: its own timer fired, or a message
/// is read, more than `late_after` (a quarter of the lease) after it was due or sent. A
/// message's send time comes from the Redis clock (every message carries it), mapped onto
/// the local clock by the last snapshot's.
///
/// A message read late grants its entry a lease from the moment it is *read*: after a
/// freeze, a dead owner's backlogged renewals would outlive it by the freeze. The task then
/// resyncs instead of applying it (`task.rs`).
#[derive(Debug)]
pub(super) struct Clock {
    late_after: Duration,
    /// When the last snapshot was read, and the Redis clock (ms) it was taken at.
    base: Option<(Instant, u64)>,
}

impl Clock {
    pub(super) fn new(late_after: Duration) -> Self {
        Self {
            late_after,
            base: None,
        }
    }

    /// A snapshot taken at `redis_ms` of the Redis clock was read just now. (Reading it
    /// took the way back from Redis; so does every message, so the two cancel out.)
    pub(super) fn snapshot_read(&mut self, redis_ms: u64) {
        self.base = Some((Instant::now(), redis_ms));
    }

    /// Whether a timer due at `due` fires too late.
    pub(super) fn timer_late(&self, due: Instant) -> bool {
        Instant::now().saturating_duration_since(due) > self.late_after
    }

    /// Whether a message sent at `sent_ms` of the Redis clock is read too late. One that
    /// reads as sent after now (a clock that runs ahead, or a forgery) is not late.
    pub(super) fn message_late(&self, sent_ms: u64) -> bool {
        let Some((base_at, base_ms)) = self.base else {
            return false;
        };
        let sent = if sent_ms >= base_ms {
            base_at + Duration::from_millis(sent_ms - base_ms)
        } else {
            let before = Duration::from_millis(base_ms - sent_ms);
            base_at.checked_sub(before).unwrap_or(base_at)
        };
        Instant::now().saturating_duration_since(sent) > self.late_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_message_read_more_than_a_quarter_lease_after_it_was_sent_is_late() {
        let mut clock = Clock::new(Duration::from_millis(250));
        assert!(!clock.message_late(0), "no snapshot read yet");
        clock.snapshot_read(10_000);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(!clock.message_late(10_900), "read 100 ms after it was sent");
        assert!(clock.message_late(10_700), "read 300 ms after it was sent");
        assert!(clock.message_late(9_000), "sent before the snapshot");
        assert!(!clock.message_late(99_000), "sent in the future");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_that_fires_more_than_a_quarter_lease_late_is_late() {
        let clock = Clock::new(Duration::from_millis(250));
        let due = Instant::now() + Duration::from_millis(100);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(!clock.timer_late(due));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(clock.timer_late(due));
    }
}
