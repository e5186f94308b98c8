//! A layer that follows a worker: it holds exactly when the worker's gate holds for
//! signals, with the worker's effective `defer_on` and `resume_on` (its attribute, then the
//! config file), so an operator who adds a pattern to the worker moves the route with it.

use backpressure_pattern::Pattern;

use super::{HoldLayer, HoldMode, WorkerHoldError};
use crate::{Coordinator, CoordinatorConfig, Runtime, Sink};

impl HoldLayer {
    /// A fail-fast layer that holds while the registered worker `name` of `runtime` is held
    /// by signals: a signal matching its `defer_on` is raised and none matching its
    /// `resume_on` (at level 0, or, under [`max_in_flight`](Self::max_in_flight), scaled by
    /// the level like the worker's concurrency), on the sink the worker watches. Not by the
    /// worker's own concurrency, pause or queue. [`with_mode`](Self::with_mode) makes it wait
    /// instead.
    ///
    /// # Errors
    ///
    /// [`WorkerHoldError::UnknownWorker`] if `runtime` has no worker `name` (it lists those it
    /// has); [`WorkerHoldError::DefersOnNothing`] if the worker has no `defer_on`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use backpressure::tower::{HoldLayer, HoldMode};
    ///
    /// #[backpressure::backpressure_worker(defer_on = "backpressure.smtp")]
    /// async fn send_email(to: String) {
    ///     let _ = to;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = backpressure::Runtime::builder().only(["send_email"]).start()?;
    /// let layer = HoldLayer::for_worker(&runtime, "send_email")?;
    /// assert_eq!(layer.pattern().as_str(), "backpressure.smtp");
    /// assert_eq!(layer.mode(), HoldMode::FailFast);
    /// assert!(HoldLayer::for_worker(&runtime, "send_mail").is_err());
    /// # Ok(()) }
    /// ```
    pub fn for_worker(runtime: &Runtime, name: &str) -> Result<Self, WorkerHoldError> {
        let unknown = || WorkerHoldError::UnknownWorker {
            name: name.to_owned(),
            known: runtime.workers().into_iter().map(|w| w.name).collect(),
        };
        let info = runtime.worker(name).ok_or_else(unknown)?;
        let sink = runtime.sink(&info.sink).ok_or_else(unknown)?;
        Self::following(&sink, name, &info.config)
    }

    /// Like [`for_worker`](Self::for_worker), for a coordinator built by hand: it holds
    /// while the coordinator's `defer_on` holds it, on its sink.
    ///
    /// # Errors
    ///
    /// [`WorkerHoldError::DefersOnNothing`] if the coordinator has no `defer_on`.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::tower::HoldLayer;
    /// use backpressure::{Coordinator, Sink, WorkContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mailer = Coordinator::builder()
    ///     .sink(Sink::new())
    ///     .defer_on("backpressure.smtp, backpressure.dns")
    ///     .resume_on("maintenance.override")
    ///     .build(|_: String, _: WorkContext| async {})?;
    /// let layer = HoldLayer::for_coordinator(&mailer)?;
    /// assert_eq!(layer.pattern().as_str(), "backpressure.smtp, backpressure.dns");
    /// # Ok(()) }
    /// ```
    pub fn for_coordinator<T: Send + 'static>(
        coordinator: &Coordinator<T>,
    ) -> Result<Self, WorkerHoldError> {
        Self::following(coordinator.sink(), "coordinator", coordinator.config())
    }

    fn following(
        sink: &Sink,
        name: &str,
        config: &CoordinatorConfig,
    ) -> Result<Self, WorkerHoldError> {
        // The worker's patterns compiled when it was built: they parse again.
        let parse = |text: &Option<String>| text.as_deref().and_then(|t| Pattern::parse(t).ok());
        let Some(defer_on) = parse(&config.defer_on) else {
            return Err(WorkerHoldError::DefersOnNothing {
                worker: name.to_owned(),
            });
        };
        Ok(Self::new(sink, defer_on, HoldMode::FailFast).resume_on(parse(&config.resume_on)))
    }
}
