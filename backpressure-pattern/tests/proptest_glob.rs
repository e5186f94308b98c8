//! Property tests: the glob matcher agrees with a `regex`-based reference, and pattern and
//! name validation never panic on arbitrary input.
//!
//! Deterministic: every property runs a fixed number of cases from a fixed seed.

use backpressure_pattern::{validate_name, NameErrorKind, Pattern, PatternError, MAX_NAME_LEN};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use regex::Regex;

/// Cases per matcher property.
const MATCH_CASES: u32 = 1_024;
/// Cases per validation property.
const VALIDATION_CASES: u32 = 1_024;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x6261_636b_7072_6573),
        failure_persistence: None,
        ..Config::default()
    }
}

/// The reference: each comma-separated item, trimmed, becomes an anchored regex in which
/// `*` is `.*`, `?` is `.` and everything else is literal.
fn reference(pattern: &str, name: &str) -> bool {
    let items: Vec<String> = pattern
        .split(',')
        .map(|item| {
            item.trim()
                .chars()
                .map(|c| match c {
                    '*' => ".*".to_owned(),
                    '?' => ".".to_owned(),
                    c => regex::escape(&c.to_string()),
                })
                .collect()
        })
        .collect();
    let re = Regex::new(&format!("(?s)^(?:{})$", items.join("|"))).expect("reference regex");
    re.is_match(name)
}

/// Names over a small alphabet so that generated patterns often match.
fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab.]{0,10}|[a-zA-Z0-9._:/-]{0,24}").unwrap()
}

/// One glob item: wildcards anywhere, dots, repeated stars.
fn item() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab.*?]{1,8}|[a-z0-9._:/*?-]{1,16}").unwrap()
}

/// A pattern: one to three items, with optional spaces around them.
fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec((item(), " {0,1}", " {0,1}"), 1..=3).prop_map(|items| {
        items
            .into_iter()
            .map(|(item, before, after)| format!("{before}{item}{after}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A pattern made from a name by turning some characters into `?` and inserting `*`s, so
/// that it usually matches that name (and sometimes, through the edits, does not).
fn pattern_from_name() -> impl Strategy<Value = (String, String)> {
    (name(), prop::collection::vec((0usize..32, 0u8..4), 0..4)).prop_map(|(name, edits)| {
        let mut chars: Vec<char> = name.chars().collect();
        for (at, kind) in edits {
            let at = if chars.is_empty() {
                0
            } else {
                at % (chars.len() + 1)
            };
            match kind {
                0 => chars.insert(at, '*'),
                1 if at < chars.len() => chars[at] = '?',
                2 if at < chars.len() => {
                    chars.remove(at);
                }
                _ => chars.insert(at, 'a'),
            }
        }
        let mut pattern: String = chars.into_iter().collect();
        if pattern.is_empty() {
            pattern.push('*');
        }
        (pattern, name)
    })
}

proptest! {
    #![proptest_config(config(MATCH_CASES))]

    #[test]
    fn matcher_agrees_with_the_regex_reference(pattern in pattern(), name in name()) {
        let compiled = Pattern::parse(&pattern).expect("generated patterns are valid");
        prop_assert_eq!(compiled.matches(&name), reference(&pattern, &name), "pattern {:?} name {:?}", pattern, name);
    }

    #[test]
    fn matcher_agrees_on_patterns_made_from_the_name((pattern, name) in pattern_from_name()) {
        let compiled = Pattern::parse(&pattern).expect("generated patterns are valid");
        prop_assert_eq!(compiled.matches(&name), reference(&pattern, &name), "pattern {:?} name {:?}", pattern, name);
    }

    /// `*` inserted at every position of a name still matches it; so does `?` in place of
    /// any one character, and the name itself (the exact fast path).
    #[test]
    fn star_at_every_position_and_question_mark_everywhere_match(name in "[a-z0-9._:/-]{1,20}") {
        prop_assert!(Pattern::parse(&name).unwrap().matches(&name));
        prop_assert!(Pattern::parse(&name).unwrap().is_exact());
        for at in 0..=name.len() {
            let starred = format!("{}*{}", &name[..at], &name[at..]);
            prop_assert!(Pattern::parse(&starred).unwrap().matches(&name), "{}", starred);
        }
        for at in 0..name.len() {
            let questioned = format!("{}?{}", &name[..at], &name[at + 1..]);
            prop_assert!(Pattern::parse(&questioned).unwrap().matches(&name), "{}", questioned);
            // One character too many or too few never matches a `?`.
            let longer = format!("{questioned}?");
            prop_assert!(!Pattern::parse(&longer).unwrap().matches(&name), "{}", longer);
        }
    }

    /// A comma list matches exactly when one of its items does.
    #[test]
    fn a_list_matches_when_any_item_matches(items in prop::collection::vec(item(), 1..=4), name in name()) {
        let list = Pattern::parse(&items.join(", ")).unwrap();
        let any = items.iter().any(|item| Pattern::parse(item).unwrap().matches(&name));
        prop_assert_eq!(list.matches(&name), any);
    }
}

/// Arbitrary strings: any unicode, control characters, commas, whitespace, very long runs.
fn arbitrary() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,300}",
        "[ ,*?a\t\n\u{0}\u{7f}é漢🦀]{0,40}",
        ("[a-z.*?,]{0,8}", 200usize..400).prop_map(|(s, n)| s.repeat(n / s.len().max(1) + 1)),
        Just(String::new()),
        Just(",".to_owned()),
        Just(" , ".to_owned()),
    ]
}

proptest! {
    #![proptest_config(config(VALIDATION_CASES))]

    /// Pattern parsing never panics; it accepts, or rejects with a typed error whose
    /// message says what is wrong.
    #[test]
    fn pattern_parsing_never_panics(source in arbitrary()) {
        match Pattern::parse(&source) {
            Ok(pattern) => {
                prop_assert_eq!(pattern.as_str(), source.as_str());
                for item in source.split(',') {
                    let item = item.trim();
                    prop_assert!(!item.is_empty() && item.len() <= MAX_NAME_LEN);
                    prop_assert!(item.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-/*?".contains(&b)));
                }
                // Matching arbitrary input never panics either.
                let _ = pattern.matches(&source);
            }
            Err(err) => {
                let message = err.to_string();
                prop_assert!(!message.is_empty());
                match &err {
                    PatternError::Empty => prop_assert!(source.trim().is_empty()),
                    PatternError::EmptyItem { index } => {
                        prop_assert!(source.split(',').nth(*index).is_some_and(|i| i.trim().is_empty()));
                    }
                    PatternError::TooLong { len } => prop_assert!(*len > MAX_NAME_LEN && message.contains(&len.to_string())),
                    PatternError::BadChar { ch, .. } => {
                        prop_assert!(source.contains(*ch));
                        prop_assert!(!(ch.is_ascii_alphanumeric() || ".:_-/*?".contains(*ch)));
                    }
                    other => prop_assert!(false, "unexpected variant {:?}", other),
                }
            }
        }
    }

    /// Name validation never panics and agrees with the documented rules exactly.
    #[test]
    fn name_validation_never_panics_and_follows_the_rules(name in arbitrary()) {
        let by_rules = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
        match validate_name(&name) {
            Ok(()) => prop_assert!(by_rules, "{:?} accepted", name),
            Err(err) => {
                prop_assert!(!by_rules, "{:?} rejected: {}", name, err);
                prop_assert!(!err.to_string().is_empty());
                match err.kind() {
                    NameErrorKind::Empty => prop_assert!(name.is_empty()),
                    NameErrorKind::TooLong { len } => prop_assert_eq!(*len, name.len()),
                    NameErrorKind::BadChar { ch, at } => {
                        prop_assert_eq!(name[*at..].chars().next(), Some(*ch));
                    }
                    other => prop_assert!(false, "unexpected variant {:?}", other),
                }
            }
        }
    }
}
