//! Attribute macros for `backpressure` (arrives with the attribute issue).
