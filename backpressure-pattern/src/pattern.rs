//! Compiled glob patterns.

use std::fmt;

use crate::error::PatternError;
use crate::limit::MAX_NAME_LEN;
use crate::name::is_name_byte;

/// A compiled signal pattern: one or more comma-separated globs.
///
/// * `*` matches any run of characters, including dots and the empty run;
/// * `?` matches exactly one character;
/// * anything else matches itself; an item without wildcards is an exact match.
///
/// Whitespace around the items of a list is ignored: `"a.*, b.*"` is two items. A pattern is
/// compiled once; [`Pattern::matches`] never allocates.
///
/// # Examples
///
/// ```
/// use backpressure_pattern::{Pattern, PatternError};
///
/// let p = Pattern::parse("backpressure.*")?;
/// assert!(p.matches("backpressure.downstream"));
/// assert!(p.matches("backpressure.db.primary"));
/// assert!(!p.matches("backpressure"));
///
/// assert_eq!(Pattern::parse("a.*,,b"), Err(PatternError::EmptyItem { index: 1 }));
/// # Ok::<(), PatternError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: Box<str>,
    items: Box<[Item]>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Item {
    /// No wildcard: plain string equality.
    Exact(Box<str>),
    /// `literal*`.
    Prefix(Box<str>),
    /// `*literal`.
    Suffix(Box<str>),
    /// `*` alone.
    Any,
    /// Anything else, matched byte by byte (names are ASCII).
    Glob(Box<[u8]>),
}

impl Pattern {
    /// Compiles a pattern string.
    ///
    /// # Errors
    ///
    /// [`PatternError`] when the string is empty, an item of a comma-separated list is empty,
    /// an item is longer than 256 bytes, or holds a character that is neither allowed in a
    /// signal name nor `*` / `?`.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if source.trim().is_empty() {
            return Err(PatternError::Empty);
        }
        let items = source
            .split(',')
            .enumerate()
            .map(|(index, raw)| Item::compile(index, raw.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: source.into(),
            items: items.into_boxed_slice(),
        })
    }

    /// The string this pattern was compiled from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` matches any item of this pattern.
    pub fn matches(&self, name: &str) -> bool {
        self.items.iter().any(|item| item.matches(name))
    }

    /// Whether this pattern is a single item without wildcards (an exact name).
    pub fn is_exact(&self) -> bool {
        matches!(&*self.items, [Item::Exact(_)])
    }
}

impl Item {
    fn compile(index: usize, item: &str) -> Result<Self, PatternError> {
        if item.is_empty() {
            return Err(PatternError::EmptyItem { index });
        }
        if item.len() > MAX_NAME_LEN {
            return Err(PatternError::TooLong { len: item.len() });
        }
        if let Some((at, ch)) = item
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii() && (is_name_byte(c as u8) || c == '*' || c == '?')))
        {
            return Err(PatternError::BadChar {
                item: item.chars().take(64).collect(),
                ch,
                at,
            });
        }
        let stars = item.bytes().filter(|&b| b == b'*').count();
        let has_question = item.contains('?');
        Ok(match (stars, has_question) {
            (0, false) => Item::Exact(item.into()),
            _ if item.bytes().all(|b| b == b'*') => Item::Any,
            (1, false) if item.ends_with('*') => Item::Prefix(item[..item.len() - 1].into()),
            (1, false) if item.starts_with('*') => Item::Suffix(item[1..].into()),
            _ => Item::Glob(item.as_bytes().into()),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Item::Exact(s) => **s == *name,
            Item::Prefix(p) => name.starts_with(&**p),
            Item::Suffix(s) => name.ends_with(&**s),
            Item::Any => true,
            Item::Glob(g) => glob_match(g, name.as_bytes()),
        }
    }
}

/// Iterative wildcard matching with a single backtrack point: linear in practice, no
/// allocation, no recursion.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: (pattern index after the star, name index).
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::parse(p).unwrap().matches(n)
    }

    #[test]
    fn exact_items_match_only_themselves() {
        assert!(m("backpressure.downstream", "backpressure.downstream"));
        assert!(!m("backpressure.downstream", "backpressure.downstream2"));
        assert!(Pattern::parse("a.b").unwrap().is_exact());
        assert!(!Pattern::parse("a.*").unwrap().is_exact());
    }

    #[test]
    fn star_matches_any_run_including_dots_and_empty() {
        assert!(m("backpressure.*", "backpressure.db.primary"));
        assert!(m("backpressure.*", "backpressure."));
        assert!(!m("backpressure.*", "backpressure"));
        assert!(m("*.slow", "db.replica.slow"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*", ""));
        assert!(m("**", "anything"));
        assert!(m("*a*", "bab"));
        assert!(!m("*a*", "bbb"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(m("db.?", "db.1"));
        assert!(!m("db.?", "db."));
        assert!(!m("db.?", "db.12"));
        assert!(m("?b*", "ab"));
        assert!(m("a?c*d", "abcxxd"));
    }

    #[test]
    fn comma_lists_match_any_item_and_ignore_spaces() {
        let p = Pattern::parse("cpu.high, db.*,net.?").unwrap();
        assert!(p.matches("cpu.high"));
        assert!(p.matches("db.slow"));
        assert!(p.matches("net.1"));
        assert!(!p.matches("cpu.low"));
        assert_eq!(p.as_str(), "cpu.high, db.*,net.?");
    }

    #[test]
    fn invalid_patterns_are_typed_errors() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse("  "), Err(PatternError::Empty));
        assert_eq!(
            Pattern::parse("a,"),
            Err(PatternError::EmptyItem { index: 1 })
        );
        assert_eq!(
            Pattern::parse(",a"),
            Err(PatternError::EmptyItem { index: 0 })
        );
        let err = Pattern::parse("a.*, b c").unwrap_err();
        assert_eq!(
            err,
            PatternError::BadChar {
                item: "b c".into(),
                ch: ' ',
                at: 1
            }
        );
        assert!(err.to_string().contains("wildcards"));
        assert_eq!(
            Pattern::parse(&"a".repeat(300)),
            Err(PatternError::TooLong { len: 300 })
        );
    }
}
