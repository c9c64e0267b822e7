//! Every diagnosis, produced by the real check cycle against an in-memory fake backend.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use infmon::api::{ConditionReason, ConditionType, Conditions};
use infmon::health::{
    BackendError, ConditionStatus, HealthReport, HealthTarget, MetricsBackend, Sample,
    ScrapeHealth, Target, check_all, core_metric_query, up_query,
};
use infmon::validate::{ClusterFacts, resolve, validate_document};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use pretty_assertions::assert_eq;

/// A backend answering from memory and recording every request.
#[derive(Default)]
struct FakeBackend {
    up: Vec<Sample>,
    targets: Option<Vec<Target>>,
    core: Vec<Sample>,
    unreachable: bool,
    requests: Mutex<Vec<String>>,
}

impl MetricsBackend for FakeBackend {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, BackendError>> {
        self.requests.lock().unwrap().push(promql.to_string());
        Box::pin(async move {
            if self.unreachable {
                return Err(BackendError::Unreachable {
                    url: "http://127.0.0.1:1".into(),
                    reason: "Connection refused (os error 111)".into(),
                });
            }
            // The `up` query, with the terms of `output: none` resources appended, or the
            // core-metric query.
            Ok(if promql.starts_with(&up_query()) {
                self.up.clone()
            } else {
                self.core.clone()
            })
        })
    }

    fn targets(&self) -> BoxFuture<'_, Result<Option<Vec<Target>>, BackendError>> {
        self.requests.lock().unwrap().push("targets".into());
        Box::pin(async move { Ok(self.targets.clone()) })
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn resource(yaml: &str) -> HealthTarget {
    resource_with_pods(yaml, None)
}

fn resource_with_pods(yaml: &str, pods: Option<usize>) -> HealthTarget {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let parsed = validate_document(&value).expect("valid resource");
    let validated = resolve(&parsed, &ClusterFacts::assumed_offline()).expect("resolves");
    HealthTarget::from_validated(&validated, pods)
}

const VLLM_STATIC: &str = "
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: chat, namespace: llm}
spec:
  engine: vllm
  staticTargets: ['10.0.0.1:8000', '10.0.0.2:8000']
";

const SGLANG_PODS: &str = "
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: sg, namespace: llm}
spec:
  engine: sglang
  selector: {matchLabels: {app: sglang}}
";

fn target(key: &str, instance: &str, health: ScrapeHealth, error: &str) -> Target {
    Target {
        labels: labels(&[
            ("inference_monitoring", key),
            ("inference_engine", "vllm"),
            ("instance", instance),
        ]),
        scrape_url: format!("http://{instance}/metrics"),
        health,
        last_error: error.into(),
    }
}

fn up(key: &str, instance: &str, value: f64) -> Sample {
    Sample {
        labels: labels(&[
            ("__name__", "up"),
            ("inference_monitoring", key),
            ("inference_engine", "vllm"),
            ("instance", instance),
        ]),
        value,
    }
}

fn core(key: &str, instance: &str, metric: &str) -> Sample {
    Sample {
        labels: labels(&[
            ("inference_monitoring", key),
            ("instance", instance),
            ("__name__", metric),
        ]),
        value: 1.0,
    }
}

fn at() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

fn check(backend: &FakeBackend, targets: &[HealthTarget]) -> Vec<HealthReport> {
    futures::executor::block_on(check_all(backend, targets, at()))
}

fn check_one(backend: &FakeBackend, target: HealthTarget) -> HealthReport {
    check(backend, &[target]).remove(0)
}

#[test]
fn all_targets_up_with_the_core_metric_is_healthy() {
    let key = "llm/chat";
    let backend = FakeBackend {
        targets: Some(vec![
            target(key, "10.0.0.1:8000", ScrapeHealth::Up, ""),
            target(key, "10.0.0.2:8000", ScrapeHealth::Up, ""),
        ]),
        core: vec![
            core(key, "10.0.0.1:8000", "vllm:num_requests_running"),
            core(key, "10.0.0.2:8000", "vllm:num_requests_running"),
        ],
        ..Default::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    assert_eq!(report.diagnosis.reason, ConditionReason::Healthy);
    assert_eq!(report.diagnosis.status, ConditionStatus::True);
    assert_eq!(
        report.diagnosis.message,
        "2/2 targets up; vllm:num_requests_running present"
    );
    assert_eq!(report.observation.core_metric_present, Some(true));
    let status = report.targets_status();
    assert_eq!((status.up, status.down, status.total), (2, 0, 2));
    assert_eq!(status.summary, "2/2");
    assert_eq!(status.last_error, None);
    assert_eq!(status.last_checked, Some(at()));
}

#[test]
fn gpu_exporter_targets_of_the_resource_are_not_inference_targets() {
    let key = "llm/chat";
    // The DCGM exporter carries the owner label but no engine label.
    let dcgm = Target {
        labels: labels(&[("inference_monitoring", key), ("instance", "10.0.9.9:9400")]),
        scrape_url: "http://10.0.9.9:9400/metrics".into(),
        health: ScrapeHealth::Down,
        last_error: "connection refused".into(),
    };
    let mut dcgm_up = up(key, "10.0.9.9:9400", 0.0);
    dcgm_up.labels.remove("inference_engine");
    for targets in [
        Some(vec![
            target(key, "10.0.0.1:8000", ScrapeHealth::Up, ""),
            dcgm,
        ]),
        None,
    ] {
        let backend = FakeBackend {
            up: vec![up(key, "10.0.0.1:8000", 1.0), dcgm_up.clone()],
            targets,
            core: vec![core(key, "10.0.0.1:8000", "vllm:num_requests_running")],
            ..Default::default()
        };
        let report = check_one(&backend, resource(VLLM_STATIC));
        assert_eq!(report.diagnosis.reason, ConditionReason::Healthy);
        assert_eq!(report.observation.total, 1);
    }
}

#[test]
fn no_targets_for_static_addresses_says_the_configuration_is_not_loaded() {
    let report = check_one(
        &FakeBackend {
            targets: Some(Vec::new()),
            ..Default::default()
        },
        resource(VLLM_STATIC),
    );
    assert_eq!(report.diagnosis.reason, ConditionReason::NoTargets);
    assert_eq!(report.diagnosis.status, ConditionStatus::False);
    let message = &report.diagnosis.message;
    assert!(
        message.starts_with(
            "Prometheus has no target labelled inference_monitoring=\"llm/chat\" (static targets 10.0.0.1:8000, 10.0.0.2:8000)"
        ),
        "{message}"
    );
    assert!(
        message.contains("infmon render --format prometheus"),
        "{message}"
    );
}

#[test]
fn no_targets_distinguishes_no_matching_pod_from_an_unselected_monitor() {
    let backend = FakeBackend {
        targets: Some(Vec::new()),
        ..Default::default()
    };
    let none = check_one(&backend, resource_with_pods(SGLANG_PODS, Some(0)));
    assert_eq!(none.diagnosis.reason, ConditionReason::NoTargets);
    assert_eq!(
        none.diagnosis.message,
        "no pod matches the selector app=sglang in namespace llm; fix spec.selector or start the pods"
    );

    let some = check_one(&backend, resource_with_pods(SGLANG_PODS, Some(3)));
    assert_eq!(some.diagnosis.reason, ConditionReason::NoTargets);
    assert!(
        some.diagnosis.message.starts_with(
            "3 pods match the selector app=sglang but Prometheus has no target labelled inference_monitoring=\"llm/sg\": no Prometheus selects the generated PodMonitor, which carries no selector labels; set spec.prometheus.monitorLabels"
        ),
        "{}",
        some.diagnosis.message
    );

    let labelled = resource_with_pods(
        &SGLANG_PODS.replace(
            "  selector:",
            "  prometheus: {monitorLabels: {release: kps}}\n  selector:",
        ),
        Some(1),
    );
    let report = check_one(&backend, labelled);
    assert!(
        report
            .diagnosis
            .message
            .contains("it is labelled release=kps, so a Prometheus' podMonitorSelector"),
        "{}",
        report.diagnosis.message
    );
}

#[test]
fn a_refused_connection_is_targets_down_with_the_scrape_error() {
    let key = "llm/chat";
    let error =
        "Get \"http://10.0.0.2:8000/metrics\": dial tcp 10.0.0.2:8000: connect: connection refused";
    let backend = FakeBackend {
        targets: Some(vec![
            target(key, "10.0.0.1:8000", ScrapeHealth::Up, ""),
            target(key, "10.0.0.2:8000", ScrapeHealth::Down, error),
        ]),
        core: vec![core(key, "10.0.0.1:8000", "vllm:num_requests_running")],
        ..Default::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    assert_eq!(report.diagnosis.reason, ConditionReason::TargetsDown);
    assert_eq!(
        report.diagnosis.message,
        format!("1 of 2 targets down; http://10.0.0.2:8000/metrics: {error}")
    );
    let status = report.targets_status();
    assert_eq!((status.up, status.down, status.total), (1, 1, 2));
    assert_eq!(status.last_error.as_deref(), Some(error));
    assert_eq!(
        report.observation.failing[0].scrape_url.as_deref(),
        Some("http://10.0.0.2:8000/metrics")
    );
}

#[test]
fn http_404_names_the_engines_metrics_flag() {
    let key = "llm/sg";
    let backend = FakeBackend {
        targets: Some(vec![target(
            key,
            "10.1.0.5:30000",
            ScrapeHealth::Down,
            "server returned HTTP status 404 Not Found",
        )]),
        ..Default::default()
    };
    let report = check_one(&backend, resource(SGLANG_PODS));
    assert_eq!(
        report.diagnosis.reason,
        ConditionReason::MetricsEndpointMissing
    );
    assert_eq!(
        report.diagnosis.message,
        "1 of 1 targets answer HTTP 404 on /metrics, e.g. http://10.1.0.5:30000/metrics: SGLang does not serve metrics there; start SGLang with --enable-metrics"
    );
}

#[test]
fn an_up_target_without_the_core_metric_is_core_metric_absent() {
    let key = "llm/chat";
    let backend = FakeBackend {
        targets: Some(vec![
            target(key, "10.0.0.1:8000", ScrapeHealth::Up, ""),
            target(key, "10.0.0.2:8000", ScrapeHealth::Up, ""),
        ]),
        // The second target serves some other engine's metrics.
        core: vec![
            core(key, "10.0.0.1:8000", "vllm:num_requests_running"),
            core(key, "10.0.0.2:8000", "tgi_request_count"),
        ],
        ..Default::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    assert_eq!(report.diagnosis.reason, ConditionReason::CoreMetricAbsent);
    assert_eq!(report.observation.missing_core_metric, ["10.0.0.2:8000"]);
    assert!(
        report.diagnosis.message.starts_with(
            "2/2 targets up, but 1 lack vllm:num_requests_running (e.g. 10.0.0.2:8000): check that the target is vLLM"
        ),
        "{}",
        report.diagnosis.message
    );
}

#[test]
fn targets_not_scraped_yet_are_progressing() {
    let key = "llm/chat";
    let backend = FakeBackend {
        targets: Some(vec![
            target(key, "10.0.0.1:8000", ScrapeHealth::Up, ""),
            target(key, "10.0.0.2:8000", ScrapeHealth::Unknown, ""),
        ]),
        core: vec![core(key, "10.0.0.1:8000", "vllm:num_requests_running")],
        ..Default::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    assert_eq!(report.diagnosis.reason, ConditionReason::Progressing);
    assert_eq!(report.diagnosis.status, ConditionStatus::Unknown);
    assert_eq!(
        report.diagnosis.message,
        "1/2 targets up, 1 not scraped yet"
    );
}

#[test]
fn without_a_targets_api_the_up_series_decide() {
    let key = "llm/chat";
    let backend = FakeBackend {
        targets: None,
        up: vec![up(key, "10.0.0.1:8000", 1.0), up(key, "10.0.0.2:8000", 0.0)],
        core: vec![core(key, "10.0.0.1:8000", "vllm:num_requests_running")],
        ..Default::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    assert_eq!(report.diagnosis.reason, ConditionReason::TargetsDown);
    assert!(!report.observation.from_targets_api);
    assert!(
        report
            .diagnosis
            .message
            .starts_with("1 of 2 targets down; e.g. instance 10.0.0.2:8000 (up == 0; this query API has no targets endpoint"),
        "{}",
        report.diagnosis.message
    );

    let healthy = FakeBackend {
        targets: None,
        up: vec![up(key, "10.0.0.1:8000", 1.0)],
        core: vec![core(key, "10.0.0.1:8000", "vllm:num_requests_running")],
        ..Default::default()
    };
    assert_eq!(
        check_one(&healthy, resource(VLLM_STATIC)).diagnosis.reason,
        ConditionReason::Healthy
    );
}

#[test]
fn an_unreachable_backend_is_unknown_for_every_resource() {
    let backend = FakeBackend {
        unreachable: true,
        ..Default::default()
    };
    let reports = check(&backend, &[resource(VLLM_STATIC), resource(SGLANG_PODS)]);
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert_eq!(
            report.diagnosis.reason,
            ConditionReason::PrometheusUnreachable
        );
        assert_eq!(report.diagnosis.status, ConditionStatus::Unknown);
        assert!(!report.was_checked());
        assert_eq!(
            report.diagnosis.message,
            "cannot reach the query API at http://127.0.0.1:1: Connection refused (os error 111)"
        );
    }
}

#[test]
fn one_cycle_makes_three_requests_whatever_the_number_of_resources() {
    let many: Vec<HealthTarget> = (0..200u32)
        .map(|i| {
            resource(
                &VLLM_STATIC
                    .replace("name: chat", &format!("name: chat-{i}"))
                    .replace(
                        "engine: vllm",
                        if i.is_multiple_of(2) {
                            "engine: vllm"
                        } else {
                            "engine: tgi"
                        },
                    ),
            )
        })
        .collect();
    let backend = FakeBackend {
        targets: Some(Vec::new()),
        ..Default::default()
    };
    check(&backend, &many);
    let requests = backend.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.contains(&up_query()));
    assert!(requests.contains(&"targets".to_string()));
    assert_eq!(
        core_metric_query(&many).unwrap(),
        "count by (inference_monitoring, instance, __name__) ({__name__=~\"tgi_request_count|vllm:num_requests_running\", inference_monitoring!=\"\"})"
    );
}

#[test]
fn reports_write_the_targets_healthy_condition() {
    let backend = FakeBackend {
        unreachable: true,
        ..Default::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    let mut conditions = Vec::new();
    report.apply_condition(&mut conditions, Some(4));
    let condition = conditions.condition(ConditionType::TargetsHealthy).unwrap();
    assert_eq!(condition.status, "Unknown");
    assert_eq!(condition.reason, "PrometheusUnreachable");
    assert_eq!(condition.observed_generation, Some(4));
}

const VLLM_ON_PLATFORM: &str = "
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: shared, namespace: llm}
spec:
  engine: vllm
  selector: {matchLabels: {app: vllm}}
  prometheus:
    output: none
    existingTargets: {job: platform/vllm}
";

/// A target of a job infmon did not write (no owner label).
fn platform_target(job: &str, namespace: &str, instance: &str) -> Target {
    Target {
        labels: labels(&[
            ("job", job),
            ("namespace", namespace),
            ("instance", instance),
        ]),
        scrape_url: format!("http://{instance}/metrics"),
        health: ScrapeHealth::Up,
        last_error: String::new(),
    }
}

#[test]
fn an_endpoint_scraped_by_two_jobs_is_duplicate_targets() {
    let key = "llm/chat";
    let mut own = target(key, "10.0.0.1:8000", ScrapeHealth::Up, "");
    own.labels.insert("job".into(), key.into());
    let mut single = target(key, "10.0.0.2:8000", ScrapeHealth::Up, "");
    single.labels.insert("job".into(), key.into());
    let backend = FakeBackend {
        targets: Some(vec![
            own,
            single,
            // The platform scrapes 10.0.0.1 too, over https: same address and path.
            Target {
                scrape_url: "https://10.0.0.1:8000/metrics".into(),
                ..platform_target("platform/vllm", "llm", "10.0.0.1:8000")
            },
        ]),
        core: vec![
            core(key, "10.0.0.1:8000", "vllm:num_requests_running"),
            core(key, "10.0.0.2:8000", "vllm:num_requests_running"),
        ],
        ..FakeBackend::default()
    };
    let report = check_one(&backend, resource(VLLM_STATIC));
    assert_eq!(report.diagnosis.status, ConditionStatus::False);
    assert_eq!(report.diagnosis.reason, ConditionReason::DuplicateTargets);
    assert_eq!(
        report.diagnosis.message,
        "1 of 2 targets are scraped by more than one job, e.g. http://10.0.0.1:8000/metrics by llm/chat, platform/vllm: every sum counts them twice; if the platform already scrapes these pods, set spec.prometheus.output to none and spec.prometheus.existingTargets to its job, so infmon reads that job instead of scraping again; otherwise remove the other monitor"
    );
    assert_eq!(report.observation.duplicates.len(), 1);
    assert_eq!(
        report.observation.duplicates[0].jobs,
        ["llm/chat", "platform/vllm"]
    );
}

#[test]
fn output_none_finds_its_targets_in_the_existing_job_and_namespace() {
    let key = "llm/shared";
    let backend = FakeBackend {
        targets: Some(vec![
            platform_target("platform/vllm", "llm", "10.0.0.1:8000"),
            // The same job in another team's namespace, and a target another resource owns.
            platform_target("platform/vllm", "team-b", "10.0.0.9:8000"),
            Target {
                labels: labels(&[
                    ("job", "platform/vllm"),
                    ("namespace", "llm"),
                    ("instance", "10.0.0.8:8000"),
                    ("inference_monitoring", "llm/other"),
                    ("inference_engine", "vllm"),
                ]),
                ..platform_target("platform/vllm", "llm", "10.0.0.8:8000")
            },
        ]),
        // As the core-metric query's term for this resource labels the existing series.
        core: vec![core(key, "10.0.0.1:8000", "vllm:num_requests_running")],
        ..FakeBackend::default()
    };
    let report = check_one(&backend, resource(VLLM_ON_PLATFORM));
    assert_eq!(
        (report.diagnosis.reason, report.diagnosis.message.as_str()),
        (
            ConditionReason::Healthy,
            "1/1 targets up; vllm:num_requests_running present"
        )
    );
    let requests = backend.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let term = r#"label_replace(label_replace(up{job="platform/vllm",namespace="llm",inference_monitoring=""}, "inference_monitoring", "llm/shared", "", ""), "inference_engine", "vllm", "", "")"#;
    assert!(
        requests.contains(&format!("{} or {term}", up_query())),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.ends_with(
            r#" or label_replace(label_replace(count by (instance, __name__) ({__name__="vllm:num_requests_running", job="platform/vllm",namespace="llm",inference_monitoring=""}), "inference_monitoring", "llm/shared", "", ""), "inference_engine", "vllm", "", "")"#
        )),
        "{requests:#?}"
    );
}

#[test]
fn output_none_without_targets_names_the_existing_job() {
    let backend = FakeBackend {
        targets: Some(vec![platform_target(
            "platform/sglang",
            "llm",
            "10.0.0.1:8000",
        )]),
        ..FakeBackend::default()
    };
    let report = check_one(&backend, resource(VLLM_ON_PLATFORM));
    assert_eq!(report.diagnosis.reason, ConditionReason::NoTargets);
    assert!(
        report.diagnosis.message.starts_with(
            r#"Prometheus has no target job="platform/vllm" in namespace llm that no other InferenceMonitoring claims: check spec.prometheus.existingTargets"#
        ),
        "{}",
        report.diagnosis.message
    );
}
