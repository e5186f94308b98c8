//! [`Failure`]: a handler error that says whether retrying can help.

use std::fmt::Display;

use crate::HandlerOutcome;

/// A handler's error, transient (retried while attempts are left) or permanent (never
/// retried: straight to the dead letters).
///
/// A handler returning `Result<(), Failure<E>>` decides per error; `?` turns any `E` into a
/// transient failure. A handler returning `Result<(), E>` for another `E` has only transient
/// failures. `Failure` is deliberately not `Display` itself (that keeps the two
/// [`HandlerOutcome`] implementations apart); its [`error`](Self::error) is.
///
/// # Examples
///
/// ```
/// use backpressure::retry::Failure;
///
/// fn parse(input: &str) -> Result<u32, Failure<String>> {
///     let n: u32 = input.parse().map_err(|e| Failure::permanent(format!("{e}")))?;
///     if n == 0 {
///         return Err(Failure::from("zero is busy, try again".to_owned()));
///     }
///     Ok(n)
/// }
/// assert!(parse("x").unwrap_err().is_permanent());
/// assert!(!parse("0").unwrap_err().is_permanent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// Retrying may help (a timeout, a busy downstream): retried while attempts are left.
    Transient(E),
    /// Retrying cannot help (a malformed item, a refused address): never retried.
    Permanent(E),
}

impl<E> Failure<E> {
    /// A failure that retrying cannot cure.
    pub fn permanent(error: E) -> Self {
        Self::Permanent(error)
    }

    /// A failure that a later attempt may not have.
    pub fn transient(error: E) -> Self {
        Self::Transient(error)
    }

    /// Whether it must not be retried.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }

    /// The error itself.
    pub fn error(&self) -> &E {
        match self {
            Self::Transient(error) | Self::Permanent(error) => error,
        }
    }

    /// The error itself, by value.
    pub fn into_error(self) -> E {
        match self {
            Self::Transient(error) | Self::Permanent(error) => error,
        }
    }
}

impl<E> From<E> for Failure<E> {
    /// A transient failure: what `?` makes of an error.
    fn from(error: E) -> Self {
        Self::Transient(error)
    }
}

impl<E: Display + Send + 'static> HandlerOutcome for Result<(), Failure<E>> {
    fn into_error(self) -> Option<Box<dyn Display + Send>> {
        self.err()
            .map(|failure| Box::new(failure.into_error()) as Box<dyn Display + Send>)
    }

    fn is_permanent(&self) -> bool {
        matches!(self, Err(Failure::Permanent(_)))
    }
}
