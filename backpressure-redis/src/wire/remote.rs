//! The Lua scripts and the calls to them: the only code that knows which keys and arguments
//! each script takes.

use redis::aio::ConnectionManager;
use redis::{RedisError, RedisResult, Script, ScriptInvocation};
use tokio::time::Instant;

use super::Keys;

/// Shared Lua helpers, prepended to every script: the counter check (see the module doc of
/// `wire`), the type of every other key (a key of the wrong type fails every script with an
/// error naming it, before anything is written, whether or not the script would touch it),
/// the Redis clock, the removal of expired entries, and `publish`.
///
/// `KEYS[1]` = entries, `KEYS[2]` = levels, `KEYS[3]` = seq, `KEYS[4]` = epoch; `ARGV[1]` = channel.
const PRELUDE: &str = r#"
local function fmt(n) return string.format('%.0f', n) end
local function valid(v, digits) return type(v) == 'string' and #v <= digits and string.match(v, '^%d+$') ~= nil end
local function valid_epoch(e) return valid(e, 16) and tonumber(e) < 9007199254740000 end
local seq_now = redis.pcall('GET', KEYS[3])
if type(seq_now) == 'table' or (seq_now and not valid(seq_now, 18)) then
  redis.call('DEL', KEYS[4])
  return redis.error_reply('ERR backpressure: ' .. KEYS[3] .. ' is not a sequence number; delete it (DEL ' .. KEYS[3] .. ') to start a new epoch')
end
local function broken(reply) return type(reply) == 'table' and reply.err ~= nil end
local wrong
if broken(redis.pcall('ZRANGE', KEYS[1], 0, 0)) then wrong = {KEYS[1], 'a sorted set'}
elseif broken(redis.pcall('HGET', KEYS[2], '')) then wrong = {KEYS[2], 'a hash'}
elseif broken(redis.pcall('GET', KEYS[4])) then wrong = {KEYS[4], 'a string'} end
if wrong then
  return redis.error_reply('ERR backpressure: ' .. wrong[1] .. ' is not ' .. wrong[2] .. '; delete it (DEL ' .. wrong[1] .. ')')
end
local t = redis.call('TIME')
local epoch = redis.call('GET', KEYS[4])
if not seq_now or not valid_epoch(epoch) then
  local fresh = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local old = valid_epoch(epoch) and tonumber(epoch)
  if old and old >= fresh then fresh = old + 1 end
  epoch = fmt(fresh)
  redis.call('SET', KEYS[4], epoch)
  if not seq_now then redis.call('SET', KEYS[3], '0') end
end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
for i = 1, #dead do redis.call('HDEL', KEYS[2], dead[i]) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now)) end
local function publish(kind, expiry, level, rest)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[1], '2|' .. epoch .. '|' .. seq .. '|' .. kind .. '|' .. fmt(now)
    .. '|' .. fmt(expiry) .. '|' .. level .. '|' .. rest)
  return seq
end
"#;

/// Raises or renews this instance's entries.
///
/// ARGV: channel, instance, full (1 = the list is every entry of the instance: remove the
/// others), then groups of name, key, level, ttl_ms, extensions (empty, or `|name=value...`).
const SYNC_BODY: &str = r#"
local instance = ARGV[2]
local prefix = instance .. '|'
local wanted = {}
for i = 4, #ARGV, 5 do
  local member = prefix .. ARGV[i] .. '|' .. ARGV[i + 1]
  wanted[member] = true
  local expiry = now + tonumber(ARGV[i + 3])
  redis.call('ZADD', KEYS[1], fmt(expiry), member)
  redis.call('HSET', KEYS[2], member, ARGV[i + 2] .. ARGV[i + 4])
  publish('R', expiry, ARGV[i + 2], member .. ARGV[i + 4])
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
return 1
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
return 1
"#;

/// Returns {epoch, seq, now, member1, expiry1, value1, ...} of the live entries.
const SNAPSHOT_BODY: &str = r#"
local out = {epoch, redis.call('GET', KEYS[3]), fmt(now)}
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
    /// Extension fields, each `|name=value` (empty: none): a verdict's phase
    /// ([`phase_extension`](super::phase_extension)).
    pub(crate) extensions: &'a str,
}

/// A namespace in Redis: its keys, the three scripts (compiled once per bridge) and the
/// connection they run on.
pub(crate) struct Remote {
    keys: Keys,
    sync: Script,
    retract: Script,
    snapshot: Script,
    conn: ConnectionManager,
    /// When the latest call that Redis answered was sent.
    confirmed_at: Instant,
}

/// Whether the server's ACL refused a call: `NOPERM` for a command, key or channel, or the
/// error a script gets for a command the user may not run.
pub(crate) fn denied(error: &RedisError) -> bool {
    error.code() == Some("NOPERM")
        || error
            .detail()
            .is_some_and(|d| d.contains("user executing the script can't run this command"))
}

/// Whether Redis answered a failed call (with an error, or with something else than
/// expected: the connection works) rather than not at all.
pub(crate) fn answered(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        redis::ErrorKind::Server(_)
            | redis::ErrorKind::Extension
            | redis::ErrorKind::UnexpectedReturnType
    )
}

impl Remote {
    pub(crate) fn new(keys: Keys, conn: ConnectionManager) -> Self {
        Self {
            keys,
            sync: Script::new(&format!("{PRELUDE}{SYNC_BODY}")),
            retract: Script::new(&format!("{PRELUDE}{RETRACT_BODY}")),
            snapshot: Script::new(&format!("{PRELUDE}{SNAPSHOT_BODY}")),
            conn,
            confirmed_at: Instant::now(),
        }
    }

    /// When the latest call that Redis answered was sent: every push published before Redis
    /// ran that call has reached the connection (one RESP3 connection carries the commands
    /// and the subscription).
    pub(crate) fn confirmed_at(&self) -> Instant {
        self.confirmed_at
    }

    /// Records that a call sent at `sent` was answered, if it was.
    fn note<T>(&mut self, sent: Instant, result: RedisResult<T>) -> RedisResult<T> {
        if result.as_ref().map_or_else(answered, |_| true) {
            self.confirmed_at = self.confirmed_at.max(sent);
        }
        result
    }

    /// Checks that the connection works both ways (a `PING`).
    pub(crate) async fn ping(&mut self) -> RedisResult<()> {
        let sent = Instant::now();
        let pong: RedisResult<String> = redis::cmd("PING").query_async(&mut self.conn).await;
        self.note(sent, pong).map(drop)
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
            .key(&keys.epoch)
            .arg(&keys.channel);
        invocation
    }

    /// Subscribes to the probe channel, then the events channel (their confirmations arrive
    /// as pushes; the events channel's is the one the link waits for).
    pub(crate) async fn subscribe(&mut self) -> RedisResult<()> {
        self.conn.subscribe(&self.keys.probes).await?;
        self.conn.subscribe(&self.keys.channel).await
    }

    /// The namespace's channel names.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Publishes a probe message (see `probe.rs`).
    pub(crate) async fn publish_probe(&mut self, payload: String) -> RedisResult<()> {
        let sent = Instant::now();
        let done: RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.keys.probes)
            .arg(payload)
            .query_async(&mut self.conn)
            .await;
        self.note(sent, done).map(drop)
    }

    /// Checks that Redis answers, then subscribes to the channel again.
    pub(crate) async fn resubscribe(&mut self) -> RedisResult<()> {
        self.ping().await?;
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
                .arg(lease.ttl_ms)
                .arg(lease.extensions);
        }
        let sent = Instant::now();
        let done: RedisResult<i64> = invocation.invoke_async(&mut self.conn).await;
        self.note(sent, done).map(drop)
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
        let sent = Instant::now();
        let done: RedisResult<i64> = invocation.invoke_async(&mut self.conn).await;
        self.note(sent, done).map(drop)
    }

    /// The live entries with the position they were read at, for
    /// [`decode_snapshot`](super::decode_snapshot).
    pub(crate) async fn snapshot(&mut self) -> RedisResult<Vec<String>> {
        let sent = Instant::now();
        let fields = Self::invocation(&self.keys, &self.snapshot)
            .invoke_async(&mut self.conn)
            .await;
        self.note(sent, fields)
    }
}
