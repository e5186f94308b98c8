//! Stage 3: the generated code.
//!
//! The user's function is emitted untouched. Next to it go a hidden alias for the item type and a
//! module with the function's name and visibility that holds the typed API (`enqueue`,
//! `try_enqueue`, `coordinator`, `stats`, `shutdown`, `NAME`, and each of them `_in` a given
//! runtime) and the `inventory` registration.
//! Everything reaches the runtime through `<crate>::__private` (`crate = "..."`, by default
//! `::backpressure`); other absolute paths name only `core` and `std`.
//!
//! On a configuration error the function is still emitted, and so is its module when the
//! signature is valid (without `build`, checks or registration), so that calls such as
//! `name::enqueue(item)` elsewhere in the crate add no errors of their own.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use backpressure_pattern::options::policies::{PolicySpec, PolicyValue};
use backpressure_pattern::options::rate::{self, RateSpec};
use backpressure_pattern::options::retry::RetrySpec;
use backpressure_pattern::options::{MaxDefer, OptionValue, Values, DEFAULT_CRATE};

use crate::validate::{Config, Handler, Shape};

/// The path generated code reaches the runtime by: `<crate>::__private`.
fn private(krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(krate) => quote!(#krate::__private),
        None => {
            let krate: syn::Path = syn::parse_str(DEFAULT_CRATE).expect("a valid path");
            quote!(#krate::__private)
        }
    }
}

/// When even the signature is unusable: the tokens as written plus the error.
pub(crate) fn fallback(function: &TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! {
        #function
        #error
    }
}

/// On a config error with a valid signature: the untouched function, its module with the
/// typed API (nothing registered), and the error, so nothing else cascades.
pub(crate) fn fallback_with_module(
    function: &ItemFn,
    handler: &Handler,
    krate: Option<&syn::Path>,
    error: syn::Error,
) -> TokenStream {
    let private = private(krate);
    let module = module(function, handler, &private, None, TokenStream::new());
    let error = error.to_compile_error();
    quote! {
        #module
        #error
    }
}

/// The whole expansion: the function, its module, and in the module the `build` function,
/// the trait-bound checks and the registration.
pub(crate) fn expand(function: &ItemFn, handler: &Handler, config: &Config) -> TokenStream {
    let private = private(config.krate.as_ref());
    let build = build_fn(function, handler, &private, config.retry.is_some());
    let checks = checks(function, handler, &private);
    let registration = registration(config, &private);
    let rest = quote! {
        #build
        #checks
        #registration
    };
    module(function, handler, &private, config.name.as_deref(), rest)
}

/// The function, the item alias and the module: `Item`, `NAME`, the typed API, and `rest`.
fn module(
    function: &ItemFn,
    handler: &Handler,
    private: &TokenStream,
    name: Option<&str>,
    rest: TokenStream,
) -> TokenStream {
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let item_ty = &handler.item;
    let alias = format_ident!("__backpressure_item_{}", ident);
    let doc = format!(
        "The `#[backpressure_worker]` generated API of [`{ident}`](fn@{ident}).\n\n\
         Call `backpressure::start()` inside a tokio runtime first; before that, \
         [`enqueue`] and [`try_enqueue`] hand the item back in an error. The `_in` \
         functions ([`enqueue_in`], ...) reach the worker in a given runtime instead, such \
         as an isolated one in a test."
    );
    let name = match name {
        Some(name) => quote!(#name),
        // Inside the generated module, `module_path!()` is the function's module path followed
        // by the function's name: exactly the default worker name.
        None => quote!(::core::module_path!()),
    };
    let api = api(private);
    quote! {
        #function

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis type #alias = #item_ty;

        #[doc = #doc]
        #vis mod #ident {
            #![allow(unreachable_pub, dead_code, non_upper_case_globals)]

            /// The item type this worker takes.
            pub type Item = super::#alias;

            /// The name this worker is registered under (the key of its config-file section).
            pub const NAME: &str = #name;

            #api
            #rest
        }
    }
}

/// The typed API around the worker's static cell: `enqueue`, `try_enqueue`, `coordinator`,
/// `stats`, `shutdown`.
fn api(private: &TokenStream) -> TokenStream {
    let api_in = api_in(private);
    quote! {
        #[doc(hidden)]
        pub static __BACKPRESSURE_CELL: #private::WorkerCell<Item> =
            #private::WorkerCell::new(NAME);

        /// Enqueues an item, waiting while the worker's queue is full.
        ///
        /// # Errors
        ///
        /// Hands the item back when the runtime has not been started (or was shut down) or
        /// the worker's intake is closed.
        pub async fn enqueue(
            item: Item,
        ) -> ::core::result::Result<#private::ItemId, #private::WorkerEnqueueError<Item>> {
            __BACKPRESSURE_CELL.enqueue(item).await
        }

        /// Enqueues an item if there is room right now.
        ///
        /// # Errors
        ///
        /// Hands the item back when the queue is full, the runtime has not been started
        /// (or was shut down) or the worker's intake is closed.
        pub fn try_enqueue(
            item: Item,
        ) -> ::core::result::Result<#private::ItemId, #private::WorkerEnqueueError<Item>> {
            __BACKPRESSURE_CELL.try_enqueue(item)
        }

        /// This worker's coordinator in the started runtime, if there is one.
        pub fn coordinator() -> ::core::option::Option<#private::Coordinator<Item>> {
            __BACKPRESSURE_CELL.coordinator()
        }

        /// This worker's statistics, if the runtime is started.
        pub fn stats() -> ::core::option::Option<#private::Stats> {
            __BACKPRESSURE_CELL.stats()
        }

        /// Shuts this worker down: cancels running work and returns the items that never
        /// started (empty when the runtime is not started).
        pub async fn shutdown() -> ::std::vec::Vec<Item> {
            __BACKPRESSURE_CELL.shutdown().await
        }

        #api_in
    }
}

/// The same API in a given runtime (an isolated one in tests): `enqueue_in`,
/// `try_enqueue_in`, `coordinator_in`, `stats_in`, `shutdown_in`.
fn api_in(private: &TokenStream) -> TokenStream {
    quote! {
        /// Enqueues an item on this worker in `runtime` (an isolated one, say), waiting while
        /// its queue is full.
        ///
        /// # Errors
        ///
        /// Hands the item back when `runtime` has no such worker (`NotInRuntime`) or the
        /// worker's intake is closed.
        pub async fn enqueue_in(
            runtime: &#private::Runtime,
            item: Item,
        ) -> ::core::result::Result<#private::ItemId, #private::WorkerEnqueueError<Item>> {
            __BACKPRESSURE_CELL.enqueue_in(runtime, item).await
        }

        /// Enqueues an item on this worker in `runtime` if there is room right now.
        ///
        /// # Errors
        ///
        /// Hands the item back when the queue is full, `runtime` has no such worker
        /// (`NotInRuntime`) or the worker's intake is closed.
        pub fn try_enqueue_in(
            runtime: &#private::Runtime,
            item: Item,
        ) -> ::core::result::Result<#private::ItemId, #private::WorkerEnqueueError<Item>> {
            __BACKPRESSURE_CELL.try_enqueue_in(runtime, item)
        }

        /// This worker's coordinator in `runtime`, if it has this worker.
        pub fn coordinator_in(
            runtime: &#private::Runtime,
        ) -> ::core::option::Option<#private::Coordinator<Item>> {
            __BACKPRESSURE_CELL.coordinator_in(runtime)
        }

        /// This worker's statistics in `runtime`, if it has this worker.
        pub fn stats_in(runtime: &#private::Runtime) -> ::core::option::Option<#private::Stats> {
            __BACKPRESSURE_CELL.stats_in(runtime)
        }

        /// Shuts this worker down in `runtime`: cancels running work and returns the items
        /// that never started (empty when `runtime` has no such worker).
        pub async fn shutdown_in(runtime: &#private::Runtime) -> ::std::vec::Vec<Item> {
            __BACKPRESSURE_CELL.shutdown_in(runtime).await
        }
    }
}

/// The registration's `build` function: the user's function as the coordinator's handler.
///
/// With `retry(...)` it builds through `build_retrying`, handing over the item type's
/// `clone`; the one place that asks for `Clone` is spanned on the item type, so a type that
/// is not `Clone` gets one error there, saying why. Without `retry(...)` nothing asks.
fn build_fn(
    function: &ItemFn,
    handler: &Handler,
    private: &TokenStream,
    retrying: bool,
) -> TokenStream {
    let ident = &function.sig.ident;
    let call = match handler.shape {
        Shape::ItemOnly => quote!(super::#ident(item)),
        Shape::WithContext => quote!(super::#ident(item, ctx)),
    };
    let handler_fn = quote! {
        |item: Item, ctx: #private::WorkContext| {
            let _ = &ctx;
            #call
        }
    };
    // A failed bound of `build` (the same bounds as the checks) lands on the function's name.
    let build_call = if retrying {
        let clone = quote_spanned! {handler.item.span()=>
            #private::clone_to_retry::<Item>()
        };
        quote_spanned! {ident.span()=>
            ctx.build_retrying(&__BACKPRESSURE_CELL, #clone, #handler_fn)
        }
    } else {
        quote_spanned! {ident.span()=>
            ctx.build(&__BACKPRESSURE_CELL, #handler_fn)
        }
    };
    quote! {
        fn __backpressure_build(
            ctx: &#private::BuildContext<'_>,
        ) -> ::core::result::Result<#private::BuiltWorker, #private::RegistryError> {
            #build_call
        }
    }
}

/// The `inventory` registration: the attribute's values, `None` where the runtime's default
/// applies.
fn registration(config: &Config, private: &TokenStream) -> TokenStream {
    let values = values(&config.values, private);
    let policies = config.policies.iter().map(|spec| policy(spec, private));
    let count = config.policies.len();
    let retry = option(config.retry.as_ref().map(|spec| retry_spec(spec, private)));
    let rate = option(config.rate.as_ref().map(|spec| rate_spec(spec, private)));
    quote! {
        static __BACKPRESSURE_POLICIES: [#private::PolicySpec; #count] = [#(#policies),*];

        #private::inventory::submit! {
            #private::Registration {
                name: NAME,
                values: #values,
                policies: &__BACKPRESSURE_POLICIES,
                retry: #retry,
                rate: #rate,
                build: __backpressure_build,
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    }
}

/// The coordinator options as a const `Values`: every field, named like its key.
fn values(values: &Values, private: &TokenStream) -> TokenStream {
    let fields = Values::FIELDS.iter().map(|&key| {
        let field = format_ident!("{}", key.name);
        let value = values.get(key).map(|value| match value {
            OptionValue::Text(text) => {
                let text: &str = &text;
                quote!(::std::borrow::Cow::Borrowed(#text))
            }
            OptionValue::Count(n) => quote!(#n),
            OptionValue::Duration(d) => duration(d),
            OptionValue::MaxDefer(m) => max_defer(m, private),
        });
        let value = option(value);
        quote!(#field: #value)
    });
    quote! {
        #private::Values {
            #(#fields,)*
        }
    }
}

/// A policy as a const `PolicySpec`: every field, named like its key (no `..base`: a
/// struct update would drop the base's rest, which a static cannot do).
fn policy(spec: &PolicySpec, private: &TokenStream) -> TokenStream {
    let kind = spec.policy.name();
    let fields = PolicySpec::FIELDS.iter().map(|&key| {
        let field = format_ident!("{}", key.name);
        let value = option(spec.get(key).map(policy_value));
        quote!(#field: #value)
    });
    quote! {
        #private::PolicySpec {
            policy: #private::policy_kind(#kind),
            #(#fields,)*
        }
    }
}

/// `retry(...)` as a const `RetrySpec`: every field, named like its key.
fn retry_spec(spec: &RetrySpec, private: &TokenStream) -> TokenStream {
    let fields = RetrySpec::FIELDS.iter().map(|&key| {
        let field = format_ident!("{}", key.name);
        let value = option(spec.get(key).map(policy_value));
        quote!(#field: #value)
    });
    quote! {
        #private::RetrySpec {
            #(#fields,)*
        }
    }
}

/// `rate(...)` as a const `RateSpec`: every field, named like its key.
fn rate_spec(spec: &RateSpec, private: &TokenStream) -> TokenStream {
    let fields = rate::KEYS.iter().map(|&key| {
        let field = format_ident!("{}", key.name);
        let value = option(spec.get(key).map(policy_value));
        quote!(#field: #value)
    });
    quote! {
        #private::RateSpec {
            #(#fields,)*
        }
    }
}

/// One value of a policy's, `retry`'s or `rate`'s key, as a const expression.
fn policy_value(value: PolicyValue) -> TokenStream {
    match value {
        PolicyValue::Text(text) => {
            let text: &str = &text;
            quote!(::std::borrow::Cow::Borrowed(#text))
        }
        PolicyValue::Count(n) => quote!(#n),
        PolicyValue::Number(x) => quote!(#x),
        PolicyValue::Duration(d) => duration(d),
        PolicyValue::Seed(n) => quote!(#n),
        PolicyValue::Flag(b) => quote!(#b),
    }
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn max_defer(value: MaxDefer, private: &TokenStream) -> TokenStream {
    match value {
        MaxDefer::Attempts(n) => quote!(#private::MaxDefer::Attempts(#n)),
        MaxDefer::After(d) => {
            let d = duration(d);
            quote!(#private::MaxDefer::After(#d))
        }
        MaxDefer::Never => quote!(#private::MaxDefer::Never),
    }
}

fn duration(d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// Trait-bound checks whose errors land on the user's own tokens: the item type must be
/// `Send + 'static` (error on the item type) and the output `()` or `Result<(), E>` with
/// `E: Display + Send + 'static` (error on the return type). A non-`Send` future is reported by the spanned `build` call,
/// on the function's name.
fn checks(function: &ItemFn, handler: &Handler, private: &TokenStream) -> TokenStream {
    let ident = &function.sig.ident;
    let item_check = quote_spanned! {handler.item.span()=>
        #private::item_must_be_send_and_static::<Item>();
    };
    let args = match handler.shape {
        Shape::ItemOnly => quote!(item),
        Shape::WithContext => quote!(item, ctx),
    };
    let output_span = match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => ident.span(),
    };
    let output_check = quote_spanned! {output_span=>
        #private::output_must_be_unit_or_result(&__future);
    };
    quote! {
        #[allow(unused_variables, clippy::let_underscore_future)]
        fn __backpressure_checks(item: Item, ctx: #private::WorkContext) {
            #item_check
            let __future = super::#ident(#args);
            #output_check
        }
    }
}
