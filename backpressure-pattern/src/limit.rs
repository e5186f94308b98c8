//! The length limit that names, keys and pattern items share; the lowest layer of the crate,
//! so the error messages and the checks both build on it.

/// The longest allowed signal name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
