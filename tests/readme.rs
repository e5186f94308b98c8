//! The README's snippets marked `<!-- compiled: PATH -->` are taken from a file that is
//! compiled (an example, a test, a doc test): every line of such a snippet must be a line of
//! that file (trimmed; a doc comment's `///` or `//!` stripped), so a snippet cannot rot while
//! its source still compiles.

use std::path::Path;

const MARKER: &str = "<!-- compiled: ";

/// The lines of `text` as compared: trimmed, without a doc comment's prefix.
fn source_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let line = line.trim();
            let line = line
                .strip_prefix("///")
                .or_else(|| line.strip_prefix("//!"))
                .unwrap_or(line);
            line.trim().to_owned()
        })
        .collect()
}

/// Each marked snippet: its source path and its lines.
fn marked_snippets(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut snippets = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix(MARKER)
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "a code block must follow `{line}`"
        );
        let body = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        snippets.push((path.to_owned(), body));
    }
    snippets
}

#[test]
fn every_marked_readme_snippet_is_taken_from_its_compiled_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let snippets = marked_snippets(&readme);
    assert!(
        snippets.len() >= 4,
        "found {} marked snippets",
        snippets.len()
    );
    let mut stale = Vec::new();
    for (path, body) in &snippets {
        let source = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|err| panic!("README names `{path}`: {err}"));
        let source = source_lines(&source);
        for line in body {
            if !source.contains(line) {
                stale.push(format!("{path}: `{line}`"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "README lines not found in their source:\n{}",
        stale.join("\n")
    );
}
