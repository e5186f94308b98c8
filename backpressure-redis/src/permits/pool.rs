//! One worker's permits as this process serves them: which slots it holds in Redis, and what
//! to do next (a pure decision over the worker's [`Permits`]; the task does the I/O).

use std::collections::BTreeSet;
use std::time::Duration;

use backpressure::connector::Permits;
use tokio::time::Instant;

use crate::config::LimitsOnDisconnect;
use crate::wire::{Answer, Call, PermitKeys};

/// What a pool needs from Redis now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Nothing.
    Nothing,
    /// Take these (new) slots.
    Acquire(Vec<u32>),
    /// Give these slots back (already revoked locally).
    Release(Vec<u32>),
}

/// One worker's permits in this process.
pub(super) struct Pool {
    pub(super) permits: Permits,
    pub(super) keys: PermitKeys,
    /// The slots this process holds in Redis, as far as it knows.
    pub(super) held: BTreeSet<u32>,
    /// When a permit may next be free (a lease's end, a new record's grace): a waiting
    /// start is retried then (the only timer besides the renewal).
    pub(super) retry_at: Option<Instant>,
    /// Processes last seen serving the worker (for `local_share`); `None` until Redis first
    /// answered: a process that never reached Redis has no basis for a share and grants
    /// none (it would otherwise take the whole fleet's limit for itself at start).
    pub(super) live: Option<usize>,
    /// A peer's start waits: keep no unused permit.
    pub(super) peer_wants: bool,
    /// Redis answered this pool's last call with an error (a key of the wrong type): it
    /// grants nothing new until a call succeeds.
    pub(super) broken: bool,
}

impl Pool {
    pub(super) fn new(permits: Permits, namespace: &str) -> Self {
        let keys = PermitKeys::new(namespace, permits.worker());
        Self {
            permits,
            keys,
            held: BTreeSet::new(),
            retry_at: None,
            live: None,
            peer_wants: false,
            broken: false,
        }
    }

    /// Decides what to ask of Redis, the link being up; grants and revokes locally what
    /// needs no call (grants beyond the slots held go, held slots not granted are granted).
    pub(super) fn plan(&mut self, batch: usize) -> Plan {
        let held = self.held.len();
        let counts = self.permits.counts();
        if counts.granted > held {
            self.permits.revoke(counts.granted - held);
        } else if counts.granted < held && !self.broken {
            self.permits.grant(held - counts.granted);
        }
        let counts = self.permits.counts();
        let limit = self.permits.limit();
        if counts.wanted {
            if held >= limit || self.broken {
                return Plan::Nothing;
            }
            let want = batch.max(1).min(limit - held);
            return Plan::Acquire(self.free_slots(want));
        }
        let keep = if self.peer_wants || self.broken || self.permits.is_closed() {
            0
        } else {
            batch.saturating_sub(1)
        };
        self.peer_wants = false;
        let unused = counts.granted.saturating_sub(counts.in_use);
        if unused <= keep {
            return Plan::Nothing;
        }
        let given = self.permits.revoke(unused - keep);
        let slots: Vec<u32> = self.held.iter().rev().take(given).copied().collect();
        Plan::Release(slots)
    }

    /// A closed worker's pool with nothing held or wanted (a drain may still be running the
    /// queue's rest): no call for it any more (its presence lapses, so it no longer counts
    /// as a process serving the worker).
    pub(super) fn retired(&self) -> bool {
        let counts = self.permits.counts();
        self.permits.is_closed() && self.held.is_empty() && counts.granted == 0 && !counts.wanted
    }

    /// `n` slot numbers this process does not hold, smallest first.
    fn free_slots(&self, n: usize) -> Vec<u32> {
        (0u32..)
            .filter(|s| !self.held.contains(s))
            .take(n)
            .collect()
    }

    /// The slots to renew: those held, and on a reconnect also as many more as were granted
    /// locally beyond them (items running on an outage's grants get recorded, if there is
    /// room).
    pub(super) fn to_renew(&self, cover: bool) -> Vec<u32> {
        let mut slots: Vec<u32> = self.held.iter().copied().collect();
        if cover {
            let granted = self.permits.counts().granted;
            slots.extend(self.free_slots(granted.saturating_sub(self.held.len())));
        }
        slots
    }

    /// Redis answered `call` for `asked`: records what is held now; an acquisition grants
    /// its new slots (a renewal's new slots cover grants made during an outage). Returns
    /// how many new slots were recorded and how many held ones were lost (the next
    /// [`plan`](Self::plan) revokes their grants).
    pub(super) fn answered(
        &mut self,
        call: Call,
        asked: &[u32],
        answer: &Answer,
    ) -> (usize, usize) {
        let release = call == Call::Release;
        self.broken = false;
        self.live = Some(answer.live.max(1));
        let now: BTreeSet<u32> = answer.slots.iter().copied().collect();
        let (mut gained, mut lost) = (0, 0);
        for slot in asked {
            let had = self.held.contains(slot);
            let has = now.contains(slot) && !release;
            match (had, has) {
                (false, true) => gained += 1,
                (true, false) if !release => lost += 1,
                _ => {}
            }
            if has {
                self.held.insert(*slot);
            } else {
                self.held.remove(slot);
            }
        }
        if call == Call::Acquire {
            self.permits.grant(gained);
        }
        self.retry_at = match (gained, answer.next_free_ms) {
            (0, Some(free)) => {
                let wait = free.saturating_sub(answer.now_ms) + 1;
                Some(Instant::now() + Duration::from_millis(wait))
            }
            _ => None,
        };
        (gained, lost)
    }

    /// Redis cannot be reached (or answered an error): what this process may run now.
    pub(super) fn cut_off(&mut self, policy: LimitsOnDisconnect) {
        self.retry_at = None;
        let limit = self.permits.limit();
        let target = match policy {
            _ if self.broken => 0,
            LimitsOnDisconnect::Hold => 0,
            LimitsOnDisconnect::LocalShare => self.live.map_or(0, |live| limit / live),
            LimitsOnDisconnect::Ignore => limit,
        };
        let granted = self.permits.counts().granted;
        if granted > target {
            self.permits.revoke(granted - target);
        } else {
            self.permits.grant(target - granted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker of `global_concurrency(3)` with one item waiting for a permit.
    async fn waiting_pool() -> (Pool, backpressure::Coordinator<u8>) {
        let sink = backpressure::Sink::new();
        sink.serve_permits();
        let coordinator = backpressure::Coordinator::<u8>::builder()
            .sink(sink.clone())
            .name("w")
            .global_concurrency(3)
            .build(|_, _: backpressure::WorkContext| std::future::pending::<()>())
            .unwrap();
        coordinator.enqueue(1).await.unwrap();
        let permits = sink.permit_pools().pop().unwrap();
        while !permits.counts().wanted {
            tokio::task::yield_now().await;
        }
        (Pool::new(permits, "ns"), coordinator)
    }

    fn answer(slots: &[u32], next_free_ms: Option<u64>) -> Answer {
        Answer {
            now_ms: 1_000,
            next_free_ms,
            live: 2,
            slots: slots.to_vec(),
        }
    }

    #[tokio::test]
    async fn a_waiting_start_asks_for_a_batch_and_a_grant_follows_the_answer() {
        let (mut pool, _c) = waiting_pool().await;
        assert_eq!(pool.plan(2), Plan::Acquire(vec![0, 1]));
        assert_eq!(
            pool.answered(Call::Acquire, &[0, 1], &answer(&[0], Some(1_500))),
            (1, 0)
        );
        assert_eq!(pool.held.iter().copied().collect::<Vec<_>>(), vec![0]);
        assert!(pool.retry_at.is_none(), "it got one: no timer");
        assert_eq!(pool.permits.counts().granted, 1);
    }

    #[tokio::test]
    async fn none_got_waits_for_the_earliest_lease_and_cut_off_follows_the_policy() {
        let (mut pool, _c) = waiting_pool().await;
        let before = Instant::now();
        pool.answered(Call::Acquire, &[0, 1], &answer(&[], Some(1_500)));
        let at = pool.retry_at.expect("a timer for the earliest lease end");
        assert!(at >= before + Duration::from_millis(500));
        pool.cut_off(LimitsOnDisconnect::LocalShare);
        assert_eq!(pool.permits.counts().granted, 1, "3 / 2 processes");
        pool.cut_off(LimitsOnDisconnect::Ignore);
        assert_eq!(pool.permits.counts().granted, 3);
        pool.cut_off(LimitsOnDisconnect::Hold);
        assert!(pool.permits.counts().granted <= pool.permits.counts().in_use);
    }
}
