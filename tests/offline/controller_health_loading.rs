//! The health loop reads pod start times and readiness from the pod cache: a target that is
//! down because its pod is still loading its model is `Loading`, not `TargetsDown`; once the
//! pod is Ready and past the grace period, the same down target is `TargetsDown`.

use infmon_devkit::mock_api;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use infmon::api::{ConditionReason, InferenceMonitoring};
use infmon::controller::cache::{Caches, pod_store_of};
use infmon::controller::dereference::{Dereferenced, resolve_once};
use infmon::controller::health_loop::HealthLoop;
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context};
use infmon::discovery::Discovered;
use infmon::health::{BackendError, MetricsBackend, Sample, Target};
use infmon::render::ChildKind;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

/// The check's clock: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

/// A Prometheus without a targets API whose only target of `ai/llm`, pod `ai/vllm-0`, is down.
struct OneDown;

impl MetricsBackend for OneDown {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, BackendError>> {
        let up = promql.starts_with("up");
        Box::pin(async move {
            Ok(if up {
                vec![Sample {
                    labels: BTreeMap::from(
                        [
                            ("__name__", "up"),
                            ("inference_monitoring", "ai/llm"),
                            ("inference_engine", "vllm"),
                            ("instance", "10.0.0.7:8000"),
                            ("namespace", "ai"),
                            ("pod", "vllm-0"),
                        ]
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                    ),
                    value: 0.0,
                }]
            } else {
                Vec::new()
            })
        })
    }

    fn targets(&self) -> BoxFuture<'_, Result<Option<Vec<Target>>, BackendError>> {
        Box::pin(async { Ok(None) })
    }
}

fn pod(started_seconds_ago: i64, ready: bool) -> Pod {
    let started = Timestamp::from_second(NOW - started_seconds_ago).unwrap();
    serde_json::from_value(json!({
        "metadata": {"name": "vllm-0", "namespace": "ai", "labels": {"app": "vllm"}},
        "status": {
            "startTime": started.to_string(),
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    }))
    .unwrap()
}

/// The reason the loop records for `ai/llm` with `pod` in the cache.
async fn reason_with(pod: Pod) -> ConditionReason {
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(mock_api::serve(handle, Vec::new()));
    let caches = Caches::new();
    caches.set_pods(vec![pod_store_of([pod])]);
    let ctx = Context::new(
        client,
        Config::default(),
        Arc::new(RwLock::new(Discovered {
            served: ChildKind::ALL.into_iter().collect(),
            ..Discovered::default()
        })),
        Arc::new(Metrics::default()),
        Arc::new(|| Time(Timestamp::from_second(NOW).unwrap())),
    )
    .with_caches(Arc::new(caches));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    ctx.set_trigger(tx);
    // A raw scrape config: checked without a `Prometheus` object that selects a monitor.
    let resource: InferenceMonitoring = serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": "llm", "namespace": "ai", "uid": "uid-1", "generation": 1},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}},
                 "prometheus": {"url": "http://prometheus.test:9090",
                                "output": "rawScrapeConfig"}},
    }))
    .unwrap();
    let found = Dereferenced {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: Vec::new(),
        namespace_labels: BTreeMap::new(),
        detected: None,
        existing_dcgm_exporter: false,
        other_consumers: Vec::new(),
    };
    ctx.remember(
        "ai/llm",
        resolve_once(&resource, &found, &Config::default()).unwrap(),
    );
    let mut health = HealthLoop::new(Arc::new(|_, _| {
        Ok(Arc::new(OneDown) as Arc<dyn MetricsBackend>)
    }));
    assert_eq!(health.cycle(&ctx).await, 1);
    server.await.unwrap();
    ctx.verdict("ai/llm").unwrap().diagnosis.reason
}

#[tokio::test]
async fn a_down_target_of_a_loading_pod_is_loading_and_of_a_settled_pod_targets_down() {
    // Started five minutes ago, Ready: within the 15-minute grace period.
    assert_eq!(reason_with(pod(300, true)).await, ConditionReason::Loading);
    // Started an hour ago but not Ready (its model still loads).
    assert_eq!(
        reason_with(pod(3600, false)).await,
        ConditionReason::Loading
    );
    // Ready for an hour: really down.
    assert_eq!(
        reason_with(pod(3600, true)).await,
        ConditionReason::TargetsDown
    );
}
