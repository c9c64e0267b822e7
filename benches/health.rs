//! One health check cycle for 200 resources and 1,000 targets, against a loopback stub of the
//! Prometheus HTTP API that serves realistic answers (every field a real Prometheus 2.x
//! returns, 5% of the targets down), and the pure part of the cycle on its own.

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use infmon::health::{
    Credentials, HealthTarget, PrometheusBackend, Sample, ScrapeHealth, Snapshot, Target,
    check_all, diagnose,
};
use infmon::validate::{ClusterFacts, resolve, validate_document};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

const RESOURCES: usize = 200;
const TARGETS_PER_RESOURCE: usize = 5;

fn engine(resource: usize) -> &'static str {
    ["vllm", "sglang", "tgi", "triton"][resource % 4]
}

fn core_metric(resource: usize) -> &'static str {
    [
        "vllm:num_requests_running",
        "sglang:num_running_reqs",
        "tgi_request_count",
        "nv_inference_request_success",
    ][resource % 4]
}

fn instance(resource: usize, target: usize) -> String {
    format!(
        "10.{}.{}.{}:8000",
        resource / 250,
        resource % 250,
        target + 10
    )
}

fn is_down(resource: usize, target: usize) -> bool {
    (resource * TARGETS_PER_RESOURCE + target).is_multiple_of(20)
}

fn labels(resource: usize, target: usize) -> Value {
    json!({
        "inference_monitoring": format!("bench/r{resource}"),
        "inference_engine": engine(resource),
        "instance": instance(resource, target),
        "job": format!("bench/r{resource}"),
        "namespace": "bench",
        "pod": format!("r{resource}-{target}"),
    })
}

fn every_target() -> impl Iterator<Item = (usize, usize)> {
    (0..RESOURCES).flat_map(|r| (0..TARGETS_PER_RESOURCE).map(move |t| (r, t)))
}

fn up_answer() -> String {
    let result: Vec<Value> = every_target()
        .map(|(r, t)| {
            let mut metric = labels(r, t);
            metric["__name__"] = "up".into();
            json!({"metric": metric, "value": [1_763_800_000.123, if is_down(r, t) { "0" } else { "1" }]})
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}}).to_string()
}

fn core_answer() -> String {
    let result: Vec<Value> = every_target()
        .filter(|&(r, t)| !is_down(r, t))
        .map(|(r, t)| {
            json!({"metric": {
                "__name__": core_metric(r),
                "inference_monitoring": format!("bench/r{r}"),
                "instance": instance(r, t),
            }, "value": [1_763_800_000.123, "1"]})
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}}).to_string()
}

fn targets_answer() -> String {
    let active: Vec<Value> = every_target()
        .map(|(r, t)| {
            let url = format!("http://{}/metrics", instance(r, t));
            json!({
                "discoveredLabels": {
                    "__address__": instance(r, t),
                    "__metrics_path__": "/metrics",
                    "__scheme__": "http",
                    "__scrape_interval__": "15s",
                    "__scrape_timeout__": "10s",
                    "job": format!("bench/r{r}"),
                },
                "labels": labels(r, t),
                "scrapePool": format!("bench/r{r}"),
                "scrapeUrl": url,
                "globalUrl": url,
                "lastError": if is_down(r, t) {
                    format!("Get \"{url}\": dial tcp {}: connect: connection refused", instance(r, t))
                } else {
                    String::new()
                },
                "lastScrape": "2026-11-22T16:00:00.123456789Z",
                "lastScrapeDuration": 0.002_345,
                "health": if is_down(r, t) { "down" } else { "up" },
                "scrapeInterval": "15s",
                "scrapeTimeout": "10s",
            })
        })
        .collect();
    json!({"status": "success", "data": {"activeTargets": active, "droppedTargets": []}})
        .to_string()
}

/// Starts the stub on a free loopback port in a background thread; returns its URL.
fn start_stub() -> String {
    let (up, core, targets) = (up_answer(), core_answer(), targets_answer());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/api/v1/query",
                    get(move |RawQuery(query): RawQuery| async move {
                        let is_up = query.unwrap_or_default().starts_with("query=up");
                        (
                            [(CONTENT_TYPE, "application/json")],
                            if is_up { up } else { core },
                        )
                    }),
                )
                .route(
                    "/api/v1/targets",
                    get(move || async move { ([(CONTENT_TYPE, "application/json")], targets) }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

fn health_targets() -> Vec<HealthTarget> {
    (0..RESOURCES)
        .map(|r| {
            let addresses: Vec<String> = (0..TARGETS_PER_RESOURCE)
                .map(|t| format!("'{}'", instance(r, t)))
                .collect();
            let yaml = format!(
                "apiVersion: monitoring.inference.dev/v1alpha1\nkind: InferenceMonitoring\n\
                 metadata: {{name: r{r}, namespace: bench}}\n\
                 spec: {{engine: {}, staticTargets: [{}]}}\n",
                engine(r),
                addresses.join(", ")
            );
            let value: Value = serde_yaml::from_str(&yaml).unwrap();
            let resource = validate_document(&value).unwrap();
            let validated = resolve(&resource, &ClusterFacts::assumed_offline()).unwrap();
            HealthTarget::from_validated(&validated, None)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let targets = health_targets();
    let url = start_stub();
    let backend =
        PrometheusBackend::new(&url, &Credentials::default(), Duration::from_secs(10)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = Time(Timestamp::from_second(1_763_800_000).unwrap());

    // The stub answers as expected: 5% of the targets down, everything else healthy.
    let reports = runtime.block_on(check_all(&backend, &targets, now.clone()));
    let down = reports.iter().map(|r| r.observation.down).sum::<u32>();
    let total = reports.iter().map(|r| r.observation.total).sum::<u32>();
    assert_eq!((down, total), (50, 1000));

    c.bench_function(
        "check cycle: 200 resources, 1000 targets, loopback HTTP",
        |b| b.iter(|| black_box(runtime.block_on(check_all(&backend, &targets, now.clone())))),
    );

    let (up, active, core) = parsed_answers();
    c.bench_function("diagnosis only: 200 resources, 1000 targets", |b| {
        b.iter(|| {
            let snapshot = Snapshot::new(up.clone(), Some(active.clone()), core.clone());
            let diagnoses: Vec<_> = targets
                .iter()
                .map(|t| diagnose(t, &snapshot.observe(t)))
                .collect();
            black_box(diagnoses)
        })
    });
}

/// The stub's answers as the backend returns them.
fn parsed_answers() -> (Vec<Sample>, Vec<Target>, Vec<Sample>) {
    let to_labels = |v: &Value| {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    };
    let samples = |answer: String| -> Vec<Sample> {
        let v: Value = serde_json::from_str(&answer).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Sample {
                labels: to_labels(&s["metric"]),
                value: s["value"][1].as_str().unwrap().parse().unwrap(),
            })
            .collect()
    };
    let v: Value = serde_json::from_str(&targets_answer()).unwrap();
    let active = v["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Target {
            labels: to_labels(&t["labels"]),
            scrape_url: t["scrapeUrl"].as_str().unwrap().to_string(),
            health: if t["health"] == "up" {
                ScrapeHealth::Up
            } else {
                ScrapeHealth::Down
            },
            last_error: t["lastError"].as_str().unwrap().to_string(),
        })
        .collect();
    (samples(up_answer()), active, samples(core_answer()))
}

criterion_group!(benches, bench);
criterion_main!(benches);
