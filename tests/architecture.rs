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

/// `text` without `//` comments (line and doc comments; the files checked have no `//` in
/// their strings).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// The identifier at the start of `text`.
fn leading_ident(text: &str) -> &str {
    let end = text.find(|c| !is_ident_char(c)).unwrap_or(text.len());
    &text[..end]
}

/// The first segment of every absolute path (`::name`) in `code`, with its line number.
fn absolute_paths(code: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        for (at, _) in line.match_indices("::") {
            let before = line[..at].trim_end().chars().last();
            let continues_a_path = before.is_some_and(|c| is_ident_char(c) || c == '>' || c == ':');
            if !continues_a_path {
                found.push((number + 1, leading_ident(&line[at + 2..])));
            }
        }
    }
    found
}

/// The names `private.rs` makes public: `pub use` items (the braced list or the last
/// segment, or the alias) and `pub fn`s.
fn exported_by_private(text: &str) -> Vec<String> {
    let code = without_comments(text);
    let mut names = Vec::new();
    for statement in code.split(';') {
        let statement = statement.trim();
        if let Some(path) = statement.strip_prefix("pub use ") {
            let list = match path.find('{') {
                Some(open) => path[open + 1..].trim_end_matches('}').to_owned(),
                None => path.rsplit("::").next().unwrap_or(path).to_owned(),
            };
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let name = item.rsplit(" as ").next().unwrap_or(item);
                names.push(name.rsplit("::").next().unwrap_or(name).to_owned());
            }
        }
    }
    for line in code.lines() {
        let line = line.trim_start();
        let rest = line
            .strip_prefix("pub const fn ")
            .or_else(|| line.strip_prefix("pub fn "));
        if let Some(rest) = rest {
            names.push(leading_ident(rest).to_owned());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// ARCHITECTURE.md: "generated code reaches the runtime only through `__private`". Every file
/// of the macro crate that writes code (it uses `quote`) names, as absolute paths, only
/// `core` and `std`; it reaches `__private` only as `#krate::__private` (`krate` being the
/// attribute's `crate = "..."` or `DEFAULT_CRATE`), and what `expand.rs` names under
/// `#private::` is exactly what `backpressure/src/private.rs` exports.
#[test]
fn generated_code_names_the_runtime_only_through_private() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_below(&root.join("backpressure-macros/src"), &mut files);
    let mut emitters = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let code = without_comments(&std::fs::read_to_string(file).unwrap());
        if code.contains("use quote::") {
            emitters.push((file.clone(), code));
        }
    }
    assert!(
        emitters.iter().any(|(f, _)| f.ends_with("expand.rs")),
        "expand.rs no longer uses `quote`: is this check still right?"
    );
    let mut named = Vec::new();
    for (file, code) in &emitters {
        for (line, first) in absolute_paths(code) {
            assert!(
                first == "core" || first == "std",
                "{}:{line}: generated code names `::{first}`; reach the runtime through \
                 `#private` (`<crate>::__private`)",
                file.display()
            );
        }
        for (at, _) in code.match_indices("__private") {
            assert!(
                code[..at].ends_with("#krate::"),
                "{}: `__private` is reached other than as `#krate::__private`",
                file.display()
            );
        }
        for (at, _) in code.match_indices("#private::") {
            named.push(leading_ident(&code[at + "#private::".len()..]).to_owned());
        }
    }
    named.sort();
    named.dedup();
    let private = std::fs::read_to_string(root.join("backpressure/src/private.rs")).unwrap();
    assert_eq!(
        named,
        exported_by_private(&private),
        "what the generated code names under `__private` and what `private.rs` exports differ"
    );
}
