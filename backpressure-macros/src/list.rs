//! The attribute's option lists: `retry(attempts = 5, backoff = "1s", ...)` and
//! `rate(limit = 100, per = "1s", burst = 10)`.
//!
//! Read like a policy's list (each `key = value` by its key's kind, from
//! `backpressure_pattern::options::retry` or `::rate`, every token's span kept) into the
//! list's spec ([`RetrySpec`], [`RateSpec`]); [`ListArg::check`] applies the shared rules and
//! points a broken one at the token that broke it. No rule is written here.

use backpressure_pattern::options::policies::PolicyValue;
use backpressure_pattern::options::rate::{self, RateSpec, RATE};
use backpressure_pattern::options::retry::{self, RetrySpec, RETRY};
use backpressure_pattern::options::{Key, OptionError};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Ident};

use crate::policies::read;
use crate::suggest::suggest;
use crate::value::value_expr;

/// What the attribute needs of a list's spec: its name, keys, an example and its rules.
pub(crate) trait ListSpec: Default {
    /// The list's name, as written.
    const NAME: &'static str;
    /// A valid list, as written, for the error of a list written without parentheses.
    const EXAMPLE: &'static str;
    /// Its keys.
    fn keys() -> &'static [&'static Key];
    /// The value given for `key`.
    fn get(&self, key: &Key) -> Option<PolicyValue>;
    /// Sets `key`.
    fn set(&mut self, key: &Key, value: PolicyValue) -> bool;
    /// Every rule.
    fn check(&self) -> Result<(), OptionError>;
}

impl ListSpec for RetrySpec {
    const NAME: &'static str = RETRY;
    const EXAMPLE: &'static str =
        "`retry(attempts = 5, backoff = \"1s\")`, or `retry()` for the defaults";
    fn keys() -> &'static [&'static Key] {
        retry::KEYS
    }
    fn get(&self, key: &Key) -> Option<PolicyValue> {
        RetrySpec::get(self, key)
    }
    fn set(&mut self, key: &Key, value: PolicyValue) -> bool {
        RetrySpec::set(self, key, value)
    }
    fn check(&self) -> Result<(), OptionError> {
        RetrySpec::check(self)
    }
}

impl ListSpec for RateSpec {
    const NAME: &'static str = RATE;
    const EXAMPLE: &'static str = "`rate(limit = 100, per = \"1s\")`, with `burst = 10` for bursts";
    fn keys() -> &'static [&'static Key] {
        rate::KEYS
    }
    fn get(&self, key: &Key) -> Option<PolicyValue> {
        RateSpec::get(self, key)
    }
    fn set(&mut self, key: &Key, value: PolicyValue) -> bool {
        RateSpec::set(self, key, value)
    }
    fn check(&self) -> Result<(), OptionError> {
        RateSpec::check(self)
    }
}

/// `retry(...)` as written.
pub(crate) type RetryArg = ListArg<RetrySpec>;
/// `rate(...)` as written.
pub(crate) type RateArg = ListArg<RateSpec>;

/// A list as written, with the span of each key and value.
pub(crate) struct ListArg<S> {
    ident: Ident,
    pub(crate) spec: S,
    /// Each key with its value as written, in order.
    fields: Vec<(&'static Key, Expr)>,
}

impl<S: ListSpec> ListArg<S> {
    /// Parses `name(key = value, ...)`; `ident` is the list's name.
    pub(crate) fn parse(meta: &ParseNestedMeta<'_>, ident: Ident) -> syn::Result<Self> {
        if !meta.input.peek(syn::token::Paren) {
            let message = format!("`{}` is a list: write {}", S::NAME, S::EXAMPLE);
            return Err(syn::Error::new(ident.span(), message));
        }
        let mut arg = ListArg {
            ident,
            spec: S::default(),
            fields: Vec::new(),
        };
        // Not `parse_nested_meta`, which refuses an empty list: `retry()` is the defaults.
        let content;
        syn::parenthesized!(content in meta.input);
        let tokens: proc_macro2::TokenStream = content.parse()?;
        syn::meta::parser(|inner| arg.field(&inner)).parse2(tokens)?;
        Ok(arg)
    }

    fn field(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let list = S::NAME;
        let ident = meta.path.get_ident().cloned().ok_or_else(|| {
            syn::Error::new_spanned(&meta.path, format!("expected a key of `{list}`"))
        })?;
        let name = ident.to_string();
        let Some(key) = S::keys().iter().copied().find(|key| key.name == name) else {
            let names = S::keys().iter().map(|key| key.name);
            let message = format!(
                "unknown key `{name}` in `{list}`{}; valid keys are {}",
                suggest(&name, names.clone()),
                backpressure_pattern::options::list(names)
            );
            return Err(syn::Error::new(ident.span(), message));
        };
        let expr = value_expr(meta, key)?;
        let value = read(key, &expr).map_err(|err| err.on(&expr))?;
        if self.spec.get(key).is_some() {
            let message = format!("`{name}` specified more than once in `{list}`");
            return Err(syn::Error::new(ident.span(), message));
        }
        self.spec.set(key, value);
        self.fields.push((key, expr));
        Ok(())
    }

    /// Applies the shared rules; an error lands on the value that broke the rule (of two
    /// keys, the one named in the error), or on the list's name when it was not written.
    pub(crate) fn check(&self) -> syn::Result<()> {
        self.spec.check().map_err(|err| self.error(&err))
    }

    fn error(&self, err: &OptionError) -> syn::Error {
        let written = self
            .fields
            .iter()
            .find(|(key, _)| key.name == err.key().name);
        match written {
            Some((_, expr)) => syn::Error::new_spanned(expr, err),
            None => syn::Error::new(self.ident.span(), err),
        }
    }
}
