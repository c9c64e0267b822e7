//! Whole reconciles of one InferenceMonitoring against a scripted API server, with the
//! operator's caches filled by the test. The children's requests are derived from
//! `render::render_all` at test time, so these scenarios hold whatever the builders produce;
//! the fixed requests (finalizer, status, Events) are asserted exactly, and a reconcile that
//! finds everything as desired sends nothing.

use infmon_devkit::mock_api;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use infmon::api::{InferenceMonitoring, InferenceMonitoringStatus};
use infmon::controller::apply::{FIELD_MANAGER, Owner, prepare};
use infmon::controller::cache::{Caches, child_store_of, pod_store_of};
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context, FINALIZER, error_policy, reconcile};
use infmon::discovery::{Discovered, PrometheusSelectors};
use infmon::render::{Child, ChildKind, object_meta, render_all};
use infmon::validate::{ClusterFacts, Output, resolve};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::DynamicObject;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use mock_api::{Exchange, Expect, serve};
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;
const IM_PATH: &str =
    "/apis/monitoring.inference.dev/v1alpha1/namespaces/ai/inferencemonitorings/llm";

fn resource(spec: Value, finalized: bool) -> InferenceMonitoring {
    let mut metadata = json!({"name": "llm", "namespace": "ai", "uid": "uid-1", "generation": 1, "resourceVersion": "5"});
    if finalized {
        metadata["finalizers"] = json!([FINALIZER]);
    }
    serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1",
        "kind": "InferenceMonitoring",
        "metadata": metadata,
        "spec": spec,
    }))
    .unwrap()
}

/// What the API server answers to a patch of the resource.
fn stored() -> Value {
    serde_json::to_value(resource(vllm_spec(), true)).unwrap()
}

fn vllm_spec() -> Value {
    json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}})
}

fn kube_prometheus_stack() -> PrometheusSelectors {
    PrometheusSelectors::from_object(&json!({
        "metadata": {"namespace": "monitoring", "name": "kps"},
        "spec": {
            "podMonitorSelector": {"matchLabels": {"release": "kps"}},
            "podMonitorNamespaceSelector": {},
            "ruleSelector": {"matchLabels": {"release": "kps"}},
            "ruleNamespaceSelector": {},
        },
    }))
    .unwrap()
}

fn full_cluster() -> Discovered {
    Discovered {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: vec![kube_prometheus_stack()],
        existing_dcgm_exporter: None,
        other_consumers: Vec::new(),
    }
}

fn core_only_cluster() -> Discovered {
    Discovered {
        served: ChildKind::ALL
            .into_iter()
            .filter(|k| !k.is_optional_api())
            .collect(),
        prometheuses: Vec::new(),
        existing_dcgm_exporter: None,
        other_consumers: Vec::new(),
    }
}

struct Harness {
    ctx: Arc<Context>,
    handle: Option<
        tower_test::mock::Handle<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >,
    >,
}

impl Harness {
    fn new(discovered: Discovered) -> Self {
        Self::with(discovered, &BTreeMap::new(), Vec::new())
    }

    /// A context whose caches hold `live` children and `pods` (every served kind watched).
    fn with(
        discovered: Discovered,
        live: &BTreeMap<ChildKind, Vec<Value>>,
        pods: Vec<Value>,
    ) -> Self {
        let caches = Caches::new();
        for kind in &discovered.served {
            let objects = live
                .get(kind)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|o| serde_json::from_value::<DynamicObject>(o).unwrap());
            caches.set_children(*kind, vec![child_store_of(*kind, objects).0]);
        }
        let pods = pods
            .into_iter()
            .map(|p| serde_json::from_value::<Pod>(p).unwrap());
        caches.set_pods(vec![pod_store_of(pods)]);
        let (client, handle) = mock_api::client();
        let clock: infmon::controller::Clock =
            Arc::new(|| Time(Timestamp::from_second(NOW).unwrap()));
        let ctx = Context::new(
            client,
            Config::default(),
            Arc::new(RwLock::new(discovered)),
            Arc::new(Metrics::default()),
            clock,
        )
        .with_caches(Arc::new(caches));
        Self {
            ctx: Arc::new(ctx),
            handle: Some(handle),
        }
    }

    async fn reconcile(
        &mut self,
        obj: &InferenceMonitoring,
        script: Vec<Exchange>,
    ) -> (
        Result<Action, infmon::controller::Error>,
        Vec<mock_api::Seen>,
    ) {
        let server = tokio::spawn(serve(self.handle.take().unwrap(), script));
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            reconcile(
                Arc::new(DeserializeGuard(Ok(obj.clone()))),
                self.ctx.clone(),
            ),
        )
        .await
        .expect("reconcile finishes");
        (result, server.await.unwrap())
    }
}

fn base(kind: ChildKind) -> String {
    match kind.group() {
        "" => format!("/api/{}", kind.version()),
        group => format!("/apis/{group}/{}", kind.version()),
    }
}

fn object_uri(kind: ChildKind, namespace: &str, name: &str) -> String {
    format!(
        "{}/namespaces/{namespace}/{}/{name}",
        base(kind),
        kind.plural()
    )
}

fn owner(obj: &InferenceMonitoring) -> Owner {
    Owner {
        namespace: "ai".into(),
        name: "llm".into(),
        reference: obj.controller_owner_ref(&()).map(|mut r| {
            r.block_owner_deletion = Some(true);
            r
        }),
    }
}

/// The children `render_all` generates for `obj` in `cluster`.
fn rendered(
    obj: &InferenceMonitoring,
    cluster: &Discovered,
    labels: &[(&str, &str)],
) -> (Output, Vec<Child>) {
    let facts = ClusterFacts {
        prometheus_operator: cluster.serves(ChildKind::PodMonitor),
        scrape_config_api: cluster.serves(ChildKind::ScrapeConfig),
        grafana_operator: cluster.serves(ChildKind::GrafanaDashboard),
        detected_engine: None,
        existing_dcgm_exporter: cluster.existing_dcgm_exporter.is_some(),
        required_monitor_labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        default_prometheus_url: None,
        policy: Default::default(),
        multi_cluster_dashboards: false,
    };
    let validated = resolve(obj, &facts).unwrap();
    (validated.output, render_all(&validated).unwrap())
}

/// A GET answered 404 and an apply of exactly the prepared child, per child.
fn creates(obj: &InferenceMonitoring, children: &[Child]) -> Vec<Exchange> {
    children
        .iter()
        .flat_map(|child| {
            let uri = object_uri(child.kind, &child.namespace, &child.name);
            [
                Exchange::fail("GET", uri.clone(), 404, "NotFound"),
                Exchange::echo(
                    "PATCH",
                    format!("{uri}?&force=true&fieldManager={FIELD_MANAGER}"),
                    Expect::Body(prepare(child, &owner(obj))),
                ),
            ]
        })
        .collect()
}

fn live_children(obj: &InferenceMonitoring, children: &[Child]) -> BTreeMap<ChildKind, Vec<Value>> {
    let mut live: BTreeMap<ChildKind, Vec<Value>> = BTreeMap::new();
    for (i, child) in children.iter().enumerate() {
        let mut object = prepare(child, &owner(obj));
        object["metadata"]["uid"] = json!(format!("child-{i}"));
        live.entry(child.kind).or_default().push(object);
    }
    live
}

type Captured = Arc<Mutex<Option<Value>>>;

fn status_patch(check: impl Fn(&Value) + Send + 'static) -> (Exchange, Captured) {
    let captured: Captured = Arc::default();
    let keep = captured.clone();
    let exchange = Exchange::echo(
        "PATCH",
        format!("{IM_PATH}/status?&force=true&fieldManager={FIELD_MANAGER}"),
        Expect::Check(Box::new(move |body| {
            assert_eq!(body["apiVersion"], "monitoring.inference.dev/v1alpha1");
            assert_eq!(body["kind"], "InferenceMonitoring");
            check(&body["status"]);
            *keep.lock().unwrap() = Some(body["status"].clone());
        })),
    );
    let exchange = Exchange {
        reply: Some(stored()),
        ..exchange
    };
    (exchange, captured)
}

fn event(type_: &'static str, reason: &'static str, note_contains: &'static str) -> Exchange {
    Exchange::echo(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/ai/events?",
        Expect::Check(Box::new(move |body| {
            assert_eq!(body["type"], type_, "{body}");
            assert_eq!(body["reason"], reason, "{body}");
            assert_eq!(body["regarding"]["name"], "llm");
            assert_eq!(body["reportingController"], "infmon");
            let note = body["note"].as_str().unwrap();
            assert!(note.contains(note_contains), "{note}");
        })),
    )
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn assert_condition(status: &Value, type_: &str, state: &str, reason: &str) {
    let c = condition(status, type_);
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some(state), Some(reason)),
        "{type_}: {c}"
    );
    assert_eq!(c["observedGeneration"], 1);
    assert_eq!(c["lastTransitionTime"], "2023-11-14T22:13:20Z");
}

#[tokio::test]
async fn a_new_resource_gets_the_finalizer_first() {
    let obj = resource(vllm_spec(), false);
    let mut h = Harness::new(full_cluster());
    let script = vec![
        Exchange::new("PATCH", format!("{IM_PATH}?"), stored()).expecting(Expect::Body(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]))),
    ];
    let (result, seen) = h.reconcile(&obj, script).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(seen.len(), 1);
}

#[tokio::test]
async fn first_reconcile_applies_every_child_and_the_status_then_the_second_writes_nothing() {
    let cluster = full_cluster();
    let obj = resource(vllm_spec(), true);
    let (_, children) = rendered(&obj, &cluster, &[("release", "kps")]);
    let mut h = Harness::new(cluster.clone());

    let mut script = Vec::new();
    script.extend(creates(&obj, &children));
    let (patch, captured) = status_patch(|status| {
        assert_eq!(status["observedGeneration"], 1);
        assert_eq!(status["detectedEngine"], "vllm");
        assert_eq!(status["selectedBy"], json!(["monitoring/kps"]));
        assert_condition(status, "ResourcesApplied", "True", "Applied");
        assert_condition(status, "GpuExporterReady", "True", "Disabled");
        assert_condition(status, "TargetsHealthy", "Unknown", "HealthCheckDisabled");
        let message = condition(status, "TargetsHealthy")["message"]
            .as_str()
            .unwrap();
        assert!(message.contains("--prometheus-url"), "{message}");
    });
    script.push(patch);
    if !children.is_empty() {
        script.push(event("Normal", "Created", "created "));
    }
    let (result, _) = h.reconcile(&obj, script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));

    // The API server now holds the status and the children: nothing is written again.
    let status: InferenceMonitoringStatus =
        serde_json::from_value(captured.lock().unwrap().clone().unwrap()).unwrap();
    assert_eq!(status.children.len(), children.len());
    let mut settled = obj.clone();
    settled.status = Some(status);
    let mut h = Harness::with(cluster.clone(), &live_children(&obj, &children), Vec::new());
    let (result, seen) = h.reconcile(&settled, Vec::new()).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(seen.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn a_spec_change_rewrites_the_status_generation_and_prunes_children_no_longer_wanted() {
    let cluster = full_cluster();
    let obj = resource(vllm_spec(), true);
    let (_, children) = rendered(&obj, &cluster, &[("release", "kps")]);
    // A child left over from an earlier spec (say, dashboards that were turned off).
    let v = resolve(&obj, &ClusterFacts::assumed_offline()).unwrap();
    let stale = Child::from_value(
        ChildKind::ConfigMap,
        json!({"metadata": object_meta(&v, "grafana", "llm-old-dashboard".into(), "dashboard")}),
    );
    let mut live = live_children(&obj, &children);
    let mut stale_live = prepare(&stale, &owner(&obj));
    stale_live["metadata"]["uid"] = json!("stale-1");
    live.entry(ChildKind::ConfigMap)
        .or_default()
        .push(stale_live);

    let mut changed = obj.clone();
    changed.metadata.generation = Some(2);
    let mut h = Harness::with(cluster.clone(), &live, Vec::new());
    let mut script = Vec::new();
    script.push(
        Exchange::new(
            "DELETE",
            format!(
                "{}?",
                object_uri(ChildKind::ConfigMap, "grafana", "llm-old-dashboard")
            ),
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .expecting(Expect::Body(json!({"preconditions": {"uid": "stale-1"}}))),
    );
    let (patch, _) = status_patch(|status| assert_eq!(status["observedGeneration"], 2));
    script.push(patch);
    script.push(event(
        "Normal",
        "Deleted",
        "ConfigMap grafana/llm-old-dashboard",
    ));
    let (result, _) = h.reconcile(&changed, script).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn deletion_removes_cross_namespace_children_then_the_finalizer() {
    let cluster = full_cluster();
    let mut obj = resource(vllm_spec(), true);
    obj.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(NOW).unwrap()));
    let v = resolve(&obj, &ClusterFacts::assumed_offline()).unwrap();
    let same_ns = Child::from_value(
        ChildKind::Secret,
        json!({"metadata": object_meta(&v, "ai", "llm-scrape".into(), "scrape")}),
    );
    let other_ns = Child::from_value(
        ChildKind::ConfigMap,
        json!({"metadata": object_meta(&v, "grafana", "llm-dashboard".into(), "dashboard")}),
    );
    let live = live_children(&obj, &[same_ns, other_ns]);
    let mut h = Harness::with(cluster.clone(), &live, Vec::new());
    // Only the child in another namespace is deleted; the garbage collector takes the rest.
    let mut script = vec![
        Exchange::new(
            "DELETE",
            format!(
                "{}?",
                object_uri(ChildKind::ConfigMap, "grafana", "llm-dashboard")
            ),
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .expecting(Expect::Body(json!({"preconditions": {"uid": "child-1"}}))),
    ];
    script.push(
        Exchange::new("PATCH", format!("{IM_PATH}?"), stored()).expecting(Expect::Body(json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]))),
    );
    let (result, _) = h.reconcile(&obj, script).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn without_the_prometheus_operator_only_core_kinds_are_touched_and_the_raw_scrape_config_is_chosen()
 {
    let cluster = core_only_cluster();
    let obj = resource(vllm_spec(), true);
    let (output, children) = rendered(&obj, &cluster, &[]);
    assert_eq!(output, Output::RawScrapeConfig);
    assert!(
        children
            .iter()
            .any(|c| c.kind == ChildKind::Secret && c.name == "llm-scrape-config"),
        "the raw scrape config Secret is generated"
    );
    let (served, unserved): (Vec<Child>, Vec<Child>) =
        children.into_iter().partition(|c| cluster.serves(c.kind));
    let mut h = Harness::new(cluster.clone());
    let mut script = Vec::new();
    script.extend(creates(&obj, &served));
    let expect_unserved = !unserved.is_empty();
    let (patch, _) = status_patch(move |status| {
        if expect_unserved {
            // Alerts need the PrometheusRule CRD: said so, with what to do.
            assert_condition(status, "ResourcesApplied", "False", "ApiUnavailable");
            let message = condition(status, "ResourcesApplied")["message"]
                .as_str()
                .unwrap();
            assert!(message.contains("PrometheusRule ai/"), "{message}");
            assert!(message.contains("install the CRDs"), "{message}");
        } else {
            assert_condition(status, "ResourcesApplied", "True", "Applied");
        }
        // No Prometheus CR selects a raw scrape config: nothing to report as NotSelected.
        assert_condition(status, "TargetsHealthy", "Unknown", "HealthCheckDisabled");
        assert!(status.get("selectedBy").is_none(), "{status}");
    });
    script.push(patch);
    script.push(event(
        "Normal",
        "Created",
        "created Secret ai/llm-scrape-config",
    ));
    let (result, seen) = h.reconcile(&obj, script).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        seen.iter()
            .all(|r| !r.uri.contains("monitoring.coreos.com"))
    );
}

#[tokio::test]
async fn api_errors_land_in_conditions_and_are_retried_with_backoff() {
    for (code, reason, label) in [
        (403, "Forbidden", "forbidden"),
        (500, "ApiError", "api_error"),
    ] {
        let cluster = full_cluster();
        let obj = resource(vllm_spec(), true);
        let (_, children) = rendered(&obj, &cluster, &[("release", "kps")]);
        let mut h = Harness::new(cluster.clone());
        // The first child's apply fails; the others are still created.
        let (failing, others) = children.split_first().expect("children are rendered");
        let failing_uri = object_uri(failing.kind, &failing.namespace, &failing.name);
        let mut script = vec![
            Exchange::fail("GET", failing_uri.clone(), 404, "NotFound"),
            Exchange::fail(
                "PATCH",
                format!("{failing_uri}?&force=true&fieldManager={FIELD_MANAGER}"),
                code,
                reason,
            ),
        ];
        script.extend(creates(&obj, others));
        let action_text = format!("apply {}", failing.display_name());
        let expected = action_text.clone();
        let (patch, _) = status_patch(move |status| {
            assert_condition(status, "ResourcesApplied", "False", reason);
            assert_condition(status, "Ready", "False", reason);
            let message = condition(status, "ResourcesApplied")["message"]
                .as_str()
                .unwrap();
            assert!(message.starts_with(&format!("{expected}: ")), "{message}");
        });
        script.push(patch);
        if !others.is_empty() {
            script.push(event("Normal", "Created", "created "));
        }
        script.push(event("Warning", reason, "apply "));
        let (result, _) = h.reconcile(&obj, script).await;
        let err = result.unwrap_err();
        assert_eq!(err.metric_label(), label);
        assert!(err.to_string().contains(&action_text), "{err}");
        let watched = Arc::new(DeserializeGuard(Ok(obj)));
        let action = error_policy(watched.clone(), &err, h.ctx.clone());
        assert_eq!(action, Action::requeue(Duration::from_secs(5)));
        let again = error_policy(watched, &err, h.ctx.clone());
        assert_eq!(again, Action::requeue(Duration::from_secs(10)));
        assert!(h.ctx.metrics.encode().contains(&format!(
            "infmon_reconcile_failures_total{{error=\"{label}\"}} 2"
        )));
    }
}

#[tokio::test]
async fn a_conflict_writing_status_is_retried() {
    let cluster = full_cluster();
    let obj = resource(vllm_spec(), true);
    let (_, children) = rendered(&obj, &cluster, &[("release", "kps")]);
    let mut h = Harness::new(cluster.clone());
    let mut script = Vec::new();
    script.extend(creates(&obj, &children));
    script.push(Exchange::fail(
        "PATCH",
        format!("{IM_PATH}/status?&force=true&fieldManager={FIELD_MANAGER}"),
        409,
        "Conflict",
    ));
    let (result, _) = h.reconcile(&obj, script).await;
    let err = result.unwrap_err();
    assert_eq!(err.metric_label(), "conflict");
    assert!(err.is_transient());
}

#[tokio::test]
async fn engine_auto_is_detected_from_the_selected_pods() {
    let cluster = full_cluster();
    let obj = resource(json!({"selector": {"matchLabels": {"app": "vllm"}}}), true);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vllm-0", "namespace": "ai", "labels": {"app": "vllm"}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "ports": [{"containerPort": 8000}]}]}});
    let unrelated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "ai", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "ghcr.io/huggingface/text-generation-inference:3"}]}});
    let mut h = Harness::with(cluster.clone(), &BTreeMap::new(), vec![pod, unrelated]);
    let mut script = Vec::new();
    let mut detected = obj.clone();
    detected.spec.engine = infmon::api::Engine::Vllm;
    let (_, children) = rendered(&detected, &cluster, &[("release", "kps")]);
    script.extend(creates(&obj, &children));
    let (patch, _) = status_patch(|status| assert_eq!(status["detectedEngine"], "vllm"));
    script.push(patch);
    if !children.is_empty() {
        script.push(event("Normal", "Created", "created "));
    }
    let (result, _) = h.reconcile(&obj, script).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn engine_auto_without_pods_waits_with_a_clear_condition() {
    let cluster = full_cluster();
    let obj = resource(json!({"selector": {"matchLabels": {"app": "vllm"}}}), true);
    let mut h = Harness::new(cluster);
    let mut script = Vec::new();
    let (patch, _) = status_patch(|status| {
        assert_condition(status, "ResourcesApplied", "False", "EngineUndetermined");
        assert_condition(status, "Ready", "False", "EngineUndetermined");
        let message = condition(status, "ResourcesApplied")["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("no pod matches spec.selector yet"),
            "{message}"
        );
        assert!(message.contains("set spec.engine"), "{message}");
    });
    script.push(patch);
    script.push(event("Warning", "EngineUndetermined", "no pod matches"));
    let (result, _) = h.reconcile(&obj, script).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn monitors_no_prometheus_selects_are_reported() {
    let cluster = full_cluster();
    let obj = resource(
        json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}, "prometheus": {"monitorLabels": {"team": "a"}}}),
        true,
    );
    let (_, children) = rendered(&obj, &cluster, &[]);
    let mut h = Harness::new(cluster.clone());
    let mut script = Vec::new();
    script.extend(creates(&obj, &children));
    let (patch, _) = status_patch(|status| {
        assert_condition(status, "TargetsHealthy", "False", "NotSelected");
        let message = condition(status, "TargetsHealthy")["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains(
                "spec.podMonitorSelector (release=kps) does not match the labels {team=a}"
            ),
            "{message}"
        );
        assert_condition(status, "Ready", "False", "NotSelected");
    });
    script.push(patch);
    if !children.is_empty() {
        script.push(event("Normal", "Created", "created "));
    }
    let (result, _) = h.reconcile(&obj, script).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn an_unowned_object_with_a_generated_name_is_left_untouched_and_reported() {
    let cluster = full_cluster();
    let obj = resource(vllm_spec(), true);
    let (_, children) = rendered(&obj, &cluster, &[("release", "kps")]);
    let (taken, rest) = children
        .split_first()
        .expect("at least one child is rendered");
    let mut h = Harness::new(cluster.clone());
    let mut script = Vec::new();
    script.push(Exchange::new(
        "GET",
        object_uri(taken.kind, &taken.namespace, &taken.name),
        json!({"apiVersion": taken.kind.api_version(), "kind": taken.kind.kind(),
               "metadata": {"name": taken.name, "namespace": taken.namespace, "uid": "users", "labels": {"team": "a"}}}),
    ));
    script.extend(creates(&obj, rest));
    let display = taken.display_name();
    let expected = display.clone();
    let (patch, _) = status_patch(move |status| {
        assert_condition(status, "ResourcesApplied", "False", "Conflict");
        assert_condition(status, "Ready", "False", "Conflict");
        let message = condition(status, "ResourcesApplied")["message"]
            .as_str()
            .unwrap();
        assert!(message.contains(&expected), "{message}");
    });
    script.push(patch);
    if !rest.is_empty() {
        script.push(event("Normal", "Created", "created "));
    }
    script.push(event(
        "Warning",
        "Conflict",
        "left untouched because infmon does not own them",
    ));
    let (result, seen) = h.reconcile(&obj, script).await;
    assert!(result.is_ok(), "{result:?}");
    let taken_path = object_uri(taken.kind, &taken.namespace, &taken.name);
    assert!(
        seen.iter()
            .all(|r| r.method == "GET" || !r.uri.starts_with(&taken_path)),
        "the user's {display} was written to"
    );
}

/// Collects what a JSON subscriber writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn json_log_lines_name_the_resource() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cluster = full_cluster();
    let obj = resource(json!({"selector": {"matchLabels": {"app": "vllm"}}}), true);
    let mut h = Harness::new(cluster);
    let mut script = Vec::new();
    let (patch, _) = status_patch(|_| {});
    script.push(patch);
    script.push(event("Warning", "EngineUndetermined", "no pod matches"));
    let (result, _) = h.reconcile(&obj, script).await;
    assert!(result.is_ok(), "{result:?}");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("spec cannot be applied"))
        .unwrap_or_else(|| panic!("no reconcile log line in {text}"));
    let parsed: Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["span"]["resource"], "ai/llm", "{line}");
    assert_eq!(parsed["level"], "INFO");
}

#[tokio::test]
async fn a_spec_change_updates_the_children_it_changes_in_place() {
    let cluster = full_cluster();
    let old = resource(vllm_spec(), true);
    let (_, old_children) = rendered(&old, &cluster, &[("release", "kps")]);
    let mut new = resource(
        json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}, "endpoint": {"interval": "30s"}}),
        true,
    );
    new.metadata.generation = Some(2);
    let (_, new_children) = rendered(&new, &cluster, &[("release", "kps")]);
    let live = live_children(&old, &old_children);
    let mut script = Vec::new();
    let mut updated = 0;
    for child in &new_children {
        let before = old_children.iter().find(|c| {
            (c.kind, &c.namespace, &c.name) == (child.kind, &child.namespace, &child.name)
        });
        let desired = prepare(child, &owner(&new));
        let uri = object_uri(child.kind, &child.namespace, &child.name);
        match before {
            Some(b) if prepare(b, &owner(&old)) == desired => {}
            Some(_) => {
                updated += 1;
                script.push(Exchange::echo(
                    "PATCH",
                    format!("{uri}?&force=true&fieldManager={FIELD_MANAGER}"),
                    Expect::Body(desired),
                ));
            }
            None => script.extend(creates(&new, std::slice::from_ref(child))),
        }
    }
    assert!(
        updated > 0,
        "the scrape interval changes at least the monitor"
    );
    let (patch, _) = status_patch(|status| {
        assert_eq!(status["observedGeneration"], 2);
        assert_condition_generation(status, "ResourcesApplied", "True", 2);
    });
    script.push(patch);
    script.push(event("Normal", "Updated", "updated "));
    let mut h = Harness::with(cluster, &live, Vec::new());
    let (result, _) = h.reconcile(&new, script).await;
    assert!(result.is_ok(), "{result:?}");
}

fn assert_condition_generation(status: &Value, type_: &str, state: &str, generation: i64) {
    let c = condition(status, type_);
    assert_eq!(c["status"], state, "{c}");
    assert_eq!(c["observedGeneration"], generation, "{c}");
}

/// A cluster with the Prometheus Operator's APIs but no `Prometheus` or `PrometheusAgent`,
/// running `others` (consumers infmon cannot read the selection of).
fn cluster_without_prometheus(others: &[&str]) -> Discovered {
    Discovered {
        prometheuses: Vec::new(),
        other_consumers: others.iter().map(|o| o.to_string()).collect(),
        ..full_cluster()
    }
}

/// Reconciles a vLLM resource with a query URL in `cluster` and checks its status.
async fn reconcile_checked_resource(cluster: Discovered, check: impl Fn(&Value) + Send + 'static) {
    let obj = resource(
        json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}},
               "prometheus": {"url": "http://vmsingle.vm:8429"}}),
        true,
    );
    let (_, children) = rendered(&obj, &cluster, &[]);
    let mut h = Harness::new(cluster.clone());
    let mut script = Vec::new();
    script.extend(creates(&obj, &children));
    let (patch, _) = status_patch(check);
    script.push(patch);
    script.push(event("Normal", "Created", "created "));
    let (result, _) = h.reconcile(&obj, script).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn another_consumer_of_monitors_is_no_reason_for_not_selected() {
    let cluster = cluster_without_prometheus(&["VMAgent vm/agent (VictoriaMetrics operator)"]);
    reconcile_checked_resource(cluster, |status| {
        // Left to the health check, which runs: Progressing until it has asked.
        assert_condition(status, "TargetsHealthy", "Unknown", "Progressing");
        let message = condition(status, "TargetsHealthy")["message"]
            .as_str()
            .unwrap();
        assert!(
            message.starts_with("waiting for the first health check; no Prometheus or PrometheusAgent resource was found")
                && message.contains("VMAgent vm/agent (VictoriaMetrics operator) may pick them up"),
            "{message}"
        );
        assert_eq!(
            status["selectedBy"],
            json!(["VMAgent vm/agent (VictoriaMetrics operator)"])
        );
    })
    .await;
}

#[tokio::test]
async fn with_nothing_known_to_consume_monitors_they_are_not_selected() {
    reconcile_checked_resource(cluster_without_prometheus(&[]), |status| {
        assert_condition(status, "TargetsHealthy", "False", "NotSelected");
        let message = condition(status, "TargetsHealthy")["message"]
            .as_str()
            .unwrap();
        assert!(
            message.starts_with("no Prometheus or PrometheusAgent resource was found, and no other known consumer of monitors"),
            "{message}"
        );
        assert!(status.get("selectedBy").is_none(), "{status}");
    })
    .await;
}

#[tokio::test]
async fn switching_to_output_none_deletes_the_scrape_object_and_rewrites_the_rules() {
    let cluster = full_cluster();
    let obj = resource(vllm_spec(), true);
    let labels = [("release", "kps")];
    let (_, before) = rendered(&obj, &cluster, &labels);
    assert!(before.iter().any(|c| c.kind == ChildKind::PodMonitor));
    let live = live_children(&obj, &before);

    let mut spec = vllm_spec();
    spec["prometheus"] = json!({"output": "none", "existingTargets": {"job": "platform/vllm"}});
    let mut changed = resource(spec, true);
    changed.metadata.generation = Some(2);
    let (_, after) = rendered(&changed, &cluster, &labels);
    // No scrape object of any kind is wanted any more.
    assert!(after.iter().all(|c| !matches!(
        c.kind,
        ChildKind::PodMonitor | ChildKind::ServiceMonitor | ChildKind::ScrapeConfig
    )));
    let rule = after
        .iter()
        .find(|c| c.kind == ChildKind::PrometheusRule)
        .expect("rules are still generated");
    assert!(
        rule.object.to_string().contains(r#"job=\"platform/vllm\""#),
        "the rules read the existing job"
    );

    // Children whose body changed are applied again; the PodMonitor is deleted, with the
    // uid it has in the cache as precondition.
    let mut script = Vec::new();
    for child in &after {
        let unchanged = before.iter().any(|b| {
            b.kind == child.kind
                && b.namespace == child.namespace
                && b.name == child.name
                && prepare(b, &owner(&obj)) == prepare(child, &owner(&changed))
        });
        if !unchanged {
            let uri = object_uri(child.kind, &child.namespace, &child.name);
            script.push(Exchange::echo(
                "PATCH",
                format!("{uri}?&force=true&fieldManager={FIELD_MANAGER}"),
                Expect::Body(prepare(child, &owner(&changed))),
            ));
        }
    }
    let (i, monitor) = before
        .iter()
        .enumerate()
        .find(|(_, c)| c.kind == ChildKind::PodMonitor)
        .unwrap();
    script.push(
        Exchange::new(
            "DELETE",
            format!(
                "{}?",
                object_uri(ChildKind::PodMonitor, &monitor.namespace, &monitor.name)
            ),
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .expecting(Expect::Body(
            json!({"preconditions": {"uid": format!("child-{i}")}}),
        )),
    );
    let (patch, _) = status_patch(|status| assert_eq!(status["observedGeneration"], 2));
    script.push(patch);
    script.push(event("Normal", "Updated", "PrometheusRule"));
    script.push(event("Normal", "Deleted", "PodMonitor"));
    let mut h = Harness::with(cluster.clone(), &live, Vec::new());
    let (result, _) = h.reconcile(&changed, script).await;
    assert!(result.is_ok(), "{result:?}");
}
