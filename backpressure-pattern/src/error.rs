//! Typed errors for names and patterns.

use std::fmt;

/// Why a signal name was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameErrorKind {
    /// The name is the empty string.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    TooLong {
        /// The length of the rejected name, in bytes.
        len: usize,
    },
    /// The name holds a character outside the allowed set.
    BadChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the name.
        at: usize,
    },
}

/// A signal name (or key) that does not follow the naming rules.
///
/// Names are non-empty, at most 256 bytes, and made of ASCII letters, digits and
/// `. _ - : /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    name: String,
    kind: NameErrorKind,
}

impl NameError {
    pub(crate) fn new(name: &str, kind: NameErrorKind) -> Self {
        // Keep error values small and printable even for hostile input.
        let name: String = name.chars().take(64).collect();
        Self { name, kind }
    }

    /// The rejected name (its first 64 characters).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which rule the name broke.
    pub fn kind(&self) -> &NameErrorKind {
        &self.kind
    }
}

impl NameError {
    /// Writes the message with `what` in place of "signal" ("invalid sink name ...").
    pub(crate) fn write_as(&self, f: &mut fmt::Formatter<'_>, what: &str) -> fmt::Result {
        match &self.kind {
            NameErrorKind::Empty => write!(f, "invalid {what} name: the name is empty"),
            NameErrorKind::TooLong { len } => write!(
                f,
                "invalid {what} name `{}…`: {len} bytes long, the limit is {} bytes",
                self.name,
                crate::limit::MAX_NAME_LEN
            ),
            NameErrorKind::BadChar { ch, at } => write!(
                f,
                "invalid {what} name `{}`: character {ch:?} at byte {at} is not allowed \
                 (allowed: ASCII letters, digits and `. _ - : /`)",
                self.name.escape_debug()
            ),
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_as(f, "signal")
    }
}

impl std::error::Error for NameError {}

/// A pattern that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// The whole pattern string is empty (or only whitespace).
    Empty,
    /// One item of a comma-separated list is empty, as in `"a.*,,b"` or `"a.*,"`.
    EmptyItem {
        /// Zero-based position of the empty item in the list.
        index: usize,
    },
    /// An item holds a character that is neither allowed in a signal name nor a wildcard.
    BadChar {
        /// The item that holds it.
        item: String,
        /// The offending character.
        ch: char,
        /// Its byte offset in the item.
        at: usize,
    },
    /// An item is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    TooLong {
        /// The length of the item, in bytes.
        len: usize,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => f.write_str("invalid pattern: the pattern is empty"),
            PatternError::EmptyItem { index } => write!(
                f,
                "invalid pattern: item {index} of the comma-separated list is empty"
            ),
            PatternError::BadChar { item, ch, at } => write!(
                f,
                "invalid pattern `{}`: character {ch:?} at byte {at} is not allowed \
                 (allowed: ASCII letters, digits, `. _ - : /` and the wildcards `*` and `?`)",
                item.escape_debug()
            ),
            PatternError::TooLong { len } => write!(
                f,
                "invalid pattern: an item is {len} bytes long, the limit is {} bytes",
                crate::limit::MAX_NAME_LEN
            ),
        }
    }
}

impl std::error::Error for PatternError {}
