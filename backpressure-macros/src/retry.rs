//! Retries in the attribute: `retry(attempts = 5, backoff = "1s", ...)`.
//!
//! Read like a policy's list (each `key = value` by its key's kind, from
//! `backpressure_pattern::options::retry`, every token's span kept) into a [`RetrySpec`];
//! [`RetryArg::check`] applies the shared rules and points a broken one at the token that
//! broke it. No rule is written here.

use backpressure_pattern::options::retry::{self, RetrySpec, RETRY};
use backpressure_pattern::options::{Key, OptionError};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Ident};

use crate::policies::read;
use crate::suggest::suggest;
use crate::value::value_expr;

/// `retry(...)` as written, with the span of each key and value.
pub(crate) struct RetryArg {
    ident: Ident,
    pub(crate) spec: RetrySpec,
    /// Each key with its value as written, in order.
    fields: Vec<(&'static Key, Expr)>,
}

impl RetryArg {
    /// Parses `retry(key = value, ...)`; `ident` is `retry`.
    pub(crate) fn parse(meta: &ParseNestedMeta<'_>, ident: Ident) -> syn::Result<Self> {
        if !meta.input.peek(syn::token::Paren) {
            let message = format!(
                "`{RETRY}` is a list: write `{RETRY}(attempts = 5, backoff = \"1s\")`, \
                 or `{RETRY}()` for the defaults"
            );
            return Err(syn::Error::new(ident.span(), message));
        }
        let mut arg = RetryArg {
            ident,
            spec: RetrySpec::new(),
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
        let ident = meta.path.get_ident().cloned().ok_or_else(|| {
            syn::Error::new_spanned(&meta.path, format!("expected a key of `{RETRY}`"))
        })?;
        let name = ident.to_string();
        let Some(key) = retry::key(&name) else {
            let names = retry::KEYS.iter().map(|key| key.name);
            let message = format!(
                "unknown key `{name}` in `{RETRY}`{}; valid keys are {}",
                suggest(&name, names.clone()),
                backpressure_pattern::options::list(names)
            );
            return Err(syn::Error::new(ident.span(), message));
        };
        let expr = value_expr(meta, key)?;
        let value = read(key, &expr).map_err(|err| err.on(&expr))?;
        if self.spec.get(key).is_some() {
            let message = format!("`{name}` specified more than once in `{RETRY}`");
            return Err(syn::Error::new(ident.span(), message));
        }
        self.spec.set(key, value);
        self.fields.push((key, expr));
        Ok(())
    }

    /// Applies the shared rules; an error lands on the value that broke the rule (of two
    /// keys, the one named in the error), or on `retry` when it was not written.
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
