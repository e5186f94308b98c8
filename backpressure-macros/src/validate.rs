//! Stage 2: turn the raw arguments into a typed configuration, and check the function's shape.
//!
//! Every rule that looks at a value, or at more than one key, lives here. Errors point at the
//! literal (or key) that is wrong and say what is allowed.

use std::num::NonZeroUsize;
use std::time::Duration;

use backpressure_pattern::{validate_name, NameErrorKind, Pattern};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitInt, LitStr, Type};

use crate::args::{Arg, Patterns, RawArgs};

/// How long an item may be held at the head of the queue before it starts anyway.
pub(crate) enum MaxDefer {
    Attempts(u32),
    After(Duration),
    Never,
}

/// The validated configuration. `None` means "the runtime's default".
pub(crate) struct Config {
    pub(crate) sink: Option<String>,
    pub(crate) concurrency: Option<NonZeroUsize>,
    pub(crate) capacity: Option<NonZeroUsize>,
    pub(crate) defer_on: Option<String>,
    pub(crate) resume_on: Option<String>,
    pub(crate) cancel_on: Option<String>,
    pub(crate) defer_check_interval: Option<Duration>,
    pub(crate) max_defer: Option<MaxDefer>,
    pub(crate) name: Option<String>,
}

impl RawArgs {
    /// Checks every value and the rules between keys.
    pub(crate) fn build(self) -> syn::Result<Config> {
        let max_defer = match (self.max_defer_attempts, self.max_defer) {
            (Some(attempts), Some(after)) => {
                // Point at whichever of the two keys was written second.
                let second = if attempts.order > after.order {
                    &attempts.key
                } else {
                    &after.key
                };
                return Err(syn::Error::new(
                    second.span(),
                    "`max_defer` and `max_defer_attempts` cannot both be given: \
                     use `max_defer_attempts = N` (times `defer_check_interval`) \
                     or `max_defer = \"10s\"` / `\"never\"`",
                ));
            }
            (Some(attempts), None) => Some(MaxDefer::Attempts(attempts_value(&attempts)?)),
            (None, Some(after)) => Some(max_defer_value(&after)?),
            (None, None) => None,
        };
        Ok(Config {
            sink: self.sink.map(|arg| name_value(&arg, "sink")).transpose()?,
            concurrency: self.concurrency.map(|arg| concurrency(&arg)).transpose()?,
            capacity: self.capacity.map(|arg| non_zero(&arg)).transpose()?,
            defer_on: self.defer_on.map(|arg| patterns(&arg)).transpose()?,
            resume_on: self.resume_on.map(|arg| patterns(&arg)).transpose()?,
            cancel_on: self.cancel_on.map(|arg| patterns(&arg)).transpose()?,
            defer_check_interval: self
                .defer_check_interval
                .map(|arg| duration(&arg.value, "defer_check_interval"))
                .transpose()?,
            max_defer,
            name: self.name.map(|arg| name_value(&arg, "name")).transpose()?,
        })
    }
}

fn non_zero(arg: &Arg<LitInt>) -> syn::Result<NonZeroUsize> {
    let key = &arg.key;
    let value: usize = arg.value.base10_parse().map_err(|_| {
        syn::Error::new(
            arg.value.span(),
            format!("`{key}` must be a positive integer that fits in `usize`"),
        )
    })?;
    NonZeroUsize::new(value).ok_or_else(|| {
        syn::Error::new(
            arg.value.span(),
            format!("`{key}` must be at least 1, found 0"),
        )
    })
}

fn concurrency(arg: &Arg<LitInt>) -> syn::Result<NonZeroUsize> {
    let value = non_zero(arg)?;
    if value.get() > backpressure_pattern::MAX_CONCURRENCY {
        return Err(syn::Error::new(
            arg.value.span(),
            format!(
                "`concurrency` must be at most {} (each slot is a task started up front), found {value}",
                backpressure_pattern::MAX_CONCURRENCY
            ),
        ));
    }
    Ok(value)
}

fn attempts_value(arg: &Arg<LitInt>) -> syn::Result<u32> {
    let value: u32 = arg.value.base10_parse().map_err(|_| {
        syn::Error::new(
            arg.value.span(),
            "`max_defer_attempts` must be a positive integer that fits in `u32`",
        )
    })?;
    if value == 0 {
        return Err(syn::Error::new(
            arg.value.span(),
            "`max_defer_attempts` must be at least 1, found 0; \
             to wait without limit write `max_defer = \"never\"`",
        ));
    }
    Ok(value)
}

fn max_defer_value(arg: &Arg<LitStr>) -> syn::Result<MaxDefer> {
    if arg.value.value().trim() == "never" {
        return Ok(MaxDefer::Never);
    }
    duration(&arg.value, "max_defer").map(MaxDefer::After)
}

/// Parses a human-readable duration such as `"50ms"` or `"10s"`; zero is rejected.
fn duration(lit: &LitStr, key: &str) -> syn::Result<Duration> {
    let text = lit.value();
    let never = if key == "max_defer" {
        " or `\"never\"`"
    } else {
        ""
    };
    let value = humantime::parse_duration(text.trim()).map_err(|err| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration `{}` for `{key}`: {}; write a duration such as \
                 `\"50ms\"`, `\"1s\"` or `\"2m 30s\"`{never}",
                text.escape_debug(),
                lowercase_first(&err.to_string()),
            ),
        )
    })?;
    if value.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{key}` must be longer than zero, found `{}`",
                text.escape_debug()
            ),
        ));
    }
    Ok(value)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn patterns(arg: &Arg<Patterns>) -> syn::Result<String> {
    let key = &arg.key;
    if arg.value.items.is_empty() {
        return Err(syn::Error::new(
            arg.value.span,
            format!("`{key}` needs at least one pattern, as in `{key} = [\"backpressure.*\"]`"),
        ));
    }
    let mut joined = Vec::with_capacity(arg.value.items.len());
    for lit in &arg.value.items {
        let source = lit.value();
        Pattern::parse(&source)
            .map_err(|err| syn::Error::new(lit.span(), format!("`{key}`: {err}")))?;
        joined.push(source);
    }
    Ok(joined.join(", "))
}

/// A sink or worker name: the signal-name rules.
fn name_value(arg: &Arg<LitStr>, what: &str) -> syn::Result<String> {
    let name = arg.value.value();
    validate_name(&name).map_err(|err| {
        let why = match err.kind() {
            NameErrorKind::Empty => "the name is empty".to_owned(),
            NameErrorKind::TooLong { len } => format!(
                "{len} bytes long, the limit is {}",
                backpressure_pattern::MAX_NAME_LEN
            ),
            NameErrorKind::BadChar { ch, at } => format!(
                "character {ch:?} at byte {at} is not allowed \
                 (allowed: ASCII letters, digits and `. _ - : /`)"
            ),
            _ => err.to_string(),
        };
        syn::Error::new(
            arg.value.span(),
            format!("invalid {what} name `{}`: {why}", name.escape_debug()),
        )
    })?;
    Ok(name)
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
/// the second being the work context.
pub(crate) fn check_fn(function: &ItemFn) -> syn::Result<Handler> {
    let sig = &function.sig;
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
    let typed: Vec<_> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat) => Some(pat),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let shape = match typed.len() {
        0 => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!("a worker takes the item as its first parameter: write {SHAPES}"),
            ))
        }
        1 => Shape::ItemOnly,
        2 => {
            if !is_work_context(&typed[1].ty) {
                return Err(syn::Error::new(
                    typed[1].ty.span(),
                    "the second parameter of a worker must be its context, \
                     `backpressure::WorkContext`",
                ));
            }
            Shape::WithContext
        }
        _ => {
            return Err(syn::Error::new(
                typed[2].span(),
                format!("a worker takes at most two parameters: write {SHAPES}"),
            ))
        }
    };
    let item = (*typed[0].ty).clone();
    if let Some(span) = impl_trait_span(&item) {
        return Err(syn::Error::new(
            span,
            "`impl Trait` is not supported as a worker's item type: the item type must be concrete",
        ));
    }
    if let Some(span) = borrowed_span(&item) {
        return Err(syn::Error::new(
            span,
            "a worker's item must be `'static`: items wait in a queue and run on other tasks, \
             so take an owned type such as `String` or `Vec<u8>` instead of a borrow",
        ));
    }
    Ok(Handler { item, shape })
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
