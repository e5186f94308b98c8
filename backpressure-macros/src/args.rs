//! Stage 1: the raw `key = value` arguments, each kept with its span.
//!
//! Parsing only checks the *shape* of the arguments: known keys, no duplicates, a value of the
//! right literal kind. Whether the values make sense (`concurrency = 0`, a bad pattern, a
//! malformed duration, two keys that exclude each other) is decided by [`crate::validate`].
//! The keys, their kinds and examples come from `backpressure_pattern::options`.

use backpressure_pattern::options::policies::PolicyKind;
use backpressure_pattern::options::rate::RATE;
use backpressure_pattern::options::retry::RETRY;
use backpressure_pattern::options::{self, Key, Kind, KEYS};
use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::Ident;

use crate::list::{RateArg, RetryArg};
use crate::policies::{self, PolicyArg};
use crate::suggest::suggest;
use crate::value::{int_value, patterns_value, str_value, Value};

/// A value together with the key that introduced it.
pub(crate) struct Arg {
    pub(crate) key: &'static Key,
    pub(crate) ident: Ident,
    pub(crate) value: Value,
}

impl Arg {
    /// The span of the whole value.
    pub(crate) fn span(&self) -> Span {
        self.value.span()
    }
}

/// The attribute's arguments as written, in order.
#[derive(Default)]
pub(crate) struct RawArgs {
    args: Vec<Arg>,
    /// The policies, `error_rate(...)` and the like, in order.
    pub(crate) policies: Vec<PolicyArg>,
    /// `retry(...)`, if written.
    pub(crate) retry: Option<RetryArg>,
    /// `rate(...)`, if written.
    pub(crate) rate: Option<RateArg>,
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
        if name == RETRY {
            if self.retry.is_some() {
                let message = format!("`{RETRY}` specified more than once");
                return Err(syn::Error::new(ident.span(), message));
            }
            self.retry = Some(RetryArg::parse(&meta, ident)?);
            return Ok(());
        }
        if name == RATE {
            if self.rate.is_some() {
                let message = format!("`{RATE}` specified more than once");
                return Err(syn::Error::new(ident.span(), message));
            }
            self.rate = Some(RateArg::parse(&meta, ident)?);
            return Ok(());
        }
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
