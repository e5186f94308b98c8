//! Stage 1: the raw `key = value` arguments, each kept with its span.
//!
//! Parsing only checks the *shape* of the arguments: known keys, no duplicates, a value of the
//! right literal kind. Whether the values make sense (`concurrency = 0`, a bad pattern, a
//! malformed duration, two keys that exclude each other) is decided by [`crate::validate`].
//! The keys, their kinds and examples come from `backpressure_pattern::options`.

use backpressure_pattern::options::policies::PolicyKind;
use backpressure_pattern::options::{self, Key, Kind, KEYS};
use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitInt, LitStr};

use crate::policies::{self, PolicyArg};

/// One or more pattern strings: `defer_on = "a.*"` or `defer_on = ["a.*", "b"]`.
pub(crate) struct Patterns {
    /// The whole value, for errors about the value as a whole.
    pub(crate) span: Span,
    pub(crate) items: Vec<LitStr>,
}

/// A value as written, of the literal kind its key's [`Kind`] asks for.
pub(crate) enum Value {
    Str(LitStr),
    Int(LitInt),
    Patterns(Patterns),
}

/// A value together with the key that introduced it.
pub(crate) struct Arg {
    pub(crate) key: &'static Key,
    pub(crate) ident: Ident,
    pub(crate) value: Value,
}

impl Arg {
    /// The span of the whole value.
    pub(crate) fn span(&self) -> Span {
        match &self.value {
            Value::Str(lit) => lit.span(),
            Value::Int(lit) => lit.span(),
            Value::Patterns(patterns) => patterns.span,
        }
    }
}

/// The attribute's arguments as written, in order.
#[derive(Default)]
pub(crate) struct RawArgs {
    args: Vec<Arg>,
    /// The policies, `error_rate(...)` and the like, in order.
    pub(crate) policies: Vec<PolicyArg>,
}

impl RawArgs {
    /// Parses one `key = value` pair; meant for [`syn::meta::parser`].
    pub(crate) fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(ident) = meta.path.get_ident().cloned() else {
            return Err(syn::Error::new_spanned(
                &meta.path,
                format!(
                    "expected a key such as `sink`; valid keys are {}",
                    key_list()
                ),
            ));
        };
        let name = ident.to_string();
        if let Some(kind) = PolicyKind::from_name(&name) {
            return self.policy(&meta, ident, kind);
        }
        if meta.input.peek(syn::token::Paren) {
            return Err(policies::unknown(&ident));
        }
        let Some(key) = options::key(&name) else {
            return Err(unknown_key(&ident, &name));
        };
        let value = match key.kind {
            Kind::Count | Kind::Attempts => Value::Int(int_value(&meta, key)?),
            Kind::Patterns => Value::Patterns(patterns_value(&meta, key)?),
            _ => Value::Str(str_value(&meta, key)?),
        };
        if self.get(key).is_some() {
            return Err(syn::Error::new(
                ident.span(),
                format!("`{ident}` specified more than once"),
            ));
        }
        self.args.push(Arg { key, ident, value });
        Ok(())
    }

    /// Parses `name(key = value, ...)`: one policy of each kind.
    fn policy(
        &mut self,
        meta: &ParseNestedMeta<'_>,
        ident: Ident,
        kind: PolicyKind,
    ) -> syn::Result<()> {
        if self.policies.iter().any(|p| p.spec.policy == kind) {
            return Err(syn::Error::new(
                ident.span(),
                format!("`{ident}` specified more than once"),
            ));
        }
        let policy = PolicyArg::parse(meta, ident, kind)?;
        self.policies.push(policy);
        Ok(())
    }

    /// The value given for `key`, if any.
    pub(crate) fn get(&self, key: &Key) -> Option<&Arg> {
        self.args.iter().find(|arg| arg.key.name == key.name)
    }

    /// Of two given keys, the one written second.
    pub(crate) fn second(&self, a: &Key, b: &Key) -> Option<&Arg> {
        self.args
            .iter()
            .filter(|arg| arg.key.name == a.name || arg.key.name == b.name)
            .nth(1)
    }
}

fn key_list() -> String {
    options::list(KEYS.iter().map(|key| key.name))
}

/// ` (did you mean `x`?)` for the nearest of `names`, if one is near enough.
pub(crate) fn suggest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn unknown_key(key: &Ident, name: &str) -> syn::Error {
    let suggestion = suggest(name, KEYS.iter().map(|k| k.name));
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
pub(crate) fn value_expr(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<Expr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!(
                "missing value for `{0}`: write `{0} = {1}`",
                key.name, key.example
            ),
        ));
    }
    meta.value()?.parse::<Expr>()
}

fn str_value(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<LitStr> {
    match value_expr(meta, key)? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(wrong_type(other.span(), "a string literal", key)),
    }
}

fn int_value(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<LitInt> {
    match value_expr(meta, key)? {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok(i),
        other => Err(wrong_type(other.span(), "a positive integer literal", key)),
    }
}

fn wrong_type(span: Span, expected: &str, key: &Key) -> syn::Error {
    syn::Error::new(
        span,
        format!(
            "expected {expected} for `{0}`, as in `{0} = {1}`",
            key.name, key.example
        ),
    )
}

fn patterns_value(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<Patterns> {
    let expr = value_expr(meta, key)?;
    let span = expr.span();
    let wrong = |span| {
        let one = wrong_type(span, "a pattern string or a list of pattern strings", key);
        let list = format!("{one} or `{} = [\"a.*\", \"b.*\"]`", key.name);
        syn::Error::new(span, list)
    };
    let items = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => vec![s],
        Expr::Array(array) => array
            .elems
            .into_iter()
            .map(|elem| match elem {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Ok(s),
                other => Err(wrong(other.span())),
            })
            .collect::<syn::Result<Vec<_>>>()?,
        other => return Err(wrong(other.span())),
    };
    Ok(Patterns { span, items })
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
