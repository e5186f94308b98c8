//! The connection's lifecycle: down and retrying, stale (a snapshot is due), or up.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::stats::Counters;
use crate::wire::Remote;

/// The first reconnect delay; it doubles up to `reconnect_max_delay`.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The bridge's view of its connection to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connected, subscribed, and the local mirror matches the last snapshot plus every
    /// event since.
    Synced,
    /// Connected; taking a fresh snapshot (after a (re)subscription or a sequence gap).
    Resyncing,
    /// Redis is unreachable since `since`; remote entries follow the
    /// [`OnDisconnect`](crate::OnDisconnect) policy, local raises and retracts are published
    /// on reconnect.
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
    /// Connected, but whatever was published meanwhile is unknown: a resync is due before
    /// anything else. `resume` is where messages continue should its snapshot be unreadable.
    Stale { resume: Option<u64> },
    /// Connected: messages after `last_seq` apply in order. `None` (the snapshot was
    /// unreadable) ignores them until the next resync.
    Up { last_seq: Option<u64> },
}

/// The connection's state and the [`Status`] it shows.
#[derive(Debug)]
pub(super) struct Link {
    state: State,
    /// Whether the confirmation of the subscription made by `connect` is still to come.
    first_subscription: bool,
    status: watch::Sender<Status>,
    reconnect_max: Duration,
}

impl Link {
    /// A new connection, subscribed, its first sync due.
    pub(super) fn new(status: watch::Sender<Status>, reconnect_max_delay: Duration) -> Self {
        Self {
            state: State::Stale { resume: None },
            first_subscription: true,
            status,
            reconnect_max: reconnect_max_delay.max(FIRST_BACKOFF),
        }
    }

    /// Whether local changes can be published now (otherwise the next resync does it).
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// Whether a resync is due.
    pub(super) fn is_stale(&self) -> bool {
        matches!(self.state, State::Stale { .. })
    }

    /// Whether Redis is unreachable.
    pub(super) fn is_down(&self) -> bool {
        matches!(self.state, State::Down { .. })
    }

    /// When to try reconnecting, if the connection is down.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        match self.state {
            State::Down { retry_at, .. } => Some(retry_at),
            _ => None,
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
                self.state = State::Stale { resume: None };
            }
            return;
        }
        let resume = match self.state {
            State::Down { .. } => None,
            State::Stale { resume } => resume,
            State::Up { last_seq } => last_seq,
        };
        self.state = State::Stale { resume };
        self.set_status(Status::Resyncing);
    }

    /// Whether a message with this sequence number is the next one; a gap makes the link
    /// stale, a number already covered is skipped.
    pub(super) fn in_sequence(&mut self, seq: u64, counters: &Counters) -> bool {
        let State::Up {
            last_seq: Some(last),
        } = self.state
        else {
            return false; // Not synced: the coming snapshot covers it.
        };
        if seq <= last {
            return false;
        }
        if seq == last + 1 {
            self.state = State::Up {
                last_seq: Some(seq),
            };
            return true;
        }
        Counters::bump(&counters.gaps);
        tracing::debug!(last, seq, "sequence gap; resyncing");
        self.state = State::Stale { resume: None };
        self.set_status(Status::Resyncing);
        false
    }

    /// A resync begins: publishing is allowed again while it runs.
    pub(super) fn resyncing(&mut self) {
        self.set_status(Status::Resyncing);
        if let State::Stale { resume } = self.state {
            self.state = State::Up { last_seq: resume };
        }
    }

    /// The snapshot taken at `seq` is applied.
    pub(super) fn synced(&mut self, seq: u64) {
        self.state = State::Up {
            last_seq: Some(seq),
        };
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
                self.state = State::Stale { resume: None };
                self.set_status(Status::Resyncing);
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

    fn link() -> (Link, watch::Receiver<Status>) {
        let (tx, rx) = watch::channel(Status::Resyncing);
        (Link::new(tx, Duration::from_secs(1)), rx)
    }

    /// A link through its first sync, at sequence number `seq`.
    fn synced_at(seq: u64) -> (Link, watch::Receiver<Status>) {
        let (mut link, rx) = link();
        link.resyncing();
        link.synced(seq);
        (link, rx)
    }

    #[test]
    fn a_new_link_syncs_before_it_publishes() {
        let (mut link, rx) = link();
        assert!(link.is_stale() && !link.is_up() && !link.is_down());
        link.resyncing();
        assert!(link.is_up(), "a resync publishes the own entries first");
        assert_eq!(*rx.borrow(), Status::Resyncing);
        link.synced(5);
        assert!(link.is_up());
        assert_eq!(*rx.borrow(), Status::Synced);
    }

    #[test]
    fn messages_apply_in_sequence_and_a_gap_makes_the_link_stale() {
        let counters = Counters::new("ch");
        let (mut link, rx) = synced_at(5);
        assert!(
            !link.in_sequence(5, &counters),
            "already covered by the snapshot"
        );
        assert!(link.in_sequence(6, &counters));
        assert!(!link.in_sequence(6, &counters));
        assert!(!link.in_sequence(8, &counters));
        assert!(link.is_stale());
        assert_eq!(*rx.borrow(), Status::Resyncing);
        assert_eq!(counters.snapshot().sequence_gaps, 1);
        assert!(
            !link.in_sequence(9, &counters),
            "the coming snapshot covers it"
        );
    }

    #[test]
    fn a_lost_link_is_down_once_and_keeps_its_since() {
        let counters = Counters::new("ch");
        let (mut link, rx) = synced_at(1);
        let before = Instant::now();
        assert!(link.lost());
        assert!(link.is_down() && !link.is_up());
        assert!(link.retry_at().unwrap() >= before + FIRST_BACKOFF);
        let Status::Disconnected { since } = *rx.borrow() else {
            panic!("not disconnected");
        };
        assert!(!link.lost(), "already down");
        assert_eq!(*rx.borrow(), Status::Disconnected { since });
        assert!(!link.in_sequence(2, &counters));
    }

    #[test]
    fn only_a_resubscription_makes_the_link_stale() {
        let counters = Counters::new("ch");
        let (mut link, rx) = synced_at(3);
        link.subscribed(); // The confirmation of `connect`'s subscription, after the sync.
        assert!(link.is_up());
        assert_eq!(*rx.borrow(), Status::Synced);
        link.subscribed(); // A resubscription: messages may have been missed.
        assert!(link.is_stale());
        assert_eq!(*rx.borrow(), Status::Resyncing);
        link.resyncing();
        assert!(
            link.in_sequence(4, &counters),
            "resumes where it was until synced"
        );
    }

    #[test]
    fn a_resubscription_while_down_makes_the_link_stale() {
        let (mut link, rx) = synced_at(3);
        link.subscribed();
        assert!(link.lost());
        link.subscribed();
        assert!(link.is_stale());
        assert_eq!(*rx.borrow(), Status::Resyncing);
    }
}
