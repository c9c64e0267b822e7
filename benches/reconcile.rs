//! Reconciling 1,000 InferenceMonitorings against an in-memory API server (a tower mock
//! service that stores what is applied): the first reconcile of each (creates every child
//! and the status) and the steady state (everything already as desired: lists only, zero
//! writes). Prints CPU time per reconcile and peak memory after the criterion runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use infmon::api::InferenceMonitoring;
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context, FINALIZER, reconcile};
use infmon::discovery::{Discovered, PrometheusSelectors};
use infmon::render::ChildKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RESOURCES: usize = 1_000;

/// An API server that keeps applied objects and statuses in memory.
#[derive(Default)]
struct Store {
    /// (plural, owner name, namespace, name) → object: a list by owner is a range scan.
    objects: BTreeMap<(String, String, String, String), Value>,
    /// (plural, namespace, name) → owner name, for reads by name.
    owners: BTreeMap<(String, String, String), String>,
    /// Resource name → status.
    statuses: BTreeMap<String, Value>,
    writes: usize,
}

fn split(path: &str) -> (Vec<&str>, Option<&str>) {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    (path.trim_start_matches('/').split('/').collect(), query)
}

fn owner_of(query: Option<&str>) -> Option<String> {
    let marker = "owner-name%3D";
    let q = query?;
    let start = q.find(marker)? + marker.len();
    Some(q[start..].split('&').next()?.to_string())
}

fn answer(
    store: &Mutex<Store>,
    method: &str,
    uri: &str,
    metadata_only: bool,
    body: Value,
) -> (u16, Value) {
    let (segments, query) = split(uri);
    let mut store = store.lock().unwrap();
    // /api/v1/... or /apis/group/version/...
    let rest: Vec<&str> = if segments[0] == "api" {
        segments[2..].to_vec()
    } else {
        segments[3..].to_vec()
    };
    match (method, rest.as_slice()) {
        ("GET", [plural]) => {
            let owner = owner_of(query).unwrap_or_default();
            let from = (
                plural.to_string(),
                owner.clone(),
                String::new(),
                String::new(),
            );
            let items: Vec<Value> = store
                .objects
                .range(from..)
                .take_while(|((p, o, _, _), _)| p == plural && *o == owner)
                .map(|(_, o)| {
                    if metadata_only {
                        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]})
                    } else {
                        o.clone()
                    }
                })
                .collect();
            (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
            )
        }
        ("GET", ["namespaces", ns, plural, name]) => {
            let by_name = (plural.to_string(), ns.to_string(), name.to_string());
            let found = store.owners.get(&by_name).and_then(|owner| {
                store.objects.get(&(
                    plural.to_string(),
                    owner.clone(),
                    ns.to_string(),
                    name.to_string(),
                ))
            });
            match found {
                Some(o) => (200, o.clone()),
                None => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404}),
                ),
            }
        }
        ("PATCH", ["namespaces", _, "inferencemonitorings", name, "status"]) => {
            store.writes += 1;
            store
                .statuses
                .insert(name.to_string(), body["status"].clone());
            (200, resource(name, None))
        }
        ("PATCH", ["namespaces", ns, plural, name]) => {
            store.writes += 1;
            let owner = body["metadata"]["labels"]["monitoring.inference.dev/owner-name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            store.owners.insert(
                (plural.to_string(), ns.to_string(), name.to_string()),
                owner.clone(),
            );
            store.objects.insert(
                (plural.to_string(), owner, ns.to_string(), name.to_string()),
                body.clone(),
            );
            (200, body)
        }
        ("POST", ["namespaces", _, "events"]) => {
            store.writes += 1;
            (201, body)
        }
        _ => panic!("unexpected {method} {uri}"),
    }
}

fn serve(store: Arc<Mutex<Store>>) -> kube::Client {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let metadata_only = request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("PartialObjectMetadata"));
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, reply) = answer(&store, &method, &uri, metadata_only, body);
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

fn resource(name: &str, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": name, "namespace": "ai", "uid": format!("uid-{name}"), "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": name}}},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

fn context(client: kube::Client) -> Arc<Context> {
    let kps = PrometheusSelectors::from_object(&json!({
        "metadata": {"namespace": "monitoring", "name": "kps"},
        "spec": {"podMonitorSelector": {"matchLabels": {"release": "kps"}}, "podMonitorNamespaceSelector": {},
                 "ruleSelector": {"matchLabels": {"release": "kps"}}, "ruleNamespaceSelector": {}},
    }))
    .unwrap();
    let discovered = Discovered {
        served: ChildKind::ALL.into_iter().collect(),
        prometheuses: vec![kps],
        existing_dcgm_exporter: None,
        other_consumers: Vec::new(),
    };
    Arc::new(Context::new(
        client,
        Config::default(),
        Arc::new(RwLock::new(discovered)),
        Arc::new(Metrics::default()),
        Arc::new(|| Time(Timestamp::from_second(1_700_000_000).unwrap())),
    ))
}

fn names() -> Vec<String> {
    (0..RESOURCES).map(|i| format!("llm-{i:04}")).collect()
}

async fn reconcile_all(ctx: &Arc<Context>, resources: &[Arc<InferenceMonitoring>]) {
    for r in resources {
        reconcile(r.clone(), ctx.clone())
            .await
            .expect("reconcile succeeds");
    }
}

fn cpu_seconds() -> f64 {
    // utime + stime (fields 14 and 15) of /proc/self/stat, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();

    // First reconciles: every child and status is created.
    let fresh: Vec<Arc<InferenceMonitoring>> = names()
        .iter()
        .map(|n| Arc::new(serde_json::from_value(resource(n, None)).unwrap()))
        .collect();
    let store = Arc::new(Mutex::new(Store::default()));
    let ctx = context(serve(store.clone()));
    let cpu = cpu_seconds();
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    runtime.block_on(reconcile_all(&ctx, &fresh));
    let first_cpu = (cpu_seconds() - cpu) / RESOURCES as f64;
    let first_peak = PEAK.load(Ordering::Relaxed) - base;
    let writes = store.lock().unwrap().writes;

    // Steady state: each resource as the API server now holds it.
    let settled: Vec<Arc<InferenceMonitoring>> = {
        let s = store.lock().unwrap();
        names()
            .iter()
            .map(|n| {
                Arc::new(serde_json::from_value(resource(n, s.statuses.get(n).cloned())).unwrap())
            })
            .collect()
    };
    let before = store.lock().unwrap().writes;
    let cpu = cpu_seconds();
    runtime.block_on(reconcile_all(&ctx, &settled));
    let steady_cpu = (cpu_seconds() - cpu) / RESOURCES as f64;
    assert_eq!(
        store.lock().unwrap().writes,
        before,
        "steady state must not write"
    );

    let mut group = c.benchmark_group("reconcile_1000");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(45));
    group.bench_function("steady_state", |b| {
        b.iter(|| runtime.block_on(reconcile_all(&ctx, &settled)))
    });
    group.finish();

    println!(
        "\n1,000 resources: first reconcile {:.2} ms CPU each ({} writes in total), steady state {:.2} ms CPU each (0 writes); heap peak during the first pass {:.1} MiB above baseline; process VmHWM {:.1} MiB",
        first_cpu * 1e3,
        writes,
        steady_cpu * 1e3,
        first_peak as f64 / (1024.0 * 1024.0),
        vm_hwm_kib() as f64 / 1024.0,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
