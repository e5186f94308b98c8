//! Probes across processes (DESIGN §6, "Probes and other verdicts"): a half-open verdict
//! never waits for its owner's traffic alone.
//!
//! * **Asking** ([`Asking`]): a verdict mirrored here in half-open carries an [`Asking`] as
//!   its probe source. When a held worker looks for a probe, it asks the verdict's owner (one
//!   claim in flight per verdict); a grant wakes the held workers, one of which takes it and
//!   reports the outcome (or gives it back) to the owner.
//! * **Lending** ([`Lender`]): the owner claims a probe of its own verdict for the asking
//!   process ([`Sink::claim_probe`]), so the breaker's own count is the fleet's: at most
//!   `probes` items start across every process. It holds the ticket until the outcome comes
//!   back. A probe that comes back unused is announced to every process, so those that were
//!   denied ask again.
//!
//! The messages are in `wire/probe.rs`; the task publishes what [`Asking`] sends through its
//! channel and hands each received message to the side it is for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use backpressure::connector::{ProbeSource, ProbeTicket};
use backpressure::Sink;
use tokio::sync::mpsc;

/// A verdict's (name, key) as its owner raised it.
type VerdictId = (Arc<str>, Option<Arc<str>>);
use crate::wire::{ProbeMessage, ProbeOp};

/// Where [`Asking`] sends its messages for the task to publish.
pub(super) type Outbox = mpsc::UnboundedSender<ProbeMessage>;

/// The probe source of a verdict mirrored from another process: asks its owner.
#[derive(Debug)]
pub(super) struct Asking {
    /// The verdict as its owner raised it.
    owner: Arc<str>,
    name: Arc<str>,
    key: Option<Arc<str>>,
    me: Arc<str>,
    outbox: Outbox,
    state: Mutex<AskState>,
}

#[derive(Debug, Default)]
struct AskState {
    /// Loans granted and not yet taken by a held worker.
    granted: Vec<u64>,
    /// The claim in flight, if any.
    asked: Option<u64>,
    /// The owner had no probe left; ask again only once one comes back.
    denied: bool,
    /// Renewals of the verdict seen since the claim was sent or denied: at
    /// [`RENEWALS_TO_ASK_AGAIN`] its answer, or the announcement that a probe came back,
    /// counts as lost.
    renewals: u8,
    next_request: u64,
}

/// After this many renewals of the verdict (each lease / 3) without an answer to a claim, or
/// since a denial, a held worker asks again: a message lost with the link (the owner
/// reconnecting, say) costs at most two renewal periods, never the whole half-open period.
const RENEWALS_TO_ASK_AGAIN: u8 = 2;

impl Asking {
    pub(super) fn new(
        owner: Arc<str>,
        id: (Arc<str>, Option<Arc<str>>),
        me: Arc<str>,
        outbox: Outbox,
    ) -> Self {
        Self {
            owner,
            name: id.0,
            key: id.1,
            me,
            outbox,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, AskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, op: ProbeOp, request: u64, loan: u64) {
        // The task is gone only when the bridge is: nothing is left to ask.
        let _ = self.outbox.send(ProbeMessage {
            op,
            from: Arc::clone(&self.me),
            to: Some(Arc::clone(&self.owner)),
            name: Arc::clone(&self.name),
            key: self.key.clone(),
            request,
            loan,
        });
    }

    /// The owner granted `loan` for `request`: `false` if that is not the claim in flight
    /// (the caller gives the loan back).
    pub(super) fn granted(&self, request: u64, loan: u64) -> bool {
        let mut state = self.state();
        if state.asked != Some(request) {
            return false;
        }
        state.asked = None;
        state.granted.push(loan);
        state.renewals = 0;
        true
    }

    /// The owner denied `request`.
    pub(super) fn denied(&self, request: u64) {
        let mut state = self.state();
        if state.asked == Some(request) {
            state.asked = None;
            state.denied = true;
            state.renewals = 0;
        }
    }

    /// A probe came back at the owner, or the link was resynced: ask again at the next look.
    /// Returns whether a held worker should look now.
    pub(super) fn may_ask_again(&self) -> bool {
        let mut state = self.state();
        let was_waiting = state.denied || state.asked.is_some();
        state.denied = false;
        state.asked = None;
        state.renewals = 0;
        was_waiting
    }

    /// The owner renewed the verdict (still half-open). A claim unanswered, or a denial not
    /// lifted, for [`RENEWALS_TO_ASK_AGAIN`] renewals is taken as lost: returns whether a
    /// held worker should look (and ask) again now.
    ///
    /// A grant no held worker took for as long goes back to the owner: a worker held by
    /// several other processes' verdicts that got one of them and not another must not keep
    /// it from the rest of the fleet.
    pub(super) fn renewed(&self) -> bool {
        let mut state = self.state();
        if !state.granted.is_empty() {
            state.renewals += 1;
            if state.renewals >= RENEWALS_TO_ASK_AGAIN {
                state.renewals = 0;
                let unused = std::mem::take(&mut state.granted);
                drop(state);
                for loan in unused {
                    self.send(ProbeOp::GiveBack, 0, loan);
                }
            }
            return false;
        }
        if state.asked.is_none() && !state.denied {
            return false;
        }
        state.renewals += 1;
        if state.renewals < RENEWALS_TO_ASK_AGAIN {
            return false;
        }
        drop(state);
        self.may_ask_again()
    }
}

impl ProbeSource for Asking {
    fn available(&self) -> bool {
        let mut state = self.state();
        if !state.granted.is_empty() {
            return true;
        }
        if state.asked.is_none() && !state.denied {
            state.next_request += 1;
            let request = state.next_request;
            state.asked = Some(request);
            state.renewals = 0;
            drop(state);
            self.send(ProbeOp::Claim, request, 0);
        }
        false
    }

    fn claim(&self) -> Option<u64> {
        self.state().granted.pop()
    }

    fn finished(&self, loan: u64, failed: bool, elapsed: Duration) {
        self.send(ProbeOp::Finished { failed, elapsed }, 0, loan);
    }

    fn give_back(&self, loan: u64) {
        self.send(ProbeOp::GiveBack, 0, loan);
    }

    fn is_remote(&self) -> bool {
        true
    }
}

impl Drop for Asking {
    fn drop(&mut self) {
        // The mirror is gone or changed phase: loans nobody took go back to the owner.
        for loan in std::mem::take(&mut self.state().granted) {
            self.send(ProbeOp::GiveBack, 0, loan);
        }
    }
}

/// The probes of this process's verdicts lent to other processes, by (holder, loan).
#[derive(Debug)]
pub(super) struct Lender {
    sink: Sink,
    me: Arc<str>,
    loans: HashMap<(Arc<str>, u64), (VerdictId, ProbeTicket)>,
    next_loan: u64,
}

impl Lender {
    pub(super) fn new(sink: Sink, me: Arc<str>) -> Self {
        Self {
            sink,
            me,
            loans: HashMap::new(),
            next_loan: 0,
        }
    }

    /// A message from the lender to one process.
    fn reply(&self, to: &ProbeMessage, op: ProbeOp, loan: u64) -> ProbeMessage {
        ProbeMessage {
            op,
            from: Arc::clone(&self.me),
            to: Some(Arc::clone(&to.from)),
            name: Arc::clone(&to.name),
            key: to.key.clone(),
            request: to.request,
            loan,
        }
    }

    /// A claim on the own verdict `claim.(name, key)`: the grant or the denial to send.
    /// `own` says whether the entry is this process's own (not a mirror of a third one's).
    pub(super) fn claim(&mut self, claim: &ProbeMessage, own: bool) -> ProbeMessage {
        let ticket = own
            .then(|| self.sink.claim_probe(&claim.name, claim.key.as_deref()))
            .flatten();
        let Some(ticket) = ticket else {
            return self.reply(claim, ProbeOp::Deny, 0);
        };
        self.next_loan += 1;
        let id: VerdictId = (Arc::clone(&claim.name), claim.key.clone());
        let key = (Arc::clone(&claim.from), self.next_loan);
        self.loans.insert(key, (id, ticket));
        self.reply(claim, ProbeOp::Grant, self.next_loan)
    }

    /// A holder reported a loan: finished, or given back (`None`).
    pub(super) fn settle(&mut self, from: &Arc<str>, loan: u64, outcome: Option<(bool, Duration)>) {
        let Some((_, ticket)) = self.loans.remove(&(Arc::clone(from), loan)) else {
            return; // Already settled, pruned, or forged.
        };
        match outcome {
            Some((failed, elapsed)) => ticket.finish(failed, elapsed),
            None => drop(ticket), // Gives the probe back; the sink emits `ProbeReturned`.
        }
    }

    /// Drops the loans of verdicts no longer half-open here: their tickets are of an ended
    /// half-open period, and their breakers have moved on.
    pub(super) fn prune(&mut self, half_open: impl Fn(&VerdictId) -> bool) {
        self.loans.retain(|_, (id, _)| half_open(id));
    }

    /// The announcement that a probe of the own verdict `id` came back.
    pub(super) fn returned(&self, id: VerdictId) -> ProbeMessage {
        ProbeMessage {
            op: ProbeOp::Available,
            from: Arc::clone(&self.me),
            to: None,
            name: id.0,
            key: id.1,
            request: 0,
            loan: 0,
        }
    }
}
