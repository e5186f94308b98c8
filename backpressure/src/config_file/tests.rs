//! The config file's unit tests: every field, every error's words.

use std::path::Path;
use std::time::Duration;

use backpressure_pattern::options::Values;

use super::{ConfigError, ConfigFile};
use crate::{CoordinatorConfig, MaxDefer};

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse("test.toml", text)
}

fn message(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn every_field_is_read_and_applied() {
    let file = parse(
        r#"
        [workers."app::send"]
        sink = "mail"
        concurrency = 8
        capacity = 500
        defer_on = ["backpressure.*", "smtp.slow"]
        resume_on = "smtp.priority"
        cancel_on = "smtp.down"
        defer_check_interval = "100ms"
        max_defer = "30s"
        timeout = "20s"
        dead_letters = 50
        "#,
    )
    .unwrap();
    let overrides = &file.workers["app::send"];
    assert_eq!(overrides.values.sink.as_deref(), Some("mail"));
    let config = CoordinatorConfig::from_values(&overrides.values);
    assert_eq!(config.concurrency, 8);
    assert_eq!(config.capacity, 500);
    assert_eq!(
        config.defer_on.as_deref(),
        Some("backpressure.*, smtp.slow")
    );
    assert_eq!(config.resume_on.as_deref(), Some("smtp.priority"));
    assert_eq!(config.cancel_on.as_deref(), Some("smtp.down"));
    assert_eq!(config.defer_check_interval, Duration::from_millis(100));
    assert_eq!(config.max_defer, MaxDefer::After(Duration::from_secs(30)));
    assert_eq!(config.timeout, Some(Duration::from_secs(20)));
    assert_eq!(config.dead_letters, 50);
}

#[test]
fn a_retry_table_gives_only_its_keys_and_each_is_checked() {
    let file =
        parse("[workers.a.retry]\nattempts = 5\nmultiplier = 3\njitter = 1.0\njitter_seed = 7\n")
            .unwrap();
    let retry = file.workers["a"].retry.clone().unwrap();
    assert_eq!(retry.attempts, Some(5));
    assert_eq!(retry.multiplier, Some(3.0));
    assert_eq!(retry.jitter, Some(1.0));
    assert_eq!(retry.jitter_seed, Some(7));
    assert_eq!(retry.backoff, None);
    assert_eq!(
        message("[workers.a.retry]\nattempts = 0\n"),
        "config file `test.toml`, worker `a`, `retry`, field `attempts`: \
         must be at least 1, found 0"
    );
    assert_eq!(
        message("[workers.a.retry]\nbackoff = \"5s\"\nmax_backoff = \"1s\"\n"),
        "config file `test.toml`, worker `a`, `retry`, field `max_backoff`: \
         must be at least `backoff` (5s), found 1s"
    );
    assert_eq!(
        message("[workers.a.retry]\nattempt = 2\n"),
        "config file `test.toml`, worker `a`, `retry`: unknown field `attempt` (valid fields: \
         `attempts`, `backoff`, `max_backoff`, `multiplier`, `jitter`, `jitter_seed`)"
    );
    assert_eq!(
        message("[workers.a]\ntimeout = \"0s\"\n"),
        "config file `test.toml`, worker `a`, field `timeout`: must be longer than zero, found `0s`"
    );
    assert_eq!(
        message("[workers.a]\ndead_letters = 0\n"),
        "config file `test.toml`, worker `a`, field `dead_letters`: must be at least 1, found 0"
    );
}

#[test]
fn absent_fields_keep_the_existing_values() {
    let file = parse("[workers.a]\nmax_defer = \"never\"\n").unwrap();
    let mut values = Values::new();
    values.overlay(&file.workers["a"].values);
    assert_eq!(
        CoordinatorConfig::from_values(&values),
        CoordinatorConfig {
            max_defer: MaxDefer::Never,
            ..CoordinatorConfig::default()
        }
    );
    let file = parse("[workers.a]\nmax_defer_attempts = 7\n").unwrap();
    values.overlay(&file.workers["a"].values);
    let config = CoordinatorConfig::from_values(&values);
    assert_eq!(config.max_defer, MaxDefer::Attempts(7));
    assert!(parse("").unwrap().workers.is_empty());
}

#[test]
fn errors_name_the_file_the_worker_and_the_field() {
    assert_eq!(
        message("[workers.a]\nconcurrenc = 3\n"),
        "config file `test.toml`, worker `a`: unknown field `concurrenc` (valid fields: \
         `sink`, `concurrency`, `capacity`, `defer_on`, `resume_on`, `cancel_on`, \
         `defer_check_interval`, `max_defer_attempts`, `max_defer`, `timeout`, \
         `dead_letters`, `global_concurrency`; policies: `error_rate`, `slow_call`, `adaptive`, `watermark`; \
         retries: `retry`; rate limits: `rate`)"
    );
    assert_eq!(
        message("[workers.a]\nconcurrency = \"4\"\n"),
        "config file `test.toml`, worker `a`, field `concurrency`: invalid type: string \"4\", expected usize"
    );
    assert_eq!(
        message("[workers.a]\nconcurrency = 1000000\n"),
        "config file `test.toml`, worker `a`, field `concurrency`: must be at most 65536 \
         (each slot is a task started up front), found 1000000"
    );
    assert_eq!(
        message("[workers.a]\ncapacity = 0\n"),
        "config file `test.toml`, worker `a`, field `capacity`: must be at least 1, found 0"
    );
    assert!(message("[workers.a]\ndefer_on = \"a b\"\n").starts_with(
        "config file `test.toml`, worker `a`, field `defer_on`: invalid pattern `a b`"
    ));
    assert!(message("[workers.a]\ndefer_on = \"a.*,,b\"\n")
        .contains("item 1 of the comma-separated list is empty"));
    assert_eq!(
        message("[workers.a]\ndefer_on = 3\n"),
        "config file `test.toml`, worker `a`, field `defer_on`: expected a pattern string or a list of pattern strings"
    );
    assert!(message("[workers.a]\ndefer_check_interval = \"5 parsecs\"\n")
        .starts_with("config file `test.toml`, worker `a`, field `defer_check_interval`: invalid duration `5 parsecs`"));
    assert_eq!(
        message("[workers.a]\nmax_defer = \"0s\"\n"),
        "config file `test.toml`, worker `a`, field `max_defer`: must be longer than zero, found `0s`"
    );
    assert!(
        message("[workers.a]\nmax_defer = \"1s\"\nmax_defer_attempts = 3\n")
            .contains("cannot both be given")
    );
    assert!(
        message("[workers.a]\nsink = \"has space\"\n").contains("field `sink`: invalid sink name")
    );
}

#[test]
fn top_level_mistakes_are_syntax_errors() {
    let err = parse("[worker.a]\nconcurrency = 3\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("invalid config file `test.toml`: "),
        "{err}"
    );
    assert!(err.to_string().contains("unknown field `worker`"), "{err}");
    let err = parse("[workers.a\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
}

#[test]
fn unknown_workers_are_reported_with_the_known_ones() {
    let file = parse("[workers.nope]\n").unwrap();
    let err = file.check_workers(["b", "a"].into_iter()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config file `test.toml` configures worker `nope`, which is not registered (registered workers: `a`, `b`)"
    );
    assert!(file.check_workers(["nope"].into_iter()).is_ok());
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = ConfigFile::load(Path::new("/definitely/not/here.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with("cannot read config file `/definitely/not/here.toml`: "));
}

#[test]
fn sink_sections_are_kept_for_their_connector_and_refused_without_it() {
    let file =
        parse("[sinks.mail.redis]\nurl = \"redis://127.0.0.1:6379\"\nnamespace = \"shop\"\n")
            .unwrap();
    assert_eq!(file.sinks.len(), 1);
    let section = &file.sinks[0];
    assert_eq!((section.sink(), section.section()), ("mail", "redis"));
    assert_eq!(
        file.check_sinks(&[]).unwrap_err().to_string(),
        "config file `test.toml`, sink `mail`: the `redis` section needs the \
         `backpressure-redis` crate: start the runtime with \
         `backpressure_redis::start().await`"
    );
    assert!(file.check_sinks(&["redis"]).is_ok());

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        #[allow(dead_code)]
        url: String,
    }
    let err = section.deserialize::<Settings>().unwrap_err().to_string();
    assert!(
        err.starts_with(
            "config file `test.toml`, sink `mail`, section `redis`: unknown field `namespace`"
        ),
        "{err}"
    );
}

#[test]
fn unknown_sink_sections_are_errors() {
    assert_eq!(
        message("[sinks.mail.kafka]\nurl = \"x\"\n"),
        "config file `test.toml`, sink `mail`: unknown section `kafka` (known sections: `redis`)"
    );
    assert_eq!(
        message("[sinks.mail]\nredis = 3\n"),
        "config file `test.toml`, sink `mail`, section `redis`: expected a table such as \
         `[sinks.mail.redis]`"
    );
}
