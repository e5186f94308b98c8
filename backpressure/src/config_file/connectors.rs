//! The connector crates: which `[sinks."name".section]` tables exist, and who reads each.

/// The sections a `[sinks."name"]` table may hold, each read by a connector crate: the
/// section's name and what to use to connect it.
pub(super) const SINK_SECTIONS: &[(&str, &str)] = &[(
    "redis",
    "the `backpressure-redis` crate: start the runtime with `backpressure_redis::start().await`",
)];

/// Whether `section` is a known sink section.
pub(super) fn is_known(section: &str) -> bool {
    SINK_SECTIONS.iter().any(|(name, _)| *name == section)
}

/// What connects `section`, in words.
pub(super) fn needs(section: &str) -> &'static str {
    SINK_SECTIONS
        .iter()
        .find(|(name, _)| *name == section)
        .map_or("a connector crate", |(_, needs)| *needs)
}
