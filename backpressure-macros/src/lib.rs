//! The `#[backpressure_worker]` attribute of the [`backpressure`](https://docs.rs/backpressure)
//! crate. Use it through `backpressure::backpressure_worker`; this crate's generated code only
//! works together with `backpressure`.
//!
//! The crate is split by stage: `args` parses the raw `key = value` pairs with their spans,
//! `validate` turns them into a typed configuration and checks the function's shape, and
//! `expand` writes the generated code; `policies` reads the nested policy lists. Below them,
//! `value` reads one value as written and `suggest` finds the key a misspelling meant. The keys and
//! their rules are not defined here but in `backpressure_pattern::options` (and its
//! `policies` module), shared with the runtime.
#![doc(test(attr(deny(warnings))))]

use proc_macro::TokenStream;
use syn::parse::Parser;

mod args;
mod expand;
mod list;
mod policies;
mod suggest;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rate;
mod validate;
mod value;

/// Turns an `async fn` into a registered backpressure worker.
///
/// The function is kept exactly as written (it can still be called directly). Next to it, a
/// module with the function's name and visibility gives the typed API:
///
/// * `name::enqueue(item).await` and `name::try_enqueue(item)`: hand work to the worker
///   (an error hands the item back, also when `backpressure::start()` has not run yet);
/// * `name::coordinator()`, `name::stats()`, `name::shutdown().await`;
/// * each of these `_in` a given runtime: `name::enqueue_in(&runtime, item).await`,
///   `name::try_enqueue_in(&runtime, item)`, `name::coordinator_in(&runtime)`,
///   `name::stats_in(&runtime)`, `name::shutdown_in(&runtime).await` (below);
/// * `name::NAME`: the registered name (the key of its section in a config file);
/// * `name::Item`: the item type.
///
/// `backpressure::start()` finds every worker through `inventory` and builds each one's
/// coordinator on its named sink.
///
/// # In a given runtime (tests)
///
/// `name::enqueue(item)` reaches the global runtime of `backpressure::start()`. Code that
/// takes a `&Runtime` and calls `name::enqueue_in(runtime, item)` instead can be handed an
/// isolated runtime in a test (`Runtime::builder().isolated()` or `.only([...])`: its own
/// coordinators on its own fresh sinks), and any number of such tests run in parallel. A
/// runtime without the worker is `WorkerEnqueueError::NotInRuntime`, naming it.
///
/// ```
/// use backpressure::{backpressure_worker, error::WorkerEnqueueError, Runtime};
///
/// #[backpressure_worker(sink = "mail")]
/// async fn send_mail(to: String) {
///     let _ = to;
/// }
///
/// // The code under test is handed the runtime.
/// async fn sign_up(runtime: &Runtime, email: &str) -> Result<(), WorkerEnqueueError<String>> {
///     send_mail::enqueue_in(runtime, email.to_owned()).await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let runtime = Runtime::builder().only([send_mail::NAME]).start().unwrap();
/// let sink = runtime.sink("mail").unwrap();
/// sink.raise("backpressure.smtp").unwrap();
/// sign_up(&runtime, "ada@example.com").await.unwrap();
/// assert_eq!(send_mail::stats_in(&runtime).unwrap().queued, 1); // held
/// sink.retract("backpressure.smtp").unwrap();
/// runtime.drain_all().await;
/// assert_eq!(send_mail::stats_in(&runtime).unwrap().completed, 1);
/// assert!(send_mail::stats().is_none()); // the global runtime was never started
///
/// let empty = Runtime::builder().only::<_, &str>([]).start().unwrap();
/// let err = sign_up(&empty, "grace@example.com").await.unwrap_err();
/// assert!(matches!(err, WorkerEnqueueError::NotInRuntime { worker, .. } if worker == send_mail::NAME));
/// # }
/// ```
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
/// | `timeout` | duration: how long one attempt may run | none |
/// | `dead_letters` | integer ≥ 1: dead letters kept (with `retry(...)`) | `1000` |
/// | `rate(...)` | `limit`, `per`, `burst`, `shared`: starts per period (see Rate limits) | none |
/// | `global_concurrency` | integer ≥ 1: items running at once across every process sharing the sink (needs a connector: `backpressure_redis::start`) | none |
/// | `name` | worker name | module path + `::` + function name |
/// | `crate` | path to `backpressure` (attribute only) | `"::backpressure"` |
///
/// `crate = "my_crate::backpressure"` is for a crate that re-exports `backpressure` and whose
/// users write `#[my_crate::backpressure::backpressure_worker]` without depending on
/// `backpressure` themselves: the generated code then reaches the runtime through that path.
/// It is about the code, not the worker, so a config file does not take it.
///
/// # Policies
///
/// Health policies are nested lists, at most one of each kind; each raises its `signal` on
/// the worker's sink, keyed by the worker's name (see `backpressure::policy`):
///
/// | policy | keys (required first) |
/// |---|---|
/// | `error_rate(...)` | `signal`; `window` (`"30s"`), `min_calls` (20), `failure_ratio` (0.5), `consecutive_failures`, `ttl` (`"15s"`), `open_for` (`"30s"`), `max_open_for` (`"300s"`), `jitter` (0.15), `probes` (3), `probe_timeout` (`"30s"`) |
/// | `slow_call(...)` | `signal`, `slow_after`; then as `error_rate` |
/// | `adaptive(...)` | `signal`, `max`; `window` (`"10s"`), `slow_after`, `ttl` (`"15s"`) |
/// | `watermark(...)` | `signal`; `high` (0.8), `low` (0.5), `max_age`, `hold_for` (`"5s"`), `ttl` (`"15s"`) |
///
/// Ratios (`failure_ratio`, `high`) are in (0, 1], shares (`jitter`, `low`) in [0, 1);
/// `low` must be below `high` and `max_open_for` at least `open_for`. One more check is
/// ours: an `adaptive`, `error_rate` or `slow_call` signal must be matched by the worker's
/// own `defer_on` (default `"backpressure.*"`). An adaptive level exists to throttle this
/// worker, and a breaker that opens while its own worker keeps sending would not protect the
/// downstream it found failing (peers deferring on the signal back off with it; the owner
/// still probes when half-open). A watermark's signal is not checked this way: it tells
/// *other* workers that this one's queue is backing up, and its owner deferring on it would
/// only stop the draining that ends it.
///
/// ```
/// use backpressure::backpressure_worker;
///
/// #[backpressure_worker(
///     sink = "mail",
///     defer_on = "backpressure.*",
///     error_rate(signal = "backpressure.smtp", failure_ratio = 0.5, min_calls = 20,
///                window = "30s", open_for = "30s"),
///     slow_call(signal = "backpressure.smtp.slow", slow_after = "2s"),
///     adaptive(signal = "backpressure.smtp.level", max = 16),
///     watermark(signal = "backpressure.mail.backlog", high = 0.9, low = 0.5),
/// )]
/// async fn send_mail(to: String) -> Result<(), std::io::Error> {
///     let _ = to;
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// A config file overrides a policy's fields, or adds one, with a `[workers."name".error_rate]`
/// table (see the `backpressure` crate docs, "Config files").
///
/// # Retries
///
/// `retry(attempts = 3, backoff = "1s", max_backoff = "60s", multiplier = 2.0, jitter = 0.1,
/// jitter_seed = 7)` retries failed items and keeps the last failures as dead letters (see
/// `backpressure::retry`); every key is optional (`retry()` takes the defaults shown; the
/// jitter is unseeded unless `jitter_seed` is given). `attempts` counts the first run,
/// `max_backoff` must be at least `backoff`, `multiplier` at least 1, `jitter` a share in
/// [0, 1]. Each attempt runs a copy of the item, so the item type must be `Clone`: without it
/// the error is on the item type and says why. A config file's `[workers."name".retry]` table
/// tunes these keys; it cannot add `retry` to a worker whose attribute has none.
///
/// ```
/// use backpressure::{backpressure_worker, retry::Failure};
///
/// #[derive(Clone)]
/// struct Email {
///     to: String,
/// }
///
/// #[backpressure_worker(retry(attempts = 5, backoff = "1s"), timeout = "30s", dead_letters = 100)]
/// async fn send_email(email: Email) -> Result<(), Failure<String>> {
///     let _ = email.to;
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// # Rate limits
///
/// `rate(limit = 100, per = "1s", burst = 10)` starts at most `limit` items per `per`, evenly
/// spaced, with up to `burst` at once after a quiet spell (see `backpressure::limit`, and
/// `docs/limits.md` for how it composes with signals, levels, pause and retries). `limit` and
/// `per` are required: `limit` ≥ 1 (32-bit), `per` a positive duration long enough for one
/// nanosecond per start; `burst` ≥ 1, default 1. While the next start is not yet allowed, one
/// timer per coordinator waits for it. `shared = true` makes it the whole fleet's: one GCRA
/// in Redis for every process whose sink is bridged by `backpressure-redis` (starting such a
/// worker on a sink no connector serves is `RegistryError::SharedRateNeedsConnector`);
/// default `false`, a rate per process. A config file's `[workers."name".rate]` table tunes
/// these keys one by one, or gives a rate to a worker whose attribute has none.
///
/// ```
/// use backpressure::backpressure_worker;
///
/// #[backpressure_worker(concurrency = 8, rate(limit = 100, per = "1s", burst = 10))]
/// async fn relay(message: String) {
///     let _ = message;
/// }
/// # fn main() {}
/// ```
///
/// Every value is checked at compile time; an error points at the offending token and the
/// function is still emitted, with its module when the signature is valid (nothing is
/// registered), so nothing else in the crate fails because of it: calls to
/// `name::enqueue(item)` type-check as usual.
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
    // An argument's error comes first, then the signature's, then the values'. With a valid
    // signature the module is emitted even next to an error (see `expand`).
    let output = match (parsed, validate::check_fn(&function)) {
        (Err(error), Err(_)) | (Ok(()), Err(error)) => expand::fallback(&input, error),
        (Err(error), Ok(handler)) => {
            let krate = raw.krate().ok().flatten();
            expand::fallback_with_module(&function, &handler, krate.as_ref(), error)
        }
        (Ok(()), Ok(handler)) => {
            let krate = raw.krate().ok().flatten();
            match raw.build() {
                Ok(config) => expand::expand(&function, &handler, &config),
                Err(error) => {
                    expand::fallback_with_module(&function, &handler, krate.as_ref(), error)
                }
            }
        }
    };
    output.into()
}
