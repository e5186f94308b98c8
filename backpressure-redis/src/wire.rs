//! What travels through Redis: key names, the channel message format and the Lua scripts.
//!
//! Everything lives under one hash tag `{ns}` so that a Redis Cluster keeps it on one slot:
//!
//! | key                     | type       | content                                              |
//! |-------------------------|------------|------------------------------------------------------|
//! | `bp:{ns}:entries`       | sorted set | member `instance\|name\|key`, score = expiry (ms, Redis `TIME`) |
//! | `bp:{ns}:levels`        | hash       | member → level in per-mille (0 = full stop)          |
//! | `bp:{ns}:seq`           | string     | sequence counter, incremented once per message       |
//! | `bp:{ns}:events`        | channel    | one message per change, carrying its sequence number |
//!
//! A channel message is one line of nine `|`-separated fields (`|` cannot occur in names):
//!
//! ```text
//! 1|<seq>|<R or X>|<redis now ms>|<expiry ms>|<level per-mille>|<instance>|<name>|<key or empty>
//! ```
//!
//! `R` raises or renews an entry until `expiry`, `X` retracts it. The receiver turns
//! `expiry - now` (both from the Redis clock) into a local TTL, so every process lets an entry
//! expire at the same moment of the Redis clock, whatever its own clock says.
//!
//! [`Remote`] runs the scripts: it is the only code that knows which keys and arguments each
//! one takes.

use std::sync::Arc;
use std::time::Duration;

use backpressure::validate_name;
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script, ScriptInvocation, Value};

/// The message format version this crate writes and reads.
pub(crate) const VERSION: &str = "1";

/// Longer messages are garbage: every field is bounded (names and keys at most 256 bytes).
pub(crate) const MAX_MESSAGE_LEN: usize = 2048;

/// The highest level (per-mille): 1000 = no throttling at all.
pub(crate) const MAX_LEVEL: u16 = 1000;

/// The Redis key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) entries: String,
    pub(crate) levels: String,
    pub(crate) seq: String,
    pub(crate) channel: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            entries: format!("bp:{{{namespace}}}:entries"),
            levels: format!("bp:{{{namespace}}}:levels"),
            seq: format!("bp:{{{namespace}}}:seq"),
            channel: format!("bp:{{{namespace}}}:events"),
        }
    }
}

/// What a message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Raise or renew until `expiry_ms`.
    Raise,
    /// Retract.
    Retract,
}

/// One decoded channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) seq: u64,
    pub(crate) op: Op,
    pub(crate) entry: RemoteEntry,
}

/// One entry as stored in Redis, with the Redis clock at the time it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteEntry {
    pub(crate) instance: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) key: Option<Arc<str>>,
    /// Per-mille, `0..=1000`; 0 = full stop.
    pub(crate) level: u16,
    pub(crate) now_ms: u64,
    pub(crate) expiry_ms: u64,
}

impl RemoteEntry {
    /// The time left on the Redis clock; `None` if already expired.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.expiry_ms
            .checked_sub(self.now_ms)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }
}

/// Why a message or entry was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a message of this format at all: ignored without touching the sequence.
    Malformed,
    /// Well-formed, in sequence, but carries an invalid name, key, instance or level.
    Invalid(u64),
}

/// Decodes the data of a pushed pub/sub message: `None` if it came from another channel than
/// `channel`. Never panics, whatever the data.
pub(crate) fn decode_push(data: Vec<Value>, channel: &str) -> Option<Result<Message, Reject>> {
    let mut data = data.into_iter();
    let (Some(from), Some(payload)) = (data.next(), data.next()) else {
        return Some(Err(Reject::Malformed));
    };
    if !matches!(&from, Value::BulkString(c) if *c == channel.as_bytes()) {
        return None;
    }
    let Value::BulkString(payload) = payload else {
        return Some(Err(Reject::Malformed));
    };
    Some(decode(&payload))
}

/// Decodes a channel payload. Never panics, whatever the bytes.
pub(crate) fn decode(payload: &[u8]) -> Result<Message, Reject> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(Reject::Malformed);
    }
    let text = std::str::from_utf8(payload).map_err(|_| Reject::Malformed)?;
    let mut fields = text.split('|');
    let mut next = || fields.next().ok_or(Reject::Malformed);
    let version = next()?;
    let seq = next()?;
    let op = next()?;
    let now = next()?;
    let expiry = next()?;
    let level = next()?;
    let instance = next()?;
    let name = next()?;
    let key = next()?;
    if next().is_ok() || version != VERSION {
        return Err(Reject::Malformed);
    }
    let seq: u64 = seq.parse().map_err(|_| Reject::Malformed)?;
    let op = match op {
        "R" => Op::Raise,
        "X" => Op::Retract,
        _ => return Err(Reject::Malformed),
    };
    let now_ms: u64 = now.parse().map_err(|_| Reject::Malformed)?;
    let expiry_ms: u64 = expiry.parse().map_err(|_| Reject::Malformed)?;
    let level: u16 = level.parse().map_err(|_| Reject::Invalid(seq))?;
    let entry = entry_from_parts(instance, name, key, level, now_ms, expiry_ms)
        .ok_or(Reject::Invalid(seq))?;
    Ok(Message { seq, op, entry })
}

/// Validates the parts of an entry (from a message or a snapshot).
pub(crate) fn entry_from_parts(
    instance: &str,
    name: &str,
    key: &str,
    level: u16,
    now_ms: u64,
    expiry_ms: u64,
) -> Option<RemoteEntry> {
    if level > MAX_LEVEL || !valid_instance(instance) || validate_name(name).is_err() {
        return None;
    }
    let key = if key.is_empty() {
        None
    } else {
        validate_name(key).ok()?;
        Some(Arc::from(key))
    };
    Some(RemoteEntry {
        instance: instance.into(),
        name: name.into(),
        key,
        level,
        now_ms,
        expiry_ms,
    })
}

/// Reads the result of the snapshot script: the sequence number it was taken at, and each
/// entry, or what is wrong with it. `None` if the result is not a snapshot at all.
pub(crate) fn decode_snapshot(
    fields: &[String],
) -> Option<(
    u64,
    impl Iterator<Item = Result<RemoteEntry, &'static str>> + '_,
)> {
    let [seq, now, entries @ ..] = fields else {
        return None;
    };
    let (Ok(seq), Ok(now_ms)) = (seq.parse::<u64>(), now.parse::<u64>()) else {
        return None;
    };
    let entries = entries.chunks(3).map(move |chunk| {
        let [member, expiry, level] = chunk else {
            return Err("a truncated snapshot entry");
        };
        snapshot_entry(member, expiry, level, now_ms).ok_or("an invalid snapshot entry")
    });
    Some((seq, entries))
}

/// One entry of a snapshot: its sorted-set member, score (expiry) and level.
fn snapshot_entry(member: &str, expiry: &str, level: &str, now_ms: u64) -> Option<RemoteEntry> {
    let (instance, name, key) = split_member(member)?;
    let expiry = expiry
        .parse::<f64>()
        .ok()
        .filter(|e| e.is_finite() && *e >= 0.0)?;
    let level = level.parse::<u16>().ok()?;
    entry_from_parts(instance, name, key, level, now_ms, expiry as u64)
}

/// Splits a sorted-set member `instance|name|key`.
pub(crate) fn split_member(member: &str) -> Option<(&str, &str, &str)> {
    let mut parts = member.splitn(3, '|');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// An instance id is a valid signal name without `/` (it prefixes mirrored keys).
pub(crate) fn valid_instance(instance: &str) -> bool {
    validate_name(instance).is_ok() && !instance.contains('/')
}

/// The local key under which a remote entry is mirrored: `instance/key`, or `instance`.
pub(crate) fn mirror_key(instance: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{instance}/{key}"),
        None => instance.to_owned(),
    }
}

/// The instance part of a local key (`instance/key` or `instance`).
pub(crate) fn key_instance(key: &str) -> &str {
    key.split_once('/').map_or(key, |(instance, _)| instance)
}

/// Shared Lua helpers, prepended to every script.
///
/// KEYS[1] = entries, KEYS[2] = levels, KEYS[3] = seq; ARGV[1] = channel.
const PRELUDE: &str = r#"
local function fmt(n) return string.format('%.0f', n) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
for i = 1, #dead do redis.call('HDEL', KEYS[2], dead[i]) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now)) end
local function publish(kind, expiry, level, member)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[1], '1|' .. seq .. '|' .. kind .. '|' .. fmt(now) .. '|'
    .. fmt(expiry) .. '|' .. level .. '|' .. member)
  return seq
end
"#;

/// Raises or renews this instance's entries.
///
/// ARGV: channel, instance, full (1 = the list is every entry of the instance: remove the
/// others), then groups of name, key, level, ttl_ms.
const SYNC_BODY: &str = r#"
local instance = ARGV[2]
local prefix = instance .. '|'
local wanted = {}
for i = 4, #ARGV, 4 do
  local member = prefix .. ARGV[i] .. '|' .. ARGV[i + 1]
  wanted[member] = true
  local expiry = now + tonumber(ARGV[i + 3])
  redis.call('ZADD', KEYS[1], fmt(expiry), member)
  redis.call('HSET', KEYS[2], member, ARGV[i + 2])
  publish('R', expiry, ARGV[i + 2], member)
end
if ARGV[3] == '1' then
  local all = redis.call('ZRANGE', KEYS[1], 0, -1)
  for i = 1, #all do
    local member = all[i]
    if string.sub(member, 1, #prefix) == prefix and not wanted[member] then
      redis.call('ZREM', KEYS[1], member)
      redis.call('HDEL', KEYS[2], member)
      publish('X', 0, 0, member)
    end
  end
end
return redis.call('GET', KEYS[3])
"#;

/// Retracts entries of this instance. ARGV: channel, instance, then pairs of name, key.
const RETRACT_BODY: &str = r#"
local prefix = ARGV[2] .. '|'
for i = 3, #ARGV, 2 do
  local member = prefix .. ARGV[i] .. '|' .. ARGV[i + 1]
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  publish('X', 0, 0, member)
end
return redis.call('GET', KEYS[3])
"#;

/// Returns {seq, now, member1, expiry1, level1, ...} of the live entries.
const SNAPSHOT_BODY: &str = r#"
local seq = redis.call('GET', KEYS[3]) or '0'
local out = {seq, fmt(now)}
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  out[#out + 1] = all[i]
  out[#out + 1] = all[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], all[i]) or '0'
end
return out
"#;

/// One entry as [`Remote::sync`] raises or renews it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease<'a> {
    pub(crate) name: &'a str,
    pub(crate) key: Option<&'a str>,
    /// Per-mille, `0..=1000`.
    pub(crate) level: u16,
    /// How long Redis keeps it (at least 1 ms).
    pub(crate) ttl_ms: u64,
}

/// A namespace in Redis: its keys, the three scripts (compiled once per bridge) and the
/// connection they run on.
pub(crate) struct Remote {
    keys: Keys,
    sync: Script,
    retract: Script,
    snapshot: Script,
    conn: ConnectionManager,
}

impl Remote {
    pub(crate) fn new(keys: Keys, conn: ConnectionManager) -> Self {
        Self {
            keys,
            sync: Script::new(&format!("{PRELUDE}{SYNC_BODY}")),
            retract: Script::new(&format!("{PRELUDE}{RETRACT_BODY}")),
            snapshot: Script::new(&format!("{PRELUDE}{SNAPSHOT_BODY}")),
            conn,
        }
    }

    /// The namespace's pub/sub channel.
    pub(crate) fn channel(&self) -> &str {
        &self.keys.channel
    }

    /// The keys and first argument every script takes (see `PRELUDE`).
    fn invocation<'a>(keys: &Keys, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.entries)
            .key(&keys.levels)
            .key(&keys.seq)
            .arg(&keys.channel);
        invocation
    }

    /// Subscribes to the channel (its confirmation arrives as a push).
    pub(crate) async fn subscribe(&mut self) -> RedisResult<()> {
        self.conn.subscribe(&self.keys.channel).await
    }

    /// Checks that Redis answers, then subscribes to the channel again.
    pub(crate) async fn resubscribe(&mut self) -> RedisResult<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn).await?;
        self.subscribe().await
    }

    /// Raises or renews `leases` of `instance`; `full` also removes every other entry of
    /// `instance`.
    pub(crate) async fn sync(
        &mut self,
        instance: &str,
        full: bool,
        leases: &[Lease<'_>],
    ) -> RedisResult<()> {
        let mut invocation = Self::invocation(&self.keys, &self.sync);
        invocation.arg(instance).arg(if full { "1" } else { "0" });
        for lease in leases {
            invocation
                .arg(lease.name)
                .arg(lease.key.unwrap_or(""))
                .arg(lease.level)
                .arg(lease.ttl_ms);
        }
        let _: Option<String> = invocation.invoke_async(&mut self.conn).await?;
        Ok(())
    }

    /// Retracts the (name, key) `entries` of `instance`.
    pub(crate) async fn retract<'a>(
        &mut self,
        instance: &str,
        entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> RedisResult<()> {
        let mut invocation = Self::invocation(&self.keys, &self.retract);
        invocation.arg(instance);
        for (name, key) in entries {
            invocation.arg(name).arg(key.unwrap_or(""));
        }
        let _: Option<String> = invocation.invoke_async(&mut self.conn).await?;
        Ok(())
    }

    /// The live entries with the sequence number they were read at, for [`decode_snapshot`].
    pub(crate) async fn snapshot(&mut self) -> RedisResult<Vec<String>> {
        Self::invocation(&self.keys, &self.snapshot)
            .invoke_async(&mut self.conn)
            .await
    }
}

/// Encodes a message the way the scripts do (tests use it to publish by hand).
#[cfg(test)]
pub(crate) fn encode(message: &Message) -> String {
    let e = &message.entry;
    format!(
        "1|{}|{}|{}|{}|{}|{}|{}|{}",
        message.seq,
        match message.op {
            Op::Raise => "R",
            Op::Retract => "X",
        },
        e.now_ms,
        e.expiry_ms,
        e.level,
        e.instance,
        e.name,
        e.key.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let message = Message {
            seq: 7,
            op: Op::Raise,
            entry: RemoteEntry {
                instance: "a-1".into(),
                name: "backpressure.smtp".into(),
                key: Some("w/1".into()),
                level: 250,
                now_ms: 1_700_000_000_000,
                expiry_ms: 1_700_000_015_000,
            },
        };
        assert_eq!(decode(encode(&message).as_bytes()), Ok(message.clone()));
        assert_eq!(
            message.entry.remaining(),
            Some(Duration::from_millis(15_000))
        );
    }

    #[test]
    fn garbage_never_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"|||||||||",
            b"1|x|R|1|2|0|a|b|",
            b"1|1|Q|1|2|0|a|b|",
            b"2|1|R|1|2|0|a|b|",
            b"1|1|R|1|2|0|a|b|c|d",
            b"\xff\xfe",
            b"1|18446744073709551616|R|1|2|0|a|b|",
        ];
        for case in cases {
            assert_eq!(decode(case), Err(Reject::Malformed), "{case:?}");
        }
        assert_eq!(decode(b"1|5|R|1|2|0|a|bad name|"), Err(Reject::Invalid(5)));
        assert_eq!(decode(b"1|5|R|1|2|1001|a|b|"), Err(Reject::Invalid(5)));
        assert_eq!(decode(b"1|5|R|1|2|0|a/b|n|"), Err(Reject::Invalid(5)));
        assert_eq!(decode(&vec![b'1'; 4096]), Err(Reject::Malformed));
    }

    #[test]
    fn snapshots_decode_entry_by_entry() {
        let fields: Vec<String> = [
            "7",
            "1000",
            "a|n|k",
            "3000",
            "250",
            "a|bad name|",
            "3000",
            "0",
        ]
        .into_iter()
        .chain(["b|n|"])
        .map(String::from)
        .collect();
        let (seq, entries) = decode_snapshot(&fields).unwrap();
        let entries: Vec<_> = entries.collect();
        assert_eq!(seq, 7);
        let Ok(first) = &entries[0] else {
            panic!("{entries:?}");
        };
        assert_eq!((&*first.instance, &*first.name), ("a", "n"));
        assert_eq!((first.key.as_deref(), first.level), (Some("k"), 250));
        assert_eq!(first.remaining(), Some(Duration::from_secs(2)));
        assert_eq!(entries[1], Err("an invalid snapshot entry"));
        assert_eq!(entries[2], Err("a truncated snapshot entry"));
        assert_eq!(entries.len(), 3);
        assert!(decode_snapshot(&["x".into(), "1".into()]).is_none());
        assert!(decode_snapshot(&["1".into()]).is_none());
    }

    #[test]
    fn pushes_decode_only_from_the_channel() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let payload = "1|5|X|1|0|0|a|n|";
        assert!(decode_push(vec![bulk("other"), bulk(payload)], "ch").is_none());
        let message = decode_push(vec![bulk("ch"), bulk(payload)], "ch");
        assert_eq!(
            message.unwrap().map(|m| (m.seq, m.op)),
            Ok((5, Op::Retract))
        );
        let malformed = Some(Err(Reject::Malformed));
        assert_eq!(
            decode_push(vec![bulk("ch")], "ch").map(|r| r.map(|m| m.seq)),
            malformed
        );
        let int = vec![bulk("ch"), Value::Int(1)];
        assert_eq!(decode_push(int, "ch").map(|r| r.map(|m| m.seq)), malformed);
    }

    #[test]
    fn mirror_keys() {
        assert_eq!(mirror_key("a", Some("k")), "a/k");
        assert_eq!(mirror_key("a", None), "a");
        assert_eq!(key_instance("a/k/z"), "a");
        assert_eq!(key_instance("a"), "a");
        assert_eq!(split_member("i|n|"), Some(("i", "n", "")));
        assert_eq!(split_member("i|n|k"), Some(("i", "n", "k")));
    }
}
