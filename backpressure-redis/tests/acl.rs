//! Keeping tenants apart with Redis ACLs (real redis-server; skipped without one): a user
//! restricted to one namespace's keys and channel runs a bridge there, and can neither read
//! nor forge another namespace's signals.

mod common;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::__private::{channel, entries_key};
use backpressure_redis::{connect, Bridge, Config, Error, Status};
use common::{redis, wait_until, RedisServer};

const LEASE: Duration = Duration::from_secs(1);
/// How long a positive wait may take: generous, for a loaded machine (real time).
const WAIT: Duration = Duration::from_secs(30);

/// The ACL rule of the README for a tenant owning namespace `ns`.
fn tenant_acl(user: &str, password: &str, ns: &str) -> Vec<String> {
    let rule = format!(
        "{user} reset on >{password} ~bp:{{{ns}}}:* &bp:{{{ns}}}:* -@all \
         +hello +auth +ping +subscribe +evalsha +script|load \
         +time +get +set +del +incr +publish \
         +zadd +zrem +zrange +zrangebyscore +zremrangebyscore +hset +hget +hdel"
    );
    rule.split_whitespace().map(String::from).collect()
}

fn as_user(server: &RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{}", server.port)
}

async fn bridge(url: String, ns: &str, instance: &str) -> Result<(Sink, Bridge), Error> {
    let sink = Sink::new();
    let config = Config::new(url)
        .namespace(ns)
        .instance(instance)
        .lease(LEASE)
        .connect_timeout(Duration::from_secs(5));
    let bridge = connect(sink.clone(), config).await?;
    Ok((sink, bridge))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_runs_its_namespace_and_cannot_touch_another() {
    let Some(server) = redis("an_acl_user_runs_its_namespace") else {
        return;
    };
    let mut admin = server.raw();
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(tenant_acl("shop", "shop-secret", "shop"))
        .query(&mut admin)
        .unwrap();

    // The tenant's own namespace works end to end, with a bridge of full rights.
    let (tenant, tenant_bridge) = bridge(as_user(&server, "shop", "shop-secret"), "shop", "t")
        .await
        .expect("the tenant bridges its own namespace");
    let (peer, _peer_bridge) = bridge(server.url(), "shop", "p").await.unwrap();
    tenant.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&peer, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    peer.raise("backpressure.db").unwrap();
    assert!(wait_until(&tenant, WAIT, |s| s.is_raised("backpressure.db")).await);
    assert_eq!(tenant_bridge.status(), Status::Synced);

    // Another namespace: a clear error, not a panic, and no password in it.
    let error = bridge(as_user(&server, "shop", "shop-secret"), "bank", "t")
        .await
        .expect_err("the tenant bridged another namespace");
    let text = error.to_string();
    assert!(matches!(error, Error::Denied { .. }), "{error:?}");
    assert!(
        text.contains("bank") && !text.contains("shop-secret"),
        "{text}"
    );

    // A user granted the channel but not the keys fails at the first sync, as clearly.
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(tenant_acl("half", "half-secret", "shop"))
        .arg("&bp:{bank}:*")
        .query(&mut admin)
        .unwrap();
    let error = bridge(as_user(&server, "half", "half-secret"), "bank", "h")
        .await
        .expect_err("bridged without the keys");
    assert!(matches!(error, Error::Denied { .. }), "{error:?}");

    // Nor can it read or forge the other namespace by hand.
    let (bank, _bank_bridge) = bridge(server.url(), "bank", "b").await.unwrap();
    bank.raise("backpressure.ledger").unwrap();
    let mut raw = redis::Client::open(as_user(&server, "shop", "shop-secret"))
        .unwrap()
        .get_connection()
        .unwrap();
    let read: redis::RedisResult<Vec<String>> = redis::cmd("ZRANGE")
        .arg(entries_key("bank"))
        .arg(0)
        .arg(-1)
        .query(&mut raw);
    let forged: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(channel("bank"))
        .arg("2|1|1|X|1|0|0|b|backpressure.ledger|")
        .query(&mut raw);
    let scripted: redis::RedisResult<i64> = redis::cmd("EVAL")
        .arg("return redis.call('ZCARD', KEYS[1])")
        .arg(1)
        .arg(entries_key("bank"))
        .query(&mut raw);
    for denied in [read.map(drop), forged.map(drop), scripted.map(drop)] {
        let e = denied.expect_err("allowed into another namespace");
        assert_eq!(e.code(), Some("NOPERM"), "{e:?}");
    }
    assert!(bank.is_raised("backpressure.ledger"));
}
