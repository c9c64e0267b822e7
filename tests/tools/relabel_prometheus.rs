//! The raw scrape config's relabel rules, run by a real Prometheus. Debian's Prometheus has no
//! Kubernetes discovery, so each job's `kubernetes_sd_configs` is swapped for
//! `file_sd_configs` whose target groups carry the `__meta_kubernetes_*` labels pod discovery
//! would produce; everything else in the rendered jobs is used unchanged. The test asserts
//! through `/api/v1/targets` exactly which pods are kept and with which labels.

use infmon_devkit as support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use infmon::render::scrape::RAW_SCRAPE_CONFIG_KEY;
use infmon::render::{Child, ChildKind, render_all, render_shared};
use infmon::validate::{ClusterFacts, GpuExporterSettings, Validated, resolve, validate_document};
use k8s_openapi::ByteString;
use serde_json::{Value, json};
use support::exporter::Exporter;
use support::prometheus::{POLL, Prometheus};

/// Four file_sd targets take one discovery refresh plus Prometheus' ~5.5 s target sync to be
/// scraped; on a loaded machine more. Polling returns as soon as they are up.
const ALL_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// A golden input, resolved offline.
fn resolved(input: &str) -> Validated {
    let text = std::fs::read_to_string(support::repo_path(input)).expect("input");
    let value: Value = serde_yaml::from_str(&text).expect("YAML");
    let resource = validate_document(&value).expect("valid input");
    resolve(&resource, &ClusterFacts::assumed_offline()).expect("resolves")
}

/// The `scrape_configs` list in the raw scrape-config Secret among `children`.
fn raw_jobs(children: &[Child]) -> Vec<Value> {
    let secret = children
        .iter()
        .find(|c| c.kind == ChildKind::Secret)
        .expect("a raw scrape config Secret");
    let bytes: ByteString =
        serde_json::from_value(secret.object["data"][RAW_SCRAPE_CONFIG_KEY].clone())
            .expect("base64 data");
    serde_yaml::from_slice(&bytes.0).expect("a YAML list of scrape configs")
}

/// One discovered container port of a pod, as Kubernetes pod discovery labels it.
struct Pod {
    namespace: &'static str,
    name: &'static str,
    phase: &'static str,
    init: bool,
    labels: &'static [(&'static str, &'static str)],
    port_name: &'static str,
    port_number: u16,
}

impl Pod {
    fn running(
        namespace: &'static str,
        name: &'static str,
        labels: &'static [(&'static str, &'static str)],
        port_name: &'static str,
        port_number: u16,
    ) -> Self {
        Pod {
            namespace,
            name,
            phase: "Running",
            init: false,
            labels,
            port_name,
            port_number,
        }
    }

    /// A file_sd target group at `address`.
    fn group(&self, address: &str) -> Value {
        let mut labels = BTreeMap::from([
            (
                "__meta_kubernetes_namespace".to_string(),
                self.namespace.to_string(),
            ),
            (
                "__meta_kubernetes_pod_name".to_string(),
                self.name.to_string(),
            ),
            (
                "__meta_kubernetes_pod_ip".to_string(),
                "127.0.0.1".to_string(),
            ),
            (
                "__meta_kubernetes_pod_phase".to_string(),
                self.phase.to_string(),
            ),
            (
                "__meta_kubernetes_pod_container_name".to_string(),
                "server".to_string(),
            ),
            (
                "__meta_kubernetes_pod_container_init".to_string(),
                self.init.to_string(),
            ),
            (
                "__meta_kubernetes_pod_container_port_name".to_string(),
                self.port_name.to_string(),
            ),
            (
                "__meta_kubernetes_pod_container_port_number".to_string(),
                self.port_number.to_string(),
            ),
            (
                "__meta_kubernetes_pod_container_port_protocol".to_string(),
                "TCP".to_string(),
            ),
        ]);
        for (key, value) in self.labels {
            let name = infmon::render::relabel::sanitize_label_name(key);
            labels.insert(
                format!("__meta_kubernetes_pod_label_{name}"),
                value.to_string(),
            );
            labels.insert(
                format!("__meta_kubernetes_pod_labelpresent_{name}"),
                "true".into(),
            );
        }
        json!({"targets": [address], "labels": labels})
    }
}

const SELECTED: &[(&str, &str)] = &[
    ("app.kubernetes.io/name", "vllm"),
    ("tier", "prod"),
    ("gpu", ""),
];
const CANARY: &[(&str, &str)] = &[
    ("app.kubernetes.io/name", "vllm"),
    ("tier", "canary"),
    ("track", "live"),
    ("gpu", "a100"),
];

/// A free loopback address nothing listens on (dropped targets are never scraped).
fn unused_address(n: u16) -> String {
    format!("127.0.0.2:{}", 20000 + n)
}

fn metric_body(text: &'static str) -> impl Fn(u64) -> String + Send + Sync + 'static {
    move |_| text.to_string()
}

/// Replaces `kubernetes_sd_configs` by a file_sd list of `groups` in `dir`.
fn swap_discovery(job: &mut Value, dir: &Path, groups: &[Value]) {
    let name = job["job_name"].as_str().unwrap().replace('/', "_");
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(groups).unwrap()).unwrap();
    let object = job.as_object_mut().unwrap();
    assert!(
        object.remove("kubernetes_sd_configs").is_some(),
        "the rendered job uses Kubernetes discovery"
    );
    object.insert(
        "file_sd_configs".into(),
        json!([{"files": [file], "refresh_interval": "1s"}]),
    );
}

fn active(prometheus: &Prometheus, job: &str) -> Vec<Value> {
    let mut targets: Vec<Value> = prometheus
        .active_targets()
        .into_iter()
        .filter(|t| t["labels"]["job"] == job)
        .collect();
    targets.sort_by_key(|t| t["scrapeUrl"].as_str().unwrap_or_default().to_string());
    targets
}

fn labels_of(target: &Value) -> Value {
    target["labels"].clone()
}

#[test]
fn relabel_rules_keep_exactly_the_selected_pods_and_ports() {
    let kept_a = Exporter::start(metric_body("vllm:num_requests_running 1\n"));
    let kept_b = Exporter::start(metric_body("vllm:num_requests_running 2\n"));
    let sglang = Exporter::start(metric_body("sglang:num_running_reqs 3\n"));
    let dcgm = Exporter::start(metric_body(
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",namespace=\"llm\",pod=\"keep-a\",container=\"server\"} 42\n",
    ));

    let chat_pods: Vec<(Pod, String)> = vec![
        (
            Pod::running("llm", "keep-a", SELECTED, "http", 8000),
            kept_a.addr(),
        ),
        (
            Pod::running("llm-b", "keep-b", CANARY, "http", 8000),
            kept_b.addr(),
        ),
        // The same selected pod's other port.
        (
            Pod::running("llm", "keep-a", SELECTED, "grpc", 9000),
            unused_address(1),
        ),
        (
            Pod::running("other", "other-ns", SELECTED, "http", 8000),
            unused_address(2),
        ),
        (
            Pod {
                phase: "Pending",
                ..Pod::running("llm", "pending", SELECTED, "http", 8000)
            },
            unused_address(3),
        ),
        (
            Pod {
                init: true,
                ..Pod::running("llm", "init", SELECTED, "http", 8000)
            },
            unused_address(4),
        ),
        (
            Pod::running(
                "llm",
                "shadow",
                &[
                    ("app.kubernetes.io/name", "vllm"),
                    ("tier", "prod"),
                    ("gpu", ""),
                    ("track", "shadow"),
                ],
                "http",
                8000,
            ),
            unused_address(5),
        ),
        (
            Pod::running(
                "llm",
                "paused",
                &[
                    ("app.kubernetes.io/name", "vllm"),
                    ("tier", "prod"),
                    ("gpu", ""),
                    ("paused", ""),
                ],
                "http",
                8000,
            ),
            unused_address(6),
        ),
        (
            Pod::running(
                "llm",
                "no-gpu",
                &[("app.kubernetes.io/name", "vllm"), ("tier", "prod")],
                "http",
                8000,
            ),
            unused_address(7),
        ),
        (
            Pod::running(
                "llm",
                "dev",
                &[
                    ("app.kubernetes.io/name", "vllm"),
                    ("tier", "dev"),
                    ("gpu", ""),
                ],
                "http",
                8000,
            ),
            unused_address(8),
        ),
        (
            Pod::running(
                "llm",
                "no-tier",
                &[("app.kubernetes.io/name", "vllm"), ("gpu", "")],
                "http",
                8000,
            ),
            unused_address(9),
        ),
        (
            Pod::running(
                "llm",
                "tgi",
                &[
                    ("app.kubernetes.io/name", "tgi"),
                    ("tier", "prod"),
                    ("gpu", ""),
                ],
                "http",
                8000,
            ),
            unused_address(10),
        ),
    ];
    // infmon's shared exporter, in the operator's exporter namespace.
    let dcgm_labels: &'static [(&'static str, &'static str)] = &[
        ("app.kubernetes.io/component", "dcgm-exporter"),
        ("app.kubernetes.io/managed-by", "infmon"),
        ("app.kubernetes.io/name", "infmon"),
        ("monitoring.inference.dev/shared", "true"),
    ];
    let dcgm_pods: Vec<(Pod, String)> = vec![
        (
            Pod::running("gpu-monitoring", "dcgm-x", dcgm_labels, "metrics", 9400),
            dcgm.addr(),
        ),
        (
            Pod::running("llm", "dcgm-elsewhere", dcgm_labels, "metrics", 9400),
            unused_address(11),
        ),
    ];
    let sgl_pods: Vec<(Pod, String)> = vec![
        // Any namespace, port by number, unnamed port.
        (
            Pod::running("anywhere", "sgl-0", &[("app", "sglang")], "", 30000),
            sglang.addr(),
        ),
        (
            Pod::running("anywhere", "sgl-0", &[("app", "sglang")], "", 8080),
            unused_address(12),
        ),
        (
            Pod::running("anywhere", "other", &[("app", "vllm")], "", 30000),
            unused_address(13),
        ),
    ];

    let chat = resolved("tests/golden/inputs/raw-scrape-config.yaml");
    let mut jobs = raw_jobs(&render_all(&chat).expect("renders"));
    assert_eq!(jobs.len(), 1, "the inference job");
    let exporter = GpuExporterSettings {
        namespace: "gpu-monitoring".into(),
        ..GpuExporterSettings::default()
    };
    let shared = render_shared(std::slice::from_ref(&chat), &exporter).expect("renders");
    jobs.extend(raw_jobs(&shared));
    assert_eq!(jobs.len(), 2, "and the shared exporter's job");
    jobs.extend(raw_jobs(
        &render_all(&resolved(
            "tests/golden/inputs/raw-scrape-config-port-number.yaml",
        ))
        .expect("renders"),
    ));
    let prometheus = Prometheus::start_with(|dir| {
        let groups = |pods: &[(Pod, String)]| -> Vec<Value> {
            pods.iter()
                .map(|(pod, address)| pod.group(address))
                .collect()
        };
        swap_discovery(&mut jobs[0], dir, &groups(&chat_pods));
        swap_discovery(&mut jobs[1], dir, &groups(&dcgm_pods));
        swap_discovery(&mut jobs[2], dir, &groups(&sgl_pods));
        let config = serde_yaml::to_string(&json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": jobs,
        }))
        .unwrap();
        support::promtool::check_config(&config)
            .unwrap_or_else(|err| panic!("promtool rejects the rendered jobs: {err}"));
        config
    });

    let up = prometheus.wait_until(ALL_UP_TIMEOUT, POLL, |p| {
        let targets = p.active_targets();
        targets.len() == 4 && targets.iter().all(|t| t["health"] == "up")
    });
    assert!(
        up,
        "expected 4 targets up; targets: {:#}",
        prometheus.targets()
    );

    let chat = active(&prometheus, "llm/chat");
    let mut urls: Vec<String> = chat
        .iter()
        .map(|t| t["scrapeUrl"].as_str().unwrap().to_string())
        .collect();
    urls.sort();
    let mut expected = vec![kept_a.url(), kept_b.url()];
    expected.sort();
    assert_eq!(urls, expected, "only keep-a:http and keep-b:http are kept");
    let a = chat
        .iter()
        .find(|t| t["scrapeUrl"] == kept_a.url())
        .unwrap();
    assert_eq!(
        labels_of(a),
        json!({
            "container": "server",
            "inference_engine": "vllm",
            "inference_monitoring": "llm/chat",
            "instance": kept_a.addr(),
            "job": "llm/chat",
            "namespace": "llm",
            "pod": "keep-a",
        })
    );
    let b = chat
        .iter()
        .find(|t| t["scrapeUrl"] == kept_b.url())
        .unwrap();
    assert_eq!(b["labels"]["namespace"], "llm-b");
    assert_eq!(b["labels"]["pod"], "keep-b");

    let dropped = prometheus.targets()["droppedTargets"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(dropped, 10 + 1 + 2, "every other pod and port is dropped");

    let dcgm_targets = active(&prometheus, "gpu-monitoring/infmon-dcgm-exporter");
    assert_eq!(dcgm_targets.len(), 1);
    assert_eq!(dcgm_targets[0]["scrapeUrl"], dcgm.url());
    assert_eq!(dcgm_targets[0]["labels"]["pod"], "dcgm-x");
    // One exporter serves every resource: its target belongs to none of them.
    assert!(
        dcgm_targets[0]["labels"]
            .get("inference_monitoring")
            .is_none()
    );

    let sgl = active(&prometheus, "llm/sgl");
    assert_eq!(sgl.len(), 1);
    assert_eq!(
        labels_of(&sgl[0]),
        json!({
            "container": "server",
            "inference_engine": "sglang",
            "inference_monitoring": "llm/sgl",
            "instance": sglang.addr(),
            "job": "llm/sgl",
            "namespace": "anywhere",
            "pod": "sgl-0",
        })
    );

    // honor_labels on the DCGM job: the series keeps the GPU workload's pod, not the exporter's.
    let gpu = prometheus.query_values("DCGM_FI_DEV_GPU_UTIL");
    assert_eq!(gpu.len(), 1, "{gpu:?}");
    assert_eq!(gpu[0].0["pod"], "keep-a");
    assert_eq!(gpu[0].0["namespace"], "llm");
    assert!(gpu[0].0.get("exported_pod").is_none());
    assert_eq!(gpu[0].1, 42.0);
}
