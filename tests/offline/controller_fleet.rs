//! Many resources in several namespaces against an API server that answers by rule and
//! records every request: a settled fleet costs no request, an edited child is applied again,
//! a deleted resource leaves nothing behind, and the whole operator (`runner::run`) skips a
//! malformed resource while reconciling the others and watches a kind whose CRD is
//! installed after start-up.

use infmon_devkit::mock_api::{self, Log, Recorded, Reply, answer_by_rule};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use infmon::api::InferenceMonitoring;
use infmon::controller::cache::{Caches, pod_store_of};
use infmon::controller::metrics::{Metrics, ResourceLabels};
use infmon::controller::runner::{self, Settings};
use infmon::controller::{Config, Context, FINALIZER, reconcile};
use infmon::discovery::{Discovered, PrometheusSelectors};
use infmon::render::ChildKind;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};

const NAMESPACES: [&str; 3] = ["team-a", "team-b", "team-c"];
const PER_NAMESPACE: usize = 4;

fn resource(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
                     "generation": 1, "resourceVersion": "5", "finalizers": [FINALIZER]},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": name}}},
    })
}

fn fleet() -> Vec<Value> {
    NAMESPACES
        .iter()
        .flat_map(|ns| (0..PER_NAMESPACE).map(move |i| resource(ns, &format!("llm-{i}"))))
        .collect()
}

fn cluster() -> Discovered {
    let kps = PrometheusSelectors::from_object(&json!({
        "metadata": {"namespace": "monitoring", "name": "kps"},
        "spec": {"podMonitorSelector": {"matchLabels": {"release": "kps"}}, "podMonitorNamespaceSelector": {},
                 "ruleSelector": {"matchLabels": {"release": "kps"}}, "ruleNamespaceSelector": {}},
    }))
    .unwrap();
    Discovered {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: vec![kps],
        existing_dcgm_exporter: None,
        other_consumers: Vec::new(),
    }
}

/// Pods no resource selects.
fn unrelated_pods(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{i}"), "namespace": NAMESPACES[i % 3], "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            }))
            .unwrap()
        })
        .collect()
}

fn segments(uri: &str) -> Vec<&str> {
    uri.split('?')
        .next()
        .unwrap()
        .trim_matches('/')
        .split('/')
        .collect()
}

/// An API server holding `resources`: objects are absent until applied, applies and Events
/// are echoed (with a UID), status patches answer with the resource.
fn rule(resources: Arc<Mutex<BTreeMap<(String, String), Value>>>) -> impl Fn(&Recorded) -> Reply {
    move |request| {
        let path = segments(&request.uri);
        let resource_at = |ns: &str, name: &str| {
            resources
                .lock()
                .unwrap()
                .get(&(ns.to_string(), name.to_string()))
                .cloned()
        };
        match (request.method.as_str(), path.as_slice()) {
            ("PATCH", [.., "namespaces", ns, "inferencemonitorings", name, "status"]) => {
                let mut stored = resource_at(ns, name).unwrap();
                stored["status"] = request.body["status"].clone();
                Reply::Json(200, stored)
            }
            ("PATCH", [.., "namespaces", ns, "inferencemonitorings", name]) => {
                Reply::Json(200, resource_at(ns, name).unwrap())
            }
            ("PATCH", [.., "namespaces", _, _, name]) => {
                let mut echoed = request.body.clone();
                echoed["metadata"]["uid"] = json!(format!("uid-{name}"));
                echoed["metadata"]["resourceVersion"] = json!("2");
                Reply::Json(200, echoed)
            }
            ("POST", [.., "events"]) => Reply::Json(200, request.body.clone()),
            ("DELETE", _) => Reply::Json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            ),
            _ => Reply::Json(404, mock_api::status(404, "NotFound")),
        }
    }
}

struct Fleet {
    ctx: Arc<Context>,
    log: Log,
    resources: Vec<InferenceMonitoring>,
    writers: BTreeMap<ChildKind, Writer<DynamicObject>>,
}

impl Fleet {
    fn new(resources: Vec<Value>) -> Self {
        let (client, handle) = mock_api::client();
        let by_key: BTreeMap<(String, String), Value> = resources
            .iter()
            .map(|r| {
                let meta = &r["metadata"];
                (
                    (
                        meta["namespace"].as_str().unwrap().to_string(),
                        meta["name"].as_str().unwrap().to_string(),
                    ),
                    r.clone(),
                )
            })
            .collect();
        let log = answer_by_rule(handle, rule(Arc::new(Mutex::new(by_key))));
        let (caches, writers) = Caches::fed_by_hand(ChildKind::ALL);
        caches.set_pods(vec![pod_store_of(unrelated_pods(300))]);
        let clock: infmon::controller::Clock =
            Arc::new(|| Time(Timestamp::from_second(1_700_000_000).unwrap()));
        let ctx = Context::new(
            client,
            Config::default(),
            Arc::new(RwLock::new(cluster())),
            Arc::new(Metrics::default()),
            clock,
        )
        .with_caches(Arc::new(caches));
        Self {
            ctx: Arc::new(ctx),
            log,
            resources: resources
                .into_iter()
                .map(|r| serde_json::from_value(r).unwrap())
                .collect(),
            writers,
        }
    }

    /// Reconciles every resource once; returns the requests sent.
    async fn pass(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clear();
        for resource in &self.resources {
            let watched = Arc::new(DeserializeGuard(Ok(resource.clone())));
            reconcile(watched, self.ctx.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Feeds what the last pass wrote back as watch events (children into the caches,
    /// statuses into the resources), as the watches would.
    fn observe(&mut self, written: &[Recorded]) {
        for request in written.iter().filter(|r| r.method == "PATCH") {
            let path = segments(&request.uri);
            if path.contains(&"inferencemonitorings") {
                if path.last() == Some(&"status") {
                    let name = path[path.len() - 2];
                    let ns = path[path.len() - 4];
                    let resource = self
                        .resources
                        .iter_mut()
                        .find(|r| {
                            r.metadata.name.as_deref() == Some(name)
                                && r.metadata.namespace.as_deref() == Some(ns)
                        })
                        .unwrap();
                    resource.status =
                        Some(serde_json::from_value(request.body["status"].clone()).unwrap());
                }
                continue;
            }
            let kind = ChildKind::ALL
                .into_iter()
                .find(|k| request.body["kind"] == k.kind())
                .unwrap();
            let mut object = request.body.clone();
            object["metadata"]["uid"] = json!(format!("uid-{}", path[path.len() - 1]));
            object["metadata"]["resourceVersion"] = json!("2");
            self.apply(kind, object);
        }
    }

    /// A watch event for a child.
    fn apply(&mut self, kind: ChildKind, object: Value) {
        let mut object: DynamicObject = serde_json::from_value(object).unwrap();
        infmon::controller::cache::compact_child(&mut object);
        self.writers
            .get_mut(&kind)
            .unwrap()
            .apply_watcher_event(&watcher::Event::Apply(object));
    }
}

fn writes(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

#[tokio::test]
async fn a_settled_fleet_in_several_namespaces_costs_no_request() {
    let mut fleet = Fleet::new(fleet());
    let first = fleet.pass().await;
    let statuses = first.iter().filter(|r| r.uri.contains("/status?")).count();
    assert_eq!(statuses, NAMESPACES.len() * PER_NAMESPACE);
    assert!(
        first
            .iter()
            .all(|r| r.method != "GET" || !r.uri.contains('?')),
        "a cold pass reads single objects (to find unmanaged ones) but lists nothing: {:#?}",
        writes(&first)
    );
    fleet.observe(&first);
    for resync in 1..=2 {
        let again = fleet.pass().await;
        assert!(
            again.is_empty(),
            "resync {resync} sent requests: {:#?}",
            writes(&again)
        );
    }
}

#[tokio::test]
async fn a_child_edited_by_another_writer_is_applied_again() {
    let mut fleet = Fleet::new(fleet());
    let first = fleet.pass().await;
    fleet.observe(&first);
    assert!(fleet.pass().await.is_empty());

    // Someone edits the PodMonitor of team-b/llm-1 and leaves the desired-hash annotation alone.
    let target = first
        .iter()
        .find(|r| {
            r.method == "PATCH"
                && r.uri.contains("/namespaces/team-b/podmonitors/llm-1")
                && r.body["kind"] == "PodMonitor"
        })
        .expect("the PodMonitor of team-b/llm-1 was applied");
    let desired = target.body.clone();
    let mut edited = desired.clone();
    edited["metadata"]["uid"] = json!("uid-llm-1");
    edited["spec"]["podMetricsEndpoints"][0]["interval"] = json!("5m");
    fleet.apply(ChildKind::PodMonitor, edited);

    let reverted = fleet.pass().await;
    let writes = writes(&reverted);
    assert_eq!(reverted.len(), 2, "{writes:#?}");
    assert_eq!(reverted[0].method, "PATCH");
    assert_eq!(reverted[0].uri, target.uri);
    assert_eq!(reverted[0].body, desired);
    assert_eq!(
        reverted[1].body["reason"], "Reapplied",
        "{:#}",
        reverted[1].body
    );
    // The API server now holds the desired object again: quiet.
    fleet.observe(&reverted);
    let quiet = fleet.pass().await;
    assert!(quiet.is_empty(), "{:#?}", self::writes(&quiet));
}

#[tokio::test]
async fn a_deleted_resource_leaves_nothing_behind() {
    let mut fleet = Fleet::new(vec![resource("team-a", "llm"), resource("team-b", "llm")]);
    let first = fleet.pass().await;
    fleet.observe(&first);
    for r in &fleet.resources {
        fleet
            .ctx
            .metrics
            .targets_up
            .get_or_create(&ResourceLabels {
                namespace: r.metadata.namespace.clone().unwrap(),
                name: r.metadata.name.clone().unwrap(),
            })
            .set(1);
    }
    assert_eq!(fleet.ctx.remembered_keys(), ["team-a/llm", "team-b/llm"]);

    let mut deleted = fleet.resources.remove(0);
    deleted.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
    fleet.log.lock().unwrap().clear();
    let watched = Arc::new(DeserializeGuard(Ok(deleted)));
    reconcile(watched, fleet.ctx.clone()).await.unwrap();
    let requests = std::mem::take(&mut *fleet.log.lock().unwrap());
    // Every child lives in the resource's namespace (the garbage collector's job): only the
    // finalizer is removed.
    assert_eq!(
        writes(&requests),
        [
            "PATCH /apis/monitoring.inference.dev/v1alpha1/namespaces/team-a/inferencemonitorings/llm?"
        ]
    );
    assert_eq!(fleet.ctx.remembered_keys(), ["team-b/llm"]);
    let metrics = fleet.ctx.metrics.encode();
    assert!(!metrics.contains(r#"namespace="team-a""#), "{metrics}");
    assert!(metrics.contains(r#"namespace="team-b""#), "{metrics}");
}

/// The discovery answers before and after the Prometheus Operator's CRDs are installed.
fn served_resources(installed: bool) -> Reply {
    if !installed {
        return Reply::Json(404, mock_api::status(404, "NotFound"));
    }
    let resources: Vec<Value> = ["podmonitors", "servicemonitors", "prometheusrules", "prometheuses"]
        .iter()
        .map(|p| json!({"name": p, "singularName": "", "namespaced": true, "kind": "X", "verbs": ["list", "watch"]}))
        .collect();
    Reply::Json(
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1", "resources": resources}),
    )
}

#[tokio::test]
async fn the_operator_skips_a_malformed_resource_and_watches_a_kind_installed_later() {
    let installed = Arc::new(Mutex::new(false));
    let good = resource("ai", "good");
    let mut good_unfinalized = good.clone();
    good_unfinalized["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    let mut malformed = resource("ai", "broken");
    malformed["spec"]["engine"] = json!(42);
    let (client, handle) = mock_api::client();
    let flag = installed.clone();
    let stored_good = good.clone();
    let log = answer_by_rule(handle, move |request| {
        let path = segments(&request.uri);
        let watch = request.uri.contains("watch=true");
        let list = |items: Vec<Value>| {
            Reply::Json(
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        };
        match (request.method.as_str(), path.as_slice()) {
            ("GET", ["apis", "monitoring.coreos.com", "v1"]) => {
                served_resources(*flag.lock().unwrap())
            }
            (
                "GET",
                [
                    "apis",
                    "apiextensions.k8s.io",
                    "v1",
                    "customresourcedefinitions",
                ],
            ) if watch && !*flag.lock().unwrap() => {
                *flag.lock().unwrap() = true;
                Reply::Events(vec![json!({"type": "ADDED", "object": {
                    "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                    "metadata": {"name": "podmonitors.monitoring.coreos.com", "resourceVersion": "2"}}})])
            }
            ("GET", _) if watch => Reply::Hold,
            (
                "GET",
                [
                    "apis",
                    "monitoring.inference.dev",
                    "v1alpha1",
                    "inferencemonitorings",
                ],
            ) => list(vec![malformed.clone(), good_unfinalized.clone()]),
            ("GET", ["apis", "monitoring.coreos.com", "v1", "prometheuses"]) => list(vec![]),
            ("GET", [.., plural]) if request.uri.contains('?') && !plural.contains('.') => {
                list(vec![])
            }
            ("PATCH", [.., "inferencemonitorings", "good"]) => {
                Reply::Json(200, stored_good.clone())
            }
            ("POST", [.., "events"]) => Reply::Json(200, request.body.clone()),
            _ => Reply::Json(404, mock_api::status(404, "NotFound")),
        }
    });
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let settings = Settings {
        config: Config::default(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        probe_addr: "127.0.0.1:0".parse().unwrap(),
        leader: None,
        discovery_interval: Duration::from_secs(60),
        startup_timeout: Duration::from_secs(5),
    };
    let operator = tokio::spawn(runner::run(
        client,
        "https://mock".into(),
        settings,
        shutdown,
    ));
    let seen = |predicate: &dyn Fn(&Recorded) -> bool| log.lock().unwrap().iter().any(predicate);
    let mut waited = 0;
    let podmonitors = "/apis/monitoring.coreos.com/v1/podmonitors?";
    while waited < 100
        && !(seen(&|r| r.uri.starts_with(podmonitors))
            && seen(&|r| r.method == "PATCH" && r.uri.contains("/inferencemonitorings/good"))
            && seen(&|r| r.method == "POST" && r.body["regarding"]["name"] == "broken"))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let _ = stop.send(true);
    operator.abort();
    let requests = writes(&log.lock().unwrap());
    let recorded = log.lock().unwrap().clone();
    // The CRD appeared after start-up: its kind is now watched (listed, then watched).
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET {podmonitors}"))
                && r.contains("managed-by%3Dinfmon")),
        "{requests:#?}"
    );
    // The malformed resource is reported, not reconciled; the other one is.
    let warning = recorded
        .iter()
        .find(|r| r.method == "POST" && r.body["regarding"]["name"] == "broken")
        .unwrap_or_else(|| panic!("no Event about the malformed resource: {requests:#?}"));
    assert_eq!(warning.body["type"], "Warning");
    assert!(
        warning.body["note"]
            .as_str()
            .unwrap()
            .contains("cannot read"),
        "{}",
        warning.body
    );
    assert!(
        recorded.iter().any(|r| r.method == "PATCH"
            && r.uri.contains("/inferencemonitorings/good")
            && r.body[1]["value"] == json!([FINALIZER])),
        "{requests:#?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PATCH") && r.contains("/inferencemonitorings/broken")),
        "{requests:#?}"
    );
}
