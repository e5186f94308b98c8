//! Health policies in the attribute: `error_rate(signal = "...", min_calls = 20, ...)`.
//!
//! Parsing reads each `key = value` by its key's kind (from
//! `backpressure_pattern::options::policies`) into a [`PolicySpec`], keeping every token's
//! span; [`PolicyArg::check`] applies the shared rules and points a broken one at the token
//! that broke it. No rule is written here.

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec, PolicyValue, POLICIES};
use backpressure_pattern::options::rate::RATE;
use backpressure_pattern::options::retry::RETRY;
use backpressure_pattern::options::{rules, Key, Kind, OptionError, Problem};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, UnOp};

use crate::suggest::suggest;
use crate::value::value_expr;

/// One policy as written, with the span of each key and value.
pub(crate) struct PolicyArg {
    pub(crate) ident: Ident,
    pub(crate) spec: PolicySpec,
    /// Each key with its value as written, in order.
    fields: Vec<(&'static Key, Expr)>,
}

impl PolicyArg {
    /// Parses `name(key = value, ...)`; `meta.path` is the policy's name.
    pub(crate) fn parse(
        meta: &ParseNestedMeta<'_>,
        ident: Ident,
        kind: PolicyKind,
    ) -> syn::Result<Self> {
        if !meta.input.peek(syn::token::Paren) {
            let message = format!(
                "`{0}` is a policy: write `{0}(signal = {1}, ...)`",
                kind.name(),
                kind.keys()[0].example
            );
            return Err(syn::Error::new(ident.span(), message));
        }
        let mut policy = PolicyArg {
            ident,
            spec: PolicySpec::new(kind),
            fields: Vec::new(),
        };
        meta.parse_nested_meta(|inner| policy.field(&inner))?;
        Ok(policy)
    }

    fn field(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let kind = self.spec.policy;
        let ident = meta.path.get_ident().cloned().ok_or_else(|| {
            syn::Error::new_spanned(&meta.path, format!("expected a key of `{}`", kind.name()))
        })?;
        let name = ident.to_string();
        let Some(key) = kind.key(&name) else {
            let names = kind.keys().iter().map(|key| key.name);
            let message = format!(
                "unknown key `{name}` in `{}`{}; valid keys are {}",
                kind.name(),
                suggest(&name, names.clone()),
                backpressure_pattern::options::list(names)
            );
            return Err(syn::Error::new(ident.span(), message));
        };
        let expr = value_expr(meta, key)?;
        let value = read(key, &expr).map_err(|err| err.in_policy(kind, &expr))?;
        if self.spec.get(key).is_some() {
            let message = format!("`{name}` specified more than once in `{}`", kind.name());
            return Err(syn::Error::new(ident.span(), message));
        }
        self.spec.set(key, value);
        self.fields.push((key, expr));
        Ok(())
    }

    /// Applies the shared rules, then the `defer_on` rule (see
    /// [`PolicySpec::check_deferred`]) and the rule that no `earlier` policy of the worker
    /// raises its signal ([`PolicySpec::check_own_signal`]); an error lands on the value that
    /// broke the rule, or on the policy's name when the key is missing or was not written.
    pub(crate) fn check<'a>(
        &self,
        defer_on: &str,
        earlier: impl IntoIterator<Item = &'a PolicySpec>,
    ) -> syn::Result<()> {
        self.spec
            .check()
            .and_then(|()| self.spec.check_deferred(Some(defer_on)))
            .and_then(|()| self.spec.check_own_signal(earlier))
            .map_err(|err| self.error(&err))
    }

    fn error(&self, err: &OptionError) -> syn::Error {
        let written = self
            .fields
            .iter()
            .find(|(key, _)| key.name == err.key().name);
        match (err.problem(), written) {
            (Problem::Missing, _) | (_, None) => syn::Error::new(self.ident.span(), err),
            (_, Some((_, expr))) => syn::Error::new_spanned(expr, err),
        }
    }
}

/// `name(...)` where `name` is neither a policy nor `retry` or `rate`.
pub(crate) fn unknown(ident: &Ident) -> syn::Error {
    let name = ident.to_string();
    let names = POLICIES.iter().map(|policy| policy.name());
    let message = format!(
        "unknown policy `{name}`{}; valid policies are {} (and `{RETRY}(...)` retries failed items, `{RATE}(...)` limits starts)",
        suggest(&name, names.clone().chain([RETRY, RATE])),
        backpressure_pattern::options::list(names)
    );
    syn::Error::new(ident.span(), message)
}

/// A value that cannot be read (not yet a rule's error): the wrong literal, or a duration
/// that does not parse.
pub(crate) enum ReadError {
    Syntax(syn::Error),
    Rule(OptionError),
}

impl ReadError {
    fn in_policy(self, kind: PolicyKind, expr: &Expr) -> syn::Error {
        match self {
            ReadError::Syntax(err) => err,
            ReadError::Rule(err) => syn::Error::new_spanned(expr, err.in_policy(kind)),
        }
    }

    /// The error, on the value as written (a key of no policy: `retry`'s).
    pub(crate) fn on(self, expr: &Expr) -> syn::Error {
        match self {
            ReadError::Syntax(err) => err,
            ReadError::Rule(err) => syn::Error::new_spanned(expr, err),
        }
    }
}

/// Reads a value of `key`'s kind (a policy's or `retry`'s).
pub(crate) fn read(key: &'static Key, expr: &Expr) -> Result<PolicyValue, ReadError> {
    let wrong = |expected: &str| {
        ReadError::Syntax(syn::Error::new_spanned(
            expr,
            format!(
                "expected {expected} for `{0}`, as in `{0} = {1}`",
                key.name, key.example
            ),
        ))
    };
    match (key.kind, expr) {
        (
            Kind::Name,
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }),
        ) => Ok(PolicyValue::Text(s.value().into())),
        (
            Kind::Duration,
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }),
        ) => rules::parse_duration(key, &s.value())
            .map(PolicyValue::Duration)
            .map_err(ReadError::Rule),
        (
            Kind::Count,
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }),
        ) => i.base10_parse().map(PolicyValue::Count).map_err(|_| {
            let message = format!(
                "`{}` must be a positive integer that fits in `u32`",
                key.name
            );
            ReadError::Syntax(syn::Error::new_spanned(expr, message))
        }),
        (
            Kind::Seed,
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }),
        ) => i.base10_parse().map(PolicyValue::Seed).map_err(|_| {
            let message = format!("`{}` must be an integer that fits in `u64`", key.name);
            ReadError::Syntax(syn::Error::new_spanned(expr, message))
        }),
        (Kind::Flag, expr) => flag(expr).ok_or_else(|| wrong("`true` or `false`")),
        (Kind::Ratio | Kind::Share | Kind::Fraction | Kind::Factor, expr) => number(expr)
            .map(PolicyValue::Number)
            .ok_or_else(|| wrong("a number")),
        (Kind::Seed, _) => Err(wrong("an integer literal")),
        (Kind::Count, _) => Err(wrong("a positive integer literal")),
        _ => Err(wrong("a string literal")),
    }
}

/// A `true` or `false` literal.
fn flag(expr: &Expr) -> Option<PolicyValue> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Some(PolicyValue::Flag(b.value)),
        _ => None,
    }
}

/// A number literal, possibly negated.
fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => number(expr).map(|x| -x),
        _ => None,
    }
}
