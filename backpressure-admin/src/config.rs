//! [`AdminConfig`]: read-only mode, the authorize hook, allowed origins.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;

use crate::history::Limits;

/// What a request wants to do, as handed to the [authorize hook](AdminConfig::authorize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Access {
    /// Look: the page, its assets, the JSON API's `GET`s and the event stream.
    Read,
    /// Change something: raise, retract, pause, resume.
    Write,
}

type AuthorizeFn = dyn Fn(&Parts, Access) -> bool + Send + Sync;

/// How the admin router behaves: read-only or not, who may do what, which origins may send
/// changes.
///
/// The default allows everything to everyone who reaches the router: mount it behind your own
/// authentication (see the [crate docs](crate)).
///
/// # Examples
///
/// ```
/// use backpressure_admin::{Access, AdminConfig};
///
/// // Everybody who gets through the app's auth may look; only requests carrying the
/// // operator header may change anything.
/// let config = AdminConfig::new().authorize(|request, access| match access {
///     Access::Read => true,
///     Access::Write => request.headers.contains_key("x-operator"),
///     _ => false,
/// });
///
/// let dashboard_only = AdminConfig::new().read_only(true);
/// assert!(dashboard_only.is_read_only());
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct AdminConfig {
    pub(crate) read_only: bool,
    pub(crate) authorize: Option<Arc<AuthorizeFn>>,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) keep_alive: Duration,
    pub(crate) history: Limits,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            authorize: None,
            allowed_origins: Vec::new(),
            keep_alive: Duration::from_secs(15),
            history: Limits {
                window: Duration::from_secs(15 * 60),
                max_transitions: 2048,
            },
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("read_only", &self.read_only)
            .field(
                "authorize",
                &self
                    .authorize
                    .as_ref()
                    .map(|_| "Fn(&Parts, Access) -> bool"),
            )
            .field("allowed_origins", &self.allowed_origins)
            .field("keep_alive", &self.keep_alive)
            .field("history", &self.history)
            .finish()
    }
}

impl AdminConfig {
    /// Everything allowed, changes accepted from the router's own origin, a keep-alive
    /// comment on the event stream every 15 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// In read-only mode the page shows no controls and every change (raise, retract, pause,
    /// resume) is answered with 403, whatever the authorize hook says.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether [`read_only`](Self::read_only) is set.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Decides, per request, whether it may do what it asks: `hook(&parts, access)` returning
    /// `false` gets a 403 with a JSON error. The request parts carry whatever your own auth
    /// middleware put into them (headers, extensions such as the signed-in user).
    ///
    /// Without a hook, every request that reaches the router is allowed.
    pub fn authorize<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Parts, Access) -> bool + Send + Sync + 'static,
    {
        self.authorize = Some(Arc::new(hook));
        self
    }

    /// Also accepts changes from pages served at `origin` (`scheme://host[:port]`, as browsers
    /// send it in the `Origin` header). Changes from the router's own host are always
    /// accepted; changes carrying any other `Origin` get a 403.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins
            .push(origin.into().trim_end_matches('/').to_ascii_lowercase());
        self
    }

    /// How often an idle event stream sends a keep-alive comment (default 15 s, at least
    /// 100 ms).
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval.max(Duration::from_millis(100));
        self
    }

    /// How far back the history (`GET api/history`, the page's timeline and charts) reaches:
    /// one sample per worker per second over this window (default 15 minutes; at least a
    /// minute, at most a day).
    pub fn history_window(mut self, window: Duration) -> Self {
        self.history.window = window.clamp(Duration::from_secs(60), Duration::from_secs(86_400));
        self
    }

    /// How many transitions the history keeps at most: signal bars, gate spans and policy
    /// changes together, the oldest dropped first (default 2048, at least 16). Bars still
    /// open are kept on top of this.
    pub fn history_transitions(mut self, max: usize) -> Self {
        self.history.max_transitions = max.clamp(16, 1 << 20);
        self
    }
}
