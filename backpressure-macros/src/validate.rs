//! Stage 2: turn the raw arguments into a typed configuration, and check the function's shape.
//!
//! Every key's rule is applied here (the rules and their words are
//! `backpressure_pattern::options`'; the coordinator options are read through its
//! `Values::read`). Errors point at the literal (or key) that is wrong and say what is allowed.

use backpressure_pattern::options::policies::PolicySpec;
use backpressure_pattern::options::rate::RateSpec;
use backpressure_pattern::options::retry::RetrySpec;
use backpressure_pattern::options::{
    rules, Key, Kind, OptionError, Problem, Values, Written, WrittenValues, CRATE,
    DEFAULT_DEFER_ON, MAX_DEFER, MAX_DEFER_ATTEMPTS, NAME,
};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Signature, Type};

use crate::args::{Arg, RawArgs};
use crate::value::Value;

/// The validated configuration.
pub(crate) struct Config {
    /// The coordinator options given; `None` means "the runtime's default".
    pub(crate) values: Values,
    pub(crate) name: Option<String>,
    /// `crate = "..."`: where the generated code finds the runtime.
    pub(crate) krate: Option<syn::Path>,
    /// The policies, checked.
    pub(crate) policies: Vec<PolicySpec>,
    /// `retry(...)`, checked: the item type must then be `Clone`.
    pub(crate) retry: Option<RetrySpec>,
    /// `rate(...)`, checked.
    pub(crate) rate: Option<RateSpec>,
}

impl RawArgs {
    /// Applies every key's rule (from `backpressure_pattern::options`): the coordinator
    /// options through [`Values::read`], then the policies (which look at `defer_on`), the
    /// attribute's own keys last.
    pub(crate) fn build(self) -> syn::Result<Config> {
        let values = Values::read(&self)?;
        let watched = values.defer_on.as_deref().unwrap_or(DEFAULT_DEFER_ON);
        for (at, policy) in self.policies.iter().enumerate() {
            let earlier = self.policies[..at].iter().map(|p| &p.spec);
            policy.check(watched, earlier)?;
        }
        if let Some(retry) = &self.retry {
            retry.check()?;
        }
        if let Some(rate) = &self.rate {
            rate.check()?;
        }
        Ok(Config {
            values,
            policies: self.policies.iter().map(|p| p.spec.clone()).collect(),
            retry: self.retry.as_ref().map(|r| r.spec.clone()),
            rate: self.rate.as_ref().map(|r| r.spec.clone()),
            name: self.name(&NAME)?,
            krate: self.krate()?,
        })
    }

    /// `crate = "..."` as a path: the shared rule, then `syn`'s own reading (which also
    /// refuses keywords), reported as the same rule.
    pub(crate) fn krate(&self) -> syn::Result<Option<syn::Path>> {
        let Some(arg) = self.get(&CRATE) else {
            return Ok(None);
        };
        let Value::Str(lit) = &arg.value else {
            return Ok(None);
        };
        let text = lit.value();
        rules::path(&CRATE, &text).map_err(|err| self.error(&err))?;
        lit.parse::<syn::Path>().map(Some).map_err(|_| {
            let err = OptionError::new(&CRATE, Problem::BadPath { text });
            syn::Error::new(lit.span(), err)
        })
    }

    fn name(&self, key: &'static Key) -> syn::Result<Option<String>> {
        let Some(text) = self.text(key) else {
            return Ok(None);
        };
        rules::name(key, &text).map_err(|err| self.error(&err))?;
        Ok(Some(text))
    }

    /// A broken rule, on the token that broke it: the second of two clashing keys, the
    /// pattern item, or the whole value.
    fn error(&self, err: &OptionError) -> syn::Error {
        let arg = match err.problem() {
            Problem::BothMaxDefer => {
                let second = self.second(&MAX_DEFER, &MAX_DEFER_ATTEMPTS);
                let span = second.map_or_else(Span::call_site, |arg| arg.ident.span());
                return syn::Error::new(span, err);
            }
            _ => self.get(err.key()),
        };
        let span = match (err.problem(), arg.map(|arg| &arg.value)) {
            (Problem::Pattern { item, .. }, Some(Value::Patterns(patterns))) => patterns
                .items
                .get(*item)
                .map_or(patterns.span, |lit| lit.span()),
            _ => arg.map_or_else(Span::call_site, Arg::span),
        };
        syn::Error::new(span, err)
    }

    fn text(&self, key: &Key) -> Option<String> {
        match &self.get(key)?.value {
            Value::Str(lit) => Some(lit.value()),
            _ => None,
        }
    }
}

/// The arguments as written, for [`Values::read`]: an integer literal is read as its key's
/// kind asks (and may not fit), a broken rule points at its token.
impl WrittenValues for RawArgs {
    type Error = syn::Error;

    fn written(&self, key: &'static Key) -> syn::Result<Option<Written>> {
        let Some(arg) = self.get(key) else {
            return Ok(None);
        };
        Ok(Some(match &arg.value {
            Value::Int(_) if key.kind == Kind::Attempts => Written::Attempts(int(arg, "u32")?),
            Value::Int(_) => Written::Count(int(arg, "usize")?),
            Value::Str(lit) => Written::Text(lit.value()),
            Value::Patterns(patterns) => {
                Written::Patterns(patterns.items.iter().map(|lit| lit.value()).collect())
            }
        }))
    }

    fn broken(&self, err: OptionError) -> syn::Error {
        self.error(&err)
    }
}

/// An integer literal as a number of `ty`.
fn int<N>(arg: &Arg, ty: &str) -> syn::Result<N>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    let Value::Int(lit) = &arg.value else {
        unreachable!("parsed as an integer");
    };
    lit.base10_parse().map_err(|_| {
        let message = format!(
            "`{}` must be a positive integer that fits in `{ty}`",
            arg.key.name
        );
        syn::Error::new(lit.span(), message)
    })
}

/// Which of the two accepted handler shapes the function has.
pub(crate) enum Shape {
    /// `async fn f(item: T)`.
    ItemOnly,
    /// `async fn f(item: T, ctx: WorkContext)`.
    WithContext,
}

/// The parts of the signature the expansion needs.
pub(crate) struct Handler {
    pub(crate) item: Type,
    pub(crate) shape: Shape,
}

const SHAPES: &str = "`async fn name(item: T)` or `async fn name(item: T, ctx: WorkContext)`";

/// Checks the function's shape: `async`, no receiver, no generics, one or two parameters,
/// the second being the work context, and an owned, concrete item type.
pub(crate) fn check_fn(function: &ItemFn) -> syn::Result<Handler> {
    let sig = &function.sig;
    check_signature(sig)?;
    let (item, shape) = parameters(sig)?;
    check_item(&item)?;
    Ok(Handler { item, shape })
}

/// `async`, no `self`, no generics.
fn check_signature(sig: &Signature) -> syn::Result<()> {
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("`#[backpressure_worker]` requires an `async fn`: write {SHAPES}"),
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new(
            receiver.self_token.span(),
            "`#[backpressure_worker]` cannot take `self`: a worker is a free `async fn`, \
             not a method",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "`#[backpressure_worker]` does not support generic parameters: \
             a worker's item type must be concrete",
        ));
    }
    Ok(())
}

/// The item type and the shape: one parameter, or two with the context second.
fn parameters(sig: &Signature) -> syn::Result<(Type, Shape)> {
    let typed: Vec<_> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat) => Some(pat),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let shape = match typed.as_slice() {
        [] => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!("a worker takes the item as its first parameter: write {SHAPES}"),
            ))
        }
        [_] => Shape::ItemOnly,
        [_, ctx] if is_work_context(&ctx.ty) => Shape::WithContext,
        [_, ctx] => {
            return Err(syn::Error::new(
                ctx.ty.span(),
                "the second parameter of a worker must be its context, \
                 `backpressure::WorkContext`",
            ))
        }
        [_, _, third, ..] => {
            return Err(syn::Error::new(
                third.span(),
                format!("a worker takes at most two parameters: write {SHAPES}"),
            ))
        }
    };
    Ok(((*typed[0].ty).clone(), shape))
}

/// The item type is concrete and owned.
fn check_item(item: &Type) -> syn::Result<()> {
    if let Some(span) = impl_trait_span(item) {
        return Err(syn::Error::new(
            span,
            "`impl Trait` is not supported as a worker's item type: the item type must be concrete",
        ));
    }
    if let Some(span) = borrowed_span(item) {
        return Err(syn::Error::new(
            span,
            "a worker's item must be `'static`: items wait in a queue and run on other tasks, \
             so take an owned type such as `String` or `Vec<u8>` instead of a borrow",
        ));
    }
    Ok(())
}

fn is_work_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "WorkContext"),
        Type::Paren(inner) => is_work_context(&inner.elem),
        Type::Group(inner) => is_work_context(&inner.elem),
        _ => false,
    }
}

fn impl_trait_span(ty: &Type) -> Option<Span> {
    match ty {
        Type::ImplTrait(it) => Some(it.span()),
        _ => None,
    }
}

/// The span of the first non-`'static` borrow or lifetime in `ty`, if any.
fn borrowed_span(ty: &Type) -> Option<Span> {
    let not_static = |lifetime: &syn::Lifetime| lifetime.ident != "static";
    match ty {
        Type::Reference(reference) => match &reference.lifetime {
            Some(lifetime) if !not_static(lifetime) => borrowed_span(&reference.elem),
            _ => Some(reference.span()),
        },
        Type::Paren(inner) => borrowed_span(&inner.elem),
        Type::Group(inner) => borrowed_span(&inner.elem),
        Type::Array(array) => borrowed_span(&array.elem),
        Type::Slice(slice) => borrowed_span(&slice.elem),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(borrowed_span),
        Type::Path(path) => {
            path.path
                .segments
                .iter()
                .find_map(|segment| match &segment.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|arg| match arg {
                            syn::GenericArgument::Type(ty) => borrowed_span(ty),
                            syn::GenericArgument::Lifetime(lifetime) if not_static(lifetime) => {
                                Some(lifetime.span())
                            }
                            _ => None,
                        })
                    }
                    _ => None,
                })
        }
        _ => None,
    }
}
