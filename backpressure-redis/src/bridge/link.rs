//! The connection's lifecycle: down and retrying, stale (a snapshot is due), or up.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::stats::Counters;
use crate::wire::{Position, Remote};

/// The first reconnect delay; it doubles up to `reconnect_max_delay`.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How often the bridge confirms its link when nothing else was answered lately, and how long
/// any call may take before the link counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Liveness {
    pub(super) probe_every: Duration,
    pub(crate) response_timeout: Duration,
}

impl Liveness {
    /// Each a quarter of the lease (at least 25 ms; the timeout at most 2 s): a link that
    /// goes silent is `Disconnected` within half a lease (at least 50 ms) of its last
    /// answer, before the mirrors' leases could run out because of it.
    pub(crate) fn of(lease: Duration) -> Self {
        let quarter = (lease / 4).max(Duration::from_millis(25));
        Self {
            probe_every: quarter,
            response_timeout: quarter.min(Duration::from_secs(2)),
        }
    }
}

/// The bridge's view of its connection to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connected, subscribed, and the local mirror matches the last snapshot plus every
    /// event since.
    Synced,
    /// Connected, but the local mirror may not match Redis: taking a fresh snapshot (after a
    /// (re)subscription, a sequence gap, a new counter epoch or a message of an unknown
    /// version), or retrying one with capped backoff because Redis answered with an error
    /// or something unreadable (a broken sequence counter, a denied command).
    Resyncing,
    /// Redis is unreachable since `since`; remote entries follow the
    /// [`OnDisconnect`](crate::OnDisconnect) policy, local raises and retracts are published
    /// on reconnect. A link that goes silent (no answer, though the socket stays open) reads
    /// as `Disconnected` within half a lease of its last answer: the bridge sends a `PING`
    /// when nothing was answered for a quarter of the lease, and gives every call a quarter
    /// of the lease to answer (at least 25 ms each, the timeout at most 2 s).
    Disconnected {
        /// When the connection was lost.
        since: std::time::Instant,
    },
}

/// Where the connection is. Nothing is published unless it is [`Up`](State::Up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Redis is unreachable: the next attempt is at `retry_at`, the one after that `backoff`
    /// doubled later.
    Down {
        backoff: Duration,
        retry_at: Instant,
    },
    /// Connected, but whatever was published meanwhile is unknown: a resync is due at `at`
    /// (at once, or a backoff after a failed one) before anything else.
    Stale { at: Instant },
    /// Connected: messages after `last` apply in order. `None` while a resync runs (its
    /// snapshot tells where messages continue).
    Up { last: Option<Position> },
}

/// The connection's state and the [`Status`] it shows.
#[derive(Debug)]
pub(super) struct Link {
    state: State,
    /// Whether the confirmation of the subscription made by `connect` is still to come.
    first_subscription: bool,
    status: watch::Sender<Status>,
    reconnect_max: Duration,
    /// How long after a failed resync the next one starts; doubles up to `reconnect_max`.
    resync_backoff: Duration,
    /// The counter's epoch of the last snapshot applied, if any (kept while down or stale).
    epoch: Option<u64>,
    /// Whether the coming resync must re-publish the own entries first: a (re)subscription
    /// or a reconnect (Redis may have restarted), not a mere gap in the sequence.
    republish: bool,
    /// When the last resync began, and the least time between two ([`stale`](Self::stale)).
    last_resync: Option<Instant>,
    resync_floor: Duration,
}

impl Link {
    /// A new connection, subscribed, its first sync due; resyncs at least `resync_floor`
    /// apart.
    pub(super) fn new(
        status: watch::Sender<Status>,
        reconnect_max_delay: Duration,
        resync_floor: Duration,
    ) -> Self {
        Self {
            state: State::Stale { at: Instant::now() },
            first_subscription: true,
            status,
            reconnect_max: reconnect_max_delay.max(FIRST_BACKOFF),
            resync_backoff: FIRST_BACKOFF,
            epoch: None,
            republish: true,
            last_resync: None,
            resync_floor,
        }
    }

    /// Whether a snapshot taken at `at` is of another epoch of the counter than the last one
    /// applied (Redis restarted empty or was flushed meanwhile).
    pub(super) fn is_new_epoch(&self, at: Position) -> bool {
        self.epoch.is_some_and(|epoch| epoch != at.epoch)
    }

    /// Whether local changes can be published now (otherwise the next resync does it).
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// Whether the mirror matches Redis: synced, and messages apply in order.
    pub(super) fn is_synced(&self) -> bool {
        matches!(self.state, State::Up { last: Some(_) })
    }

    /// Whether a resync is due now.
    pub(super) fn resync_due(&self) -> bool {
        matches!(self.state, State::Stale { at } if at <= Instant::now())
    }

    /// Whether Redis is unreachable.
    pub(super) fn is_down(&self) -> bool {
        matches!(self.state, State::Down { .. })
    }

    /// When the link has something to do by itself: a reconnect attempt, a resync.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        match self.state {
            State::Down { retry_at, .. } => Some(retry_at),
            State::Stale { at } => Some(at),
            State::Up { .. } => None,
        }
    }

    /// Publishes `status`; `Disconnected` only replaces another status (it keeps its
    /// `since`). The watch runs no code of ours but the comparison under its lock.
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

    /// Makes the link stale: a resync starts at once, or `resync_floor` after the last one
    /// began (a burst of messages that cannot be placed costs a few snapshots, not one
    /// each; the status is `Resyncing` meanwhile).
    fn stale(&mut self) {
        let now = Instant::now();
        let at = self
            .last_resync
            .map_or(now, |last| now.max(last + self.resync_floor));
        self.state = State::Stale { at };
        self.set_status(Status::Resyncing);
    }

    /// Makes the link stale after a (re)subscription: messages were missed, and Redis may
    /// have restarted, so the resync re-publishes the own entries.
    fn resubscribed(&mut self) {
        self.republish = true;
        self.stale();
    }

    /// The connection is lost; `true` if it was not already (the caller then applies the
    /// disconnect policy).
    pub(super) fn lost(&mut self) -> bool {
        if self.is_down() {
            return false;
        }
        self.state = State::Down {
            backoff: FIRST_BACKOFF,
            retry_at: Instant::now() + FIRST_BACKOFF,
        };
        self.set_status(Status::Disconnected {
            since: std::time::Instant::now(),
        });
        true
    }

    /// A subscription was confirmed. A (re)subscription makes the link stale, except the
    /// confirmation of the subscription made before the first sync, which that sync already
    /// covers (it may arrive after it, and must not undo it).
    pub(super) fn subscribed(&mut self) {
        if std::mem::take(&mut self.first_subscription) {
            if let State::Down { .. } = self.state {
                self.republish = true;
                self.state = State::Stale { at: Instant::now() };
            }
            return;
        }
        self.resubscribed();
    }

    /// Whether a message at this position is the next one. A gap or another epoch of the
    /// counter (it was flushed, evicted or repaired, and counts from 1 again) makes the link
    /// stale; a number already covered is skipped.
    pub(super) fn in_sequence(&mut self, at: Position, counters: &Counters) -> bool {
        let State::Up { last: Some(last) } = self.state else {
            return false; // Not synced: the coming snapshot covers it.
        };
        if at.epoch != last.epoch {
            Counters::bump(&counters.counter_resets);
            tracing::debug!(
                last = last.epoch,
                now = at.epoch,
                "new counter epoch; resyncing"
            );
            self.stale();
            return false;
        }
        if at.seq <= last.seq {
            return false;
        }
        if at.seq == last.seq + 1 {
            self.state = State::Up { last: Some(at) };
            return true;
        }
        Counters::bump(&counters.gaps);
        tracing::debug!(last = last.seq, seq = at.seq, "sequence gap; resyncing");
        self.stale();
        false
    }

    /// The task stalled (it reads too late to trust what it reads): a synced link is stale.
    pub(super) fn stalled(&mut self) {
        if self.is_synced() {
            self.stale();
        }
    }

    /// A message that cannot be read was published at `at` (if known): unless the last
    /// snapshot already covers it, the link is stale. (A link already stale or down has a
    /// snapshot coming anyway, at the time its backoff says.)
    pub(super) fn unreadable(&mut self, at: Option<Position>) {
        let State::Up { last } = self.state else {
            return;
        };
        if let (Some(last), Some(at)) = (last, at) {
            if at.epoch == last.epoch && at.seq <= last.seq {
                return;
            }
        }
        self.stale();
    }

    /// A resync begins: publishing is allowed again while it runs. Returns whether it must
    /// re-publish the own entries first (after a (re)subscription; after a gap, only if its
    /// snapshot shows a new epoch).
    pub(super) fn resyncing(&mut self) -> bool {
        self.last_resync = Some(Instant::now());
        self.set_status(Status::Resyncing);
        if let State::Stale { .. } = self.state {
            self.state = State::Up { last: None };
        }
        self.republish
    }

    /// Redis answered, but with an error or something unreadable (a broken counter, a denied
    /// command): the link stays connected and `Resyncing`, and a resync is retried with
    /// capped backoff.
    pub(super) fn resync_failed(&mut self) {
        if self.is_down() {
            return;
        }
        self.state = State::Stale {
            at: Instant::now() + self.resync_backoff,
        };
        self.resync_backoff = (self.resync_backoff * 2).min(self.reconnect_max);
        self.set_status(Status::Resyncing);
    }

    /// The snapshot taken at `at` is applied.
    pub(super) fn synced(&mut self, at: Position) {
        self.state = State::Up { last: Some(at) };
        self.epoch = Some(at.epoch);
        self.republish = false;
        self.resync_backoff = FIRST_BACKOFF;
        self.set_status(Status::Synced);
    }

    /// Tries to reach Redis again if the link is down; on success, resubscribes and makes the
    /// link stale, otherwise doubles the backoff.
    pub(super) async fn reconnect(&mut self, remote: &mut Remote) {
        let State::Down { backoff, .. } = self.state else {
            return;
        };
        match remote.resubscribe().await {
            Ok(()) => {
                tracing::info!(namespace = %remote.channel(), "reconnected to Redis");
                self.resubscribed();
            }
            Err(_) => {
                let backoff = (backoff * 2).min(self.reconnect_max);
                self.state = State::Down {
                    backoff,
                    retry_at: Instant::now() + backoff,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: u64 = 77;

    fn at(seq: u64) -> Position {
        Position { epoch: E, seq }
    }

    fn link() -> (Link, watch::Receiver<Status>) {
        let (tx, rx) = watch::channel(Status::Resyncing);
        (Link::new(tx, Duration::from_secs(1), Duration::ZERO), rx)
    }

    /// A link through its first sync, at sequence number `seq`.
    fn synced_at(seq: u64) -> (Link, watch::Receiver<Status>) {
        let (mut link, rx) = link();
        link.resyncing();
        link.synced(at(seq));
        (link, rx)
    }

    #[test]
    fn a_silent_link_is_noticed_within_half_a_lease() {
        let lease = Duration::from_millis(1500);
        let liveness = Liveness::of(lease);
        assert!(liveness.probe_every + liveness.response_timeout <= lease / 2);
        let long = Liveness::of(Duration::from_secs(60));
        assert_eq!(long.response_timeout, Duration::from_secs(2));
        let short = Liveness::of(Duration::from_millis(30));
        assert_eq!(short.probe_every, Duration::from_millis(25));
    }

    #[test]
    fn a_new_link_syncs_before_it_publishes() {
        let (mut link, rx) = link();
        assert!(link.resync_due() && !link.is_up() && !link.is_down());
        link.resyncing();
        assert!(link.is_up(), "a resync publishes the own entries first");
        assert_eq!(*rx.borrow(), Status::Resyncing);
        link.synced(at(5));
        assert!(link.is_up() && link.wake_at().is_none());
        assert_eq!(*rx.borrow(), Status::Synced);
    }

    #[test]
    fn messages_apply_in_sequence_and_a_gap_makes_the_link_stale() {
        let counters = Counters::new("ch");
        let (mut link, rx) = synced_at(5);
        assert!(
            !link.in_sequence(at(5), &counters),
            "covered by the snapshot"
        );
        assert!(link.in_sequence(at(6), &counters));
        assert!(!link.in_sequence(at(6), &counters));
        assert!(!link.in_sequence(at(8), &counters));
        assert!(link.resync_due());
        assert_eq!(*rx.borrow(), Status::Resyncing);
        assert_eq!(counters.snapshot().sequence_gaps, 1);
        assert!(
            !link.in_sequence(at(9), &counters),
            "the coming snapshot covers it"
        );
    }

    #[test]
    fn another_epoch_makes_the_link_stale_even_at_a_lower_number() {
        let counters = Counters::new("ch");
        let (mut link, rx) = synced_at(500);
        let reset = Position {
            epoch: E + 1,
            seq: 1,
        };
        assert!(!link.in_sequence(reset, &counters));
        assert!(link.resync_due());
        assert_eq!(*rx.borrow(), Status::Resyncing);
        assert_eq!(counters.snapshot().counter_resets, 1);
        assert_eq!(counters.snapshot().sequence_gaps, 0);
    }

    #[test]
    fn a_failed_resync_is_retried_with_capped_backoff_and_never_reads_synced() {
        let (mut link, rx) = link();
        let mut delays = Vec::new();
        for _ in 0..8 {
            link.resyncing();
            let before = Instant::now();
            link.resync_failed();
            assert_eq!(*rx.borrow(), Status::Resyncing);
            assert!(!link.is_up() && !link.is_down());
            delays.push(link.wake_at().unwrap() - before);
        }
        assert!(delays[0] >= FIRST_BACKOFF);
        assert!(delays[1] >= FIRST_BACKOFF * 2);
        assert!(delays
            .iter()
            .all(|d| *d <= Duration::from_secs(1) + FIRST_BACKOFF));
        link.resyncing();
        link.synced(at(1));
        assert_eq!(*rx.borrow(), Status::Synced);
        link.resyncing();
        let before = Instant::now();
        link.resync_failed();
        assert!(
            link.wake_at().unwrap() - before < FIRST_BACKOFF * 2,
            "reset by the sync"
        );
    }

    #[test]
    fn an_unreadable_message_makes_the_link_stale_unless_already_covered() {
        let (mut link, _rx) = synced_at(5);
        link.unreadable(Some(at(4)));
        assert!(link.is_up());
        link.unreadable(Some(at(6)));
        assert!(link.resync_due());
        let (mut link, _rx) = synced_at(5);
        link.unreadable(None);
        assert!(link.resync_due());
        link.resyncing();
        link.resync_failed();
        let retry_at = link.wake_at();
        link.unreadable(None);
        assert_eq!(
            link.wake_at(),
            retry_at,
            "keeps the backoff of the failed resync"
        );
    }

    #[test]
    fn resyncs_are_a_floor_apart_and_only_a_resubscription_republishes() {
        let counters = Counters::new("ch");
        let floor = Duration::from_secs(60);
        let (tx, _rx) = watch::channel(Status::Resyncing);
        let mut link = Link::new(tx, Duration::from_secs(1), floor);
        assert!(link.resync_due(), "the first sync at once");
        assert!(link.resyncing(), "the first sync publishes the own entries");
        link.synced(at(1));
        assert!(!link.in_sequence(at(5), &counters));
        assert!(!link.resync_due(), "a floor after the last resync");
        assert!(link.wake_at().unwrap() >= Instant::now() + floor / 2);
        link.unreadable(None);
        assert!(!link.resync_due(), "still coalesced");
        let (tx, _rx) = watch::channel(Status::Resyncing);
        let mut link = Link::new(tx, Duration::from_secs(1), Duration::ZERO);
        link.resyncing();
        link.synced(at(1));
        assert!(!link.in_sequence(at(5), &counters));
        assert!(!link.resyncing(), "a gap re-publishes nothing");
        link.synced(at(5));
        link.subscribed();
        link.subscribed();
        assert!(link.resyncing(), "a resubscription re-publishes");
        link.resync_failed();
        assert!(link.resyncing(), "until a resync succeeds");
    }

    #[test]
    fn a_snapshot_of_another_epoch_than_the_last_applied_is_new() {
        let (mut link, _rx) = link();
        assert!(!link.is_new_epoch(at(1)), "nothing applied yet");
        link.resyncing();
        link.synced(at(9));
        assert!(!link.is_new_epoch(at(20)));
        let other = Position {
            epoch: E + 1,
            seq: 1,
        };
        assert!(link.lost());
        assert!(link.is_new_epoch(other), "kept while down");
        link.subscribed();
        link.resyncing();
        link.synced(other);
        assert!(!link.is_new_epoch(other));
    }

    #[test]
    fn a_lost_link_is_down_once_and_keeps_its_since() {
        let counters = Counters::new("ch");
        let (mut link, rx) = synced_at(1);
        let before = Instant::now();
        assert!(link.lost());
        assert!(link.is_down() && !link.is_up());
        assert!(link.wake_at().unwrap() >= before + FIRST_BACKOFF);
        let Status::Disconnected { since } = *rx.borrow() else {
            panic!("not disconnected");
        };
        assert!(!link.lost(), "already down");
        link.resync_failed();
        assert!(link.is_down(), "a late answer does not bring it back");
        assert_eq!(*rx.borrow(), Status::Disconnected { since });
        assert!(!link.in_sequence(at(2), &counters));
    }

    #[test]
    fn only_a_resubscription_makes_the_link_stale() {
        let (mut link, rx) = synced_at(3);
        link.subscribed(); // The confirmation of `connect`'s subscription, after the sync.
        assert!(link.is_up());
        assert_eq!(*rx.borrow(), Status::Synced);
        link.subscribed(); // A resubscription: messages may have been missed.
        assert!(link.resync_due());
        assert_eq!(*rx.borrow(), Status::Resyncing);
    }

    #[test]
    fn a_resubscription_while_down_makes_the_link_stale() {
        let (mut link, rx) = synced_at(3);
        link.subscribed();
        assert!(link.lost());
        link.subscribed();
        assert!(link.resync_due());
        assert_eq!(*rx.borrow(), Status::Resyncing);
    }
}
