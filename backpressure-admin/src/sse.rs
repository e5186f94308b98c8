//! The event stream: a snapshot first, then signal events as they happen, the workers'
//! stats at most once a second, and keep-alive comments.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use backpressure::{error::Lagged, SignalEvent};
use futures_util::stream::{self, SelectAll, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{self, MissedTickBehavior};

use crate::model::{EventView, Overview, Shared};

/// Stats go out at most this often.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long a browser waits before reconnecting a dropped stream.
const RETRY: Duration = Duration::from_secs(2);

/// One sink's events, tagged with the sink's name.
pub(crate) type SinkEvents =
    Pin<Box<dyn Stream<Item = (String, Result<SignalEvent, Lagged>)> + Send>>;

/// `GET api/events`.
pub(crate) async fn events(State(shared): State<Shared>) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(64);
    // Subscribe before taking the snapshot, so that nothing falls between the two.
    let subscriptions = subscribe(&shared);
    tokio::spawn(pump(shared.clone(), subscriptions, tx));
    let stream = stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    let keep_alive = KeepAlive::new().interval(shared.config.keep_alive);
    // Live data, like every API answer: `no-store` rather than the `no-cache` axum's `Sse`
    // sets (the headers layer keeps a `Cache-Control` that is already there).
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (no_store, Sse::new(stream).keep_alive(keep_alive)).into_response()
}

/// A subscription to every sink the workers watch.
pub(crate) fn subscribe(shared: &Shared) -> SelectAll<SinkEvents> {
    let workers = shared.runtime.workers();
    let mut all = SelectAll::new();
    for name in shared.sink_names(&workers).into_keys() {
        if let Some(sink) = shared.runtime.sink(&name) {
            let events: SinkEvents = Box::pin(sink.subscribe().map(move |e| (name.clone(), e)));
            all.push(events);
        }
    }
    all
}

/// Sends a new client the snapshot and the whole history; returns the snapshot's fingerprint
/// and the history revision sent, or `None` if the client went away.
async fn greet(
    shared: &Shared,
    history: &mut watch::Receiver<u64>,
    tx: &mpsc::Sender<Event>,
) -> Option<(String, u64)> {
    let snapshot = shared.overview();
    let last = fingerprint(&snapshot);
    let hello = json_event("snapshot", &snapshot).retry(RETRY);
    tx.send(hello).await.ok()?;
    history.borrow_and_update();
    let full = shared.history.view(0);
    tx.send(json_event("history", &full)).await.ok()?;
    Some((last, full.rev))
}

/// Feeds one client until it goes away.
async fn pump(shared: Shared, mut signals: SelectAll<SinkEvents>, tx: mpsc::Sender<Event>) {
    let mut history = shared.history.watch();
    let Some((mut last, mut sent_rev)) = greet(&shared, &mut history, &tx).await else {
        return;
    };
    let mut ticks = time::interval_at(time::Instant::now() + STATS_EVERY, STATS_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut signals_open = !signals.is_empty();
    loop {
        let event = tokio::select! {
            () = tx.closed() => return,
            next = signals.next(), if signals_open => match next {
                Some((sink, Ok(event))) => json_event("signal", &EventView::new(&sink, &event)),
                Some((sink, Err(lagged))) => {
                    let note = Missed { sink, missed: lagged.missed };
                    if tx.send(json_event("lagged", &note)).await.is_err() {
                        return;
                    }
                    let snapshot = shared.overview();
                    last = fingerprint(&snapshot);
                    json_event("snapshot", &snapshot)
                }
                None => {
                    signals_open = false;
                    continue;
                }
            },
            changed = history.changed() => {
                if changed.is_err() {
                    return;
                }
                history.borrow_and_update();
                let delta = shared.history.view(sent_rev);
                sent_rev = delta.rev;
                json_event("history", &delta)
            }
            _ = ticks.tick() => {
                let stats = shared.overview();
                let now = fingerprint(&stats);
                if now == last {
                    continue;
                }
                last = now;
                json_event("stats", &stats)
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, Serialize)]
struct Missed {
    sink: String,
    missed: u64,
}

/// What a `stats` event would change on the page: everything but the clock and the TTL
/// countdowns (which the page runs itself).
fn fingerprint(overview: &Overview) -> String {
    let signals: Vec<_> = overview
        .sinks
        .iter()
        .flat_map(|s| &s.signals)
        .map(|s| (&s.sink, &s.name, &s.key, s.level, s.expires_at_ms))
        .collect();
    serde_json::to_string(&(&overview.workers, signals)).unwrap_or_default()
}

fn json_event<T: Serialize>(name: &str, data: &T) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Event::default().event(name).data(data)
}
