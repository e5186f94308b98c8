//! "Did you mean" suggestions for a misspelt key or policy.

/// ` (did you mean `x`?)` for the nearest of `names`, if one is near enough.
pub(crate) fn suggest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::distance;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("sink", "sink"), 0);
        assert_eq!(distance("snk", "sink"), 1);
        assert_eq!(distance("concurency", "concurrency"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
