//! `InFlight`: one call counted against a layer's in-flight limit, given back on drop.

use std::fmt;
use std::sync::Arc;

use super::shared::Shared;

/// One call counted against the layer's `max_in_flight`: taken when the hold admits a
/// request, carried by the service until `call` and then by the response future; dropping it
/// gives the place back and lets one held service look again.
pub(super) struct InFlight {
    shared: Arc<Shared>,
}

impl InFlight {
    /// Wraps a place already counted in `shared`.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}
