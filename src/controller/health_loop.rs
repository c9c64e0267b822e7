//! The periodic health check: asks each resource's Prometheus (through
//! [`crate::health`]) whether its targets are scraped and export the engine's core metric.
//! It checks the resolution the reconcile remembered (the same monitor labels and Prometheus
//! selection the children were applied with) and records its verdict; when a verdict
//! changes it asks for a reconcile, the only writer of the status. A healthy resource stays
//! quiet.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Secret as KubeSecret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use kube::api::Api;
use tracing::{error, warn};

use super::Error;
use super::context::Context;
use super::dereference::{Resolved, health_checked};
use super::metrics::ResourceLabels;
use super::secrets::{SecretKey, referenced};
use crate::api::PrometheusAuth;
use crate::health::{
    BackendError, BasicCredentials, ClientCertificate, Credentials, DEFAULT_TIMEOUT, HealthTarget,
    MetricsBackend, PrometheusBackend, Secret, check_all, is_loading,
};
use crate::validate::{Targets, normalize_url};

/// Builds the metrics backend for a query API URL and its credentials: the real
/// [`PrometheusBackend`] in the operator, an in-memory fake in tests.
pub type BackendFactory =
    Arc<dyn Fn(&str, &Credentials) -> Result<Arc<dyn MetricsBackend>, BackendError> + Send + Sync>;

/// The real backends.
pub fn prometheus_backends() -> BackendFactory {
    Arc::new(|url, credentials| {
        Ok(
            Arc::new(PrometheusBackend::new(url, credentials, DEFAULT_TIMEOUT)?)
                as Arc<dyn MetricsBackend>,
        )
    })
}

/// Health-check state kept between cycles: when each resource was last checked.
pub struct HealthLoop {
    factory: BackendFactory,
    last_checked: HashMap<String, Time>,
}

impl HealthLoop {
    /// A loop using `factory` for its backends.
    pub fn new(factory: BackendFactory) -> Self {
        Self {
            factory,
            last_checked: HashMap::new(),
        }
    }

    /// One cycle over the resolutions the reconcile remembered: those due are grouped by
    /// query API and credentials, each group is checked with one fixed set of requests, and
    /// each verdict is recorded; a resource whose verdict changed is reconciled, which writes
    /// it into the status. Returns how many verdicts changed; a failure (reading credentials,
    /// building a client) is logged and skips only its group.
    pub async fn cycle(&mut self, ctx: &Context) -> usize {
        let now = (ctx.clock)();
        if let Some(watches) = ctx.secret_watches() {
            watches.follow(&referenced_secrets(&ctx.resolutions()));
        }
        let mut groups: BTreeMap<(String, String), Vec<Arc<Resolved>>> = BTreeMap::new();
        for (key, resolved) in ctx.resolutions() {
            if !self.due(ctx, &key, &resolved, &now) {
                continue;
            }
            let validated = &resolved.validated;
            let url = validated.health.url.clone().unwrap_or_default();
            let auth = match &validated.health.auth {
                Some(auth) => format!(
                    "{}/{}",
                    validated.namespace,
                    serde_json::to_string(auth).unwrap_or_default()
                ),
                None => String::new(),
            };
            groups.entry((url, auth)).or_default().push(resolved);
        }
        let mut changed = 0;
        for ((url, _), group) in groups {
            let first = &group[0].validated;
            let credentials = match &first.health.auth {
                Some(auth) => match credentials(ctx, &first.namespace, auth).await {
                    Ok(credentials) => credentials,
                    Err(err) => {
                        warn!(url = %url, error = %err, "cannot read the health-check credentials");
                        continue;
                    }
                },
                None => default_credentials(&ctx.config, &url),
            };
            let selections: Vec<&Targets> = group.iter().map(|r| &r.validated.targets).collect();
            let loading = ctx
                .caches
                .pod_states(&selections, |pod| is_loading(pod, &now))
                .unwrap_or_default();
            let targets: Vec<HealthTarget> = group
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut target = HealthTarget::from_validated(&r.validated, None);
                    if let Some(pods) = loading.get(i) {
                        target.loading_pods = pods.iter().map(|p| p.key.clone()).collect();
                    }
                    target
                })
                .collect();
            let reports = match (self.factory)(&url, &credentials) {
                Ok(backend) => check_all(backend.as_ref(), &targets, now.clone()).await,
                Err(err) => {
                    warn!(url = %url, error = %err, "cannot build the health-check client");
                    continue;
                }
            };
            for (resolved, report) in group.iter().zip(reports) {
                let validated = &resolved.validated;
                let key = validated.key();
                self.last_checked.insert(key.clone(), now.clone());
                ctx.metrics
                    .targets_up
                    .get_or_create(&ResourceLabels {
                        namespace: validated.namespace.clone(),
                        name: validated.name.clone(),
                    })
                    .set(i64::from(report.observation.up));
                if ctx.record_verdict(&key, report) {
                    changed += 1;
                    ctx.reconcile_soon(&validated.namespace, &validated.name);
                }
            }
        }
        changed
    }

    /// Forgets every resource not in `existing` (`namespace/name` keys of the watched
    /// resources): its check time here, and everything the context remembers about it.
    pub fn sweep(&mut self, ctx: &Context, existing: &HashSet<String>) {
        self.last_checked.retain(|key, _| existing.contains(key));
        for key in ctx.remembered_keys() {
            if !existing.contains(&key) {
                ctx.forget(&key);
            }
        }
    }

    /// Whether the resource's check is due: it has a query URL, a Prometheus selects its
    /// monitors (or none has to), and its interval passed.
    fn due(&self, ctx: &Context, key: &str, resolved: &Resolved, now: &Time) -> bool {
        let validated = &resolved.validated;
        if !health_checked(validated, resolved.selection.as_ref()) {
            return false;
        }
        let interval = validated.health.interval.max(ctx.config.health_interval);
        match self.last_checked.get(key) {
            // Checked: an interval past the clock's range means "not yet", never a panic.
            Some(last) => SignedDuration::try_from(interval)
                .ok()
                .and_then(|step| last.0.checked_add(step).ok())
                .is_some_and(|next| next <= now.0),
            None => true,
        }
    }

    /// Resources with a recorded check time.
    pub fn tracked(&self) -> usize {
        self.last_checked.len()
    }
}

/// The Secrets the remembered resolutions read credentials from.
fn referenced_secrets(resolutions: &[(String, Arc<Resolved>)]) -> BTreeSet<SecretKey> {
    resolutions
        .iter()
        .filter_map(|(_, r)| Some((&r.validated.namespace, r.validated.health.auth.as_ref()?)))
        .flat_map(|(namespace, auth)| {
            referenced(auth)
                .into_iter()
                .map(|s| (namespace.clone(), s.name.clone()))
        })
        .collect()
}

/// How long a check waits for the first list of a newly watched Secret before reading it
/// once itself.
const SECRET_PATIENCE: Duration = Duration::from_secs(5);

/// Secret `namespace/name`: from its watch when Secrets are watched, else read.
async fn secret(ctx: &Context, namespace: &str, name: &str) -> Result<KubeSecret, Error> {
    let action = || format!("read Secret {namespace}/{name}");
    let watched = match ctx.secret_watches() {
        Some(watches) => watches.get(namespace, name, SECRET_PATIENCE).await,
        None => None,
    };
    match watched {
        Some(Some(secret)) => Ok(secret),
        Some(None) => Err(Error::kube(
            action(),
            kube::Error::Api(
                kube::core::Status::failure(&format!("secrets \"{name}\" not found"), "NotFound")
                    .with_code(404)
                    .boxed(),
            ),
        )),
        None => Api::<KubeSecret>::namespaced(ctx.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| Error::kube(action(), e)),
    }
}

async fn secret_value(
    ctx: &Context,
    namespace: &str,
    selector: &SecretKeySelector,
) -> Result<String, Error> {
    let secret = secret(ctx, namespace, &selector.name).await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&selector.key))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// The credentials `auth` names, from Secrets in `namespace` (as their watches hold them when
/// Secrets are watched; see [`super::secrets`]).
async fn credentials(
    ctx: &Context,
    namespace: &str,
    auth: &PrometheusAuth,
) -> Result<Credentials, Error> {
    let bearer_token = match &auth.bearer_token {
        Some(s) => Some(Secret::new(secret_value(ctx, namespace, s).await?)),
        None => None,
    };
    let basic_auth = match &auth.basic_auth {
        Some(basic) => Some(BasicCredentials {
            username: secret_value(ctx, namespace, &basic.username).await?,
            password: Secret::new(secret_value(ctx, namespace, &basic.password).await?),
        }),
        None => None,
    };
    let ca_pem = match &auth.ca {
        Some(s) => Some(secret_value(ctx, namespace, s).await?.into_bytes()),
        None => None,
    };
    let client_cert = match (&auth.cert, &auth.key) {
        (Some(cert), Some(key)) => Some(ClientCertificate {
            cert_pem: secret_value(ctx, namespace, cert).await?,
            key_pem: Secret::new(secret_value(ctx, namespace, key).await?),
        }),
        _ => None,
    };
    let mut headers = Vec::with_capacity(auth.headers.len());
    for header in &auth.headers {
        let value = match (&header.value, &header.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(secret)) => secret_value(ctx, namespace, secret).await?,
            (None, None) => String::new(),
        };
        headers.push((header.name.clone(), Secret::new(value)));
    }
    Ok(Credentials {
        bearer_token,
        basic_auth,
        ca_pem,
        client_cert,
        headers,
    })
}

/// The operator's own credentials when `url` is its `--prometheus-url`; none for any other
/// URL, so they never reach an address a resource chose.
fn default_credentials(config: &super::Config, url: &str) -> Credentials {
    match &config.default_prometheus_url {
        Some(own) if normalize_url(own) == normalize_url(url) => config.default_credentials.clone(),
        _ => Credentials::default(),
    }
}

/// Every `tick`: forgets resources that are gone ([`HealthLoop::sweep`] with the keys
/// `existing` returns), then runs [`HealthLoop::cycle`]; until the task is dropped.
pub async fn run(
    ctx: Arc<Context>,
    factory: BackendFactory,
    tick: Duration,
    existing: impl Fn() -> HashSet<String> + Send,
) {
    let mut health = HealthLoop::new(factory.clone());
    loop {
        tokio::time::sleep(tick).await;
        health.sweep(&ctx, &existing());
        // A panic while checking one cycle ends that cycle, not the loop.
        if AssertUnwindSafe(health.cycle(&ctx))
            .catch_unwind()
            .await
            .is_err()
        {
            error!("a health-check cycle panicked; the next cycle starts afresh");
            health = HealthLoop::new(factory.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_credentials_go_only_to_its_own_url() {
        let config = super::super::Config {
            default_prometheus_url: Some("http://mimir.monitoring:8080/prometheus/".into()),
            default_credentials: Credentials {
                headers: vec![("X-Scope-OrgID".into(), Secret::new("platform"))],
                ..Credentials::default()
            },
            ..super::super::Config::default()
        };
        assert_eq!(
            default_credentials(&config, "http://mimir.monitoring:8080/prometheus"),
            config.default_credentials
        );
        assert_eq!(
            default_credentials(&config, "http://other.team-a:9090"),
            Credentials::default()
        );
        let without_url = super::super::Config {
            default_prometheus_url: None,
            ..config.clone()
        };
        assert_eq!(
            default_credentials(&without_url, "http://mimir.monitoring:8080/prometheus"),
            Credentials::default()
        );
    }
}
