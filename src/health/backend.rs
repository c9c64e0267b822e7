//! The metrics backend the health checks ask: a Prometheus-compatible query API, hidden behind
//! a small trait so the checks run the same against Prometheus, Thanos, Mimir or an in-memory
//! fake.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

/// One sample of an instant-vector query result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels (including `__name__` when the query keeps it).
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// The health Prometheus reports for a scrape target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScrapeHealth {
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
    /// Not scraped yet.
    Unknown,
}

/// An active scrape target as reported by `/api/v1/targets`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The target's labels after relabeling (`inference_monitoring`, `instance`, `job`, ...).
    pub labels: BTreeMap<String, String>,
    /// The URL Prometheus scrapes.
    pub scrape_url: String,
    /// Health of the last scrape.
    pub health: ScrapeHealth,
    /// The last scrape's error, empty when it succeeded.
    pub last_error: String,
}

/// Why the backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached or answered with something that is not its API
    /// (connection refused, timeout, TLS failure, a proxy's 401/502 page).
    #[error("cannot reach the query API at {url}: {reason}")]
    Unreachable {
        /// The base URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The API answered with an error (bad query, execution error, timeout).
    #[error("the query API at {url} rejected {what}: {reason}")]
    Api {
        /// The base URL asked.
        url: String,
        /// The query or endpoint.
        what: String,
        /// The API's error.
        reason: String,
    },
    /// The backend configuration is unusable (malformed URL, invalid CA certificate).
    #[error("invalid query API configuration: {0}")]
    Config(String),
}

/// A Prometheus-compatible query API.
///
/// Implementations must not retry or fan out: the health check's cost is the number of calls
/// it makes, which is fixed per cycle.
pub trait MetricsBackend: Send + Sync {
    /// Runs an instant query and returns its vector result.
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, BackendError>>;

    /// The active scrape targets; `Ok(None)` when the backend has no targets API (Mimir,
    /// some proxies), in which case the checks fall back to `up` series.
    fn targets(&self) -> BoxFuture<'_, Result<Option<Vec<Target>>, BackendError>>;
}
