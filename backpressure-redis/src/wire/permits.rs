//! The permits of `global_concurrency` in Redis: their keys, the Lua scripts that acquire,
//! renew and release them, and the messages of the permit channel.
//!
//! | key                                   | type       | content                                  |
//! |---------------------------------------|------------|------------------------------------------|
//! | `bp:{ns}:permits:{worker}`            | sorted set | member `instance/slot`, score = lease expiry (ms, Redis `TIME`) |
//! | `bp:{ns}:permits:{worker}:procs`      | sorted set | member `instance`, score = presence expiry: the live processes serving the worker |
//! | `bp:{ns}:permits:{worker}:since`      | string     | when the set's record began (ms): a new record grants nothing new for a grace |
//! | `bp:{ns}:permits`                     | channel    | `2\|free\|<worker>\|<instance>` (permits released) and `2\|want\|<worker>\|<instance>` (a start waits) |
//!
//! Every script first drops expired members and members whose score lies further ahead than
//! the longest lease a process may ask (forged or junk: they never hold capacity for long),
//! so the set's size is the number of permits held in the fleet, and nothing is added
//! beyond the limit. A process renews its own members (`renew`: a member gone, by a flush or
//! an eviction, is added again while there is room) every lease / 3, at most every second.
//!
//! **The grace after a new record.** When `since` is missing (a fresh namespace, a Redis
//! restarted empty, a `FLUSHALL`), the script that finds it so starts a new record and no
//! process is granted a *new* permit for `grace` (a renewal, a call's timeout and half a
//! renewal: 3.5 s with the default lease): within it, every process still running items
//! renews, re-adding what it holds, so the fleet never runs more than the limit after a
//! flush.

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

/// The version in front of every permit-channel message (the crate's wire version).
const VERSION: &str = "2";

/// Shared by the three scripts. KEYS: set, procs, since. ARGV: instance, limit, lease_ms,
/// max_lease_ms, grace_ms, worker, channel, then slot numbers.
const PRELUDE: &str = r#"
local function fmt(n) return string.format('%.0f', n) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local instance, limit = ARGV[1], tonumber(ARGV[2])
local lease, maxl, grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local worker, channel = ARGV[6], ARGV[7]
for _, key in ipairs({KEYS[1], KEYS[2]}) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
  redis.call('ZREMRANGEBYSCORE', key, '(' .. fmt(now + maxl), '+inf')
end
redis.call('ZADD', KEYS[2], fmt(now + lease), instance)
local since = redis.call('GET', KEYS[3])
if not since or not string.match(since, '^%d+$') or #since > 16 or tonumber(since) > now then
  since = fmt(now)
  redis.call('SET', KEYS[3], since)
end
local settled = now >= tonumber(since) + grace
local prefix = instance .. '/'
local expiry = fmt(now + lease)
local count = redis.call('ZCARD', KEYS[1])
local got = {}
local function take(slot, new)
  local member = prefix .. slot
  if redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZADD', KEYS[1], expiry, member)
    got[#got + 1] = slot
  elseif new and count < limit then
    redis.call('ZADD', KEYS[1], expiry, member)
    count = count + 1
    got[#got + 1] = slot
  end
end
local function answer()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local next_free = first[2] or '-1'
  if not settled then next_free = fmt(tonumber(since) + grace) end
  local out = {fmt(now), next_free, tostring(redis.call('ZCARD', KEYS[2]))}
  for i = 1, #got do out[#out + 1] = got[i] end
  return out
end
"#;

/// Takes the slots named while there is room (and the record has settled); a slot the
/// instance holds already is renewed. Publishes `want` when it got none.
const ACQUIRE_BODY: &str = r#"
for i = 8, #ARGV do take(ARGV[i], settled) end
if #got == 0 then
  redis.call('PUBLISH', channel, '2|want|' .. worker .. '|' .. instance)
end
return answer()
"#;

/// Renews the slots named; one that is gone is added again while there is room.
const RENEW_BODY: &str = r#"
for i = 8, #ARGV do take(ARGV[i], true) end
return answer()
"#;

/// Releases the slots named and says so on the channel.
const RELEASE_BODY: &str = r#"
local removed = 0
for i = 8, #ARGV do removed = removed + redis.call('ZREM', KEYS[1], prefix .. ARGV[i]) end
if removed > 0 then
  redis.call('PUBLISH', channel, '2|free|' .. worker .. '|' .. instance)
end
return answer()
"#;

/// The keys of one worker's permits.
#[derive(Debug, Clone)]
pub(crate) struct PermitKeys {
    set: String,
    procs: String,
    since: String,
    /// The worker's name, as the channel's messages carry it.
    worker: String,
}

impl PermitKeys {
    pub(crate) fn new(namespace: &str, worker: &str) -> Self {
        let set = format!("bp:{{{namespace}}}:permits:{worker}");
        Self {
            procs: format!("{set}:procs"),
            since: format!("{set}:since"),
            set,
            worker: worker.to_owned(),
        }
    }
}

/// The permit channel of a namespace.
pub(crate) fn permit_channel(namespace: &str) -> String {
    format!("bp:{{{namespace}}}:permits")
}

/// What this process asks with every call.
#[derive(Debug, Clone)]
pub(crate) struct PermitArgs {
    pub(crate) instance: String,
    pub(crate) lease_ms: u64,
    pub(crate) max_lease_ms: u64,
    pub(crate) grace_ms: u64,
    pub(crate) channel: String,
}

/// What a script answers: the slots this process holds among those it named, and what it
/// needs to wait for more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The Redis clock when the script ran (ms).
    pub(crate) now_ms: u64,
    /// When a permit may next become free by the Redis clock (the earliest lease expiry,
    /// or the end of a new record's grace); `None` when nobody holds one.
    pub(crate) next_free_ms: Option<u64>,
    /// Processes serving this worker in the namespace (this one included).
    pub(crate) live: usize,
    /// The slots named that this process holds now.
    pub(crate) slots: Vec<u32>,
}

/// The three scripts, compiled once per bridge.
pub(crate) struct PermitScripts {
    acquire: Script,
    renew: Script,
    release: Script,
}

/// Which script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Take new slots (while there is room and the record has settled).
    Acquire,
    /// Keep held slots (re-adding lost ones while there is room).
    Renew,
    /// Give slots back.
    Release,
}

impl PermitScripts {
    pub(crate) fn new() -> Self {
        Self {
            acquire: Script::new(&format!("{PRELUDE}{ACQUIRE_BODY}")),
            renew: Script::new(&format!("{PRELUDE}{RENEW_BODY}")),
            release: Script::new(&format!("{PRELUDE}{RELEASE_BODY}")),
        }
    }

    /// Runs `call` for `slots` of the worker of `keys`, whose limit is `limit`.
    pub(crate) async fn run(
        &self,
        conn: &mut ConnectionManager,
        call: Call,
        (keys, limit): (&PermitKeys, usize),
        args: &PermitArgs,
        slots: &[u32],
    ) -> RedisResult<Answer> {
        let script = match call {
            Call::Acquire => &self.acquire,
            Call::Renew => &self.renew,
            Call::Release => &self.release,
        };
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.set)
            .key(&keys.procs)
            .key(&keys.since)
            .arg(&args.instance)
            .arg(limit)
            .arg(args.lease_ms)
            .arg(args.max_lease_ms)
            .arg(args.grace_ms)
            .arg(&keys.worker)
            .arg(&args.channel);
        for slot in slots {
            invocation.arg(slot);
        }
        let fields: Vec<String> = invocation.invoke_async(conn).await?;
        decode_answer(&fields).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "backpressure: a permit script's answer is unreadable",
            ))
        })
    }
}

fn decode_answer(fields: &[String]) -> Option<Answer> {
    let [now, next, live, slots @ ..] = fields else {
        return None;
    };
    let next: i64 = next.parse().ok()?;
    Some(Answer {
        now_ms: now.parse().ok()?,
        next_free_ms: u64::try_from(next).ok(),
        live: live.parse().ok()?,
        slots: slots
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .ok()?,
    })
}

/// A permit-channel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PermitNews<'a> {
    /// Permits of `worker` were released.
    Free { worker: &'a str, from: &'a str },
    /// A start of `worker` waits in `from` (holders of unused permits let them go).
    Want { worker: &'a str, from: &'a str },
}

/// Reads a permit-channel message; `None` for anything else (junk, another version).
pub(crate) fn decode_news(payload: &str) -> Option<PermitNews<'_>> {
    let mut fields = payload.splitn(4, '|');
    let (version, kind) = (fields.next()?, fields.next()?);
    let (worker, from) = (fields.next()?, fields.next()?);
    if version != VERSION || from.contains('|') {
        return None;
    }
    match kind {
        "free" => Some(PermitNews::Free { worker, from }),
        "want" => Some(PermitNews::Want { worker, from }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_news_read_back() {
        let fields: Vec<String> = ["100", "-1", "2", "0", "3"].map(String::from).into();
        let answer = decode_answer(&fields).unwrap();
        assert_eq!(answer.next_free_ms, None);
        assert_eq!((answer.live, answer.slots), (2, vec![0, 3]));
        assert!(decode_answer(&fields[..2]).is_none());
        assert_eq!(
            decode_news("2|free|mailer|a"),
            Some(PermitNews::Free {
                worker: "mailer",
                from: "a"
            })
        );
        assert_eq!(decode_news("3|free|mailer|a"), None);
        assert_eq!(decode_news("2|grab|mailer|a"), None);
        assert_eq!(decode_news("junk"), None);
    }
}
