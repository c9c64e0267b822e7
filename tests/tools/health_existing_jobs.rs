//! `output: none` and `DuplicateTargets` against a real Prometheus: jobs written by hand stand
//! for a platform's own monitors (a PodMonitor's job is `<namespace>/<name>` and its targets
//! carry `namespace` and `pod`), next to a job infmon renders itself.

use infmon_devkit as support;
use infmon_devkit::health_common;

use std::collections::HashMap;

use health_common::{prometheus_config, resource_yaml, validated, vllm_page};
use infmon::api::ConditionReason;
use infmon::health::{
    Credentials, DEFAULT_TIMEOUT, HealthReport, HealthTarget, PrometheusBackend, check_all,
};
use infmon::rules::rule_file;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use support::exporter::Exporter;
use support::prometheus::{POLL, Prometheus, TARGET_TIMEOUT};

/// A resource reading the targets of an existing job in namespace `llm`.
fn on_platform(name: &str, job: &str) -> String {
    format!(
        "apiVersion: monitoring.inference.dev/v1alpha1\n\
         kind: InferenceMonitoring\n\
         metadata: {{name: {name}, namespace: llm}}\n\
         spec:\n  engine: vllm\n  selector: {{matchLabels: {{app: vllm}}}}\n\
         \x20 prometheus: {{output: none, existingTargets: {{job: {job}}}}}\n"
    )
}

/// A hand-written job scraping `addr` with the labels a PodMonitor's targets carry.
fn platform_job(job: &str, addr: &str, namespace: &str, pod: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&format!(
        "{{job_name: {job}, static_configs: [{{targets: ['{addr}'], labels: {{namespace: {namespace}, pod: {pod}}}}}]}}"
    ))
    .expect("job YAML")
}

fn check(targets: &[HealthTarget], url: &str) -> HashMap<String, HealthReport> {
    let backend = PrometheusBackend::new(url, &Credentials::default(), DEFAULT_TIMEOUT).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(check_all(&backend, targets, Time(Timestamp::now())))
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect()
}

#[test]
fn output_none_reads_the_platform_job_and_two_jobs_on_one_target_are_duplicates() {
    // A: infmon's own job and a platform job. B: the platform's only. C: two platform jobs.
    // D: the platform job, in another team's namespace.
    let (a, b, c, d) = (
        Exporter::start(vllm_page),
        Exporter::start(vllm_page),
        Exporter::start(vllm_page),
        Exporter::start(vllm_page),
    );
    let chat = resource_yaml("chat", "vllm", &[a.addr()]);
    let shared = on_platform("shared", "platform/vllm");
    let twice = on_platform("twice", "platform/vllm-c");

    let builder = Prometheus::builder();
    let rules = builder
        .write_file(
            "rules/shared.yml",
            &rule_file(&validated(&shared)).expect("dashboards need the records"),
        )
        .display()
        .to_string();
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&prometheus_config(&[&chat])).expect("rendered config");
    config["rule_files"] = vec![rules].into();
    let jobs = config["scrape_configs"]
        .as_sequence_mut()
        .expect("scrape_configs");
    jobs.extend([
        platform_job("platform/vllm-a", &a.addr(), "demo", "chat-0"),
        platform_job("platform/vllm", &b.addr(), "llm", "vllm-b"),
        platform_job("platform/vllm-c", &c.addr(), "llm", "vllm-c"),
        platform_job("team-b/extra", &c.addr(), "llm", "vllm-c"),
    ]);
    // `platform/vllm` in another team's namespace: a second static group of the same job.
    let platform = jobs
        .iter_mut()
        .find(|job| job["job_name"] == "platform/vllm")
        .expect("platform/vllm");
    let team_b = platform_job("platform/vllm", &d.addr(), "team-b", "vllm-d");
    platform["static_configs"]
        .as_sequence_mut()
        .expect("static_configs")
        .push(team_b["static_configs"][0].clone());
    let prometheus = builder.start(&serde_yaml::to_string(&config).expect("YAML"));
    let targets: Vec<HealthTarget> = [&chat, &shared, &twice]
        .iter()
        .map(|y| health_common::health_target(y))
        .collect();

    let mut last = HashMap::new();
    let settled = support::wait_until(TARGET_TIMEOUT, POLL, || {
        last = check(&targets, &prometheus.url());
        last.get("llm/shared")
            .is_some_and(|r| r.diagnosis.reason == ConditionReason::Healthy)
            && last
                .get("demo/chat")
                .is_some_and(|r| r.diagnosis.reason == ConditionReason::DuplicateTargets)
            && last
                .get("llm/twice")
                .is_some_and(|r| r.diagnosis.reason == ConditionReason::DuplicateTargets)
    });
    assert!(
        settled,
        "not diagnosed within {TARGET_TIMEOUT:?}: {last:#?}"
    );

    // The platform's target of this namespace only, with the core metric found through the
    // existing job.
    let shared_report = &last["llm/shared"];
    assert_eq!(
        (
            shared_report.observation.up,
            shared_report.observation.total
        ),
        (1, 1)
    );
    assert_eq!(shared_report.observation.core_metric_present, Some(true));

    let chat_message = &last["demo/chat"].diagnosis.message;
    assert!(
        chat_message.starts_with(&format!(
            "1 of 1 targets are scraped by more than one job, e.g. {} by demo/chat, platform/vllm-a:",
            a.url()
        )) && chat_message.contains("spec.prometheus.output to none"),
        "{chat_message}"
    );
    let twice_message = &last["llm/twice"].diagnosis.message;
    assert!(
        twice_message.contains(&format!("{} by platform/vllm-c, team-b/extra", c.url())),
        "{twice_message}"
    );

    // The recording rules label the platform's series as the resource's, from its namespace
    // only: one pod, never team-b's.
    let mut records = Vec::new();
    let recorded = support::wait_until(TARGET_TIMEOUT, POLL, || {
        records = prometheus.query_values("inference:requests_running");
        !records.is_empty()
    });
    assert!(recorded, "no record; log:\n{}", prometheus.log());
    assert_eq!(records.len(), 1, "{records:#?}");
    let (labels, value) = &records[0];
    assert_eq!(
        (
            labels["inference_monitoring"].as_str(),
            labels["inference_engine"].as_str(),
            labels["namespace"].as_str(),
            labels["pod"].as_str(),
            *value
        ),
        (
            Some("llm/shared"),
            Some("vllm"),
            Some("llm"),
            Some("vllm-b"),
            3.0
        )
    );
}
