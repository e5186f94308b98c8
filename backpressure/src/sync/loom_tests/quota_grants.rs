//! Loom model of the fleet-wide quotas' wake-up (`sink/permits.rs`, `sink/rate_tokens.rs`): a
//! slot that finds no permit or token marks one wanted under the quota's lock and holds
//! without a timer; the connector grants under that lock, then (lock released) bumps the
//! coordinator's epoch and wakes its held slots (`Shared::gate_changed`). The slot's sleep is
//! the crate's own [`register_then_recheck`]: a grant landing between the slot's look and its
//! registration moved the epoch, so the slot looks again instead of sleeping through it.

use loom::sync::{Arc, Mutex};
use loom::thread;

use super::Broadcast;
use crate::sync::{register_then_recheck, Epoch, Look};

/// The quota's lock (tokens available, a start wanted), the coordinator's epoch and its slots'
/// wake-up.
struct Quota {
    tokens: Mutex<(usize, bool)>,
    epoch: Epoch,
    wake: Broadcast,
}

impl Quota {
    fn new() -> Self {
        Self {
            tokens: Mutex::new((0, false)),
            epoch: Epoch::new(),
            wake: Broadcast::new(),
        }
    }

    /// `try_take`: a token, or marks one wanted.
    fn try_take(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap();
        if tokens.0 > 0 {
            tokens.0 -= 1;
            tokens.1 = false;
            true
        } else {
            tokens.1 = true;
            false
        }
    }

    /// The connector: grants one, then wakes after releasing the lock (`wake` false: the
    /// bug this model guards against, a grant that does not wake the held slots).
    fn grant(&self, wake: bool) {
        self.tokens.lock().unwrap().0 += 1;
        if wake {
            self.epoch.bump();
            self.wake.notify_waiters();
        }
    }

    /// A slot's look: `None` if it started, else the registration it would sleep on (`None`
    /// too when the recheck sends it to look again, which it then does).
    fn slot(&self) -> Option<u64> {
        loop {
            let epoch = self.epoch.current();
            if self.try_take() {
                return None;
            }
            let mut registered = None;
            let look = Look { epoch, gate: () };
            let sleep = register_then_recheck(
                look,
                &self.epoch,
                || (),
                || {
                    registered = Some(self.wake.register());
                },
            );
            if sleep {
                return registered;
            }
        }
    }

    /// A slot asleep on `registered` with a token it could take and no wake-up after it.
    fn stuck(&self, registered: Option<u64>) -> bool {
        let available = self.tokens.lock().unwrap().0 > 0;
        registered.is_some_and(|r| available && self.wake.register() == r)
    }
}

fn grant_racing_a_slot(wake: bool) {
    loom::model(move || {
        let quota = Arc::new(Quota::new());
        let connector = {
            let quota = Arc::clone(&quota);
            thread::spawn(move || quota.grant(wake))
        };
        let slept_on = quota.slot();
        connector.join().unwrap();
        assert!(!quota.stuck(slept_on), "lost wake-up");
    });
}

/// However the grant interleaves with the slot's look, a slot that sleeps has a wake-up
/// pending once a token is there.
#[test]
fn a_grant_racing_a_slot_that_found_no_token_is_never_lost() {
    grant_racing_a_slot(true);
}

/// The model catches the bug it guards against: a grant that does not wake the held slots
/// leaves one asleep beside a token.
#[test]
#[should_panic(expected = "lost wake-up")]
fn a_grant_that_does_not_wake_leaves_a_slot_asleep() {
    grant_racing_a_slot(false);
}
