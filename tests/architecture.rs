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

// ---------------------------------------------------------------------------------------
// The shape of every crate's `src/` (issue 18): no file over 600 lines, no function over 60
// lines, no import cycle between files. `.ci/shape` prints the same scan as a report; the
// two must stay in step. Run these alone with `cargo test --test architecture shape_`.
//
// The scan is a token walk, not a parser, written for rustfmt-formatted code: strings, chars
// and comments (doc comments too) are skipped, braces are matched, `fn` items with a body
// are measured from the `fn` line to the closing brace. Test code is not held to the limits:
// files declared under `#[cfg(test)]` or a loom cfg, `#[cfg(test)]` modules, `#[test]` fns.
//
// Edges of the import graph: every leaf of a `use` tree and every `crate::`/`super::`/
// `self::` path in code, made absolute and resolved to the deepest module it names; when the
// next segment is something that module imports, the import is followed (up to
// `MAX_FOLLOW` levels), so `crate::Sink` reaches `sink/core.rs`, not `lib.rs`. A `mod`
// declaration is not an edge, nor a `pub use` by which a file re-exports one of its own
// descendants, unless the file's own code uses the name.
// ---------------------------------------------------------------------------------------

use std::collections::{BTreeMap, HashMap, HashSet};

const FILE_LIMIT: usize = 600;
const FN_LIMIT: usize = 60;
const MAX_FOLLOW: usize = 5;
/// Not held to the file limit although it is under `src/`: the loom models.
const FILE_LIMIT_EXEMPT: &[&str] = &["backpressure/src/sync/loom_tests.rs"];

// ----------------------------------------------------------------------------- lexer

#[derive(Clone, Copy, Debug, PartialEq)]
enum TokKind {
    Ident,
    Punct,
    Lit,
    Lifetime,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: TokKind,
    text: String,
    line: usize,
}

fn at(s: &[char], i: usize) -> char {
    s.get(i).copied().unwrap_or('\0')
}

fn starts_with(s: &[char], i: usize, pat: &str) -> bool {
    pat.chars().enumerate().all(|(k, c)| at(s, i + k) == c)
}

/// `s[i]` opens a `"..."` string; the index after its closing quote.
fn string_end(s: &[char], mut i: usize) -> usize {
    i += 1;
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// `s[i]` is the `r` of `r"..."` or `r#"..."#`; the index after it, if it is one.
fn raw_string_end(s: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while at(s, j) == '#' {
        j += 1;
    }
    if at(s, j) != '"' {
        return None;
    }
    let close: String = std::iter::once('"')
        .chain(s[i + 1..j].iter().copied())
        .collect();
    (j + 1..s.len())
        .find(|&k| starts_with(s, k, &close))
        .map(|k| k + close.chars().count())
        .or(Some(s.len()))
}

/// `s[i]` is a quote: a char literal (`'a'`, `'\n'`, `'\''`) or a lifetime (`'a`).
fn char_or_lifetime(s: &[char], i: usize) -> (usize, TokKind) {
    if at(s, i + 1) == '\\' {
        let from = if at(s, i + 2) == '\'' { i + 3 } else { i + 2 };
        let end = (from..s.len()).find(|&k| s[k] == '\'').unwrap_or(s.len());
        return (end + 1, TokKind::Lit);
    }
    if at(s, i + 2) == '\'' {
        return (i + 3, TokKind::Lit);
    }
    let mut j = i + 1;
    while at(s, j).is_alphanumeric() || at(s, j) == '_' {
        j += 1;
    }
    (j, TokKind::Lifetime)
}

/// A byte string, byte char or raw string starting at `s[i]`: its end.
fn prefixed_literal_end(s: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if s[j] == 'b' {
        j += 1;
        match at(s, j) {
            '"' => return Some(string_end(s, j)),
            '\'' => return Some(char_or_lifetime(s, j).0),
            _ => {}
        }
    }
    if at(s, j) == 'r' {
        return raw_string_end(s, j);
    }
    None
}

fn block_comment_end(s: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < s.len() {
        if starts_with(s, i, "/*") {
            depth += 1;
            i += 2;
        } else if starts_with(s, i, "*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// The end of the token at `s[i]` and its kind; `None` for whitespace and comments.
fn next_token(s: &[char], i: usize) -> (usize, Option<TokKind>) {
    let c = s[i];
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let end_of = |from: usize, f: &dyn Fn(char) -> bool| {
        (from..s.len()).find(|&k| !f(s[k])).unwrap_or(s.len())
    };
    if c.is_whitespace() {
        (i + 1, None)
    } else if starts_with(s, i, "//") {
        (end_of(i, &|c| c != '\n'), None)
    } else if starts_with(s, i, "/*") {
        (block_comment_end(s, i), None)
    } else if c == '"' {
        (string_end(s, i), Some(TokKind::Lit))
    } else if let Some(end) = (c == 'b' || c == 'r')
        .then(|| prefixed_literal_end(s, i))
        .flatten()
    {
        (end, Some(TokKind::Lit))
    } else if c == '\'' {
        let (end, kind) = char_or_lifetime(s, i);
        (end, Some(kind))
    } else if c.is_alphabetic() || c == '_' {
        (end_of(i, &word), Some(TokKind::Ident))
    } else if c.is_ascii_digit() {
        (end_of(i, &|c| word(c) || c == '.'), Some(TokKind::Lit))
    } else if ["::", "->", "=>"].iter().any(|p| starts_with(s, i, p)) {
        (i + 2, Some(TokKind::Punct))
    } else {
        (i + 1, Some(TokKind::Punct))
    }
}

fn lex(src: &str) -> Vec<Tok> {
    let s: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut toks) = (0, 1, Vec::new());
    while i < s.len() {
        let (end, kind) = next_token(&s, i);
        let end = end.min(s.len()).max(i + 1);
        if let Some(kind) = kind {
            let text = s[i..end].iter().collect();
            toks.push(Tok { kind, text, line });
        }
        line += s[i..end].iter().filter(|&&c| c == '\n').count();
        i = end;
    }
    toks
}

// ----------------------------------------------------------------------------- one file

type ModPath = Vec<String>;

#[derive(Debug)]
struct FnItem {
    line: usize,
    name: String,
    lines: usize,
    test: bool,
}

/// One leaf of a `use` tree, as written; `name` is what it binds (`None` for a glob).
#[derive(Debug)]
struct UseLeaf {
    path: Vec<String>,
    name: Option<String>,
    glob: bool,
    public: bool,
    line: usize,
    scope: ModPath,
}

#[derive(Debug)]
struct CodePath {
    segments: Vec<String>,
    line: usize,
    scope: ModPath,
}

#[derive(Debug)]
struct ModDecl {
    name: String,
    path_attr: Option<String>,
    test: bool,
}

/// What one file holds; `scope`s are inline modules relative to the file's own module.
#[derive(Debug, Default)]
struct FileScan {
    fns: Vec<FnItem>,
    uses: Vec<UseLeaf>,
    paths: Vec<CodePath>,
    mods: Vec<ModDecl>,
    inline_mods: Vec<ModPath>,
    defined: HashMap<ModPath, HashSet<String>>,
    idents: HashSet<String>,
}

/// What a `{` opened.
#[derive(Clone, Debug)]
enum Frame {
    Mod {
        name: String,
        test: bool,
    },
    Impl {
        name: String,
    },
    Fn {
        name: String,
        line: usize,
        test: bool,
    },
    Block,
}

const ITEM_KEYWORDS: &[&str] = &[
    "struct", "enum", "trait", "type", "const", "static", "union",
];

fn is_test_attr(attr: &[String]) -> bool {
    let name = match attr.iter().position(|t| t == "(") {
        Some(k) => &attr[..k],
        None => attr,
    };
    if name.last().is_some_and(|t| t == "test") {
        return true;
    }
    let test_cfg = attr.iter().any(|t| t == "test" || t.contains("loom"));
    name == ["cfg"] && test_cfg && !attr.iter().any(|t| t == "not")
}

struct Scanner {
    toks: Vec<Tok>,
    i: usize,
    out: FileScan,
    stack: Vec<Frame>,
    attrs: Vec<Vec<String>>,
    pending: Option<Frame>,
}

impl Scanner {
    fn scan(src: &str) -> FileScan {
        let mut scanner = Scanner {
            toks: lex(src),
            i: 0,
            out: FileScan::default(),
            stack: Vec::new(),
            attrs: Vec::new(),
            pending: None,
        };
        while scanner.i < scanner.toks.len() {
            scanner.step();
        }
        scanner.out
    }

    fn text(&self, k: usize) -> &str {
        self.toks.get(self.i + k).map_or("", |t| t.text.as_str())
    }

    fn is_ident(&self, k: usize) -> bool {
        self.toks
            .get(self.i + k)
            .is_some_and(|t| t.kind == TokKind::Ident)
    }

    fn scope(&self) -> ModPath {
        let mods = self.stack.iter().filter_map(|f| match f {
            Frame::Mod { name, .. } => Some(name.clone()),
            _ => None,
        });
        mods.collect()
    }

    fn in_test(&self) -> bool {
        let test = |f: &Frame| {
            matches!(
                f,
                Frame::Mod { test: true, .. } | Frame::Fn { test: true, .. }
            )
        };
        self.stack.iter().any(test) || self.attrs.iter().any(|a| is_test_attr(a))
    }

    /// The type of the innermost `impl` block around the current fn, if no fn is between.
    fn impl_name(&self) -> Option<String> {
        for frame in self.stack.iter().rev() {
            match frame {
                Frame::Impl { name } => return Some(name.clone()),
                Frame::Fn { .. } => return None,
                _ => {}
            }
        }
        None
    }

    fn step(&mut self) {
        let tok = self.toks[self.i].clone();
        match tok.text.as_str() {
            "#" if self.text(1) == "[" => return self.read_attr(),
            "#" if self.text(1) == "!" => return self.skip_group(self.i + 2),
            "{" => self.open_brace(),
            "}" => self.close_brace(tok.line),
            ";" => {
                self.pending = None;
                self.attrs.clear();
            }
            _ if tok.kind == TokKind::Ident => {
                if self.ident(&tok) {
                    return;
                }
                self.out.idents.insert(tok.text);
            }
            _ => {}
        }
        self.i += 1;
    }

    /// `toks[j]` opens a bracket group: moves past its close.
    fn skip_group(&mut self, mut j: usize) {
        let mut depth = 0;
        while j < self.toks.len() {
            match self.toks[j].text.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        self.i = j + 1;
    }

    fn read_attr(&mut self) {
        let start = self.i + 2;
        self.skip_group(self.i + 1);
        let end = (self.i - 1).max(start);
        let attr = self.toks[start..end]
            .iter()
            .map(|t| t.text.clone())
            .collect();
        self.attrs.push(attr);
    }

    fn prev_is_item_start(&self) -> bool {
        let mut j = self.i;
        while j > 0 && matches!(self.toks[j - 1].text.as_str(), "unsafe" | "default") {
            j -= 1;
        }
        j == 0 || matches!(self.toks[j - 1].text.as_str(), ";" | "}" | "{" | "]")
    }

    /// Handles an identifier; true when it consumed the tokens itself.
    fn ident(&mut self, tok: &Tok) -> bool {
        let next_ident = self.is_ident(1) && self.pending.is_none();
        match tok.text.as_str() {
            "use" => self.read_use(),
            "mod" if next_ident => self.read_mod(),
            "crate" | "super" | "self" if self.text(1) == "::" => self.read_path(),
            "fn" if next_ident => {
                let name = self.text(1).to_owned();
                let test = self.in_test();
                self.define(&name);
                self.pending = Some(Frame::Fn {
                    name,
                    line: tok.line,
                    test,
                });
                self.attrs.clear();
                return false;
            }
            "impl" if self.pending.is_none() && self.prev_is_item_start() => {
                self.pending = Some(Frame::Impl {
                    name: self.read_impl_name(),
                });
                self.attrs.clear();
                return false;
            }
            "macro_rules" if self.text(1) == "!" => {
                let name = self.text(2).to_owned();
                self.define(&name);
                return false;
            }
            kw if ITEM_KEYWORDS.contains(&kw) && next_ident && self.text(1) != "fn" => {
                let name = self.text(1).to_owned();
                self.define(&name);
                return false;
            }
            _ => return false,
        }
        true
    }

    fn define(&mut self, name: &str) {
        let scope = self.scope();
        self.out
            .defined
            .entry(scope)
            .or_default()
            .insert(name.to_owned());
    }

    fn read_mod(&mut self) {
        let name = self.text(1).to_owned();
        let test = self.in_test();
        let path_attr = self.attrs.iter().find_map(|a| match a.as_slice() {
            [p, eq, value, ..] if p == "path" && eq == "=" => {
                Some(value.trim_matches('"').to_owned())
            }
            _ => None,
        });
        self.attrs.clear();
        if self.text(2) == ";" {
            self.out.mods.push(ModDecl {
                name,
                path_attr,
                test,
            });
            self.i += 3;
        } else {
            self.pending = Some(Frame::Mod { name, test });
            self.i += 2;
        }
    }

    /// The implemented type: the last segment of the first path after `for` (or `impl<..>`).
    fn read_impl_name(&self) -> String {
        let mut words = Vec::new();
        let mut angle = 0;
        for tok in &self.toks[self.i + 1..] {
            match tok.text.as_str() {
                "{" | ";" | "where" => break,
                "<" => angle += 1,
                ">" => angle -= 1,
                w if angle == 0 && !matches!(w, "&" | "dyn" | "mut") => words.push(w),
                _ => {}
            }
        }
        if let Some(k) = words.iter().position(|w| *w == "for") {
            words.drain(..=k);
        }
        let mut name = "?";
        for (k, w) in words.iter().enumerate() {
            match k % 2 {
                0 => name = w,
                _ if *w != "::" => break,
                _ => {}
            }
        }
        name.to_owned()
    }

    fn open_brace(&mut self) {
        let frame = self.pending.take().unwrap_or(Frame::Block);
        self.attrs.clear();
        self.stack.push(frame.clone());
        if let Frame::Mod { .. } = frame {
            self.out.inline_mods.push(self.scope());
        }
    }

    fn close_brace(&mut self, line: usize) {
        self.attrs.clear();
        let Some(Frame::Fn {
            name,
            line: start,
            test,
        }) = self.stack.pop()
        else {
            return;
        };
        let name = match self.impl_name() {
            Some(owner) => format!("{owner}::{name}"),
            None => name,
        };
        let lines = line - start + 1;
        self.out.fns.push(FnItem {
            line: start,
            name,
            lines,
            test,
        });
    }

    fn read_path(&mut self) {
        let line = self.toks[self.i].line;
        let mut segments = vec![self.text(0).to_owned()];
        self.i += 1;
        while self.text(0) == "::" && self.is_ident(1) {
            segments.push(self.text(1).to_owned());
            self.i += 2;
        }
        let scope = self.scope();
        self.out.paths.push(CodePath {
            segments,
            line,
            scope,
        });
    }

    /// Whether the `use` at `toks[i]` is `pub` or `pub(...)`.
    fn use_is_public(&self) -> bool {
        let mut j = self.i;
        if j > 0 && self.toks[j - 1].text == ")" {
            while j > 0 && self.toks[j - 1].text != "(" {
                j -= 1;
            }
            j = j.saturating_sub(1);
        }
        j > 0 && self.toks[j - 1].text == "pub"
    }

    fn read_use(&mut self) {
        let public = self.use_is_public();
        let line = self.toks[self.i].line;
        self.i += 1;
        let mut leaves = Vec::new();
        self.use_tree(Vec::new(), &mut leaves);
        let scope = self.scope();
        for (path, name, glob) in leaves {
            let scope = scope.clone();
            self.out.uses.push(UseLeaf {
                path,
                name,
                glob,
                public,
                line,
                scope,
            });
        }
        while self.i < self.toks.len() && self.text(0) != ";" {
            self.i += 1;
        }
        self.i += 1;
        self.attrs.clear();
    }

    /// One use tree below `prefix`: `a::b`, `a::{..}`, `a::*`, `a as b`, `self`.
    fn use_tree(
        &mut self,
        mut path: Vec<String>,
        leaves: &mut Vec<(Vec<String>, Option<String>, bool)>,
    ) {
        if self.text(0) == "::" {
            self.i += 1;
        }
        loop {
            let segment = self.text(0).to_owned();
            match segment.as_str() {
                "{" => return self.use_group(path, leaves),
                "*" => {
                    self.i += 1;
                    return leaves.push((path, None, true));
                }
                _ if !self.is_ident(0) => return,
                _ => path.push(segment),
            }
            self.i += 1;
            if self.text(0) == "::" {
                self.i += 1;
                continue;
            }
            let mut name = path.last().cloned();
            if self.text(0) == "as" {
                name = Some(self.text(1).to_owned());
                self.i += 2;
            }
            if path.last().is_some_and(|s| s == "self") {
                path.pop();
                if name.as_deref() == Some("self") {
                    name = path.last().cloned();
                }
            }
            return leaves.push((path, name, false));
        }
    }

    fn use_group(
        &mut self,
        path: Vec<String>,
        leaves: &mut Vec<(Vec<String>, Option<String>, bool)>,
    ) {
        self.i += 1;
        while !matches!(self.text(0), "}" | "") {
            self.use_tree(path.clone(), leaves);
            if self.text(0) == "," {
                self.i += 1;
            }
        }
        self.i += 1;
    }
}

// ----------------------------------------------------------------------------- a crate

/// A crate's files, read from its `mod` declarations starting at `src/lib.rs` or `src/main.rs`.
#[derive(Debug, Default)]
struct CrateScan {
    /// Module path -> the file that holds it (inline modules map to their file).
    modules: HashMap<ModPath, String>,
    /// File (relative to the crate directory) -> its module path.
    file_mod: HashMap<String, ModPath>,
    scans: BTreeMap<String, FileScan>,
    lines: BTreeMap<String, usize>,
    test_files: HashSet<String>,
}

/// Where a reference was written: `file:line` and the path as written.
#[derive(Clone, Debug)]
struct Evidence {
    line: usize,
    path: String,
}

type Edges = BTreeMap<(String, String), Evidence>;

impl CrateScan {
    /// Reads the crate through `read` (a path relative to the crate directory -> its text).
    fn load(read: &dyn Fn(&str) -> Option<String>) -> CrateScan {
        let mut krate = CrateScan::default();
        let root = if read("src/lib.rs").is_some() {
            "src/lib.rs"
        } else {
            "src/main.rs"
        };
        krate.load_file(read, root, Vec::new(), false, true);
        krate
    }

    fn load_file(
        &mut self,
        read: &dyn Fn(&str) -> Option<String>,
        file: &str,
        module: ModPath,
        test: bool,
        owns_dir: bool,
    ) {
        if self.scans.contains_key(file) {
            return;
        }
        let Some(text) = read(file) else { return };
        let scan = Scanner::scan(&text);
        self.lines.insert(file.to_owned(), text.lines().count());
        self.modules.insert(module.clone(), file.to_owned());
        self.file_mod.insert(file.to_owned(), module.clone());
        if test {
            self.test_files.insert(file.to_owned());
        }
        for scope in &scan.inline_mods {
            let inline = module.iter().chain(scope).cloned().collect();
            self.modules
                .entry(inline)
                .or_insert_with(|| file.to_owned());
        }
        let children: Vec<(String, ModPath, bool, bool)> = scan
            .mods
            .iter()
            .map(|m| {
                let (child, owns) = child_file(read, file, owns_dir, m);
                let path = module.iter().cloned().chain([m.name.clone()]).collect();
                (child, path, test || m.test, owns)
            })
            .collect();
        self.scans.insert(file.to_owned(), scan);
        for (child, path, test, owns) in children {
            self.load_file(read, &child, path, test, owns);
        }
    }

    /// `segments` as written in module `module`, made absolute; `None` if it leaves the crate.
    fn absolute(&self, segments: &[String], module: &[String], is_use: bool) -> Option<ModPath> {
        let first = segments.first()?;
        if first == "crate" {
            return Some(segments[1..].to_vec());
        }
        if first == "super" || first == "self" {
            let mut base = module.to_vec();
            let relative = segments
                .iter()
                .take_while(|s| *s == "super" || *s == "self");
            for segment in relative.clone() {
                if segment == "super" {
                    base.pop()?;
                }
            }
            base.extend(segments[relative.count()..].iter().cloned());
            return Some(base);
        }
        let child: ModPath = module.iter().chain([first]).cloned().collect();
        (is_use && self.modules.contains_key(&child))
            .then(|| module.iter().chain(segments).cloned().collect())
    }

    /// The module and in-file scope that `path` names: the deepest known module prefix.
    fn module_of<'a>(&self, path: &'a [String], item_last: bool) -> (ModPath, &'a [String]) {
        let mut k = if item_last {
            path.len().saturating_sub(1)
        } else {
            path.len()
        };
        while k > 0 && !self.modules.contains_key(&path[..k]) {
            k -= 1;
        }
        (path[..k].to_vec(), &path[k..])
    }

    /// The scan of the file holding `module`, and the module's scope inside that file.
    fn scope_of(&self, module: &[String]) -> Option<(&str, &FileScan, ModPath)> {
        let file = self.modules.get(module)?;
        let scope = module[self.file_mod[file].len()..].to_vec();
        Some((file.as_str(), &self.scans[file], scope))
    }

    /// The file that holds the item `path` names, following imports; `None` if it is
    /// another crate's. `item_last`: the last segment is an item, not a module (a path in
    /// code: `crate::sink(..)` calls a function even though a module has that name).
    fn resolve(&self, path: &[String], depth: usize, item_last: bool) -> Option<String> {
        let (module, rest) = self.module_of(path, item_last);
        let (file, scan, scope) = self.scope_of(&module)?;
        let Some(name) = rest.first() else {
            return Some(file.to_owned());
        };
        let defined = scan.defined.get(&scope).is_some_and(|d| d.contains(name));
        if depth >= MAX_FOLLOW || defined {
            return Some(file.to_owned());
        }
        let in_scope = |u: &&UseLeaf| u.scope == scope;
        let import = scan
            .uses
            .iter()
            .filter(in_scope)
            .find(|u| !u.glob && u.name.as_ref() == Some(name));
        if let Some(import) = import {
            let mut target = self.absolute(&import.path, &module, true)?;
            target.extend(rest[1..].iter().cloned());
            return self.resolve(&target, depth + 1, item_last);
        }
        for glob in scan.uses.iter().filter(in_scope).filter(|u| u.glob) {
            let Some(mut target) = self.absolute(&glob.path, &module, true) else {
                continue;
            };
            if self.has_name(&target, name) {
                target.extend(rest.iter().cloned());
                return self.resolve(&target, depth + 1, item_last);
            }
        }
        Some(file.to_owned())
    }

    /// Whether `module` defines or imports `name` (for glob imports).
    fn has_name(&self, module: &[String], name: &str) -> bool {
        let Some((_, scan, scope)) = self.scope_of(module) else {
            return false;
        };
        scan.defined.get(&scope).is_some_and(|d| d.contains(name))
            || scan
                .uses
                .iter()
                .any(|u| u.scope == scope && u.name.as_deref() == Some(name))
    }

    fn is_descendant(&self, file: &str, of: &str) -> bool {
        let (a, b) = (&self.file_mod[file], &self.file_mod[of]);
        a.len() > b.len() && a.starts_with(b)
    }

    /// Every file-to-file reference, with the first place that makes it.
    fn edges(&self) -> Edges {
        let mut edges = Edges::new();
        for (file, scan) in &self.scans {
            for reference in references(&self.file_mod[file], scan) {
                let Some(target) = self.target(file, scan, &reference) else {
                    continue;
                };
                let evidence = Evidence {
                    line: reference.line,
                    path: reference.segments.join("::"),
                };
                edges.entry((file.clone(), target)).or_insert(evidence);
            }
        }
        edges
    }

    /// The file `reference` (written in `file`) makes an edge to, if any.
    fn target(&self, file: &str, scan: &FileScan, reference: &Reference<'_>) -> Option<String> {
        let absolute = self.absolute(reference.segments, &reference.module, reference.is_use)?;
        let target = self.resolve(&absolute, 0, !reference.is_use)?;
        let parent_reexport = reference.public
            && self.is_descendant(&target, file)
            && !reference.name.is_some_and(|n| scan.idents.contains(n));
        (target != file && !parent_reexport).then_some(target)
    }
}

/// The file a `mod` declaration in `file` loads, and whether that file owns its directory.
fn child_file(
    read: &dyn Fn(&str) -> Option<String>,
    file: &str,
    owns_dir: bool,
    decl: &ModDecl,
) -> (String, bool) {
    let here = file.rsplit_once('/').map_or("", |(dir, _)| dir);
    if let Some(path) = &decl.path_attr {
        return (format!("{here}/{path}"), path.ends_with("mod.rs"));
    }
    let dir = if owns_dir {
        here.to_owned()
    } else {
        file.trim_end_matches(".rs").to_owned()
    };
    let flat = format!("{dir}/{}.rs", decl.name);
    if read(&flat).is_some() {
        (flat, false)
    } else {
        (format!("{dir}/{}/mod.rs", decl.name), true)
    }
}

/// A `use` leaf or a path in code, with the absolute module it was written in.
struct Reference<'a> {
    segments: &'a [String],
    module: ModPath,
    line: usize,
    is_use: bool,
    public: bool,
    name: Option<&'a String>,
}

fn references<'a>(module: &[String], scan: &'a FileScan) -> Vec<Reference<'a>> {
    let within = |scope: &[String]| module.iter().chain(scope).cloned().collect::<ModPath>();
    let uses = scan
        .uses
        .iter()
        .filter(|u| !u.path.is_empty())
        .map(|u| Reference {
            segments: &u.path,
            module: within(&u.scope),
            line: u.line,
            is_use: true,
            public: u.public,
            name: u.name.as_ref(),
        });
    let paths = scan.paths.iter().map(|p| Reference {
        segments: &p.segments,
        module: within(&p.scope),
        line: p.line,
        is_use: false,
        public: false,
        name: None,
    });
    uses.chain(paths).collect()
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        graph.entry(a).or_default().push(b);
        graph.entry(b).or_default();
    }
    let mut tarjan = Tarjan {
        graph: &graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: HashSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    tarjan.components.sort();
    tarjan.components
}

struct Tarjan<'g> {
    graph: &'g BTreeMap<&'g str, Vec<&'g str>>,
    index: HashMap<&'g str, usize>,
    low: HashMap<&'g str, usize>,
    stack: Vec<&'g str>,
    on_stack: HashSet<&'g str>,
    components: Vec<Vec<String>>,
}

impl<'g> Tarjan<'g> {
    fn visit(&mut self, v: &'g str) {
        let n = self.index.len();
        self.index.insert(v, n);
        self.low.insert(v, n);
        self.stack.push(v);
        self.on_stack.insert(v);
        for &w in &self.graph[v] {
            if !self.index.contains_key(w) {
                self.visit(w);
                self.low.insert(v, self.low[v].min(self.low[w]));
            } else if self.on_stack.contains(w) {
                self.low.insert(v, self.low[v].min(self.index[w]));
            }
        }
        if self.low[v] == self.index[v] {
            self.pop_component(v);
        }
    }

    fn pop_component(&mut self, root: &str) {
        let mut component = Vec::new();
        while let Some(w) = self.stack.pop() {
            self.on_stack.remove(w);
            component.push(w.to_owned());
            if w == root {
                break;
            }
        }
        if component.len() > 1 {
            component.sort();
            self.components.push(component);
        }
    }
}

// ----------------------------------------------------------------------------- the workspace

/// Every crate directory of the workspace with a `src/` (the root package first), as
/// `(prefix for messages, directory)`.
fn workspace_crates() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates = vec![(String::new(), root.to_path_buf())];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name != "target" && dir.join("Cargo.toml").exists() && dir.join("src").is_dir() {
            crates.push((format!("{name}/"), dir));
        }
    }
    crates
}

fn scan_crate(dir: &Path) -> CrateScan {
    CrateScan::load(&|file| std::fs::read_to_string(dir.join(file)).ok())
}

/// Each crate, scanned, with the prefix that names its files from the workspace root.
fn scanned_workspace() -> Vec<(String, CrateScan)> {
    let crates = workspace_crates();
    assert!(
        crates.len() >= 6,
        "found only {crates:?}: is the workspace walk still right?"
    );
    crates
        .into_iter()
        .map(|(prefix, dir)| (prefix, scan_crate(&dir)))
        .collect()
}

// ----------------------------------------------------------------------------- the limits

#[test]
fn shape_no_src_file_over_600_lines() {
    let mut over = Vec::new();
    for (prefix, krate) in scanned_workspace() {
        for (file, &lines) in &krate.lines {
            let name = format!("{prefix}{file}");
            let exempt =
                FILE_LIMIT_EXEMPT.contains(&name.as_str()) || krate.test_files.contains(file);
            if lines > FILE_LIMIT && !exempt {
                over.push(format!("  {name}: {lines} lines"));
            }
        }
    }
    assert!(
        over.is_empty(),
        "{} file(s) under src/ over {FILE_LIMIT} lines (split along a seam: one concept per file):\n{}",
        over.len(),
        over.join("\n")
    );
}

#[test]
fn shape_no_fn_over_60_lines() {
    let mut over = Vec::new();
    for (prefix, krate) in scanned_workspace() {
        for (file, scan) in &krate.scans {
            let held =
                |f: &&FnItem| !f.test && !krate.test_files.contains(file) && f.lines > FN_LIMIT;
            for f in scan.fns.iter().filter(held) {
                over.push((
                    f.lines,
                    format!(
                        "  {prefix}{file}:{} `{}`: {} lines",
                        f.line, f.name, f.lines
                    ),
                ));
            }
        }
    }
    over.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let lines: Vec<String> = over.into_iter().map(|(_, line)| line).collect();
    assert!(
        lines.is_empty(),
        "{} function(s) under src/ over {FN_LIMIT} lines (from the `fn` line to the closing brace):\n{}",
        lines.len(),
        lines.join("\n")
    );
}

#[test]
fn shape_no_import_cycle_between_files() {
    let mut found = Vec::new();
    for (prefix, krate) in scanned_workspace() {
        let edges = krate.edges();
        for component in cycles(&edges) {
            found.push(describe_cycle(&prefix, &component, &edges));
        }
    }
    assert!(
        found.is_empty(),
        "{} import cycle(s) between files under src/ (move the shared piece down a level):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The files of one cycle and the line that makes each edge between them.
fn describe_cycle(prefix: &str, component: &[String], edges: &Edges) -> String {
    let names: Vec<String> = component.iter().map(|f| format!("{prefix}{f}")).collect();
    let mut text = format!("  cycle between {}", names.join(", "));
    for a in component {
        for b in component {
            if let Some(e) = edges.get(&(a.clone(), b.clone())) {
                text += &format!(
                    "\n    {prefix}{a}:{} uses {prefix}{b} (`{}`)",
                    e.line, e.path
                );
            }
        }
    }
    text
}

// ----------------------------------------------------------------------------- the scan itself

/// A crate held in memory, for the scan's own tests.
fn scan_sources(files: &[(&str, &str)]) -> CrateScan {
    let files: HashMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    CrateScan::load(&|file| files.get(file).cloned())
}

#[test]
fn shape_scan_measures_functions_past_braces_in_strings_chars_and_comments() {
    let src = r##"
impl<T: Clone> Trait for a::Holder<T> {
    fn long(&self) -> &'static str {
        let _ = '{';
        let _ = "}}}";
        // }
        /* { nested /* } */ */
        r#"}"#
    }
}

fn free() {}

fn pointer(f: fn(u32) -> u32) -> impl Fn() {
    move || {
        f(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn t() {}
}
"##;
    let scan = Scanner::scan(src);
    let found: Vec<(String, usize, usize, bool)> = scan
        .fns
        .iter()
        .map(|f| (f.name.clone(), f.line, f.lines, f.test))
        .collect();
    let expected = [
        ("Holder::long", 3, 7, false),
        ("free", 12, 1, false),
        ("pointer", 14, 5, false),
        ("t", 23, 1, true),
    ];
    let expected: Vec<(String, usize, usize, bool)> = expected
        .iter()
        .map(|&(n, l, len, t)| (n.to_owned(), l, len, t))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn shape_scan_follows_reexports_and_ignores_a_parent_naming_its_children() {
    let krate = scan_sources(&[
        ("src/lib.rs", "mod sink;\nmod other;\npub use sink::Sink;\n"),
        (
            "src/sink/mod.rs",
            "mod core;\nmod expiry;\npub use self::core::Sink;\n",
        ),
        (
            "src/sink/core.rs",
            "use super::expiry::Reaper;\npub struct Sink;\n",
        ),
        (
            "src/sink/expiry.rs",
            "pub struct Reaper;\nfn f() { let _ = crate::Sink; }\n",
        ),
        (
            "src/other.rs",
            "// crate::sink::expiry::Reaper in a comment\nconst S: &str = \"crate::Sink\";\n",
        ),
    ]);
    let edges = krate.edges();
    let pairs: Vec<(&str, &str)> = edges
        .keys()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("src/sink/core.rs", "src/sink/expiry.rs"),
            ("src/sink/expiry.rs", "src/sink/core.rs")
        ]
    );
    assert_eq!(
        cycles(&edges),
        [vec![
            "src/sink/core.rs".to_owned(),
            "src/sink/expiry.rs".to_owned()
        ]]
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
