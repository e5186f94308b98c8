//! Verdict phases: whether an entry is a health policy's verdict, and which phase it is in.

/// The phase of a verdict: an entry raised by a breaker (or anyone raising one) carries it,
/// so that every holder can tell an open verdict from one that is letting probes through.
///
/// Plain raises and the other policies' signals have no phase. A coordinator held only by
/// half-open verdicts may start its head item as a probe, claiming one probe from every
/// half-open verdict that holds it; it never passes an open verdict, a plain signal or a
/// pause. An item held by any verdict is never forced past it by `max_defer`.
///
/// # Examples
///
/// ```
/// use backpressure::{Phase, RaiseOptions, Sink};
///
/// let sink = Sink::new();
/// sink.raise_with("backpressure.smtp", RaiseOptions::new().key("mailer").phase(Phase::Open))?;
/// assert_eq!(sink.snapshot()[0].phase, Some(Phase::Open));
/// # Ok::<(), backpressure::error::SignalError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The verdict holds everyone: nothing passes it.
    Open,
    /// The verdict is admitting probes: a holder held only by half-open verdicts may start
    /// an item as a probe, whose outcome decides the verdict.
    HalfOpen,
}

impl Phase {
    /// The phase in words: `open` or `half_open` (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::HalfOpen => "half_open",
        }
    }
}
