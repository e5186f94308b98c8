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

use crate::validate::{Config, Handler, MaxDefer, Shape};

/// On a config error: the untouched function plus the error, so nothing else cascades.
pub(crate) fn fallback(function: &TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! {
        #function
        #error
    }
}

pub(crate) fn expand(function: &ItemFn, handler: &Handler, config: &Config) -> TokenStream {
    let private = quote!(::backpressure::__private);
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let item_ty = &handler.item;
    let alias = format_ident!("__backpressure_item_{}", ident);

    let name = match &config.name {
        Some(name) => quote!(#name),
        // Inside the generated module, `module_path!()` is the function's module path followed
        // by the function's name: exactly the default worker name.
        None => quote!(::core::module_path!()),
    };
    let opt_str = |value: &Option<String>| match value {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let sink = opt_str(&config.sink);
    let defer_on = opt_str(&config.defer_on);
    let resume_on = opt_str(&config.resume_on);
    let cancel_on = opt_str(&config.cancel_on);
    let opt_usize = |value: Option<std::num::NonZeroUsize>| match value {
        Some(n) => {
            let n = n.get();
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    let concurrency = opt_usize(config.concurrency);
    let capacity = opt_usize(config.capacity);
    let defer_check_interval = match config.defer_check_interval {
        Some(d) => {
            let d = duration(d);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    };
    let max_defer = match &config.max_defer {
        Some(MaxDefer::Attempts(n)) => {
            quote!(::core::option::Option::Some(::backpressure::MaxDefer::Attempts(#n)))
        }
        Some(MaxDefer::After(d)) => {
            let d = duration(*d);
            quote!(::core::option::Option::Some(::backpressure::MaxDefer::After(#d)))
        }
        Some(MaxDefer::Never) => {
            quote!(::core::option::Option::Some(
                ::backpressure::MaxDefer::Never
            ))
        }
        None => quote!(::core::option::Option::None),
    };

    let call = match handler.shape {
        Shape::ItemOnly => quote!(super::#ident(item)),
        Shape::WithContext => quote!(super::#ident(item, ctx)),
    };
    let checks = checks(function, handler);
    // A failed bound of `build` (the same bounds as the checks) lands on the function's name.
    let build_call = quote_spanned! {ident.span()=>
        ctx.build(
            &__BACKPRESSURE_SLOT,
            |item: Item, ctx: ::backpressure::WorkContext| {
                let _ = &ctx;
                #call
            },
        )
    };
    let doc = format!(
        "The `#[backpressure_worker]` generated API of [`{ident}`](fn@{ident}).\n\n\
         Call `backpressure::start()` inside a tokio runtime first; before that, \
         [`enqueue`] and [`try_enqueue`] hand the item back in an error."
    );

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

            #[doc(hidden)]
            pub static __BACKPRESSURE_SLOT: #private::WorkerSlot<Item> =
                #private::WorkerSlot::new(NAME);

            /// Enqueues an item, waiting while the worker's queue is full.
            ///
            /// # Errors
            ///
            /// Hands the item back when the runtime has not been started (or was shut down) or
            /// the worker's intake is closed.
            pub async fn enqueue(
                item: Item,
            ) -> ::core::result::Result<(), ::backpressure::WorkerEnqueueError<Item>> {
                __BACKPRESSURE_SLOT.enqueue(item).await
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
                __BACKPRESSURE_SLOT.try_enqueue(item)
            }

            /// This worker's coordinator in the started runtime, if there is one.
            pub fn coordinator() -> ::core::option::Option<::backpressure::Coordinator<Item>> {
                __BACKPRESSURE_SLOT.coordinator()
            }

            /// This worker's statistics, if the runtime is started.
            pub fn stats() -> ::core::option::Option<::backpressure::Stats> {
                __BACKPRESSURE_SLOT.stats()
            }

            /// Shuts this worker down: cancels running work and returns the items that never
            /// started (empty when the runtime is not started).
            pub async fn shutdown() -> ::std::vec::Vec<Item> {
                __BACKPRESSURE_SLOT.shutdown().await
            }

            fn __backpressure_build(
                ctx: &#private::BuildContext<'_>,
            ) -> ::core::result::Result<#private::BuiltWorker, ::backpressure::RegistryError> {
                #build_call
            }

            #checks

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
                    build: __backpressure_build,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        }
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
