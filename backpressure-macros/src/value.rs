//! A value as written: `= <expr>`, read as the literal its key's [`Kind`] asks for.
//!
//! Shared by the attribute's keys (`args.rs`) and the policies' keys (`policies.rs`).
//!
//! [`Kind`]: backpressure_pattern::options::Kind

use backpressure_pattern::options::Key;
use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr};

/// One or more pattern strings: `defer_on = "a.*"` or `defer_on = ["a.*", "b"]`.
pub(crate) struct Patterns {
    /// The whole value, for errors about the value as a whole.
    pub(crate) span: Span,
    pub(crate) items: Vec<LitStr>,
}

/// A value as written, of the literal kind its key's `Kind` asks for.
pub(crate) enum Value {
    Str(LitStr),
    Int(LitInt),
    Patterns(Patterns),
}

impl Value {
    /// The span of the whole value.
    pub(crate) fn span(&self) -> Span {
        match self {
            Value::Str(lit) => lit.span(),
            Value::Int(lit) => lit.span(),
            Value::Patterns(patterns) => patterns.span,
        }
    }
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

pub(crate) fn str_value(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<LitStr> {
    match value_expr(meta, key)? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(wrong_type(other.span(), "a string literal", key)),
    }
}

pub(crate) fn int_value(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<LitInt> {
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

pub(crate) fn patterns_value(meta: &ParseNestedMeta<'_>, key: &Key) -> syn::Result<Patterns> {
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
