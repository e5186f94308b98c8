//! Hostile tests of the probe channel (`bp:{ns}:probes`) with forged and broken messages
//! (DESIGN §7 "Untrusted input"): garbage and huge fields are counted and change nothing;
//! grants for claims never made start nothing; outcomes and give-backs for loans never lent
//! to their sender change nothing; announcements cannot break the fleet's probe count.
//!
//! What an attacker who can publish on the channel *can* do is pinned too, as the crate
//! docs say ("anyone who can publish on the namespace can forge probe outcomes"): the
//! channel is not authenticated, so a message naming the real holder of a loan decides it,
//! and a claim under an invented instance takes a probe until `probe_timeout`.
//!
//! Each "process" is a sink with its own bridge and instance on one real redis-server
//! (skipped without one).

mod common;
mod hostile_probes_kit;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::{BreakerState, PolicyState};
use backpressure::{Coordinator, Phase, Sink};
use backpressure_redis::{Bridge, Status};
use common::{redis, until, RedisServer};
use hostile_probes_kit::*;
use tokio::sync::mpsc;

const OWNER: &str = "owner-process";

/// An owner whose breaker (`probes(1)`) is half-open, mirrored at two peers B and C, and a
/// tap on the probe channel.
struct HalfOpen {
    owner: Coordinator<()>,
    owner_bridge: Bridge,
    b: Coordinator<()>,
    c: Coordinator<()>,
    bridges: Vec<Bridge>,
    sinks: Vec<Sink>,
    starts: mpsc::UnboundedReceiver<Start>,
    tap: Tap,
}

async fn half_open(server: &RedisServer, namespace: &str, probe_timeout: Duration) -> HalfOpen {
    let url = server.url();
    let (owner_sink, owner_bridge) = process(&url, namespace, OWNER).await;
    let (b_sink, b_bridge) = process(&url, namespace, "peer-b").await;
    let (c_sink, c_bridge) = process(&url, namespace, "peer-c").await;
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(&owner_sink, breaker(1, probe_timeout), &failing);
    let (tx, starts) = mpsc::unbounded_channel();
    let (b, c) = (peer(&b_sink, 0, 1, &tx), peer(&c_sink, 1, 1, &tx));
    open_the_breaker(&owner, &failing, &[&b_sink, &c_sink]).await;
    for sink in [&b_sink, &c_sink] {
        assert!(
            mirrors(sink, Phase::HalfOpen).await,
            "a peer mirrors half-open"
        );
    }
    HalfOpen {
        owner,
        owner_bridge,
        b,
        c,
        bridges: vec![b_bridge, c_bridge],
        sinks: vec![b_sink, c_sink],
        starts,
        tap: Tap::new(&url, namespace),
    }
}

impl HalfOpen {
    fn malformed(&self) -> u64 {
        self.owner_bridge.stats().malformed_messages
            + self
                .bridges
                .iter()
                .map(|b| b.stats().malformed_messages)
                .sum::<u64>()
    }

    fn all_synced(&self) -> bool {
        std::iter::once(&self.owner_bridge)
            .chain(&self.bridges)
            .all(|b| b.status() == Status::Synced)
    }

    /// B probes; returns its probe and the loan number the owner granted (from the tap).
    async fn b_probes(&mut self) -> (Start, String) {
        self.b.enqueue(()).await.unwrap();
        let grant = self.tap.next_op("G").await.expect("the owner granted B");
        let loan = grant.split('|').nth(7).unwrap().to_owned();
        let probe = next_start(&mut self.starts, WAIT).await.expect("B probes");
        assert_eq!(probe.peer, 0);
        (probe, loan)
    }

    fn is(&self, want: BreakerState) -> bool {
        state(&self.owner) == PolicyState::Breaker(want)
    }
}

/// A probe message from `from` to `to` about the owner's verdict.
fn forged(op: &str, from: &str, to: &str, request: &str, loan: &str, failed: u8) -> Vec<u8> {
    format!("2|{op}|{from}|{to}|{SIGNAL}|owner|{request}|{loan}|{failed}|5").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_huge_probe_messages_are_counted_and_change_nothing() {
    let Some(server) = redis("garbage_and_huge_probe_messages_are_counted") else {
        return;
    };
    let namespace = "hp-garbage";
    let mut fleet = half_open(&server, namespace, Duration::from_secs(60)).await;
    let before = fleet.malformed();
    let long_name = "n".repeat(300);
    let many_fields = "2|C|".repeat(400);
    let junk: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        vec![b'A'; 1 << 20],
        format!(
            "2|C|mallory|{OWNER}|{SIGNAL}|owner|1|0|0|{}",
            "9".repeat(1500)
        )
        .into_bytes(),
        format!("2|C|mallory|{OWNER}|{SIGNAL}|owner|99999999999999999999999|0|0|0").into_bytes(),
        format!("2|F|mallory|{OWNER}|{SIGNAL}|owner|0|1|7|0").into_bytes(),
        format!("2|C|mallory|{OWNER}|{long_name}|owner|1|0|0|0").into_bytes(),
        format!("2|C|mal/lory|{OWNER}|{SIGNAL}|owner|1|0|0|0").into_bytes(),
        format!("2|C|mallory|{OWNER}|{SIGNAL}|owner|1|0|0").into_bytes(),
        format!("2|Z|mallory|{OWNER}|{SIGNAL}|owner|1|0|0|0").into_bytes(),
        format!("2|C|mallory|{OWNER}|{SIGNAL}|bad key|1|0|0|0").into_bytes(),
        format!("2|C|mallory|{OWNER}|{SIGNAL}|owner|+1|0|0|0").into_bytes(),
        many_fields.into_bytes(),
        format!("3|C|mallory|{OWNER}|{SIGNAL}|owner|1|0|0|0").into_bytes(),
    ];
    for payload in &junk {
        publish_probe(&server.url(), namespace, payload);
    }
    let expected = before + 3 * junk.len() as u64;
    let counted = until(WAIT, || fleet.malformed(), |n| *n >= expected).await;
    assert_eq!(
        counted, expected,
        "every junk message counted once by each bridge"
    );
    assert!(
        fleet.all_synced(),
        "junk on the probe channel never costs the link"
    );
    assert!(
        fleet.is(BreakerState::HalfOpen),
        "and never decides the breaker"
    );
    // No probe was taken by the junk: B gets the only one and closes the breaker.
    let (probe, _) = fleet.b_probes().await;
    probe.succeed();
    reaches(&fleet.owner, BreakerState::Closed, "B's probe closed it").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_grants_for_claims_never_made_start_nothing() {
    let Some(server) = redis("forged_grants_for_claims_never_made_start_nothing") else {
        return;
    };
    let namespace = "hp-forged-grant";
    let mut fleet = half_open(&server, namespace, Duration::from_secs(60)).await;
    let url = server.url();
    // B and C hold nothing and asked nothing: grants "from the owner" for any request.
    for request in 0..50 {
        let request = request.to_string();
        publish_probe(
            &url,
            namespace,
            &forged("G", OWNER, "peer-b", &request, "777", 0),
        );
        publish_probe(
            &url,
            namespace,
            &forged("G", OWNER, "*", &request, "778", 0),
        );
    }
    let back = fleet
        .tap
        .next_op("B")
        .await
        .expect("the peers hand the grants back");
    assert!(back.contains("|777|") || back.contains("|778|"), "{back}");
    fleet.b.enqueue(()).await.unwrap();
    // B's real claim is answered by the owner; nothing of the forgeries starts beside it.
    let probe = next_start(&mut fleet.starts, WAIT).await.expect("B probes");
    fleet.c.enqueue(()).await.unwrap();
    let extra = next_start(&mut fleet.starts, Duration::from_millis(500)).await;
    assert!(
        extra.is_none(),
        "a forged grant let a second probe start: {extra:?}"
    );
    probe.succeed();
    reaches(&fleet.owner, BreakerState::Closed, "B's probe closed it").await;
    assert_eq!(
        complete_all(&mut fleet.starts, &[&fleet.b, &fleet.c], 2).await,
        2
    );
    assert_eq!(fleet.sinks.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_for_loans_never_lent_to_their_sender_change_nothing() {
    let Some(server) = redis("outcomes_for_loans_never_lent_to_their_sender") else {
        return;
    };
    let namespace = "hp-forged-outcome";
    let mut fleet = half_open(&server, namespace, Duration::from_secs(60)).await;
    let url = server.url();
    let (probe, loan) = fleet.b_probes().await;
    fleet.c.enqueue(()).await.unwrap();
    // A third instance reports B's loan and a hundred others: success, give-back.
    for n in 0..100u64 {
        let other = (n + 1).to_string();
        for loan in [loan.as_str(), other.as_str()] {
            publish_probe(
                &url,
                namespace,
                &forged("F", "mallory", OWNER, "0", loan, 0),
            );
            publish_probe(
                &url,
                namespace,
                &forged("B", "mallory", OWNER, "0", loan, 0),
            );
        }
        // Announcements "from the owner": waiting peers ask again, and are denied again.
        publish_probe(&url, namespace, &forged("A", OWNER, "*", "0", "0", 0));
    }
    let extra = next_start(&mut fleet.starts, Duration::from_millis(700)).await;
    assert!(
        extra.is_none(),
        "a forgery let a second probe start: {extra:?}"
    );
    assert!(
        fleet.is(BreakerState::HalfOpen),
        "a third instance decided B's loan"
    );
    assert!(fleet.all_synced());
    probe.succeed();
    reaches(
        &fleet.owner,
        BreakerState::Closed,
        "B's own outcome still decides",
    )
    .await;
    assert_eq!(
        complete_all(&mut fleet.starts, &[&fleet.b, &fleet.c], 2).await,
        2
    );
}

/// What an attacker can do (documented, not a bug): the channel is not authenticated, so a
/// success "from" the holder of a loan closes the breaker while the real probe still runs;
/// and a claim under an invented instance takes the only probe, holding every real peer
/// until `probe_timeout` reopens the breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_on_the_channel_can_decide_a_loan_or_take_the_probe() {
    let Some(server) = redis("an_attacker_on_the_channel_can_decide_a_loan") else {
        return;
    };
    let namespace = "hp-attacker";
    let url = server.url();
    let mut fleet = half_open(&server, namespace, Duration::from_millis(800)).await;
    let (probe, loan) = fleet.b_probes().await;
    publish_probe(
        &url,
        namespace,
        &forged("F", "peer-b", OWNER, "0", &loan, 0),
    );
    reaches(
        &fleet.owner,
        BreakerState::Closed,
        "a forged success closed it",
    )
    .await;
    probe.succeed(); // late: its loan is gone

    // Another half-open verdict: an invented instance claims first.
    let mut fleet2 = half_open(&server, "hp-attacker-2", Duration::from_millis(800)).await;
    publish_probe(
        &url,
        "hp-attacker-2",
        &forged("C", "mallory", OWNER, "1", "0", 0),
    );
    let grant = fleet2
        .tap
        .next_op("G")
        .await
        .expect("the owner lends to mallory");
    assert!(grant.contains("|mallory|"), "{grant}");
    fleet2.b.enqueue(()).await.unwrap();
    reaches(
        &fleet2.owner,
        BreakerState::Open,
        "mallory's loan timed out",
    )
    .await;
    // The next period is the real peers' again.
    let probe = next_start(&mut fleet2.starts, WAIT)
        .await
        .expect("B probes");
    probe.succeed();
    reaches(&fleet2.owner, BreakerState::Closed, "B's probe closed it").await;
    assert_eq!(fleet.sinks.len() + fleet2.sinks.len(), 4);
}
