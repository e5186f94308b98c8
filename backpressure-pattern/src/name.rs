//! The signal-name rules.

use crate::error::{NameError, NameErrorKind};
pub use crate::limit::MAX_NAME_LEN;

/// Whether `b` may appear in a signal name.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/')
}

/// Checks a signal name (or key): non-empty, at most [`MAX_NAME_LEN`] bytes, made of ASCII
/// letters, digits and `. _ - : /`.
///
/// # Examples
///
/// ```
/// use backpressure_pattern::{validate_name, NameErrorKind};
///
/// assert!(validate_name("backpressure.downstream").is_ok());
/// let err = validate_name("cpu load").unwrap_err();
/// assert_eq!(err.kind(), &NameErrorKind::BadChar { ch: ' ', at: 3 });
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::new(name, NameErrorKind::Empty));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::new(
            name,
            NameErrorKind::TooLong { len: name.len() },
        ));
    }
    if let Some((at, ch)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii() && is_name_byte(c as u8)))
    {
        return Err(NameError::new(name, NameErrorKind::BadChar { ch, at }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        assert!(validate_name("aZ09._-:/").is_ok());
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_bad_characters() {
        assert_eq!(validate_name("").unwrap_err().kind(), &NameErrorKind::Empty);
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            validate_name(&long).unwrap_err().kind(),
            &NameErrorKind::TooLong { len: 257 }
        );
        for (name, ch, at) in [
            ("a*", '*', 1),
            ("é", 'é', 0),
            ("a\nb", '\n', 1),
            ("a,b", ',', 1),
        ] {
            let err = validate_name(name).unwrap_err();
            assert_eq!(err.kind(), &NameErrorKind::BadChar { ch, at }, "{name:?}");
            assert!(err.to_string().contains("is not allowed"), "{err}");
        }
    }
}
