//! Stage 3: the generated code.
//!
//! The user's function is emitted untouched. Next to it go a hidden alias for the item type and a
//! module with the function's name and visibility that holds the typed API (`enqueue`,
//! `try_enqueue`, `coordinator`, `stats`, `shutdown`, `NAME`) and the `inventory` registration.
//! Everything reaches the runtime through `::backpressure::__private`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use backpressure_pattern::options::policies::{PolicySpec, PolicyValue};
use backpressure_pattern::options::MaxDefer;

use crate::validate::{Config, Handler, Shape};

/// On a config error: the untouched function plus the error, so nothing else cascades.
pub(crate) fn fallback(function: &TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! {
        #function
        #error
    }
}

pub(crate) fn expand(function: &ItemFn, handler: &Handler, config: &Config) -> TokenStream {
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let item_ty = &handler.item;
    let alias = format_ident!("__backpressure_item_{}", ident);
    let doc = format!(
        "The `#[backpressure_worker]` generated API of [`{ident}`](fn@{ident}).\n\n\
         Call `backpressure::start()` inside a tokio runtime first; before that, \
         [`enqueue`] and [`try_enqueue`] hand the item back in an error."
    );
    let name = match &config.name {
        Some(name) => quote!(#name),
        // Inside the generated module, `module_path!()` is the function's module path followed
        // by the function's name: exactly the default worker name.
        None => quote!(::core::module_path!()),
    };
    let api = api();
    let build = build_fn(function, handler);
    let checks = checks(function, handler);
    let registration = registration(config);
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
            #build
            #checks
            #registration
        }
    }
}

/// The typed API around the worker's static cell: `enqueue`, `try_enqueue`, `coordinator`,
/// `stats`, `shutdown`.
fn api() -> TokenStream {
    let private = quote!(::backpressure::__private);
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
        ) -> ::core::result::Result<(), ::backpressure::WorkerEnqueueError<Item>> {
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
        ) -> ::core::result::Result<(), ::backpressure::WorkerEnqueueError<Item>> {
            __BACKPRESSURE_CELL.try_enqueue(item)
        }

        /// This worker's coordinator in the started runtime, if there is one.
        pub fn coordinator() -> ::core::option::Option<::backpressure::Coordinator<Item>> {
            __BACKPRESSURE_CELL.coordinator()
        }

        /// This worker's statistics, if the runtime is started.
        pub fn stats() -> ::core::option::Option<::backpressure::Stats> {
            __BACKPRESSURE_CELL.stats()
        }

        /// Shuts this worker down: cancels running work and returns the items that never
        /// started (empty when the runtime is not started).
        pub async fn shutdown() -> ::std::vec::Vec<Item> {
            __BACKPRESSURE_CELL.shutdown().await
        }
    }
}

/// The registration's `build` function: the user's function as the coordinator's handler.
fn build_fn(function: &ItemFn, handler: &Handler) -> TokenStream {
    let private = quote!(::backpressure::__private);
    let ident = &function.sig.ident;
    let call = match handler.shape {
        Shape::ItemOnly => quote!(super::#ident(item)),
        Shape::WithContext => quote!(super::#ident(item, ctx)),
    };
    // A failed bound of `build` (the same bounds as the checks) lands on the function's name.
    let build_call = quote_spanned! {ident.span()=>
        ctx.build(
            &__BACKPRESSURE_CELL,
            |item: Item, ctx: ::backpressure::WorkContext| {
                let _ = &ctx;
                #call
            },
        )
    };
    quote! {
        fn __backpressure_build(
            ctx: &#private::BuildContext<'_>,
        ) -> ::core::result::Result<#private::BuiltWorker, ::backpressure::RegistryError> {
            #build_call
        }
    }
}

/// The `inventory` registration: the attribute's values, `None` where the runtime's default
/// applies.
fn registration(config: &Config) -> TokenStream {
    let private = quote!(::backpressure::__private);
    let sink = option(config.sink.as_ref().map(|s| quote!(#s)));
    let concurrency = option(config.concurrency.map(|n| quote!(#n)));
    let capacity = option(config.capacity.map(|n| quote!(#n)));
    let defer_on = option(config.defer_on.as_ref().map(|s| quote!(#s)));
    let resume_on = option(config.resume_on.as_ref().map(|s| quote!(#s)));
    let cancel_on = option(config.cancel_on.as_ref().map(|s| quote!(#s)));
    let defer_check_interval = option(config.defer_check_interval.map(duration));
    let max_defer = option(config.max_defer.map(max_defer));
    let policies = config.policies.iter().map(policy);
    let count = config.policies.len();
    quote! {
        static __BACKPRESSURE_POLICIES: [#private::PolicySpec; #count] = [#(#policies),*];

        #private::inventory::submit! {
            #private::Registration {
                name: NAME,
                sink: #sink,
                concurrency: #concurrency,
                capacity: #capacity,
                defer_on: #defer_on,
                resume_on: #resume_on,
                cancel_on: #cancel_on,
                defer_check_interval: #defer_check_interval,
                max_defer: #max_defer,
                policies: &__BACKPRESSURE_POLICIES,
                build: __backpressure_build,
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    }
}

/// A policy as a const `PolicySpec`: every field, named like its key (no `..base`: a
/// struct update would drop the base's rest, which a static cannot do).
fn policy(spec: &PolicySpec) -> TokenStream {
    let private = quote!(::backpressure::__private);
    let kind = format_ident!("{}", format!("{:?}", spec.policy));
    let fields = PolicySpec::FIELDS.iter().map(|&key| {
        let field = format_ident!("{}", key.name);
        let value = spec.get(key).map(|value| match value {
            PolicyValue::Text(text) => {
                let text: &str = &text;
                quote!(::std::borrow::Cow::Borrowed(#text))
            }
            PolicyValue::Count(n) => quote!(#n),
            PolicyValue::Number(x) => quote!(#x),
            PolicyValue::Duration(d) => duration(d),
        });
        let value = option(value);
        quote!(#field: #value)
    });
    quote! {
        #private::PolicySpec {
            policy: #private::PolicyKind::#kind,
            #(#fields,)*
        }
    }
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn max_defer(value: MaxDefer) -> TokenStream {
    match value {
        MaxDefer::Attempts(n) => quote!(::backpressure::MaxDefer::Attempts(#n)),
        MaxDefer::After(d) => {
            let d = duration(d);
            quote!(::backpressure::MaxDefer::After(#d))
        }
        MaxDefer::Never => quote!(::backpressure::MaxDefer::Never),
    }
}

fn duration(d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// Trait-bound checks whose errors land on the user's own tokens: the item type must be
/// `Send + 'static` (error on the item type) and the output `()` or `Result<(), E: Display>`
/// (error on the return type). A non-`Send` future is reported by the spanned `build` call,
/// on the function's name.
fn checks(function: &ItemFn, handler: &Handler) -> TokenStream {
    let private = quote!(::backpressure::__private);
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
        fn __backpressure_checks(item: Item, ctx: ::backpressure::WorkContext) {
            #item_check
            let __future = super::#ident(#args);
            #output_check
        }
    }
}
