//! Declarative use: start the registry and connect the sinks its config file names.

use backpressure::{error::RegistryError, Runtime, RuntimeBuilder};

use crate::{connect, Bridge, Config, Error};

/// A started runtime with its sinks connected to Redis, from [`start`] / [`start_with`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Started {
    /// The running workers.
    pub runtime: Runtime,
    /// One bridge per `[sinks."name".redis]` section, in the file's order.
    pub bridges: Vec<(String, Bridge)>,
}

/// Why [`start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The registry could not start (config file, workers, runtime).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A sink's `redis` section could not be read.
    #[error(transparent)]
    Config(#[from] backpressure::error::ConfigError),
    /// A sink could not be connected; the runtime was shut down again.
    #[error("sink `{sink}`: {source}")]
    Connect {
        /// The sink.
        sink: String,
        /// Why.
        source: Error,
    },
}

/// [`backpressure::start`], plus a Redis bridge for every sink that the config file gives a
/// `[sinks."name".redis]` section:
///
/// ```toml
/// [sinks.mail.redis]
/// url = "redis://redis.internal:6379"   # credentials are never logged
/// namespace = "shop"                     # processes in one namespace share signals
/// lease = "15s"                          # how long a dead process's signals survive
/// share = "backpressure.*"               # which names cross (default: all)
/// on_disconnect = "keep_until_lease_ends" # or "drop", "hold_until_reconnect"
/// limits_on_disconnect = "local_share"    # or "hold", "ignore": global_concurrency while cut off
/// ```
///
/// Workers with `global_concurrency` on such a sink are built before the bridge connects and
/// start once it serves their permits.
///
/// Every field but `url` is optional ([`Config`] lists them with their defaults). An
/// unreachable server is an error here, not a degraded start (see [`connect`]): a process
/// that silently ignores its peers looks healthy while it is not.
///
/// # Errors
///
/// [`StartError`] naming the sink and what went wrong; on a connection error the runtime is
/// shut down again, so nothing runs half-configured.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let started = backpressure_redis::start().await?;
/// // ... enqueue work; signals raised on a connected sink reach every process.
/// started.runtime.drain_all().await;
/// # Ok(()) }
/// ```
pub async fn start() -> Result<Started, StartError> {
    start_with(Runtime::builder()).await
}

/// As [`start`], with a [`RuntimeBuilder`] (a config file path, a subset of workers, an
/// isolated runtime).
///
/// # Errors
///
/// As [`start`].
pub async fn start_with(builder: RuntimeBuilder) -> Result<Started, StartError> {
    let sections = builder.sink_sections("redis")?;
    let mut configs = Vec::with_capacity(sections.len());
    for section in &sections {
        configs.push((section.sink().to_owned(), section.deserialize::<Config>()?));
    }
    let isolated = builder.is_isolated();
    let runtime = builder.handles("redis").start()?;
    let mut bridges = Vec::with_capacity(configs.len());
    for (sink_name, config) in configs {
        let sink = match runtime.sink(&sink_name) {
            Some(sink) => sink,
            None if !isolated => backpressure::sink(&sink_name),
            // An isolated runtime has only its workers' sinks.
            None => continue,
        };
        match connect(sink, config).await {
            Ok(bridge) => bridges.push((sink_name, bridge)),
            Err(source) => {
                for (_, bridge) in bridges {
                    bridge.shutdown().await;
                }
                runtime.shutdown().await;
                return Err(StartError::Connect {
                    sink: sink_name,
                    source,
                });
            }
        }
    }
    Ok(Started { runtime, bridges })
}
