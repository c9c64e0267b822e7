//! The periodic health check: asks each resource's Prometheus (through
//! [`crate::health`]) whether its targets are scraped and export the engine's core metric,
//! and writes `TargetsHealthy`, `status.targets` and `Ready`. The status is patched only when
//! something besides the check time changed, so a healthy resource stays quiet.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Secret as KubeSecret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::{error, warn};

use super::Error;
use super::apply::FIELD_MANAGER;
use super::context::Context;
use super::metrics::ResourceLabels;
use super::status::summarize;
use crate::api::{
    ConditionReason, ConditionType, Conditions, Engine, InferenceMonitoring, PrometheusAuth,
};
use crate::health::{
    BackendError, BasicCredentials, ClientCertificate, Credentials, DEFAULT_TIMEOUT, HealthTarget,
    MetricsBackend, PrometheusBackend, Secret, check_all,
};
use crate::render::ChildKind;
use crate::validate::{ClusterFacts, Validated, normalize_url, resolve};

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

struct Due {
    resource: Arc<InferenceMonitoring>,
    validated: Validated,
}

impl HealthLoop {
    /// A loop using `factory` for its backends.
    pub fn new(factory: BackendFactory) -> Self {
        Self {
            factory,
            last_checked: HashMap::new(),
        }
    }

    /// One cycle over `resources`: those due are grouped by query API and credentials, each
    /// group is checked with one fixed set of requests, and changed statuses are patched.
    /// Returns how many statuses were written; a failure (reading credentials, writing one
    /// status) is logged and skips only what it concerns.
    pub async fn cycle(&mut self, ctx: &Context, resources: &[Arc<InferenceMonitoring>]) -> usize {
        let now = (ctx.clock)();
        let facts = ctx.facts();
        let mut groups: BTreeMap<(String, String), Vec<Due>> = BTreeMap::new();
        for resource in resources {
            let Some(due) = self.due(ctx, resource, &facts, &now) else {
                continue;
            };
            let url = due.validated.health.url.clone().unwrap_or_default();
            let auth = match &due.validated.health.auth {
                Some(auth) => format!(
                    "{}/{}",
                    due.validated.namespace,
                    serde_json::to_string(auth).unwrap_or_default()
                ),
                None => String::new(),
            };
            groups.entry((url, auth)).or_default().push(due);
        }
        let mut written = 0;
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
            let targets: Vec<HealthTarget> = group
                .iter()
                .map(|d| HealthTarget::from_validated(&d.validated, None))
                .collect();
            let reports = match (self.factory)(&url, &credentials) {
                Ok(backend) => check_all(backend.as_ref(), &targets, now.clone()).await,
                Err(err) => {
                    warn!(url = %url, error = %err, "cannot build the health-check client");
                    continue;
                }
            };
            for (due, report) in group.iter().zip(reports) {
                let key = due.validated.key();
                self.last_checked.insert(key.clone(), now.clone());
                ctx.metrics
                    .targets_up
                    .get_or_create(&ResourceLabels {
                        namespace: due.validated.namespace.clone(),
                        name: due.validated.name.clone(),
                    })
                    .set(i64::from(report.observation.up));
                let current = due.resource.status.clone().unwrap_or_default();
                let mut status = current.clone();
                let generation = due.resource.metadata.generation;
                report.apply_condition(&mut status.conditions, generation);
                status.targets = Some(report.targets_status());
                summarize(&mut status, generation, &now);
                let mut comparable = status.clone();
                if let (Some(new), Some(old)) =
                    (comparable.targets.as_mut(), current.targets.as_ref())
                {
                    new.last_checked = old.last_checked.clone();
                }
                if comparable == current {
                    continue;
                }
                let api: Api<InferenceMonitoring> =
                    Api::namespaced(ctx.client.clone(), &due.validated.namespace);
                let body = json!({
                    "apiVersion": InferenceMonitoring::api_version(&()),
                    "kind": InferenceMonitoring::kind(&()),
                    "status": status,
                });
                match api
                    .patch_status(
                        &due.validated.name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&body),
                    )
                    .await
                {
                    Ok(_) => written += 1,
                    Err(err) => {
                        warn!(resource = %key, error = %err, "cannot write the health status")
                    }
                }
            }
        }
        written
    }

    /// The resource resolved, when its check is due: it was applied, the controller did not
    /// already explain why it cannot be healthy (not selected, no URL), and its interval passed.
    fn due(
        &self,
        ctx: &Context,
        resource: &Arc<InferenceMonitoring>,
        facts: &crate::discovery::Discovered,
        now: &Time,
    ) -> Option<Due> {
        if resource.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let status = resource.status.as_ref()?;
        let applied = status
            .conditions
            .condition(ConditionType::ResourcesApplied)?;
        if applied.status != "True" {
            return None;
        }
        let owned_by_reconcile = status
            .conditions
            .condition(ConditionType::TargetsHealthy)
            .is_some_and(|c| {
                c.reason == ConditionReason::NotSelected.as_str()
                    || c.reason == ConditionReason::HealthCheckDisabled.as_str()
            });
        if owned_by_reconcile {
            return None;
        }
        // Not due before the operator's interval, whatever the resource's: skip resolving.
        let key = format!(
            "{}/{}",
            resource.metadata.namespace.as_deref().unwrap_or("default"),
            resource.metadata.name.as_deref().unwrap_or_default()
        );
        if let Some(last) = self.last_checked.get(&key) {
            let earliest = SignedDuration::try_from(ctx.config.health_interval)
                .ok()
                .and_then(|step| last.0.checked_add(step).ok());
            if earliest.is_none_or(|earliest| earliest > now.0) {
                return None;
            }
        }
        let facts = ClusterFacts {
            prometheus_operator: facts.serves(ChildKind::PodMonitor),
            scrape_config_api: facts.serves(ChildKind::ScrapeConfig),
            grafana_operator: facts.serves(ChildKind::GrafanaDashboard),
            detected_engine: status
                .detected_engine
                .as_deref()
                .and_then(|e| e.parse::<Engine>().ok()),
            existing_dcgm_exporter: facts.existing_dcgm_exporter.is_some(),
            required_monitor_labels: BTreeMap::new(),
            default_prometheus_url: ctx.config.default_prometheus_url.clone(),
            policy: ctx.config.policy.clone(),
        };
        let validated = resolve(resource, &facts).ok()?;
        validated.health.url.as_ref()?;
        let interval = validated.health.interval.max(ctx.config.health_interval);
        if let Some(last) = self.last_checked.get(&validated.key()) {
            // Checked: an interval past the clock's range means "not yet", never a panic.
            let next = SignedDuration::try_from(interval)
                .ok()
                .and_then(|step| last.0.checked_add(step).ok());
            if next.is_none_or(|next| next > now.0) {
                return None;
            }
        }
        Some(Due {
            resource: resource.clone(),
            validated,
        })
    }
}

async fn secret_value(
    ctx: &Context,
    namespace: &str,
    selector: &SecretKeySelector,
) -> Result<String, Error> {
    let api: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api
        .get(&selector.name)
        .await
        .map_err(|e| Error::kube(format!("read Secret {namespace}/{}", selector.name), e))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&selector.key))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// The credentials `auth` names, read from Secrets in `namespace`.
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

/// Runs [`HealthLoop::cycle`] every `tick` over the resources `list` returns, until the
/// task is dropped.
pub async fn run(
    ctx: Arc<Context>,
    factory: BackendFactory,
    tick: Duration,
    list: impl Fn() -> Vec<Arc<InferenceMonitoring>> + Send,
) {
    let mut health = HealthLoop::new(factory.clone());
    loop {
        tokio::time::sleep(tick).await;
        let resources = list();
        // A panic while checking one cycle ends that cycle, not the loop.
        if AssertUnwindSafe(health.cycle(&ctx, &resources))
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
