//! ARCHITECTURE.md names real places: every path and file name in backticks exists, so the
//! map cannot silently rot.

use std::path::{Path, PathBuf};

const CRATES: &[&str] = &[
    "",
    "backpressure",
    "backpressure-macros",
    "backpressure-pattern",
    "backpressure-redis",
    "backpressure-admin",
];

/// The code spans of `text` (single backticks).
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Every file below `dir`, skipping build output and VCS metadata.
fn files_below(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if path.is_dir() {
            files_below(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[test]
fn every_path_named_in_architecture_md_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    files_below(root, &mut files);
    let mut missing = Vec::new();
    let mut checked = 0;
    for span in code_spans(&text) {
        let looks_like_path = span.contains('/')
            && !span.contains(' ')
            && !span.contains("::")
            && !span.starts_with('[')
            && !span.contains('"');
        let looks_like_file = !span.contains('/')
            && !span.contains(' ')
            && (span.ends_with(".rs") || span.ends_with(".md"));
        if looks_like_path {
            checked += 1;
            let exists = CRATES
                .iter()
                .any(|krate| root.join(krate).join(span.trim_end_matches('/')).exists());
            if !exists {
                missing.push(span);
            }
        } else if looks_like_file {
            checked += 1;
            if !files
                .iter()
                .any(|f| f.file_name().is_some_and(|n| n == span))
            {
                missing.push(span);
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} paths found: is the parser still right?"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names places that do not exist: {missing:?}"
    );
}
