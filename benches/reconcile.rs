//! Reconciling 1,000 InferenceMonitorings in 10 namespaces, with 10,000 unrelated pods:
//!
//! - in process, against an in-memory API server (a tower mock service whose applies reach
//!   the operator's caches as watch events would): the cold pass (creates every child and
//!   status), then two resyncs of the steady state, which must send no request at all; the
//!   criterion group times a steady-state pass over every resource;
//! - the operator alone, `infmon run` as a child process against an API emulator over HTTP
//!   (in this process): the time and CPU until every status is written, the requests, the
//!   steady state over two resync periods (nothing but watches), and the child's peak RSS,
//!   which holds nothing of the benchmark's.
//!
//! Prints the figures after the criterion run.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use infmon::controller::cache::{Caches, compact_child, pod_store_of};
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context, FINALIZER, Watched, reconcile};
use infmon::discovery::{Discovered, PrometheusSelectors};
use infmon::render::ChildKind;
use infmon_devkit::api_emulator::{ApiEmulator, Emulated};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::client::Body;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock;

const NAMESPACES: usize = 10;

/// Resources and unrelated pods: the full fleet under `cargo bench`; a small one when
/// `cargo test --all-targets` runs the benchmark once as a test (it still asserts that the
/// steady state sends nothing).
fn scale() -> (usize, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (1_000, 10_000)
    } else {
        (50, 500)
    }
}

/// An API server held in memory: an applied child is fed to the operator's caches the way
/// its watch would deliver it; statuses are kept; every request is counted.
struct Cluster {
    writers: BTreeMap<ChildKind, Writer<DynamicObject>>,
    statuses: BTreeMap<String, Value>,
    requests: usize,
}

fn split(path: &str) -> Vec<&str> {
    path.split('?')
        .next()
        .unwrap()
        .trim_start_matches('/')
        .split('/')
        .collect()
}

fn answer(cluster: &Mutex<Cluster>, method: &str, uri: &str, body: Value) -> (u16, Value) {
    let segments = split(uri);
    let mut cluster = cluster.lock().unwrap();
    cluster.requests += 1;
    match (method, segments.as_slice()) {
        ("GET", [.., "namespaces", _, _, _]) => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404}),
        ),
        ("PATCH", [.., "namespaces", ns, "inferencemonitorings", name, "status"]) => {
            cluster
                .statuses
                .insert(format!("{ns}/{name}"), body["status"].clone());
            (200, resource(ns, name, None))
        }
        ("PATCH", [.., "namespaces", _, _, name]) => {
            let mut stored = body;
            stored["metadata"]["uid"] = json!(format!("uid-{name}"));
            stored["metadata"]["resourceVersion"] = json!("2");
            let kind = ChildKind::ALL
                .into_iter()
                .find(|k| stored["kind"] == k.kind())
                .expect("a child kind");
            let mut cached: DynamicObject = serde_json::from_value(stored.clone()).unwrap();
            compact_child(&mut cached);
            cluster
                .writers
                .get_mut(&kind)
                .unwrap()
                .apply_watcher_event(&watcher::Event::Apply(cached));
            (200, stored)
        }
        ("POST", [.., "events"]) => (201, body),
        _ => panic!("unexpected {method} {uri}"),
    }
}

fn serve(cluster: Arc<Mutex<Cluster>>) -> kube::Client {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, reply) = answer(&cluster, &method, &uri, body);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    kube::Client::new(service, "default")
}

fn namespace_of(i: usize) -> String {
    format!("team-{}", i % NAMESPACES)
}

fn resource(namespace: &str, name: &str, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": name}}},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

/// A pod no resource selects, as the API server stores it.
fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("web-{i}"), "namespace": namespace_of(i),
                     "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
                     "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "nginx:1.27",
                 "args": ["--port", "8080"], "ports": [{"containerPort": 8080, "name": "http"}],
                 "env": [{"name": "MODE", "value": "production"}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    })
}

/// Pods no resource selects, one at a time as the pod watch delivers them.
fn pods() -> impl Iterator<Item = Pod> {
    (0..scale().1).map(|i| serde_json::from_value(pod(i)).unwrap())
}

/// The `Prometheus` of kube-prometheus-stack, selecting by `release: kps`.
fn kps() -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"namespace": "monitoring", "name": "kps"},
        "spec": {"podMonitorSelector": {"matchLabels": {"release": "kps"}}, "podMonitorNamespaceSelector": {},
                 "ruleSelector": {"matchLabels": {"release": "kps"}}, "ruleNamespaceSelector": {}},
    })
}

fn context(client: kube::Client) -> (Arc<Context>, BTreeMap<ChildKind, Writer<DynamicObject>>) {
    let kps = PrometheusSelectors::from_object(&kps()).unwrap();
    let discovered = Discovered {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: vec![kps],
        existing_dcgm_exporter: None,
        other_consumers: Vec::new(),
    };
    let (caches, writers) = Caches::fed_by_hand(ChildKind::ALL);
    caches.set_pods(vec![pod_store_of(pods())]);
    let ctx = Context::new(
        client,
        Config::default(),
        Arc::new(RwLock::new(discovered)),
        Arc::new(Metrics::default()),
        Arc::new(|| Time(Timestamp::from_second(1_700_000_000).unwrap())),
    )
    .with_caches(Arc::new(caches));
    (Arc::new(ctx), writers)
}

fn keys() -> Vec<(String, String)> {
    (0..scale().0)
        .map(|i| (namespace_of(i), format!("llm-{i:04}")))
        .collect()
}

async fn reconcile_all(ctx: &Arc<Context>, resources: &[Arc<Watched>]) {
    for r in resources {
        reconcile(r.clone(), ctx.clone())
            .await
            .expect("reconcile succeeds");
    }
}

/// utime + stime of process `pid` (`self` or a number), from `/proc/<pid>/stat` (fields 14
/// and 15, in clock ticks of 100 Hz).
fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, peak resident set; `VmRSS`, now).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Requests other than watches (lists, reads, writes), from `from` on.
fn non_watch(requests: &[String], from: usize) -> usize {
    requests[from.min(requests.len())..]
        .iter()
        .filter(|r| !r.contains("watch=true") && !r.contains("watch=1"))
        .count()
}

fn waited_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The operator alone, measured from outside: `infmon run` as a child process against an
/// API emulator over HTTP holding the resources and the pods (the emulator and this
/// benchmark live in the parent, so the child's peak RSS is the operator's own). Waits for
/// every resource to get its status, then watches two resync periods of the steady state.
fn operator_process() {
    let (resources, pods) = scale();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state = Arc::new(Emulated::default());
    state.serve_group(
        "monitoring.coreos.com/v1",
        &[
            "podmonitors",
            "servicemonitors",
            "prometheusrules",
            "prometheuses",
        ],
    );
    state.insert("monitoring.coreos.com/v1/prometheuses", kps());
    for n in 0..NAMESPACES {
        let name = namespace_of(n);
        state.insert(
            "v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}),
        );
    }
    for (ns, name) in keys() {
        state.insert(
            "monitoring.inference.dev/v1alpha1/inferencemonitorings",
            resource(&ns, &name, None),
        );
    }
    for i in 0..pods {
        state.insert("v1/pods", pod(i));
    }
    let emulator = runtime.block_on(ApiEmulator::start(state.clone()));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
    let resync = Duration::from_secs(3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args(["run", "--metrics-port", "0", "--probe-port", "0"])
        .args(["--log-format", "text", "--log-level", "error"])
        .args(["--resync-interval", "3s"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("infmon runs");
    let pid = child.id();
    let started = Instant::now();
    let statuses = || {
        keys()
            .iter()
            .filter(|(ns, n)| {
                state
                    .get(
                        "monitoring.inference.dev/v1alpha1/inferencemonitorings",
                        ns,
                        n,
                    )
                    .is_some_and(|r| !r["status"]["conditions"].is_null())
            })
            .count()
    };
    waited_for("every resource's status", Duration::from_secs(600), || {
        statuses() == resources
    });
    let cold = started.elapsed();
    let cold_cpu = cpu_seconds_of(&pid.to_string());
    // Settled: the shared objects written, nothing sent for a while but watches.
    let mut seen = state.requests().len();
    waited_for("a quiet second", Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_secs(1));
        let now = state.requests();
        let quiet = non_watch(&now, seen) == 0;
        seen = now.len();
        quiet
    });
    let requests = state.requests();
    let cold_requests = non_watch(&requests, 0);
    let cold_watches = requests.len() - cold_requests;
    let before = requests.len();
    std::thread::sleep(resync * 2 + Duration::from_millis(500));
    let after = state.requests();
    let steady: Vec<&String> = after[before..]
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .collect();
    let (peak, now) = (status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS"));
    let steady_cpu = cpu_seconds_of(&pid.to_string()) - cold_cpu;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        steady.is_empty(),
        "the steady state sends nothing but watches: {steady:#?}"
    );
    println!(
        "\n`infmon run` against an API emulator, {resources} resources in {NAMESPACES} namespaces, {pods} unrelated pods:\n\
         cold: every status written {:.2} s after start, operator CPU {:.2} s ({:.2} ms per resource), {:.1} requests per resource besides {cold_watches} watches\n\
         steady state, two resyncs ({} s): {} requests besides watches, operator CPU {:.2} s\n\
         operator process: peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB",
        cold.as_secs_f64(),
        cold_cpu,
        cold_cpu * 1e3 / resources as f64,
        cold_requests as f64 / resources as f64,
        2 * resync.as_secs(),
        steady.len(),
        steady_cpu,
        peak as f64 / 1024.0,
        now as f64 / 1024.0,
    );
}

fn bench(c: &mut Criterion) {
    let (resources, pods) = scale();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();

    // Cold: empty caches of children (filled as the applies land), 10,000 cached pods.
    let fresh: Vec<Arc<Watched>> = keys()
        .iter()
        .map(|(ns, n)| {
            Arc::new(DeserializeGuard(Ok(serde_json::from_value(resource(
                ns, n, None,
            ))
            .unwrap())))
        })
        .collect();
    let cluster = Arc::new(Mutex::new(Cluster {
        writers: BTreeMap::new(),
        statuses: BTreeMap::new(),
        requests: 0,
    }));
    let (ctx, writers) = context(serve(cluster.clone()));
    cluster.lock().unwrap().writers = writers;
    let cpu = cpu_seconds();
    let wall = Instant::now();
    runtime.block_on(reconcile_all(&ctx, &fresh));
    let cold_wall = wall.elapsed();
    let cold_cpu = cpu_seconds() - cpu;
    let cold_requests = cluster.lock().unwrap().requests;

    // Steady state: each resource as the API server now holds it, reconciled at two resyncs.
    let settled: Vec<Arc<Watched>> = {
        let c = cluster.lock().unwrap();
        keys()
            .iter()
            .map(|(ns, n)| {
                let status = c.statuses.get(&format!("{ns}/{n}")).cloned();
                Arc::new(DeserializeGuard(Ok(serde_json::from_value(resource(
                    ns, n, status,
                ))
                .unwrap())))
            })
            .collect()
    };
    let before = cluster.lock().unwrap().requests;
    let cpu = cpu_seconds();
    for _resync in 0..2 {
        runtime.block_on(reconcile_all(&ctx, &settled));
    }
    let steady_cpu = (cpu_seconds() - cpu) / (2 * resources) as f64;
    let steady_requests = cluster.lock().unwrap().requests - before;
    assert_eq!(steady_requests, 0, "a steady-state reconcile sends nothing");

    let mut group = c.benchmark_group(format!("reconcile_{resources}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("steady_state", |b| {
        b.iter(|| runtime.block_on(reconcile_all(&ctx, &settled)))
    });
    group.finish();

    println!(
        "\n{resources} resources in {NAMESPACES} namespaces, {pods} unrelated pods cached (in process):\n\
         cold: all reconciled in {:.2} s wall, {:.2} s CPU ({:.2} ms per reconcile), {:.1} requests per reconcile\n\
         steady state, two resyncs: {steady_requests} requests, {:.2} ms CPU per reconcile",
        cold_wall.as_secs_f64(),
        cold_cpu,
        cold_cpu * 1e3 / resources as f64,
        cold_requests as f64 / resources as f64,
        steady_cpu * 1e3,
    );
    operator_process();
}

criterion_group!(benches, bench);
criterion_main!(benches);
