//! Probe messages: how a process held by another process's half-open verdict asks the
//! verdict's owner for a probe, and reports it (the probe channel, `bp:{ns}:probes`).
//!
//! ```text
//! 2|<op>|<from instance>|<to instance or *>|<name>|<key or empty>|<request>|<loan>|<failed 0/1>|<elapsed ms>[|<extension>...]
//! ```
//!
//! | op | sent by | means                                                                 |
//! |----|---------|-----------------------------------------------------------------------|
//! | `C` | holder | claim one probe of the owner's verdict `(name, key)`; `request` names the claim |
//! | `G` | owner  | granted: the probe is `loan` (answering `request`)                    |
//! | `D` | owner  | denied: no probe left (answering `request`)                           |
//! | `F` | holder | the probe `loan` finished: `failed`, after `elapsed`                  |
//! | `B` | holder | the probe `loan` is given back unused                                 |
//! | `A` | owner  | to `*`: a probe of `(name, key)` came back; who was denied may ask again |
//!
//! Unused numeric fields are `0`. The channel is not sequenced: a lost message costs at most
//! a probe, for a bounded time (a claim never answered, or a denial never lifted, is asked
//! again after two renewals of the verdict; a grant that cannot be sent goes back at once; a
//! loan never settled is ended by the owner breaker's `probe_timeout`).

use std::sync::Arc;
use std::time::Duration;

use backpressure::validate_name;

use super::{number, valid_instance, MAX_MESSAGE_LEN, VERSION};

/// What a probe message does (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeOp {
    Claim,
    Grant,
    Deny,
    Finished { failed: bool, elapsed: Duration },
    GiveBack,
    Available,
}

/// One probe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeMessage {
    pub(crate) op: ProbeOp,
    pub(crate) from: Arc<str>,
    /// An instance, or `None` for every instance (`*`).
    pub(crate) to: Option<Arc<str>>,
    /// The verdict's name and key as its owner raised them.
    pub(crate) name: Arc<str>,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) request: u64,
    pub(crate) loan: u64,
}

impl ProbeMessage {
    /// The payload to publish.
    pub(crate) fn encode(&self) -> String {
        let (op, failed, elapsed) = match self.op {
            ProbeOp::Claim => ("C", false, 0),
            ProbeOp::Grant => ("G", false, 0),
            ProbeOp::Deny => ("D", false, 0),
            ProbeOp::Finished { failed, elapsed } => ("F", failed, elapsed.as_millis()),
            ProbeOp::GiveBack => ("B", false, 0),
            ProbeOp::Available => ("A", false, 0),
        };
        format!(
            "{VERSION}|{op}|{}|{}|{}|{}|{}|{}|{}|{elapsed}",
            self.from,
            self.to.as_deref().unwrap_or("*"),
            self.name,
            self.key.as_deref().unwrap_or(""),
            self.request,
            self.loan,
            u8::from(failed),
        )
    }

    /// Reads a payload; `None` for anything that is not a probe message of this version with
    /// valid names (never panics).
    pub(crate) fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() > MAX_MESSAGE_LEN {
            return None;
        }
        let text = std::str::from_utf8(payload).ok()?;
        let mut fields = text.split('|');
        let mut next = || fields.next();
        if number::<u32>(next()?)? != VERSION {
            return None;
        }
        let (op, from, to, name, key) = (next()?, next()?, next()?, next()?, next()?);
        let (request, loan) = (number(next()?)?, number(next()?)?);
        let (failed, elapsed) = (next()?, number::<u64>(next()?)?);
        // Trailing fields are extensions of later builds of this version: ignored.
        let op = match (op, failed) {
            ("C", _) => ProbeOp::Claim,
            ("G", _) => ProbeOp::Grant,
            ("D", _) => ProbeOp::Deny,
            ("F", "0" | "1") => ProbeOp::Finished {
                failed: failed == "1",
                elapsed: Duration::from_millis(elapsed),
            },
            ("B", _) => ProbeOp::GiveBack,
            ("A", _) => ProbeOp::Available,
            _ => return None,
        };
        let to = match to {
            "*" => None,
            to if valid_instance(to) => Some(to.into()),
            _ => return None,
        };
        let key = match key {
            "" => None,
            key => Some(validate_name(key).ok().map(|()| Arc::from(key))?),
        };
        validate_name(name).ok()?;
        Some(Self {
            op,
            from: valid_instance(from).then(|| Arc::from(from))?,
            to,
            name: name.into(),
            key,
            request,
            loan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(op: ProbeOp) -> ProbeMessage {
        ProbeMessage {
            op,
            from: "b-2".into(),
            to: Some("a-1".into()),
            name: "backpressure.smtp".into(),
            key: Some("mailer".into()),
            request: 7,
            loan: 3,
        }
    }

    #[test]
    fn every_op_round_trips() {
        let finished = ProbeOp::Finished {
            failed: true,
            elapsed: Duration::from_millis(1500),
        };
        for op in [
            ProbeOp::Claim,
            ProbeOp::Grant,
            ProbeOp::Deny,
            finished,
            ProbeOp::GiveBack,
            ProbeOp::Available,
        ] {
            let m = message(op);
            assert_eq!(ProbeMessage::decode(m.encode().as_bytes()), Some(m));
        }
        let everyone = ProbeMessage {
            to: None,
            key: None,
            ..message(ProbeOp::Available)
        };
        assert_eq!(everyone.encode(), "2|A|b-2|*|backpressure.smtp||7|3|0|0");
        assert_eq!(
            ProbeMessage::decode(everyone.encode().as_bytes()),
            Some(everyone)
        );
    }

    #[test]
    fn extensions_are_ignored_and_garbage_is_refused() {
        let m = message(ProbeOp::Claim);
        let extended = format!("{}|later=1", m.encode());
        assert_eq!(ProbeMessage::decode(extended.as_bytes()), Some(m));
        for junk in [
            &b""[..],
            b"3|C|b|a|n||1|1|0|0",
            b"2|Q|b|a|n||1|1|0|0",
            b"2|C|b/x|a|n||1|1|0|0",
            b"2|C|b|a|bad name||1|1|0|0",
            b"2|C|b|a|n||-1|1|0|0",
            b"2|F|b|a|n||1|1|2|0",
            b"2|C|b|a|n||1|1|0",
            b"\xff",
        ] {
            assert_eq!(ProbeMessage::decode(junk), None, "{junk:?}");
        }
        assert_eq!(ProbeMessage::decode(&vec![b'2'; 4096]), None);
    }
}
