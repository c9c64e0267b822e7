//! The periodic health check with an in-memory metrics backend and a scripted API server
//! that expects no request: the loop checks what the reconcile remembered, records its
//! verdict once and asks for a reconcile (the only status writer), then stays quiet; deleted
//! resources are forgotten.

use infmon_devkit::mock_api;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use infmon::api::{Engine, InferenceMonitoring};
use infmon::controller::dereference::{Dereferenced, Resolved, resolve_once};
use infmon::controller::health_loop::{BackendFactory, HealthLoop};
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context};
use infmon::discovery::{Discovered, Selection};
use infmon::engines::profile;
use infmon::health::{BackendError, Credentials, MetricsBackend, Sample, Secret, Target};
use infmon::render::ChildKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use mock_api::serve;
use serde_json::json;
use tokio::sync::mpsc;

/// Answers like a Prometheus that scrapes one healthy vLLM pod of `ai/llm`.
pub(crate) struct Healthy {
    pub(crate) queries: Mutex<Vec<String>>,
}

impl MetricsBackend for Healthy {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, BackendError>> {
        self.queries.lock().unwrap().push(promql.to_string());
        let core = profile(Engine::Vllm)
            .unwrap()
            .core_metric
            .unwrap()
            .to_string();
        let mut labels = BTreeMap::from([
            ("inference_monitoring".to_string(), "ai/llm".to_string()),
            ("inference_engine".to_string(), "vllm".to_string()),
            ("instance".to_string(), "10.0.0.7:8000".to_string()),
        ]);
        if promql.starts_with("count by") {
            labels.insert("__name__".into(), core);
        }
        Box::pin(async move { Ok(vec![Sample { labels, value: 1.0 }]) })
    }

    fn targets(&self) -> BoxFuture<'_, Result<Option<Vec<Target>>, BackendError>> {
        Box::pin(async { Ok(None) })
    }
}

fn resource(status: serde_json::Value) -> InferenceMonitoring {
    serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": "llm", "namespace": "ai", "uid": "uid-1", "generation": 1},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}},
                 "prometheus": {"url": "http://prometheus.test:9090"}},
        "status": status,
    }))
    .unwrap()
}

fn context(client: kube::Client) -> (Context, mpsc::UnboundedReceiver<(String, String)>) {
    let ctx = Context::new(
        client,
        Config::default(),
        Arc::new(RwLock::new(Discovered {
            served: ChildKind::ALL.into_iter().collect(),
            ..Discovered::default()
        })),
        Arc::new(Metrics::default()),
        Arc::new(|| Time(Timestamp::from_second(1_700_000_000).unwrap())),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    ctx.set_trigger(tx);
    (ctx, rx)
}

/// A cluster serving every kind, with nothing else found.
fn found() -> Dereferenced {
    Dereferenced {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: Vec::new(),
        namespace_labels: BTreeMap::new(),
        detected: None,
        existing_dcgm_exporter: false,
        other_consumers: Vec::new(),
    }
}

/// What a reconcile remembers about `resource` in a cluster whose Prometheus selects it
/// (or, with `problem`, does not).
fn resolved(resource: &InferenceMonitoring, problem: Option<&str>) -> Resolved {
    let mut resolved = resolve_once(resource, &found(), &Config::default()).unwrap();
    resolved.selection = Some(Selection {
        required_labels: BTreeMap::new(),
        selected_by: vec!["monitoring/kps".into()],
        problem: problem.map(String::from),
        note: None,
    });
    resolved
}

fn factory(backend: Arc<Healthy>, urls: Arc<Mutex<Vec<String>>>) -> BackendFactory {
    Arc::new(move |url, _credentials| {
        urls.lock().unwrap().push(url.to_string());
        Ok(backend.clone() as Arc<dyn MetricsBackend>)
    })
}

#[tokio::test]
async fn a_verdict_is_recorded_once_and_hands_the_status_to_the_reconcile() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let urls = Arc::new(Mutex::new(Vec::new()));
    let (client, handle) = mock_api::client();
    // The health loop never writes to the API server.
    let server = tokio::spawn(serve(handle, Vec::new()));
    let (ctx, mut requests) = context(client);
    let llm = resource(json!({}));
    ctx.remember("ai/llm", resolved(&llm, None));
    let mut health = HealthLoop::new(factory(backend.clone(), urls.clone()));
    assert_eq!(health.cycle(&ctx).await, 1);
    assert_eq!(requests.try_recv().unwrap(), ("ai".into(), "llm".into()));
    let verdict = ctx.verdict("ai/llm").unwrap();
    assert!(verdict.is_healthy(), "{verdict:?}");
    assert_eq!(verdict.observation.up, 1);
    // Not due again within the interval: no query, no reconcile.
    assert_eq!(health.cycle(&ctx).await, 0);
    assert!(requests.try_recv().is_err());
    server.await.unwrap();
    assert_eq!(*urls.lock().unwrap(), ["http://prometheus.test:9090"]);
    assert!(
        ctx.metrics
            .encode()
            .contains(r#"infmon_health_targets_up{namespace="ai",name="llm"} 1"#)
    );
}

#[tokio::test]
async fn resources_not_selected_or_without_a_url_are_not_checked() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let urls = Arc::new(Mutex::new(Vec::new()));
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, Vec::new()));
    let (ctx, _requests) = context(client);
    let llm = resource(json!({}));
    ctx.remember(
        "ai/llm",
        resolved(&llm, Some("no Prometheus picks up the PodMonitors")),
    );
    let mut no_url = resource(json!({}));
    no_url.metadata.name = Some("other".into());
    no_url.spec.prometheus.url = None;
    ctx.remember("ai/other", resolved(&no_url, None));
    let mut health = HealthLoop::new(factory(backend.clone(), urls.clone()));
    assert_eq!(health.cycle(&ctx).await, 0);
    server.await.unwrap();
    assert!(urls.lock().unwrap().is_empty());
    assert!(backend.queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_resource_is_forgotten_with_its_metrics_series() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let urls = Arc::new(Mutex::new(Vec::new()));
    let (client, _handle) = mock_api::client();
    let (ctx, _requests) = context(client);
    let llm = resource(json!({}));
    ctx.remember("ai/llm", resolved(&llm, None));
    let mut health = HealthLoop::new(factory(backend, urls));
    assert_eq!(health.cycle(&ctx).await, 1);
    assert!(ctx.metrics.encode().contains("infmon_health_targets_up{"));
    assert_eq!(health.tracked(), 1);

    health.sweep(&ctx, &HashSet::from(["ai/llm".to_string()]));
    assert_eq!(ctx.remembered_keys(), ["ai/llm"]);
    health.sweep(&ctx, &HashSet::new());
    assert!(ctx.remembered_keys().is_empty());
    assert_eq!(health.tracked(), 0);
    assert!(ctx.verdict("ai/llm").is_none());
    let metrics = ctx.metrics.encode();
    assert!(!metrics.contains("infmon_health_targets_up{"), "{metrics}");
}

/// Credentials each backend was built with.
type SeenCredentials = Arc<Mutex<Vec<(String, Credentials)>>>;

fn recording_factory(backend: Arc<Healthy>, seen: SeenCredentials) -> BackendFactory {
    Arc::new(move |url, credentials| {
        seen.lock()
            .unwrap()
            .push((url.to_string(), credentials.clone()));
        Ok(backend.clone() as Arc<dyn MetricsBackend>)
    })
}

fn resource_with_prometheus(prometheus: serde_json::Value) -> InferenceMonitoring {
    let mut value = serde_json::to_value(resource(json!({}))).unwrap();
    value["spec"]["prometheus"] = prometheus;
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn query_headers_come_from_the_spec_and_secrets_in_the_resources_namespace() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let seen = SeenCredentials::default();
    let (client, handle) = mock_api::client();
    let (ctx, _requests) = context(client);
    let script = vec![mock_api::Exchange::new(
        "GET",
        "/api/v1/namespaces/ai/secrets/mimir",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "mimir", "namespace": "ai"},
               "data": {"api-key": "ay0xMjMK"}}), // "k-123\n"
    )];
    let server = tokio::spawn(serve(handle, script));
    let llm = resource_with_prometheus(json!({
        "url": "http://mimir.test/prometheus",
        "auth": {"headers": [
            {"name": "X-Scope-OrgID", "value": "team-a"},
            {"name": "X-Api-Key", "valueFrom": {"name": "mimir", "key": "api-key"}},
        ]},
    }));
    ctx.remember("ai/llm", resolved(&llm, None));
    let mut health = HealthLoop::new(recording_factory(backend, seen.clone()));
    assert_eq!(health.cycle(&ctx).await, 1);
    server.await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "http://mimir.test/prometheus");
    assert_eq!(
        seen[0].1.headers,
        [
            ("X-Scope-OrgID".to_string(), Secret::new("team-a")),
            ("X-Api-Key".to_string(), Secret::new("k-123")),
        ]
    );
}

#[tokio::test]
async fn the_operators_own_credentials_go_to_its_own_url_only() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let seen = SeenCredentials::default();
    let own = Credentials {
        headers: vec![("X-Scope-OrgID".into(), Secret::new("platform"))],
        ..Credentials::default()
    };
    let (client, handle) = mock_api::client();
    let (mut ctx, _requests) = context(client);
    ctx.config.default_prometheus_url = Some("http://mimir.test/prometheus".into());
    ctx.config.default_credentials = own.clone();
    let server = tokio::spawn(serve(handle, Vec::new()));
    // No URL in the spec: the operator's URL, with its credentials.
    let mut by_default = resource_with_prometheus(json!({}));
    by_default.metadata.name = Some("by-default".into());
    // A URL of its own (allowed by the default policy): no operator credentials.
    let elsewhere = resource_with_prometheus(json!({"url": "http://other.test:9090"}));
    let resolve_with = |r: &InferenceMonitoring| {
        let mut resolved = resolve_once(r, &found(), &ctx.config).unwrap();
        resolved.selection = None;
        resolved
    };
    ctx.remember("ai/by-default", resolve_with(&by_default));
    let mut health = HealthLoop::new(recording_factory(backend.clone(), seen.clone()));
    assert_eq!(health.cycle(&ctx).await, 1);
    ctx.forget("ai/by-default");
    ctx.remember("ai/llm", resolve_with(&elsewhere));
    let mut health = HealthLoop::new(recording_factory(backend, seen.clone()));
    assert_eq!(health.cycle(&ctx).await, 1);
    server.await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        [
            ("http://mimir.test/prometheus".to_string(), own),
            ("http://other.test:9090".to_string(), Credentials::default()),
        ]
    );
}
