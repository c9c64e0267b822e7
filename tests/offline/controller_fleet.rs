//! Many resources in several namespaces against an API server that answers by rule and
//! records every request: a settled fleet costs no request, an edited child is applied again,
//! a deleted resource leaves nothing behind, and the whole operator (`runner::run`) skips a
//! malformed resource while reconciling the others and watches a kind whose CRD is
//! installed after start-up.

use infmon_devkit::mock_api::{self, Log, Recorded, Reply, answer_by_rule};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use infmon::api::InferenceMonitoring;
use infmon::controller::cache::{Caches, pod_store_of};
use infmon::controller::health_loop::{BackendFactory, HealthLoop};
use infmon::controller::metrics::{Metrics, ResourceLabels};
use infmon::controller::runner::{self, Settings};
use infmon::controller::{Config, Context, FINALIZER, reconcile};
use infmon::discovery::{Discovered, PrometheusSelectors};
use infmon::health::{BackendError, Credentials, MetricsBackend, Sample, Secret, Target};
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

/// A Secret's resourceVersion and data (text values).
type StoredSecret = (u64, BTreeMap<String, String>);

/// Secrets the API server holds, by (namespace, name): resourceVersion and data; watches
/// are woken when one changes.
#[derive(Clone, Default)]
struct Secrets {
    stored: Arc<Mutex<BTreeMap<(String, String), StoredSecret>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Secrets {
    /// Stores (or changes) Secret `namespace/name` with `data` (text values).
    fn put(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let mut stored = self.stored.lock().unwrap();
        let version = stored.values().map(|(v, _)| *v).max().unwrap_or(10) + 1;
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        stored.insert((namespace.into(), name.into()), (version, data));
        drop(stored);
        self.changed.notify_waiters();
    }

    /// Secret `namespace/name` as the API server sends it, if stored after `since`.
    fn object(&self, namespace: &str, name: &str, since: u64) -> Option<Value> {
        let stored = self.stored.lock().unwrap();
        let (version, data) = stored.get(&(namespace.to_string(), name.to_string()))?;
        (*version > since).then(|| {
            let data: BTreeMap<String, k8s_openapi::ByteString> = data
                .iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.clone().into_bytes())))
                .collect();
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": name, "namespace": namespace, "resourceVersion": version.to_string(),
                                "labels": {"owner": "helm"}, "managedFields": [{"manager": "helm"}]},
                   "data": data})
        })
    }
}

fn query_value<'a>(uri: &'a str, key: &str) -> Option<&'a str> {
    uri.split_once('?')?
        .1
        .split('&')
        .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
}

/// Answers Secret requests: a list selected by `metadata.name` holds that Secret, a watch
/// stays open until the Secret changes after the version it resumes from. Other requests
/// are not answered here.
fn secrets_rule(secrets: &Secrets, request: &Recorded) -> Option<Reply> {
    let path = segments(&request.uri);
    let ["api", "v1", "namespaces", namespace, "secrets"] = path.as_slice() else {
        return None;
    };
    let name = query_value(&request.uri, "fieldSelector")?
        .strip_prefix("metadata.name%3D")?
        .to_string();
    let namespace = namespace.to_string();
    if !request.uri.contains("watch=true") {
        let items: Vec<Value> = secrets.object(&namespace, &name, 0).into_iter().collect();
        let version = secrets
            .stored
            .lock()
            .unwrap()
            .values()
            .map(|(v, _)| *v)
            .max();
        return Some(Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "SecretList",
                   "metadata": {"resourceVersion": version.unwrap_or_default().to_string()}, "items": items}),
        ));
    }
    let since: u64 = query_value(&request.uri, "resourceVersion")?.parse().ok()?;
    let secrets = secrets.clone();
    Some(Reply::Later(Box::pin(async move {
        loop {
            let changed = secrets.changed.notified();
            if let Some(object) = secrets.object(&namespace, &name, since) {
                return Reply::Events(vec![json!({"type": "MODIFIED", "object": object})]);
            }
            changed.await;
        }
    })))
}

struct Fleet {
    ctx: Arc<Context>,
    log: Log,
    /// The clock, in seconds.
    now: Arc<AtomicI64>,
    resources: Vec<InferenceMonitoring>,
    writers: BTreeMap<ChildKind, Writer<DynamicObject>>,
}

impl Fleet {
    fn new(resources: Vec<Value>) -> Self {
        Self::with_secrets(resources, Secrets::default())
    }

    /// A fleet whose API server also holds `secrets` (and watches them).
    fn with_secrets(resources: Vec<Value>, secrets: Secrets) -> Self {
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
        let resources_rule = rule(Arc::new(Mutex::new(by_key)));
        let log = answer_by_rule(handle, move |request| {
            secrets_rule(&secrets, request).unwrap_or_else(|| resources_rule(request))
        });
        let (caches, writers) = Caches::fed_by_hand(ChildKind::ALL);
        caches.set_pods(vec![pod_store_of(unrelated_pods(300))]);
        let now = Arc::new(AtomicI64::new(1_700_000_000));
        let at = now.clone();
        let clock: infmon::controller::Clock =
            Arc::new(move || Time(Timestamp::from_second(at.load(Ordering::SeqCst)).unwrap()));
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
            now,
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

/// A list response at resourceVersion 1.
fn list(items: Vec<Value>) -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

/// The whole operator (`runner::run`) against `client`; stopped by sending `true`.
fn start_operator(
    client: kube::Client,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), runner::RunError>>,
) {
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
    (stop, operator)
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
    let (stop, operator) = start_operator(client);
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

/// Answers every query with nothing (the verdicts do not matter here) and records the
/// credentials each client was built with, by query URL.
struct NoSeries;

impl MetricsBackend for NoSeries {
    fn query<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, BackendError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn targets(&self) -> BoxFuture<'_, Result<Option<Vec<Target>>, BackendError>> {
        Box::pin(async { Ok(None) })
    }
}

type SeenCredentials = Arc<Mutex<Vec<(String, Credentials)>>>;

fn recording(seen: SeenCredentials) -> BackendFactory {
    Arc::new(move |url: &str, credentials: &Credentials| {
        seen.lock()
            .unwrap()
            .push((url.to_string(), credentials.clone()));
        Ok(Arc::new(NoSeries) as Arc<dyn MetricsBackend>)
    })
}

/// `resource` querying its namespace's Prometheus with a bearer token shared by the
/// namespace and a tenant header of its own, both from Secrets.
fn with_credentials(namespace: &str, name: &str) -> Value {
    let mut r = resource(namespace, name);
    r["spec"]["prometheus"] = json!({
        "url": format!("http://prometheus.{namespace}:9090"),
        "auth": {
            "bearerToken": {"name": "prom-token", "key": "token"},
            "headers": [{"name": "X-Scope-OrgID", "valueFrom": {"name": format!("tenant-{name}"), "key": "org"}}],
        },
    });
    r
}

#[tokio::test]
async fn credentials_come_from_watches_of_the_referenced_secrets_only() {
    let secrets = Secrets::default();
    let mut resources = Vec::new();
    for namespace in NAMESPACES {
        secrets.put(
            namespace,
            "prom-token",
            &[("token", &format!("token-{namespace}"))],
        );
        // A large Secret nobody references (a Helm release, say) is never read.
        secrets.put(
            namespace,
            "sh.helm.release.v1.app.v1",
            &[("release", &"x".repeat(100_000))],
        );
        for i in 0..PER_NAMESPACE {
            let name = format!("llm-{i}");
            secrets.put(
                namespace,
                &format!("tenant-{name}"),
                &[("org", &format!("{namespace}-{i}"))],
            );
            resources.push(with_credentials(namespace, &name));
        }
    }
    let mut fleet = Fleet::with_secrets(resources, secrets.clone());
    fleet.ctx.watch_secrets();
    let first = fleet.pass().await;
    fleet.observe(&first);
    let seen = SeenCredentials::default();
    let mut health = HealthLoop::new(recording(seen.clone()));

    // The first cycle starts one watch per referenced Secret: a list and a watch, each
    // selecting that Secret by name.
    fleet.log.lock().unwrap().clear();
    health.cycle(&fleet.ctx).await;
    let referenced = NAMESPACES.len() * (1 + PER_NAMESPACE);
    let mut waited = 0;
    while fleet.log.lock().unwrap().len() < 2 * referenced && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    let started = std::mem::take(&mut *fleet.log.lock().unwrap());
    assert_eq!(started.len(), 2 * referenced, "{:#?}", writes(&started));
    let watching = started
        .iter()
        .filter(|r| r.uri.contains("watch=true"))
        .count();
    assert_eq!(watching, referenced, "{:#?}", writes(&started));
    for request in &started {
        assert_eq!(request.method, "GET");
        let selected = query_value(&request.uri, "fieldSelector").unwrap_or_default();
        assert!(
            selected == "metadata.name%3Dprom-token"
                || selected.starts_with("metadata.name%3Dtenant-llm-"),
            "{}",
            request.uri
        );
    }
    assert_eq!(
        fleet.ctx.secret_watches().unwrap().watched().len(),
        referenced
    );
    let credentials = |namespace: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(url, _)| url.contains(&format!(".{namespace}:")))
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>()
    };
    for c in credentials("team-b") {
        assert_eq!(c.bearer_token, Some(Secret::new("token-team-b")));
    }
    let tenants: Vec<Secret> = credentials("team-b")
        .iter()
        .flat_map(|c| c.headers.iter().map(|(_, v)| v.clone()))
        .collect();
    for i in 0..PER_NAMESPACE {
        assert!(tenants.contains(&Secret::new(format!("team-b-{i}"))));
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        NAMESPACES.len() * PER_NAMESPACE,
        "one group per tenant header"
    );

    // The first verdicts are written by the reconciles; then two resyncs and a health check
    // after each: not one request.
    let verdicts = fleet.pass().await;
    assert_eq!(
        verdicts.len(),
        NAMESPACES.len() * PER_NAMESPACE,
        "{:#?}",
        writes(&verdicts)
    );
    fleet.observe(&verdicts);
    for resync in 1..=2 {
        let again = fleet.pass().await;
        assert!(again.is_empty(), "resync {resync}: {:#?}", writes(&again));
        fleet.now.fetch_add(3600, Ordering::SeqCst);
        seen.lock().unwrap().clear();
        health.cycle(&fleet.ctx).await;
        assert_eq!(
            seen.lock().unwrap().len(),
            NAMESPACES.len() * PER_NAMESPACE,
            "every group checked again"
        );
        let quiet = std::mem::take(&mut *fleet.log.lock().unwrap());
        assert!(
            quiet.is_empty(),
            "health cycle {resync}: {:#?}",
            writes(&quiet)
        );
    }

    // The token of team-b changes: its watch delivers it (and resumes), the next check uses it.
    secrets.put("team-b", "prom-token", &[("token", "rotated")]);
    let watches = fleet.ctx.secret_watches().unwrap();
    let mut waited = 0;
    while waited < 100 {
        let secret = watches
            .get("team-b", "prom-token", Duration::from_secs(1))
            .await
            .flatten()
            .unwrap();
        if secret.data.unwrap()["token"].0 == b"rotated" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    fleet.now.fetch_add(3600, Ordering::SeqCst);
    seen.lock().unwrap().clear();
    health.cycle(&fleet.ctx).await;
    for c in credentials("team-b") {
        assert_eq!(c.bearer_token, Some(Secret::new("rotated")));
    }
    for c in credentials("team-a") {
        assert_eq!(c.bearer_token, Some(Secret::new("token-team-a")));
    }
    let after = std::mem::take(&mut *fleet.log.lock().unwrap());
    assert!(
        after.iter().all(|r| r.uri.contains("watch=true")
            && r.uri.starts_with("/api/v1/namespaces/team-b/secrets?")
            && r.uri.contains("metadata.name%3Dprom-token")),
        "only the changed Secret's watch resumes: {:#?}",
        writes(&after)
    );

    // A resource that goes takes its Secret's watch with it.
    fleet.ctx.forget("team-a/llm-0");
    health.cycle(&fleet.ctx).await;
    let watched = fleet.ctx.secret_watches().unwrap().watched();
    assert_eq!(watched.len(), referenced - 1);
    assert!(!watched.contains(&("team-a".to_string(), "tenant-llm-0".to_string())));
}

/// The Prometheus Operator's two API versions as discovery reads them: `v1` with the
/// monitor kinds and `Prometheus`, `v1alpha1` with `PrometheusAgent`.
fn prometheus_operator_apis(path: &[&str]) -> Option<Reply> {
    let plurals: &[&str] = match path {
        ["apis", "monitoring.coreos.com", "v1"] => &[
            "podmonitors",
            "servicemonitors",
            "prometheusrules",
            "prometheuses",
        ],
        ["apis", "monitoring.coreos.com", "v1alpha1"] => &["prometheusagents"],
        _ => return None,
    };
    let resources: Vec<Value> = plurals
        .iter()
        .map(|p| json!({"name": p, "singularName": "", "namespaced": true, "kind": "X", "verbs": ["list", "watch"]}))
        .collect();
    Some(Reply::Json(
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1",
               "groupVersion": format!("monitoring.coreos.com/{}", path[2]), "resources": resources}),
    ))
}

/// Children applied to the API server, delivered to the watches of their kind (so the
/// operator's caches hold what it applied, as a real API server's watches would).
#[derive(Clone, Default)]
struct Applied {
    objects: Arc<Mutex<Vec<(String, u64, Value)>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Applied {
    /// Stores an applied child of `plural`; returns it as the API server answers.
    fn apply(&self, plural: &str, mut object: Value) -> Value {
        let mut objects = self.objects.lock().unwrap();
        let version = objects.len() as u64 + 2;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        object["metadata"]["uid"] = json!(format!("uid-{name}"));
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        objects.push((plural.to_string(), version, object.clone()));
        drop(objects);
        self.changed.notify_waiters();
        object
    }

    /// A watch of `plural` from `since`: answered once a child of that kind is applied.
    fn watch(&self, plural: &str, since: u64) -> Reply {
        let (applied, plural) = (self.clone(), plural.to_string());
        Reply::Later(Box::pin(async move {
            loop {
                let changed = applied.changed.notified();
                let events: Vec<Value> = applied
                    .objects
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(p, v, _)| *p == plural && *v > since)
                    .map(|(_, _, o)| json!({"type": "ADDED", "object": o}))
                    .collect();
                if !events.is_empty() {
                    return Reply::Events(events);
                }
                changed.await;
            }
        }))
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn a_prometheus_agent_created_after_start_selects_the_monitors_without_a_restart() {
    let llm = resource("ai", "llm");
    let created = Arc::new(tokio::sync::Notify::new());
    let delivered = Arc::new(Mutex::new(false));
    let (client, handle) = mock_api::client();
    let (create, sent) = (created.clone(), delivered.clone());
    let stored = llm.clone();
    let applied = Applied::default();
    let log = answer_by_rule(handle, move |request| {
        let path = segments(&request.uri);
        let watch = request.uri.contains("watch=true");
        if let Some(reply) = prometheus_operator_apis(&path) {
            return reply;
        }
        match (request.method.as_str(), path.as_slice()) {
            (
                "GET",
                [
                    "apis",
                    "monitoring.coreos.com",
                    "v1alpha1",
                    "prometheusagents",
                ],
            ) if watch && !std::mem::replace(&mut *sent.lock().unwrap(), true) => {
                let create = create.clone();
                Reply::Later(Box::pin(async move {
                    create.notified().await;
                    Reply::Events(vec![json!({"type": "ADDED", "object": {
                        "apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "PrometheusAgent",
                        "metadata": {"name": "agent", "namespace": "monitoring", "resourceVersion": "2"},
                        "spec": {"podMonitorSelector": {}, "podMonitorNamespaceSelector": {},
                                 "remoteWrite": [{"url": "http://mimir/api/v1/push"}]}}})])
                }))
            }
            ("GET", [.., plural]) if watch && request.uri.contains("managed-by%3Dinfmon") => {
                let since = query_value(&request.uri, "resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default();
                applied.watch(plural, since)
            }
            ("GET", _) if watch => Reply::Hold,
            ("GET", [.., "inferencemonitorings"]) => list(vec![stored.clone()]),
            ("GET", [.., plural]) if request.uri.contains('?') && !plural.contains('.') => {
                list(vec![])
            }
            ("PATCH", [.., "inferencemonitorings", "llm", "status"]) => {
                let mut echoed = stored.clone();
                echoed["status"] = request.body["status"].clone();
                Reply::Json(200, echoed)
            }
            ("PATCH", [.., "namespaces", _, plural, _]) if request.uri.contains("fieldManager") => {
                Reply::Json(200, applied.apply(plural, request.body.clone()))
            }
            ("POST", [.., "events"]) => Reply::Json(200, request.body.clone()),
            _ => Reply::Json(404, mock_api::status(404, "NotFound")),
        }
    });
    let (stop, operator) = start_operator(client);
    let statuses = || -> Vec<Value> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "PATCH" && r.uri.contains("/inferencemonitorings/llm/status"))
            .map(|r| r.body["status"].clone())
            .collect()
    };
    let mut waited = 0;
    while statuses().is_empty() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let first = statuses().first().cloned().expect("a status was written");
    let targets = condition(&first, "TargetsHealthy").unwrap();
    assert_eq!(targets["reason"], "NotSelected", "{first:#}");
    let before = log.lock().unwrap().len();

    // Someone creates a PrometheusAgent: it arrives on the watch, and the resource is
    // reconciled with it.
    created.notify_one();
    let mut waited = 0;
    let selected = loop {
        let found = statuses()
            .into_iter()
            .find(|s| s["selectedBy"] == json!(["monitoring/agent (PrometheusAgent)"]));
        if let Some(found) = found {
            break found;
        }
        assert!(waited < 100, "{:#?}", writes(&log.lock().unwrap()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    };
    assert_ne!(
        condition(&selected, "TargetsHealthy").unwrap()["reason"],
        "NotSelected",
        "{selected:#}"
    );
    // Nothing was listed, read or discovered again: the agent's watch resumed, and the
    // reconcile wrote the new selection; the children stood as they were.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(true);
    operator.abort();
    let after = writes(&log.lock().unwrap()[before..]);
    let (watches, others): (Vec<&String>, Vec<&String>) = after
        .iter()
        .partition(|r| r.starts_with("GET") && r.contains("watch=true"));
    assert_eq!(
        others,
        [
            "PATCH /apis/monitoring.inference.dev/v1alpha1/namespaces/ai/inferencemonitorings/llm/status?&force=true&fieldManager=infmon"
        ],
        "{after:#?}"
    );
    assert!(
        watches.iter().all(|w| w.contains("/prometheusagents?")),
        "{after:#?}"
    );
}
