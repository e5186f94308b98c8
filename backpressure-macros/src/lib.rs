//! The `#[backpressure_worker]` attribute of the [`backpressure`](https://docs.rs/backpressure)
//! crate. Use it through `backpressure::backpressure_worker`; this crate's generated code only
//! works together with `backpressure`.
//!
//! The crate is split by stage: `args` parses the raw `key = value` pairs with their spans,
//! `validate` turns them into a typed configuration and checks the function's shape, and
//! `expand` writes the generated code. The keys and their rules are not defined here but in
//! `backpressure_pattern::options`, shared with the runtime.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

use proc_macro::TokenStream;
use syn::parse::Parser;

mod args;
mod expand;
mod policies;
#[cfg(test)]
mod tests;
mod validate;

/// Turns an `async fn` into a registered backpressure worker.
///
/// The function is kept exactly as written (it can still be called directly). Next to it, a
/// module with the function's name and visibility gives the typed API:
///
/// * `name::enqueue(item).await` and `name::try_enqueue(item)`: hand work to the worker
///   (an error hands the item back, also when `backpressure::start()` has not run yet);
/// * `name::coordinator()`, `name::stats()`, `name::shutdown().await`;
/// * `name::NAME`: the registered name (the key of its section in a config file);
/// * `name::Item`: the item type.
///
/// `backpressure::start()` finds every worker through `inventory` and builds each one's
/// coordinator on its named sink.
///
/// # Keys
///
/// | key | value | default |
/// |---|---|---|
/// | `sink` | sink name | `"default"` |
/// | `concurrency` | integer ≥ 1 | `4` |
/// | `capacity` | integer ≥ 1 | `200` |
/// | `defer_on` | pattern or list of patterns | `"backpressure.*"` |
/// | `resume_on` | pattern or list of patterns | none |
/// | `cancel_on` | pattern or list of patterns | none |
/// | `defer_check_interval` | duration such as `"50ms"` | `"50ms"` |
/// | `max_defer_attempts` | integer ≥ 1 | `200` |
/// | `max_defer` | duration or `"never"` (instead of `max_defer_attempts`) | 10 s |
/// | `name` | worker name | module path + `::` + function name |
///
/// Every value is checked at compile time; an error points at the offending token and the
/// function is still emitted, so nothing else in the crate fails because of it.
///
/// # Examples
///
/// ```
/// use backpressure::{backpressure_worker, WorkContext};
///
/// #[backpressure_worker(sink = "main", concurrency = 2, defer_on = "backpressure.*")]
/// async fn send_email(to: String) -> Result<(), std::io::Error> {
///     // ... talk to the SMTP server ...
///     println!("sending to {to}");
///     Ok(())
/// }
///
/// #[backpressure_worker(defer_on = ["db.slow", "db.down"], max_defer = "never")]
/// async fn write_row(row: u64, ctx: WorkContext) {
///     // ctx carries the cancellation token, the sink and the item id
///     let _ = (row, ctx.id());
/// }
///
/// # fn main() {
/// assert!(send_email::NAME.ends_with("::send_email"));
/// # }
/// ```
#[proc_macro_attribute]
pub fn backpressure_worker(args: TokenStream, input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    let function: syn::ItemFn = match syn::parse2(input.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[backpressure_worker]` can only be used on an `async fn`",
            );
            return expand::fallback(&input, error).into();
        }
    };
    let mut raw = args::RawArgs::default();
    let parsed = syn::meta::parser(|meta| raw.parse(meta)).parse(args);
    let result = parsed
        .and_then(|()| validate::check_fn(&function))
        .and_then(|handler| raw.build().map(|config| (handler, config)));
    match result {
        Ok((handler, config)) => expand::expand(&function, &handler, &config).into(),
        Err(error) => expand::fallback(&input, error).into(),
    }
}
