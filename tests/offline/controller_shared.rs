//! Cluster-shared objects against a mocked API server that keeps the objects written to it
//! (so several passes can follow each other): three teams in two namespaces, two of them
//! calling their resource `vllm`, get exactly one DCGM exporter and one copy of each shared
//! dashboard with unique uids and no conflict; deleting the resources one by one keeps the
//! shared objects until their last user goes; an exporter of each known kind suppresses
//! ours; `GpuExporterReady` follows the DaemonSet's status as its cache holds it, written by
//! each resource's reconcile only (the shared pass writes no status).

use infmon_devkit::mock_api::{self, decode};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http::{Request, Response};
use infmon::api::InferenceMonitoring;
use infmon::controller::apply::{self, Owner};
use infmon::controller::cache::{Caches, child_store_of, pod_store_of};
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context, FINALIZER, reconcile, shared};
use infmon::discovery::{Discovered, FoundExporter, KNOWN_EXPORTERS, PrometheusSelectors};
use infmon::render::{ChildKind, render_all};
use infmon::validate::{ClusterFacts, GpuExporterSettings, resolve};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::core::DeserializeGuard;
use serde_json::{Value, json};
use tower_test::mock::Handle;

/// Objects by (plural, namespace, name).
type Store = BTreeMap<(String, String, String), Value>;

/// A mocked API server that stores what is applied, lists by label selector, and deletes;
/// every request is logged as `METHOD path`.
#[derive(Clone, Default)]
struct FakeCluster {
    objects: Arc<Mutex<Store>>,
    log: Arc<Mutex<Vec<String>>>,
    /// Namespaces that do not exist: writes there fail with 404.
    missing: Arc<Mutex<Vec<String>>>,
    /// `path fieldManager=…` of every PATCH.
    managers: Arc<Mutex<Vec<String>>>,
}

/// (namespace, plural, name, subresource) of a request path.
fn parse_path(path: &str) -> (Option<String>, String, Option<String>, Option<String>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // api/v1/... or apis/group/version/...
    let rest = if parts[0] == "api" {
        &parts[2..]
    } else {
        &parts[3..]
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    (
        namespace,
        rest[0].to_string(),
        rest.get(1).map(|s| s.to_string()),
        rest.get(2).map(|s| s.to_string()),
    )
}

fn matches(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|pair| {
        let (key, value) = pair.split_once('=').unwrap();
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

impl FakeCluster {
    fn serve(&self, mut handle: Handle<Request<Body>, Response<Body>>) {
        let this = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let uri = request.uri().clone();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                let (status, reply) = this.answer(&method, uri.path(), uri.query(), body);
                send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
    }

    fn answer(&self, method: &str, path: &str, query: Option<&str>, body: Value) -> (u16, Value) {
        self.log.lock().unwrap().push(format!("{method} {path}"));
        if method == "PATCH" {
            let manager = query
                .unwrap_or_default()
                .split('&')
                .find(|p| p.starts_with("fieldManager="))
                .unwrap_or("no field manager");
            self.managers
                .lock()
                .unwrap()
                .push(format!("{path} {manager}"));
        }
        let (namespace, plural, name, sub) = parse_path(path);
        if method == "PATCH"
            && namespace
                .as_ref()
                .is_some_and(|ns| self.missing.lock().unwrap().contains(ns))
        {
            return (404, mock_api::status(404, "NotFound"));
        }
        let mut objects = self.objects.lock().unwrap();
        let selector = query
            .unwrap_or_default()
            .split('&')
            .find_map(|p| p.strip_prefix("labelSelector="))
            .map(decode)
            .unwrap_or_default();
        match (method, name) {
            ("GET", None) => {
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|((p, ns, _), o)| {
                        *p == plural
                            && namespace.as_ref().is_none_or(|n| n == ns)
                            && matches(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                (200, mock_api::list("Object", items))
            }
            ("GET", Some(name)) => {
                match objects.get(&(plural, namespace.unwrap_or_default(), name)) {
                    Some(o) => (200, o.clone()),
                    None => (404, mock_api::status(404, "NotFound")),
                }
            }
            ("PATCH", Some(name)) => {
                let key = (plural, namespace.unwrap_or_default(), name);
                let mut stored = objects.get(&key).cloned().unwrap_or(Value::Null);
                if sub.as_deref() == Some("status") {
                    stored["status"] = body["status"].clone();
                } else {
                    let status = stored.get("status").cloned();
                    stored = body;
                    stored["metadata"]["uid"] = json!(format!("uid-{}-{}", key.1, key.2));
                    if let Some(status) = status {
                        stored["status"] = status;
                    }
                }
                objects.insert(key, stored.clone());
                (200, stored)
            }
            ("DELETE", Some(name)) => {
                match objects.remove(&(plural, namespace.unwrap_or_default(), name)) {
                    Some(o) => (200, o),
                    None => (404, mock_api::status(404, "NotFound")),
                }
            }
            _ => (405, mock_api::status(405, "MethodNotAllowed")),
        }
    }

    fn insert(&self, plural: &str, namespace: &str, name: &str, object: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert((plural.into(), namespace.into(), name.into()), object);
    }

    fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .lock()
            .unwrap()
            .get(&(plural.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// `namespace/name` of every stored object of a kind.
    fn names(&self, plural: &str) -> Vec<String> {
        self.objects
            .lock()
            .unwrap()
            .keys()
            .filter(|(p, ..)| p == plural)
            .map(|(_, ns, name)| format!("{ns}/{name}"))
            .collect()
    }

    /// How many stored objects carry the shared label.
    fn shared_count(&self) -> usize {
        self.objects
            .lock()
            .unwrap()
            .values()
            .filter(|o| matches(o, "monitoring.inference.dev/shared=true"))
            .count()
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

const NOW: i64 = 1_780_000_000;

fn context(cluster: &FakeCluster, discovered: Discovered) -> Arc<Context> {
    context_with(cluster, discovered, Caches::new())
}

/// [`context`] reading `caches`.
fn context_with(cluster: &FakeCluster, discovered: Discovered, caches: Caches) -> Arc<Context> {
    let (client, handle) = mock_api::client();
    cluster.serve(handle);
    let config = Config {
        gpu_exporter: GpuExporterSettings {
            namespace: "gpu".into(),
            ..GpuExporterSettings::default()
        },
        ..Config::default()
    };
    Arc::new(
        Context::new(
            client,
            config,
            Arc::new(RwLock::new(discovered)),
            Arc::new(Metrics::default()),
            Arc::new(|| Time(Timestamp::from_second(NOW).unwrap())),
        )
        .with_caches(Arc::new(caches)),
    )
}

fn full_cluster() -> Discovered {
    Discovered {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: Vec::new(),
        existing_dcgm_exporter: None,
        other_consumers: Vec::new(),
    }
}

fn resource(namespace: &str, name: &str, spec: Value) -> Arc<InferenceMonitoring> {
    let mut object: InferenceMonitoring = serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1",
        "kind": "InferenceMonitoring",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}"), "generation": 1},
        "spec": spec,
    }))
    .unwrap();
    object.status = Some(Default::default());
    Arc::new(object)
}

/// The three teams: `llm/vllm` and `team-b/vllm` (whose spec.metrics changes vLLM's
/// queries) and `team-b/chat` on SGLang; all with GPU telemetry and dashboards in
/// `monitoring`.
fn three_teams() -> Vec<Arc<InferenceMonitoring>> {
    let gpu = json!({"dcgmExporter": {"enabled": true}});
    let dashboards = json!({"namespace": "monitoring"});
    vec![
        resource(
            "llm",
            "vllm",
            json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}, "gpu": gpu, "dashboards": dashboards}),
        ),
        resource(
            "team-b",
            "vllm",
            json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}, "gpu": gpu, "dashboards": dashboards,
                   "metrics": {"requests": {"name": "vllm:request_success_total", "type": "counter",
                                         "matchers": "finished_reason!=\"abort\""}}}),
        ),
        resource(
            "team-b",
            "chat",
            json!({"engine": "sglang", "selector": {"matchLabels": {"app": "chat"}}, "gpu": gpu, "dashboards": dashboards}),
        ),
    ]
}

async fn pass(
    cluster: &FakeCluster,
    ctx: &Context,
    resources: &[Arc<InferenceMonitoring>],
) -> shared::Pass {
    // The API server holds the resources whose status the pass writes.
    for r in resources {
        let (namespace, name) = (
            r.metadata.namespace.clone().unwrap(),
            r.metadata.name.clone().unwrap(),
        );
        if cluster
            .get("inferencemonitorings", &namespace, &name)
            .is_none()
        {
            cluster.insert(
                "inferencemonitorings",
                &namespace,
                &name,
                serde_json::to_value(&**r).unwrap(),
            );
        }
    }
    tokio::time::timeout(Duration::from_secs(5), shared::sync(ctx, resources))
        .await
        .expect("the pass finishes")
        .expect("the pass succeeds")
}

/// Applies a resource's own children the way its reconcile does.
async fn apply_own(ctx: &Context, resource: &InferenceMonitoring) -> apply::Outcome {
    let validated = resolve(resource, &ClusterFacts::assumed_offline()).unwrap();
    let owner = Owner {
        namespace: validated.namespace.clone(),
        name: validated.name.clone(),
        reference: None,
    };
    apply::sync(
        &ctx.client,
        &[],
        &owner,
        &render_all(&validated).unwrap(),
        &ctx.facts().served,
    )
    .await
}

fn dashboard_uids(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .names("configmaps")
        .into_iter()
        .filter_map(|key| {
            let (ns, name) = key.split_once('/').unwrap();
            let object = cluster.get("configmaps", ns, name)?;
            let data = object["data"].as_object()?.clone();
            let (file, text) = data.into_iter().find(|(k, _)| k.ends_with(".json"))?;
            let dashboard: Value = serde_json::from_str(text.as_str()?).ok()?;
            Some(format!("{file} {}", dashboard["uid"].as_str()?))
        })
        .collect()
}

#[tokio::test]
async fn three_teams_get_one_exporter_and_one_copy_of_each_dashboard() {
    let cluster = FakeCluster::default();
    let ctx = context(&cluster, full_cluster());
    let teams = three_teams();
    for team in &teams {
        let outcome = apply_own(&ctx, team).await;
        assert!(
            outcome.conflicts.is_empty() && outcome.failures.is_empty(),
            "{outcome:?}"
        );
    }
    let first = pass(&cluster, &ctx, &teams).await;
    assert!(
        first.outcome.conflicts.is_empty(),
        "{:?}",
        first.outcome.conflicts
    );
    assert!(
        first.outcome.failures.is_empty(),
        "{:?}",
        first.outcome.failures
    );

    assert_eq!(cluster.names("daemonsets"), ["gpu/infmon-dcgm-exporter"]);
    assert_eq!(cluster.names("services"), ["gpu/infmon-dcgm-exporter"]);
    assert_eq!(
        cluster.names("servicemonitors"),
        ["gpu/infmon-dcgm-exporter"]
    );
    let patches = |plural: &str| {
        cluster
            .requests()
            .iter()
            .filter(|r| r.starts_with("PATCH") && r.contains(&format!("/{plural}/")))
            .count()
    };
    assert_eq!(patches("daemonsets"), 1, "one exporter, applied once");
    // DaemonSets and Services are only ever read and written in the exporter's namespace
    // (where alone RBAC grants them), neither by the resources' syncs nor the shared one.
    let elsewhere: Vec<String> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.contains("/daemonsets") || r.contains("/services"))
        .filter(|r| !r.contains("/namespaces/gpu/"))
        .collect();
    assert!(elsewhere.is_empty(), "{elsewhere:?}");

    let mut dashboards = cluster.names("configmaps");
    dashboards.retain(|n| n.starts_with("monitoring/"));
    dashboards.sort();
    assert_eq!(
        dashboards,
        [
            "monitoring/infmon-dashboard-gpu",
            "monitoring/infmon-dashboard-overview",
            "monitoring/infmon-dashboard-sglang",
            "monitoring/infmon-dashboard-vllm",
            "monitoring/team-b-vllm-dashboard-vllm-58335c84",
        ]
    );
    let uids = dashboard_uids(&cluster);
    let unique: BTreeSet<&str> = uids.iter().map(|u| u.split(' ').nth(1).unwrap()).collect();
    assert_eq!(unique.len(), uids.len(), "{uids:?}");
    assert!(
        uids.contains(&"vllm.json infmon-vllm".to_string()),
        "{uids:?}"
    );

    // A second pass with nothing changed only reads.
    let before = cluster.requests().len();
    let again = pass(&cluster, &ctx, &teams).await;
    assert!(again.outcome.created.is_empty() && again.outcome.updated.is_empty());
    let writes = cluster.requests()[before..]
        .iter()
        .filter(|r| r.starts_with("PATCH") && !r.ends_with("/status") || r.starts_with("DELETE"))
        .count();
    assert_eq!(writes, 0, "{:?}", &cluster.requests()[before..]);
}

#[tokio::test]
async fn shared_objects_stay_until_their_last_user_goes() {
    let cluster = FakeCluster::default();
    let ctx = context(&cluster, full_cluster());
    let mut teams = three_teams();
    pass(&cluster, &ctx, &teams).await;
    let all = cluster.shared_count();
    assert_eq!(all, 4 + 4, "exporter (4 objects) and 4 shared dashboards");

    // team-b/chat goes: only the SGLang dashboard is no longer wanted.
    teams.retain(|t| t.metadata.name.as_deref() != Some("chat"));
    let outcome = pass(&cluster, &ctx, &teams).await.outcome;
    assert_eq!(
        outcome
            .pruned
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>(),
        ["ConfigMap monitoring/infmon-dashboard-sglang"]
    );
    assert!(
        cluster
            .get("daemonsets", "gpu", "infmon-dcgm-exporter")
            .is_some()
    );

    // llm/vllm goes: team-b/vllm still wants the exporter, the overview and the GPU
    // dashboard, but not the shared vLLM dashboard (it has its own).
    teams.retain(|t| t.metadata.namespace.as_deref() != Some("llm"));
    pass(&cluster, &ctx, &teams).await;
    assert!(
        cluster
            .get("daemonsets", "gpu", "infmon-dcgm-exporter")
            .is_some()
    );
    assert!(
        cluster
            .get("configmaps", "monitoring", "infmon-dashboard-overview")
            .is_some()
    );
    assert!(
        cluster
            .get("configmaps", "monitoring", "infmon-dashboard-vllm")
            .is_none()
    );

    // A resource being deleted (finalizer still set) no longer counts.
    let mut leaving = (*teams[0]).clone();
    leaving.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(NOW).unwrap()));
    pass(&cluster, &ctx, &[Arc::new(leaving)]).await;
    assert_eq!(cluster.shared_count(), 0);
}

/// A restarted operator that finds shared objects but no resource (the last one was deleted
/// while it was down, its finalizer removed by hand) removes them.
#[tokio::test]
async fn leftovers_of_resources_deleted_while_the_operator_was_down_are_removed() {
    let cluster = FakeCluster::default();
    let ctx = context(&cluster, full_cluster());
    pass(&cluster, &ctx, &three_teams()).await;
    assert!(cluster.shared_count() > 0);
    let restarted = context(&cluster, full_cluster());
    let outcome = pass(&cluster, &restarted, &[]).await.outcome;
    assert_eq!(outcome.pruned.len(), 8, "{:?}", outcome.pruned);
    assert_eq!(cluster.shared_count(), 0);
}

#[tokio::test]
async fn an_existing_exporter_of_each_known_kind_suppresses_ours() {
    for kind in KNOWN_EXPORTERS {
        let cluster = FakeCluster::default();
        // Ours was running before the other one was installed.
        pass(&cluster, &context(&cluster, full_cluster()), &three_teams()).await;
        assert!(
            cluster
                .get("daemonsets", "gpu", "infmon-dcgm-exporter")
                .is_some()
        );
        let discovered = Discovered {
            existing_dcgm_exporter: Some(FoundExporter {
                kind,
                namespace: "elsewhere".into(),
            }),
            ..full_cluster()
        };
        let ctx = context(&cluster, discovered);
        let pass = pass(&cluster, &ctx, &three_teams()).await;
        assert!(cluster.names("daemonsets").is_empty(), "{}", kind.selector);
        assert!(
            cluster.names("servicemonitors").is_empty(),
            "{}",
            kind.selector
        );
        assert_eq!(pass.exporter_failure, None);
        // Every user is told by its reconcile which exporter serves it.
        reconcile_all(&ctx, &cluster).await;
        let gpu = condition(&cluster, "team-b", "chat", "GpuExporterReady");
        assert_eq!(gpu["status"], "True");
        assert_eq!(gpu["reason"], "ExistingExporter");
        let message = gpu["message"].as_str().unwrap();
        assert!(
            message.contains(kind.origin) && message.contains(kind.selector),
            "{message}"
        );
        // The GPU dashboard still serves the other exporter's series.
        assert!(
            cluster
                .get("configmaps", "monitoring", "infmon-dashboard-gpu")
                .is_some()
        );
    }
}

fn condition(cluster: &FakeCluster, namespace: &str, name: &str, type_: &str) -> Value {
    let resource = cluster
        .get("inferencemonitorings", namespace, name)
        .unwrap_or_else(|| panic!("no status written for {namespace}/{name}"));
    resource["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn exporter_pod(name: &str, waiting: Option<(&str, &str)>) -> Value {
    let state = match waiting {
        Some((reason, message)) => json!({"waiting": {"reason": reason, "message": message}}),
        None => json!({"running": {}}),
    };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "gpu", "labels": {
            "app.kubernetes.io/name": "infmon", "app.kubernetes.io/component": "dcgm-exporter",
            "app.kubernetes.io/managed-by": "infmon", "monitoring.inference.dev/shared": "true"}},
        "status": {"containerStatuses": [{"name": "dcgm-exporter", "image": "x", "imageID": "",
            "ready": waiting.is_none(), "restartCount": 4, "state": state}]}})
}

/// Reconciles every resource the cluster holds (as stored, with the finalizer in place);
/// returns the status PATCHes sent, with their field managers.
async fn reconcile_all(ctx: &Arc<Context>, cluster: &FakeCluster) -> Vec<String> {
    cluster.managers.lock().unwrap().clear();
    for key in cluster.names("inferencemonitorings") {
        let (namespace, name) = key.split_once('/').unwrap();
        let mut stored = cluster
            .get("inferencemonitorings", namespace, name)
            .unwrap();
        stored["metadata"]["finalizers"] = json!([FINALIZER]);
        let resource: InferenceMonitoring = serde_json::from_value(stored).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            reconcile(Arc::new(DeserializeGuard(Ok(resource))), ctx.clone()),
        )
        .await
        .expect("the reconcile finishes")
        .unwrap_or_else(|e| panic!("{e}"));
    }
    cluster
        .managers
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.contains("/inferencemonitorings/"))
        .cloned()
        .collect()
}

/// Runs a shared pass, sets the exporter DaemonSet's status to `status`, and reconciles every
/// team with caches holding that DaemonSet and `pods` (as the watches deliver them); returns
/// team `llm/vllm`'s GpuExporterReady and Ready conditions.
async fn readiness(status: Value, pods: Vec<Value>) -> (Value, Value) {
    let cluster = FakeCluster::default();
    let ctx = context(&cluster, full_cluster());
    let teams = three_teams();
    let first = pass(&cluster, &ctx, &teams).await;
    assert_eq!((first.exporter_failure, first.reconciles_asked), (None, 0));
    let managers = cluster.managers.lock().unwrap().clone();
    assert!(
        managers
            .iter()
            .all(|p| !p.contains("/inferencemonitorings/")),
        "the shared pass writes no status: {managers:#?}"
    );
    let mut daemon_set = cluster
        .get("daemonsets", "gpu", "infmon-dcgm-exporter")
        .unwrap();
    daemon_set["status"] = status;
    let caches = Caches::new();
    caches.set_children(
        ChildKind::DaemonSet,
        vec![
            child_store_of(
                ChildKind::DaemonSet,
                [serde_json::from_value(daemon_set).unwrap()],
            )
            .0,
        ],
    );
    caches.set_pods(vec![pod_store_of(
        pods.into_iter().map(|p| serde_json::from_value(p).unwrap()),
    )]);
    // A Prometheus that selects every monitor, so that Ready speaks of the exporter.
    let everything = PrometheusSelectors::from_object(&json!({
        "metadata": {"namespace": "monitoring", "name": "all"},
        "spec": {"podMonitorSelector": {}, "podMonitorNamespaceSelector": {},
                 "serviceMonitorSelector": {}, "serviceMonitorNamespaceSelector": {}},
    }))
    .unwrap();
    let discovered = Discovered {
        prometheuses: vec![everything],
        ..full_cluster()
    };
    let ctx = context_with(&cluster, discovered, caches);
    let written = reconcile_all(&ctx, &cluster).await;
    assert_eq!(
        written.len(),
        3,
        "every user writes its own status: {written:#?}"
    );
    assert!(
        written
            .iter()
            .all(|p| p.ends_with("/status fieldManager=infmon")),
        "one writer, one field manager: {written:#?}"
    );
    (
        condition(&cluster, "llm", "vllm", "GpuExporterReady"),
        condition(&cluster, "llm", "vllm", "Ready"),
    )
}

#[tokio::test]
async fn gpu_exporter_ready_when_every_scheduled_pod_is_ready() {
    let (gpu, _) = readiness(
        json!({"desiredNumberScheduled": 3, "numberReady": 3, "currentNumberScheduled": 3, "numberMisscheduled": 0}),
        Vec::new(),
    )
    .await;
    assert_eq!(gpu["status"], "True");
    assert_eq!(gpu["reason"], "ExporterReady");
    assert_eq!(gpu["message"], "3 of 3 DCGM exporter pods are ready");
}

#[tokio::test]
async fn gpu_exporter_partly_ready_is_false_with_the_count() {
    let (gpu, ready) = readiness(
        json!({"desiredNumberScheduled": 3, "numberReady": 2, "currentNumberScheduled": 3, "numberMisscheduled": 0}),
        vec![exporter_pod("a", None), exporter_pod("b", None), exporter_pod("c", Some(("ContainerCreating", "pulling")))],
    )
    .await;
    assert_eq!(gpu["status"], "False");
    assert_eq!(gpu["reason"], "ExporterNotReady");
    let message = gpu["message"].as_str().unwrap();
    assert!(
        message.starts_with("2 of 3 DCGM exporter pods are ready"),
        "{message}"
    );
    assert!(message.contains("pod c is ContainerCreating"), "{message}");
    assert_eq!(ready["status"], "False");
}

#[tokio::test]
async fn gpu_exporter_crash_looping_names_the_reason() {
    let (gpu, ready) = readiness(
        json!({"desiredNumberScheduled": 2, "numberReady": 0, "currentNumberScheduled": 2, "numberMisscheduled": 0}),
        vec![
            exporter_pod("x", Some(("CrashLoopBackOff", "back-off 5m0s restarting failed container"))),
            exporter_pod("y", Some(("CrashLoopBackOff", "back-off 5m0s restarting failed container"))),
        ],
    )
    .await;
    assert_eq!(gpu["status"], "False");
    assert_eq!(gpu["reason"], "ExporterNotReady");
    let message = gpu["message"].as_str().unwrap();
    assert!(message.contains("0 of 2"), "{message}");
    assert!(message.contains("CrashLoopBackOff"), "{message}");
    assert_eq!(ready["reason"], "ExporterNotReady");
}

#[tokio::test]
async fn gpu_exporter_without_gpu_nodes_says_so() {
    let (gpu, _) = readiness(
        json!({"desiredNumberScheduled": 0, "numberReady": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0}),
        Vec::new(),
    )
    .await;
    assert_eq!(gpu["status"], "False");
    assert_eq!(gpu["reason"], "NoGpuNodes");
    assert!(
        gpu["message"]
            .as_str()
            .unwrap()
            .contains("gpuExporter.nodeSelector")
    );
}

#[tokio::test]
async fn an_exporter_that_cannot_be_applied_is_reported() {
    let cluster = FakeCluster::default();
    cluster.missing.lock().unwrap().push("gpu".into());
    let ctx = context(&cluster, full_cluster());
    let pass = pass(&cluster, &ctx, &three_teams()).await;
    assert!(!pass.outcome.failures.is_empty());
    assert_eq!(pass.reconciles_asked, 3, "each user hears of it");
    reconcile_all(&ctx, &cluster).await;
    let gpu = condition(&cluster, "llm", "vllm", "GpuExporterReady");
    assert_eq!(gpu["status"], "False");
    assert_eq!(gpu["reason"], "ApiError");
    let message = gpu["message"].as_str().unwrap();
    assert!(
        message.contains("could not be applied") && message.contains("gpu"),
        "{message}"
    );
}

#[tokio::test]
async fn a_resource_whose_dashboard_settings_the_shared_copies_ignore_is_told_so() {
    let cluster = FakeCluster::default();
    let ctx = context(&cluster, full_cluster());
    let spec = |dashboards: Value| json!({"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}, "dashboards": dashboards});
    let agreed = json!({"namespace": "monitoring"});
    let mut teams = vec![
        resource("ai", "a", spec(agreed.clone())),
        resource(
            "ai",
            "b",
            spec(json!({"namespace": "monitoring", "labels": {"dash": "yes"}})),
        ),
    ];
    let first = pass(&cluster, &ctx, &teams).await;
    assert_eq!(first.reconciles_asked, 1, "only ai/b hears of it");
    reconcile_all(&ctx, &cluster).await;
    let told = condition(&cluster, "ai", "b", "DashboardsReady");
    let message = told["message"].as_str().unwrap();
    assert!(
        message.contains("delivered with the settings of ai/a")
            && message.contains("spec.dashboards labels differs"),
        "{message}"
    );
    let first_one = condition(&cluster, "ai", "a", "DashboardsReady");
    assert!(
        !first_one["message"]
            .as_str()
            .unwrap()
            .contains("delivered with the settings"),
        "{first_one}"
    );

    // Settings aligned: ai/b is reconciled again and the note goes.
    teams[1] = resource("ai", "b", spec(agreed));
    cluster.insert(
        "inferencemonitorings",
        "ai",
        "b",
        serde_json::to_value(&*teams[1]).unwrap(),
    );
    let second = pass(&cluster, &ctx, &teams).await;
    assert_eq!(second.reconciles_asked, 1);
    reconcile_all(&ctx, &cluster).await;
    let aligned = condition(&cluster, "ai", "b", "DashboardsReady");
    assert!(
        !aligned["message"]
            .as_str()
            .unwrap()
            .contains("delivered with the settings"),
        "{aligned}"
    );
    // Nothing changed since: no one is asked again.
    assert_eq!(pass(&cluster, &ctx, &teams).await.reconciles_asked, 0);
}
