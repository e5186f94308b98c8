//! The sink's side of the fleet-wide quotas: the workers' [`Permits`] (`global_concurrency`)
//! and [`RateTokens`] (`rate(..., shared = true)`) kept on it, and whether a connector serves
//! them (see [`permits`](super::permits) and [`rate_tokens`](super::rate_tokens)).

use super::permits::Permits;
use super::rate_tokens::RateTokens;
use crate::Sink;

impl Sink {
    /// Every worker's [`Permits`] kept on this sink (workers with `global_concurrency`).
    pub fn permit_pools(&self) -> Vec<Permits> {
        self.shared.permits.pools()
    }

    /// Completes when a worker adds its permits to this sink (for a connector serving them).
    pub async fn permit_pools_changed(&self) {
        self.shared.permits.added().await;
    }

    /// A connector says it serves this sink's permits: workers with `global_concurrency`
    /// may be built on it.
    pub fn serve_permits(&self) {
        self.shared.permits.serve();
    }

    /// Whether a connector serves this sink's permits.
    pub fn serves_permits(&self) -> bool {
        self.shared.permits.is_served()
    }

    /// Every worker's [`RateTokens`] kept on this sink (workers with a shared `rate`).
    pub fn rate_pools(&self) -> Vec<RateTokens> {
        self.shared.rates.pools()
    }

    /// Completes when a worker adds its rate tokens to this sink (for a connector serving
    /// them).
    pub async fn rate_pools_changed(&self) {
        self.shared.rates.added().await;
    }

    /// A connector says it serves this sink's shared rates: workers with
    /// `rate(..., shared = true)` may be built on it.
    pub fn serve_rates(&self) {
        self.shared.rates.serve();
    }

    /// Whether a connector serves this sink's shared rates.
    pub fn serves_rates(&self) -> bool {
        self.shared.rates.is_served()
    }

    /// The registry: a connector that declared it handles this sink's section
    /// (`RuntimeBuilder::handles`) connects it right after the workers are built, so
    /// workers with fleet-wide quotas may be built on it first.
    pub(crate) fn promise_quotas(&self) {
        self.serve_permits();
        self.serve_rates();
    }

    /// The coordinator keeps its permits here, for the connector to serve.
    pub(crate) fn add_permits(&self, permits: Permits) {
        self.shared.permits.add(permits);
    }

    /// The coordinator keeps its shared rate's tokens here, for the connector to serve.
    pub(crate) fn add_rate_tokens(&self, tokens: RateTokens) {
        self.shared.rates.add(tokens);
    }
}
