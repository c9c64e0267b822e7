//! The periodic health check with an in-memory metrics backend and a scripted API server:
//! a healthy resource gets `TargetsHealthy` and `Ready` once, then stays quiet.

use infmon_devkit::mock_api;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use infmon::api::{Engine, InferenceMonitoring};
use infmon::controller::apply::FIELD_MANAGER;
use infmon::controller::health_loop::{BackendFactory, HealthLoop};
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context};
use infmon::discovery::Discovered;
use infmon::engines::profile;
use infmon::health::{BackendError, Credentials, MetricsBackend, Sample, Secret, Target};
use infmon::render::ChildKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use mock_api::{Exchange, Expect, serve};
use serde_json::{Value, json};

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

fn resource(status: Value) -> InferenceMonitoring {
    serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": "llm", "namespace": "ai", "uid": "uid-1", "generation": 1},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}},
                 "prometheus": {"url": "http://prometheus.test:9090"}},
        "status": status,
    }))
    .unwrap()
}

pub(crate) fn condition(type_: &str, status: &str, reason: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": "m",
           "observedGeneration": 1, "lastTransitionTime": "2023-11-14T22:00:00Z"})
}

pub(crate) fn applied_status() -> Value {
    json!({
        "observedGeneration": 1,
        "detectedEngine": "vllm",
        "conditions": [
            condition("DashboardsReady", "True", "Applied"),
            condition("GpuExporterReady", "True", "Disabled"),
            condition("Ready", "Unknown", "Progressing"),
            condition("ResourcesApplied", "True", "Applied"),
            condition("TargetsHealthy", "Unknown", "Progressing"),
        ],
    })
}

fn context(client: kube::Client) -> Context {
    Context::new(
        client,
        Config::default(),
        Arc::new(RwLock::new(Discovered {
            served: ChildKind::ALL.into_iter().collect(),
            ..Discovered::default()
        })),
        Arc::new(Metrics::default()),
        Arc::new(|| Time(Timestamp::from_second(1_700_000_000).unwrap())),
    )
}

fn factory(backend: Arc<Healthy>, urls: Arc<Mutex<Vec<String>>>) -> BackendFactory {
    Arc::new(move |url, _credentials| {
        urls.lock().unwrap().push(url.to_string());
        Ok(backend.clone() as Arc<dyn MetricsBackend>)
    })
}

#[tokio::test]
async fn a_healthy_resource_is_marked_ready_once_and_then_left_alone() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let urls = Arc::new(Mutex::new(Vec::new()));
    let (client, handle) = mock_api::client();
    let ctx = context(client);
    let captured = Arc::new(Mutex::new(Value::Null));
    let keep = captured.clone();
    let script = vec![
        Exchange::new(
            "PATCH",
            format!("/apis/monitoring.inference.dev/v1alpha1/namespaces/ai/inferencemonitorings/llm/status?&force=true&fieldManager={FIELD_MANAGER}"),
            serde_json::to_value(resource(applied_status())).unwrap(),
        )
        .expecting(Expect::Check(Box::new(move |body| {
            let status = &body["status"];
            let find = |t: &str| {
                status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone()
            };
            assert_eq!(find("TargetsHealthy")["status"], "True");
            assert_eq!(find("TargetsHealthy")["reason"], "Healthy");
            assert_eq!(find("Ready")["status"], "True");
            assert_eq!(find("Ready")["reason"], "Healthy");
            assert_eq!(status["targets"]["summary"], "1/1");
            assert_eq!(status["targets"]["up"], 1);
            *keep.lock().unwrap() = status.clone();
        }))),
    ];
    let server = tokio::spawn(serve(handle, script));
    let mut health = HealthLoop::new(factory(backend.clone(), urls.clone()));
    let first = Arc::new(resource(applied_status()));
    assert_eq!(health.cycle(&ctx, std::slice::from_ref(&first)).await, 1);
    // Not due again within the interval: no query, no write.
    assert_eq!(health.cycle(&ctx, &[first]).await, 0);
    server.await.unwrap();
    assert_eq!(*urls.lock().unwrap(), ["http://prometheus.test:9090"]);
    assert!(
        ctx.metrics
            .encode()
            .contains(r#"infmon_health_targets_up{namespace="ai",name="llm"} 1"#)
    );

    // A fresh loop checks again; the answer is unchanged, so nothing is written.
    let (client, handle) = mock_api::client();
    let ctx = context(client);
    let server = tokio::spawn(serve(handle, Vec::new()));
    let settled = Arc::new(resource(captured.lock().unwrap().clone()));
    let mut health = HealthLoop::new(factory(backend.clone(), urls.clone()));
    assert_eq!(health.cycle(&ctx, &[settled]).await, 0);
    server.await.unwrap();
    assert_eq!(urls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn resources_not_applied_or_not_selected_are_not_checked() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let urls = Arc::new(Mutex::new(Vec::new()));
    let (client, handle) = mock_api::client();
    let ctx = context(client);
    let server = tokio::spawn(serve(handle, Vec::new()));
    let mut not_selected = applied_status();
    not_selected["conditions"][4] = condition("TargetsHealthy", "False", "NotSelected");
    let mut not_applied = applied_status();
    not_applied["conditions"][3] = condition("ResourcesApplied", "False", "Forbidden");
    let resources = [
        Arc::new(resource(not_selected)),
        Arc::new(resource(not_applied)),
    ];
    let mut health = HealthLoop::new(factory(backend.clone(), urls.clone()));
    assert_eq!(health.cycle(&ctx, &resources).await, 0);
    server.await.unwrap();
    assert!(urls.lock().unwrap().is_empty());
    assert!(backend.queries.lock().unwrap().is_empty());
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

fn resource_with_prometheus(prometheus: Value) -> InferenceMonitoring {
    let mut value = serde_json::to_value(resource(applied_status())).unwrap();
    value["spec"]["prometheus"] = prometheus;
    serde_json::from_value(value).unwrap()
}

fn status_patch_without(secret: &'static str) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("/apis/monitoring.inference.dev/v1alpha1/namespaces/ai/inferencemonitorings/llm/status?&force=true&fieldManager={FIELD_MANAGER}"),
        serde_json::to_value(resource(applied_status())).unwrap(),
    )
    .expecting(Expect::Check(Box::new(move |body| {
        assert!(!body.to_string().contains(secret), "{body}");
        assert_eq!(body["status"]["conditions"][0]["type"], "DashboardsReady");
    })))
}

#[tokio::test]
async fn query_headers_come_from_the_spec_and_secrets_in_the_resources_namespace() {
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let seen = SeenCredentials::default();
    let (client, handle) = mock_api::client();
    let ctx = context(client);
    let script = vec![
        Exchange::new(
            "GET",
            "/api/v1/namespaces/ai/secrets/mimir",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "mimir", "namespace": "ai"},
                   "data": {"api-key": "ay0xMjMK"}}), // "k-123\n"
        ),
        status_patch_without("k-123"),
    ];
    let server = tokio::spawn(serve(handle, script));
    let resource = Arc::new(resource_with_prometheus(json!({
        "url": "http://mimir.test/prometheus",
        "auth": {"headers": [
            {"name": "X-Scope-OrgID", "value": "team-a"},
            {"name": "X-Api-Key", "valueFrom": {"name": "mimir", "key": "api-key"}},
        ]},
    })));
    let mut health = HealthLoop::new(recording_factory(backend, seen.clone()));
    assert_eq!(health.cycle(&ctx, &[resource]).await, 1);
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
    let mut ctx = context(client);
    ctx.config.default_prometheus_url = Some("http://mimir.test/prometheus".into());
    ctx.config.default_credentials = own.clone();
    let server = tokio::spawn(serve(
        handle,
        vec![
            status_patch_without("platform"),
            status_patch_without("platform"),
        ],
    ));
    // No URL in the spec: the operator's URL, with its credentials.
    let by_default = Arc::new(resource_with_prometheus(json!({})));
    // A URL of its own (allowed by the default policy): no operator credentials.
    let elsewhere = Arc::new(resource_with_prometheus(
        json!({"url": "http://other.test:9090"}),
    ));
    let mut health = HealthLoop::new(recording_factory(backend.clone(), seen.clone()));
    assert_eq!(health.cycle(&ctx, &[by_default]).await, 1);
    let mut health = HealthLoop::new(recording_factory(backend, seen.clone()));
    assert_eq!(health.cycle(&ctx, &[elsewhere]).await, 1);
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
