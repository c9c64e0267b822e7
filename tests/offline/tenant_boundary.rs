//! The tenant boundary at run time: query credentials go only to allowed URLs, nothing a
//! query API answers reaches status, and resources that cannot be handled (200 stages, an
//! interval past the clock) leave every other resource's health checks running. A loopback
//! "capture" server stands in for an address a resource's author chose.

use infmon_devkit::mock_api;

use crate::controller_health::Healthy;

use std::sync::{Arc, Mutex, RwLock};

use infmon::api::InferenceMonitoring;
use infmon::controller::dereference::{Dereferenced, resolve_once};
use infmon::controller::health_loop::{HealthLoop, prometheus_backends};
use infmon::controller::metrics::Metrics;
use infmon::controller::{Config, Context};
use infmon::discovery::Discovered;
use infmon::health::MetricsBackend;
use infmon::render::ChildKind;
use infmon::validate::{Allowed, Policy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use mock_api::{Exchange, Expect, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the capture server answers: a query-API error whose message is text a reader of
/// status must never see.
const LEAKED: &str = "CAPTURED-BODY: internal-service-response";
/// The token in the resource's Secret.
const TOKEN: &str = "s3cret-token-value";

/// Records every request it receives and answers each with a JSON error carrying [`LEAKED`].
async fn capture_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request).to_string());
                let body = json!({"status": "error", "errorType": "bad_data", "error": LEAKED})
                    .to_string();
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// An applied resource `ai/<name>` with `prometheus` as its spec.prometheus, read as the
/// operator reads stored objects (no schema check on the way in).
fn resource(name: &str, prometheus: Value, metrics: Option<Value>) -> InferenceMonitoring {
    let mut spec = json!({"engine": "vllm", "selector": {"matchLabels": {"app": name}},
                          "prometheus": prometheus});
    if let Some(metrics) = metrics {
        spec["metrics"] = metrics;
    }
    serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
        "metadata": {"name": name, "namespace": "ai", "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn context(client: kube::Client, policy: Policy) -> Context {
    Context::new(
        client,
        Config {
            default_prometheus_url: Some("http://prometheus.test:9090".into()),
            policy,
            ..Config::default()
        },
        Arc::new(RwLock::new(Discovered {
            served: ChildKind::ALL.into_iter().collect(),
            ..Discovered::default()
        })),
        Arc::new(Metrics::default()),
        Arc::new(|| Time(Timestamp::from_second(1_700_000_000).unwrap())),
    )
}

/// What the reconcile remembers for `resources` (those that resolve under the context's
/// policy), in a cluster without the Prometheus Operator: the health loop checks only these.
fn remember(ctx: &Context, resources: &[Arc<InferenceMonitoring>]) {
    let found = Dereferenced {
        served: ChildKind::ALL
            .into_iter()
            .filter(|k| !k.is_optional_api())
            .collect(),
        prometheuses: Vec::new(),
        namespace_labels: Default::default(),
        detected: None,
        existing_dcgm_exporter: false,
        other_consumers: Vec::new(),
    };
    for resource in resources {
        if let Ok(resolved) = resolve_once(resource, &found, &ctx.config) {
            let key = resolved.validated.key();
            ctx.remember(&key, resolved);
        }
    }
}

fn with_token(url: &str) -> Value {
    json!({"url": url, "auth": {"bearerToken": {"name": "prom-token", "key": "token"}}})
}

#[tokio::test]
async fn a_secret_is_never_read_or_sent_for_a_url_outside_the_allowlist() {
    let (url, seen) = capture_server().await;
    let (client, handle) = mock_api::client();
    // Only the operator's own URL is allowed.
    let ctx = context(
        client,
        Policy {
            prometheus_urls: Allowed::from_list(Vec::<String>::new()),
            ..Policy::default()
        },
    );
    // No Secret read, no status write: the scripted API server fails on any request.
    let server = tokio::spawn(serve(handle, Vec::new()));
    let mut health = HealthLoop::new(prometheus_backends());
    let resources = [Arc::new(resource("tenant", with_token(&url), None))];
    remember(&ctx, &resources);
    assert_eq!(health.cycle(&ctx).await, 0);
    server.await.unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "the capture server was contacted: {:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn status_carries_no_response_body_from_the_query_api() {
    let (url, seen) = capture_server().await;
    let (client, handle) = mock_api::client();
    let ctx = context(
        client,
        Policy {
            prometheus_urls: Allowed::from_list([url.clone()]),
            ..Policy::default()
        },
    );
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "prom-token", "namespace": "ai"},
        "data": {"token": "czNjcmV0LXRva2VuLXZhbHVl"},
    });
    // The health loop reads the Secret and writes nothing: its verdict goes to the status
    // through the reconcile.
    let script = vec![Exchange::new(
        "GET",
        "/api/v1/namespaces/ai/secrets/prom-token",
        secret,
    )];
    let server = tokio::spawn(serve(handle, script));
    let mut health = HealthLoop::new(prometheus_backends());
    let resources = [Arc::new(resource("tenant", with_token(&url), None))];
    remember(&ctx, &resources);
    assert_eq!(health.cycle(&ctx).await, 1);
    server.await.unwrap();

    let verdict = ctx.verdict("ai/tenant").expect("a verdict");
    let status = format!(
        "TargetsHealthy {} {} {:?}",
        verdict.diagnosis.reason.as_str(),
        verdict.diagnosis.message,
        verdict.targets_status()
    );
    assert!(status.contains("TargetsHealthy"), "{status}");
    assert!(
        !status.contains("CAPTURED-BODY"),
        "status carries the body: {status}"
    );
    assert!(!status.contains("internal-service-response"), "{status}");
    assert!(!status.contains(TOKEN), "{status}");
    // The allowed URL did get the credentials: the boundary is the allowlist, not luck.
    let requests = seen.lock().unwrap().join("\n");
    assert!(
        requests.contains(&format!("authorization: Bearer {TOKEN}"))
            || requests.contains(&format!("Authorization: Bearer {TOKEN}")),
        "{requests}"
    );
}

#[tokio::test]
async fn resources_past_the_limits_leave_the_other_health_checks_running() {
    let stages: Vec<Value> = (0..200)
        .map(|i| json!({"name": format!("stage_{i}_seconds"), "type": "histogram", "title": format!("s{i}")}))
        .collect();
    let url = json!({"url": "http://prometheus.test:9090"});
    let mut forever = url.clone();
    forever["healthCheckInterval"] = json!("100000000h");
    let resources = [
        Arc::new(resource(
            "many-stages",
            url.clone(),
            Some(json!({"stages": stages})),
        )),
        Arc::new(resource("forever", forever, None)),
        Arc::new(resource("llm", url, None)),
    ];
    let (client, handle) = mock_api::client();
    let ctx = context(client, Policy::default());
    let server = tokio::spawn(serve(handle, Vec::new()));
    let backend = Arc::new(Healthy {
        queries: Mutex::default(),
    });
    let mut health = HealthLoop::new(Arc::new(move |_url: &str, _credentials: &_| {
        Ok(backend.clone() as Arc<dyn MetricsBackend>)
    }));
    remember(&ctx, &resources);
    // Twice: the second cycle must also survive (nothing is due, nothing panics).
    assert_eq!(health.cycle(&ctx).await, 1);
    assert_eq!(health.cycle(&ctx).await, 0);
    server.await.unwrap();
    assert_eq!(
        ctx.verdict("ai/llm")
            .expect("llm was checked")
            .targets_status()
            .summary,
        "1/1"
    );
}

fn infmon(args: &[&str], document: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resource.yaml");
    std::fs::write(&file, document).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args(args)
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn document(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: monitoring.inference.dev/v1alpha1\nkind: InferenceMonitoring\nmetadata:\n  name: {name}\n  namespace: team-a\nspec:\n{spec}"
    )
}

#[test]
fn a_resource_outside_the_policy_is_rejected_naming_the_field_and_the_setting() {
    let writes_elsewhere = document(
        "vllm",
        "  engine: vllm\n  selector: {matchLabels: {app: vllm}}\n  dashboards: {namespace: kube-system}\n",
    );
    for command in ["validate", "render"] {
        let (code, text) = infmon(
            &[command, "--dashboard-namespaces", "monitoring"],
            &writes_elsewhere,
        );
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains("spec.dashboards.namespace: \"kube-system\" is not allowed"),
            "{text}"
        );
        assert!(text.contains("--dashboard-namespaces"), "{text}");
    }
    // Without policy flags (offline), and into an allowed namespace, it is fine.
    assert_eq!(infmon(&["validate"], &writes_elsewhere).0, Some(0));

    let metadata_endpoint = document(
        "vllm",
        "  engine: vllm\n  selector: {matchLabels: {app: vllm}}\n  prometheus:\n    url: http://169.254.169.254/latest\n    auth: {bearerToken: {name: t, key: token}}\n",
    );
    let (code, text) = infmon(
        &[
            "validate",
            "--allowed-prometheus-urls",
            "http://thanos:9090",
        ],
        &metadata_endpoint,
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("spec.prometheus.url: \"http://169.254.169.254/latest\" is not allowed"),
        "{text}"
    );
    assert!(text.contains("--allowed-prometheus-urls"), "{text}");
}

#[test]
fn every_accepted_name_gives_valid_child_names() {
    let longest = ["a", "b", "c"].map(|c| c.repeat(63)).join(".");
    for name in ["1vllm", "a.b", &longest] {
        let spec = "  engine: vllm\n  selector: {matchLabels: {app: vllm}}\n  gpu: {dcgmExporter: {enabled: true}}\n";
        let (code, text) = infmon(&["render"], &document(name, spec));
        assert_eq!(code, Some(0), "{name}: {text}");
        let mut names = 0;
        for child in serde_yaml::Deserializer::from_str(&text) {
            let child: Value = serde::Deserialize::deserialize(child).unwrap();
            let child_name = child["metadata"]["name"].as_str().unwrap();
            // A DNS-1035 label: what a Service needs, and valid for every other kind.
            let valid = child_name.len() <= 63
                && child_name.starts_with(|c: char| c.is_ascii_lowercase())
                && !child_name.ends_with('-')
                && child_name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            assert!(valid, "{name}: {} {child_name:?}", child["kind"]);
            names += 1;
        }
        assert!(names >= 4, "{name}: {text}");
    }
}

#[test]
fn long_non_ascii_names_are_rejected_not_a_crash() {
    let spec = "  engine: vllm\n  selector: {matchLabels: {app: vllm}}\n";
    let (code, text) = infmon(&["render"], &document(&"é".repeat(60), spec));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("metadata.name"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test]
async fn an_undecodable_resource_is_skipped_and_the_others_still_decode() {
    use infmon::controller::Watched as Guarded;
    use infmon::controller::runner::reconcile_contained;
    use kube::core::ObjectList;
    use kube::runtime::controller::Action;

    let good = serde_json::to_value(resource("good", json!({}), None)).unwrap();
    let mut bad = serde_json::to_value(resource("bad", json!({}), None)).unwrap();
    bad["spec"]["alerts"] = json!({"ttftP95Seconds": "fast"});
    let list: ObjectList<Guarded> = serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1",
        "kind": "InferenceMonitoringList",
        "metadata": {"resourceVersion": "1"},
        "items": [bad, good],
    }))
    .expect("one bad item does not fail the list");
    assert!(list.items[0].0.is_err());
    assert_eq!(
        list.items[1].0.as_ref().unwrap().metadata.name.as_deref(),
        Some("good")
    );

    // Reconciling the undecodable one only reports it (one Warning Event) and waits for a
    // change.
    let (client, handle) = mock_api::client();
    let ctx = Arc::new(context(client, Policy::default()));
    let event = Exchange::echo(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/ai/events?",
        Expect::Check(Box::new(|body| {
            assert_eq!(body["type"], "Warning", "{body}");
            assert_eq!(body["regarding"]["name"], "bad", "{body}");
        })),
    );
    let server = tokio::spawn(serve(handle, vec![event]));
    let bad = Arc::new(list.items.into_iter().next().unwrap());
    assert_eq!(
        reconcile_contained(bad, ctx).await.unwrap(),
        Action::await_change()
    );
    server.await.unwrap();
}
