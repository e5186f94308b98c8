//! The shared rates (`rate(..., shared = true)`) in Redis: their keys and the Lua GCRA that
//! hands a process a batch of starts.
//!
//! | key                                 | type       | content                                  |
//! |-------------------------------------|------------|------------------------------------------|
//! | `bp:{ns}:rate:{worker}`             | string     | the GCRA's theoretical arrival time (µs, Redis `TIME`) |
//! | `bp:{ns}:rate:{worker}:procs`       | sorted set | member `instance`, score = presence expiry (ms): the live processes drawing from the rate |
//!
//! **The script.** One call asks for `n` starts (at most a batch). On the Redis clock `now`
//! with interval `I = per / limit` and burst `B`, it takes `tat = max(stored, now)` and
//! grants `k = min(n, floor((now + B*I - tat) / I))`; when `k >= 1` it stores `tat + k*I`
//! (expiring a little after that moment: an expired key is a rate at rest). It answers the
//! Redis clock, `k`, how long until the next start would be allowed (µs, 0 if now), and how
//! many processes draw from the rate. Nothing is stored when nothing is granted (but a
//! forged TAT's clamp).
//!
//! **Untrusted input.** A TAT that is not a decimal number of at most 17 digits is read as no
//! state (the rate at rest: one burst at most); one further ahead than `now + B*I` (forged)
//! is read as, and replaced by, `now + B*I` (a burst just spent: the next start waits one
//! interval). So junk
//! in the key never holds the fleet for longer than one burst. A key of the wrong type makes
//! `GET` fail: the call is answered with an error and that worker grants nothing until the
//! key is repaired. Presence scores further ahead than the longest lease are dropped, as for
//! permits.

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

/// KEYS: tat, procs. ARGV: instance, interval_us, burst, n, lease_ms, max_lease_ms.
const GCRA: &str = r#"
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local instance, interval = ARGV[1], tonumber(ARGV[2])
local burst, n = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, maxl = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now_ms))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '(' .. fmt(now_ms + maxl), '+inf')
redis.call('ZADD', KEYS[2], fmt(now_ms + lease), instance)
redis.call('PEXPIRE', KEYS[2], fmt(maxl))
local live = redis.call('ZCARD', KEYS[2])
local span = burst * interval
local tat, forged = now, false
local raw = redis.call('GET', KEYS[1])
if raw and #raw <= 17 and string.match(raw, '^%d+$') then
  local stored = tonumber(raw)
  if stored > now + span then
    stored = now + span
    forged = true
  end
  if stored > tat then tat = stored end
end
local k = math.floor((now + span - tat) / interval)
if k > n then k = n end
if k < 0 then k = 0 end
if k >= 1 then tat = tat + k * interval end
if k >= 1 or forged then
  redis.call('SET', KEYS[1], fmt(tat), 'PX', fmt(math.ceil((tat - now) / 1000) + 100))
end
local wait = tat + interval - span - now
if wait < 0 then wait = 0 end
return {fmt(now), tostring(k), fmt(wait), tostring(live)}
"#;

/// The keys of one worker's shared rate.
#[derive(Debug, Clone)]
pub(crate) struct RateKeys {
    tat: String,
    procs: String,
}

impl RateKeys {
    pub(crate) fn new(namespace: &str, worker: &str) -> Self {
        let tat = format!("bp:{{{namespace}}}:rate:{worker}");
        Self {
            procs: format!("{tat}:procs"),
            tat,
        }
    }
}

/// One call's question: the GCRA's shape and how many starts are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateAsk {
    /// `per / limit`, in µs (at least 1).
    pub(crate) interval_us: u64,
    /// The effective burst (tokens).
    pub(crate) burst: u64,
    /// Starts asked (at most a batch).
    pub(crate) n: u64,
}

/// What every call of this process carries.
#[derive(Debug, Clone)]
pub(crate) struct RateArgs {
    pub(crate) instance: String,
    pub(crate) lease_ms: u64,
    pub(crate) max_lease_ms: u64,
}

/// What the script answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateAnswer {
    /// The Redis clock when the script ran (µs).
    pub(crate) now_us: u64,
    /// Starts granted.
    pub(crate) granted: u64,
    /// How long until the next start is allowed (µs; 0: now).
    pub(crate) wait_us: u64,
    /// Processes drawing from this rate (this one included).
    pub(crate) live: usize,
}

/// The GCRA script, compiled once per bridge.
pub(crate) struct RateScript(Script);

impl RateScript {
    pub(crate) fn new() -> Self {
        Self(Script::new(GCRA))
    }

    /// Asks the fleet's GCRA of `keys` for `ask.n` starts.
    pub(crate) async fn run(
        &self,
        conn: &mut ConnectionManager,
        keys: &RateKeys,
        args: &RateArgs,
        ask: RateAsk,
    ) -> RedisResult<RateAnswer> {
        let fields: Vec<String> = self
            .0
            .key(&keys.tat)
            .key(&keys.procs)
            .arg(&args.instance)
            .arg(ask.interval_us.max(1))
            .arg(ask.burst.max(1))
            .arg(ask.n)
            .arg(args.lease_ms)
            .arg(args.max_lease_ms)
            .invoke_async(conn)
            .await?;
        decode_answer(&fields).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "backpressure: a rate script's answer is unreadable",
            ))
        })
    }
}

fn decode_answer(fields: &[String]) -> Option<RateAnswer> {
    let [now, granted, wait, live] = fields else {
        return None;
    };
    Some(RateAnswer {
        now_us: now.parse().ok()?,
        granted: granted.parse().ok()?,
        wait_us: wait.parse().ok()?,
        live: live.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_back_and_keys_follow_the_table() {
        let fields: Vec<String> = ["1000", "3", "0", "2"].map(String::from).into();
        let answer = decode_answer(&fields).unwrap();
        assert_eq!((answer.granted, answer.wait_us, answer.live), (3, 0, 2));
        assert!(decode_answer(&fields[..3]).is_none());
        let keys = RateKeys::new("ns", "mailer");
        assert_eq!(keys.tat, "bp:{ns}:rate:mailer");
        assert_eq!(keys.procs, "bp:{ns}:rate:mailer:procs");
    }
}
