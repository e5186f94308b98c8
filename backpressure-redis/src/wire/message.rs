//! Reading what Redis sends back: channel messages and snapshots. Never panics, whatever the
//! bytes.

use redis::Value;

use super::{
    entry_from_parts, number, phase_of, split_member, Keys, Message, Op, Position, ProbeMessage,
    Reject, RemoteEntry, MAX_MESSAGE_LEN, VERSION,
};

/// A pushed pub/sub message of the namespace, decoded.
#[derive(Debug)]
pub(crate) enum Push {
    /// From the events channel.
    Event(Result<Message, Reject>),
    /// From the probe channel: `None` if it is not a probe message this build reads.
    Probe(Option<ProbeMessage>),
}

/// Decodes the data of a pushed pub/sub message: `None` if it came from another channel than
/// the namespace's two.
pub(crate) fn decode_push(data: Vec<Value>, keys: &Keys) -> Option<Push> {
    let mut data = data.into_iter();
    let (Some(from), Some(payload)) = (data.next(), data.next()) else {
        return Some(Push::Event(Err(Reject::Malformed)));
    };
    let Value::BulkString(from) = from else {
        return Some(Push::Event(Err(Reject::Malformed)));
    };
    let payload = match payload {
        Value::BulkString(payload) => Some(payload),
        _ => None,
    };
    if from == keys.channel.as_bytes() {
        let event = payload.map_or(Err(Reject::Malformed), |p| decode(&p));
        Some(Push::Event(event))
    } else if from == keys.probes.as_bytes() {
        Some(Push::Probe(payload.and_then(|p| ProbeMessage::decode(&p))))
    } else {
        None
    }
}

/// Decodes a channel payload (the format is in the module doc of `wire`).
pub(crate) fn decode(payload: &[u8]) -> Result<Message, Reject> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(Reject::Malformed);
    }
    let text = std::str::from_utf8(payload).map_err(|_| Reject::Malformed)?;
    let mut fields = text.split('|');
    let version = fields
        .next()
        .and_then(number::<u32>)
        .ok_or(Reject::Malformed)?;
    let at = position(fields.next(), fields.next());
    if version != VERSION {
        return Err(Reject::UnknownVersion { version, at });
    }
    let at = at.ok_or(Reject::Malformed)?;
    let mut next = || fields.next().ok_or(Reject::Malformed);
    let (op, now, expiry, level) = (next()?, next()?, next()?, next()?);
    let (instance, name, key) = (next()?, next()?, next()?);
    // Whatever follows are extension fields: `phase`, and those of later builds (ignored).
    let phase = phase_of(fields);
    let op = match op {
        "R" => Op::Raise,
        "X" => Op::Retract,
        _ => return Err(Reject::Malformed),
    };
    let now_ms: u64 = number(now).ok_or(Reject::Malformed)?;
    let expiry_ms: u64 = number(expiry).ok_or(Reject::Malformed)?;
    let level: u16 = number(level).ok_or(Reject::Invalid(at))?;
    let entry = entry_from_parts(instance, name, key, (level, phase), now_ms, expiry_ms)
        .ok_or(Reject::Invalid(at))?;
    Ok(Message { at, op, entry })
}

fn position(epoch: Option<&str>, seq: Option<&str>) -> Option<Position> {
    Some(Position {
        epoch: number(epoch?)?,
        seq: number(seq?)?,
    })
}

/// Reads the result of the snapshot script: where in the sequence it was taken, the Redis
/// clock (ms) then, and each entry, or what is wrong with it. `None` if the result is not a
/// snapshot at all.
pub(crate) fn decode_snapshot(
    fields: &[String],
) -> Option<(
    Position,
    u64,
    impl Iterator<Item = Result<RemoteEntry, &'static str>> + '_,
)> {
    let [epoch, seq, now, entries @ ..] = fields else {
        return None;
    };
    let at = position(Some(epoch), Some(seq))?;
    let now_ms: u64 = number(now)?;
    let entries = entries.chunks(3).map(move |chunk| {
        let [member, expiry, level] = chunk else {
            return Err("a truncated snapshot entry");
        };
        snapshot_entry(member, expiry, level, now_ms).ok_or("an invalid snapshot entry")
    });
    Some((at, now_ms, entries))
}

/// One entry of a snapshot: its sorted-set member, score (expiry) and its value in the
/// levels hash (`level[|extension...]`: the phase, and extensions this build ignores).
fn snapshot_entry(member: &str, expiry: &str, value: &str, now_ms: u64) -> Option<RemoteEntry> {
    let (instance, name, key) = split_member(member)?;
    let expiry = expiry
        .parse::<f64>()
        .ok()
        .filter(|e| e.is_finite() && *e >= 0.0)?;
    let mut value = value.split('|');
    let level = value.next().and_then(number::<u16>)?;
    let phase = phase_of(value);
    entry_from_parts(instance, name, key, (level, phase), now_ms, expiry as u64)
}

/// Encodes a message the way the scripts do (tests use it to publish by hand).
#[cfg(test)]
pub(crate) fn encode(message: &Message) -> String {
    let e = &message.entry;
    format!(
        "{VERSION}|{}|{}|{}|{}|{}|{}|{}|{}|{}{}",
        message.at.epoch,
        message.at.seq,
        match message.op {
            Op::Raise => "R",
            Op::Retract => "X",
        },
        e.now_ms,
        e.expiry_ms,
        e.level,
        e.instance,
        e.name,
        e.key.as_deref().unwrap_or(""),
        super::phase_extension(e.phase),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use backpressure::Phase;

    use super::*;

    const AT: Position = Position { epoch: 9, seq: 5 };

    fn message() -> Message {
        Message {
            at: Position { epoch: 42, seq: 7 },
            op: Op::Raise,
            entry: RemoteEntry {
                instance: "a-1".into(),
                name: "backpressure.smtp".into(),
                key: Some("w/1".into()),
                level: 250,
                phase: None,
                now_ms: 1_700_000_000_000,
                expiry_ms: 1_700_000_015_000,
            },
        }
    }

    #[test]
    fn round_trip() {
        let message = message();
        assert_eq!(decode(encode(&message).as_bytes()), Ok(message.clone()));
        assert_eq!(
            message.entry.remaining(),
            Some(Duration::from_millis(15_000))
        );
    }

    #[test]
    fn extension_fields_of_this_version_are_ignored() {
        let message = message();
        let extended = format!("{}|future=x=y|", encode(&message));
        assert_eq!(decode(extended.as_bytes()), Ok(message));
    }

    #[test]
    fn the_phase_travels_as_an_extension() {
        let mut message = message();
        for phase in [Some(Phase::Open), Some(Phase::HalfOpen), None] {
            message.entry.phase = phase;
            assert_eq!(decode(encode(&message).as_bytes()), Ok(message.clone()));
        }
        // A phase this build does not know holds, like an open verdict.
        message.entry.phase = None;
        let later = format!("{}|phase=quarter_open", encode(&message));
        let read = decode(later.as_bytes()).map(|m| m.entry.phase);
        assert_eq!(read, Ok(Some(Phase::Open)));
    }

    #[test]
    fn other_versions_are_placed_in_the_sequence_but_not_read() {
        assert_eq!(
            decode(b"3|9|5|anything at all"),
            Err(Reject::UnknownVersion {
                version: 3,
                at: Some(AT)
            })
        );
        // The development format had no epoch: its sequence cannot be placed.
        assert_eq!(
            decode(b"1|5|R|1|2|0|a|b|"),
            Err(Reject::UnknownVersion {
                version: 1,
                at: None
            })
        );
        assert_eq!(
            decode(b"7"),
            Err(Reject::UnknownVersion {
                version: 7,
                at: None
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"|||||||||",
            b"x|9|5|R|1|2|0|a|b|",
            b"+2|9|5|R|1|2|0|a|b|",
            b"2|9|x|R|1|2|0|a|b|",
            b"2|x|5|R|1|2|0|a|b|",
            b"2|9|5|Q|1|2|0|a|b|",
            b"2|9|5|R|1|2|0|a|b",
            b"\xff\xfe",
            b"2|9|18446744073709551616|R|1|2|0|a|b|",
            b"99999999999|9|5|R|1|2|0|a|b|",
        ];
        for case in cases {
            assert_eq!(decode(case), Err(Reject::Malformed), "{case:?}");
        }
        assert_eq!(
            decode(b"2|9|5|R|1|2|0|a|bad name|"),
            Err(Reject::Invalid(AT))
        );
        assert_eq!(decode(b"2|9|5|R|1|2|1001|a|b|"), Err(Reject::Invalid(AT)));
        assert_eq!(decode(b"2|9|5|R|1|2|0|a/b|n|"), Err(Reject::Invalid(AT)));
        assert_eq!(decode(&vec![b'2'; 4096]), Err(Reject::Malformed));
    }

    #[test]
    fn snapshots_decode_entry_by_entry() {
        let fields: Vec<String> = [
            "9",
            "7",
            "1000",
            "a|n|k",
            "3000",
            "250|phase=half_open",
            "a|bad name|",
            "3000",
            "0",
        ]
        .into_iter()
        .chain(["b|n|"])
        .map(String::from)
        .collect();
        let (at, _, entries) = decode_snapshot(&fields).unwrap();
        let entries: Vec<_> = entries.collect();
        assert_eq!(at, Position { epoch: 9, seq: 7 });
        let Ok(first) = &entries[0] else {
            panic!("{entries:?}");
        };
        assert_eq!((&*first.instance, &*first.name), ("a", "n"));
        assert_eq!((first.key.as_deref(), first.level), (Some("k"), 250));
        assert_eq!(first.phase, Some(Phase::HalfOpen));
        assert_eq!(first.remaining(), Some(Duration::from_secs(2)));
        assert_eq!(entries[1], Err("an invalid snapshot entry"));
        assert_eq!(entries[2], Err("a truncated snapshot entry"));
        assert_eq!(entries.len(), 3);
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(decode_snapshot(&strings(&["9", "junk", "1"])).is_none());
        assert!(decode_snapshot(&strings(&["junk", "1", "1"])).is_none());
        assert!(decode_snapshot(&strings(&["9", "1"])).is_none());
    }

    /// The position of an event push, or what is wrong with it.
    fn event_at(push: Option<Push>) -> Option<Result<(Position, Op), Reject>> {
        match push? {
            Push::Event(event) => Some(event.map(|m| (m.at, m.op))),
            Push::Probe(_) => panic!("an event read as a probe message"),
        }
    }

    #[test]
    fn pushes_decode_only_from_the_namespace_channels() {
        let keys = Keys::new("ns");
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let payload = "2|9|5|X|1|0|0|a|n|";
        assert!(decode_push(vec![bulk("other"), bulk(payload)], &keys).is_none());
        let message = decode_push(vec![bulk(&keys.channel), bulk(payload)], &keys);
        assert_eq!(event_at(message), Some(Ok((AT, Op::Retract))));
        let malformed = Some(Err(Reject::Malformed));
        assert_eq!(
            event_at(decode_push(vec![bulk(&keys.channel)], &keys)),
            malformed
        );
        let int = vec![bulk(&keys.channel), Value::Int(1)];
        assert_eq!(event_at(decode_push(int, &keys)), malformed);
        let probe = decode_push(vec![bulk(&keys.probes), bulk("2|A|a|*|n||0|0|0|0")], &keys);
        assert!(matches!(probe, Some(Push::Probe(Some(_)))), "{probe:?}");
        let junk = decode_push(vec![bulk(&keys.probes), bulk(payload)], &keys);
        assert!(matches!(junk, Some(Push::Probe(None))), "{junk:?}");
    }
}
