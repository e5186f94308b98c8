//! Workspace root package: it owns the runnable `examples/` and the cross-crate `tests/`.
//! The library itself is the `backpressure` crate.
#![forbid(unsafe_code)]
