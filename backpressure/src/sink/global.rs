//! Process-wide named sinks.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::sync::{lock, Mutex};
use crate::Sink;

static SINKS: OnceLock<Mutex<HashMap<Box<str>, Sink>>> = OnceLock::new();

/// Returns the process-wide sink called `name`, creating it on first use.
///
/// The same name always gives the same sink, from any thread, with or without a tokio
/// runtime. Any string names a sink; the `#[backpressure_worker]` attribute additionally
/// requires sink names to follow the signal-name rules so they read well in config files.
///
/// # Examples
///
/// ```
/// let main = backpressure::sink("main");
/// main.raise("backpressure.downstream")?;
///
/// // Anywhere else in the program, on any thread:
/// let seen = std::thread::spawn(|| backpressure::sink("main").is_raised("backpressure.downstream"))
///     .join()
///     .unwrap();
/// assert!(seen);
/// # main.retract("backpressure.downstream")?;
/// # Ok::<(), backpressure::error::SignalError>(())
/// ```
pub fn sink(name: &str) -> Sink {
    let sinks = SINKS.get_or_init(Default::default);
    let mut sinks = lock(sinks);
    if let Some(sink) = sinks.get(name) {
        return sink.clone();
    }
    let sink = Sink::named(name);
    sinks.insert(name.into(), sink.clone());
    sink
}
