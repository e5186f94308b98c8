//! Stage 1: the raw `key = value` arguments, each kept with its span.
//!
//! Parsing only checks the *shape* of the arguments: known keys, no duplicates, a value of the
//! right literal kind. Whether the values make sense (`concurrency = 0`, a bad pattern, a
//! malformed duration, two keys that exclude each other) is decided by [`crate::validate`].

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitInt, LitStr};

/// Every key the attribute accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "sink",
    "concurrency",
    "defer_on",
    "resume_on",
    "cancel_on",
    "capacity",
    "defer_check_interval",
    "max_defer_attempts",
    "max_defer",
    "name",
];

/// One or more pattern strings: `defer_on = "a.*"` or `defer_on = ["a.*", "b"]`.
pub(crate) struct Patterns {
    /// The whole value, for errors about the value as a whole.
    pub(crate) span: Span,
    pub(crate) items: Vec<LitStr>,
}

/// A value together with the key that introduced it.
pub(crate) struct Arg<V> {
    pub(crate) key: Ident,
    pub(crate) value: V,
    /// Position among the attribute's arguments, to tell which of two keys came second.
    pub(crate) order: usize,
}

/// The attribute's arguments as written.
#[derive(Default)]
pub(crate) struct RawArgs {
    pub(crate) sink: Option<Arg<LitStr>>,
    pub(crate) concurrency: Option<Arg<LitInt>>,
    pub(crate) defer_on: Option<Arg<Patterns>>,
    pub(crate) resume_on: Option<Arg<Patterns>>,
    pub(crate) cancel_on: Option<Arg<Patterns>>,
    pub(crate) capacity: Option<Arg<LitInt>>,
    pub(crate) defer_check_interval: Option<Arg<LitStr>>,
    pub(crate) max_defer_attempts: Option<Arg<LitInt>>,
    pub(crate) max_defer: Option<Arg<LitStr>>,
    pub(crate) name: Option<Arg<LitStr>>,
    seen: usize,
}

impl RawArgs {
    /// Parses one `key = value` pair; meant for [`syn::meta::parser`].
    pub(crate) fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = match meta.path.get_ident() {
            Some(ident) => ident.clone(),
            None => {
                return Err(syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "expected a key such as `sink`; valid keys are {}",
                        key_list()
                    ),
                ))
            }
        };
        let name = key.to_string();
        let key = (key, self.seen);
        self.seen += 1;
        match name.as_str() {
            "sink" => set(&mut self.sink, key, str_value(&meta, &name)?),
            "concurrency" => set(&mut self.concurrency, key, int_value(&meta, &name)?),
            "defer_on" => set(&mut self.defer_on, key, patterns_value(&meta, &name)?),
            "resume_on" => set(&mut self.resume_on, key, patterns_value(&meta, &name)?),
            "cancel_on" => set(&mut self.cancel_on, key, patterns_value(&meta, &name)?),
            "capacity" => set(&mut self.capacity, key, int_value(&meta, &name)?),
            "defer_check_interval" => set(
                &mut self.defer_check_interval,
                key,
                str_value(&meta, &name)?,
            ),
            "max_defer_attempts" => {
                set(&mut self.max_defer_attempts, key, int_value(&meta, &name)?)
            }
            "max_defer" => set(&mut self.max_defer, key, str_value(&meta, &name)?),
            "name" => set(&mut self.name, key, str_value(&meta, &name)?),
            _ => Err(unknown_key(&key.0, &name)),
        }
    }
}

fn set<V>(slot: &mut Option<Arg<V>>, (key, order): (Ident, usize), value: V) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` specified more than once"),
        ));
    }
    *slot = Some(Arg { key, value, order });
    Ok(())
}

fn key_list() -> String {
    KEYS.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key(key: &Ident, name: &str) -> syn::Error {
    let suggestion = KEYS
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    syn::Error::new(
        key.span(),
        format!(
            "unknown key `{name}`{suggestion}; valid keys are {}",
            key_list()
        ),
    )
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

/// Reads `= <expr>`, or explains how to write the value when `=` is missing.
fn value_expr(meta: &ParseNestedMeta<'_>, key: &str, example: &str) -> syn::Result<Expr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!("missing value for `{key}`: write `{key} = {example}`"),
        ));
    }
    meta.value()?.parse::<Expr>()
}

fn example(key: &str) -> &'static str {
    match key {
        "sink" => "\"main\"",
        "concurrency" => "4",
        "capacity" => "200",
        "defer_on" => "\"backpressure.*\"",
        "resume_on" => "\"backpressure.resume\"",
        "cancel_on" => "\"backpressure.cancel\"",
        "defer_check_interval" => "\"50ms\"",
        "max_defer_attempts" => "200",
        "max_defer" => "\"10s\"",
        _ => "\"my_app::worker\"",
    }
}

fn str_value(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<LitStr> {
    let expr = value_expr(meta, key, example(key))?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new(
            other.span(),
            format!(
                "expected a string literal for `{key}`, as in `{key} = {}`",
                example(key)
            ),
        )),
    }
}

fn int_value(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<LitInt> {
    let expr = value_expr(meta, key, example(key))?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok(i),
        other => Err(syn::Error::new(
            other.span(),
            format!(
                "expected a positive integer literal for `{key}`, as in `{key} = {}`",
                example(key)
            ),
        )),
    }
}

fn patterns_value(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<Patterns> {
    let expr = value_expr(meta, key, example(key))?;
    let span = expr.span();
    let wrong = |span: Span| {
        syn::Error::new(
            span,
            format!(
                "expected a pattern string or a list of pattern strings for `{key}`, \
                 as in `{key} = {}` or `{key} = [\"a.*\", \"b.*\"]`",
                example(key)
            ),
        )
    };
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(Patterns {
            span,
            items: vec![s],
        }),
        Expr::Array(array) => {
            let items = array
                .elems
                .into_iter()
                .map(|elem| match elem {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) => Ok(s),
                    other => Err(wrong(other.span())),
                })
                .collect::<syn::Result<Vec<_>>>()?;
            Ok(Patterns { span, items })
        }
        other => Err(wrong(other.span())),
    }
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
