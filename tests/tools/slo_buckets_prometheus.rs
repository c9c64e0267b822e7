//! The run-time bucket check of latency objectives against a real Prometheus: one vLLM serves
//! its time-to-first-token histogram with the default boundaries, another was started with
//! other buckets, and the `SLOsMeasurable` verdict tells them apart, naming the boundaries the
//! second one really serves.

use infmon_devkit as support;
use infmon_devkit::health_common;

use health_common::{health_target, prometheus_config, resource_yaml, vllm_page};
use infmon::api::ConditionReason;
use infmon::health::{
    ConditionStatus, Credentials, DEFAULT_TIMEOUT, HealthReport, HealthTarget, PrometheusBackend,
    check_all,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use support::exporter::Exporter;
use support::prometheus::{POLL, Prometheus, TARGET_TIMEOUT};

/// vLLM's page with a time-to-first-token histogram of `bounds` (spelled as Python's
/// prometheus_client writes them: `1.0`, not `1`).
fn page_with_buckets(bounds: &'static [&'static str]) -> impl Fn(u64) -> String {
    move |tick| {
        let mut page = vllm_page(tick);
        page.push_str(
            "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.\n\
             # TYPE vllm:time_to_first_token_seconds histogram\n",
        );
        let model = "model_name=\"meta-llama/Llama-3.1-8B-Instruct\"";
        for (i, le) in bounds.iter().chain(&["+Inf"]).enumerate() {
            page.push_str(&format!(
                "vllm:time_to_first_token_seconds_bucket{{{model},le=\"{le}\"}} {}\n",
                (i as u64 + 1) * (tick + 1)
            ));
        }
        page.push_str(&format!(
            "vllm:time_to_first_token_seconds_count{{{model}}} {}\n",
            (bounds.len() as u64 + 1) * (tick + 1)
        ));
        page
    }
}

fn with_ttft_objective(yaml: String) -> String {
    format!("{yaml}  slos: [{{name: ttft-1s, sli: ttft, thresholdSeconds: 1, target: 99}}]\n")
}

fn check(backend: &PrometheusBackend, targets: &[HealthTarget]) -> Vec<HealthReport> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(check_all(backend, targets, Time(Timestamp::now())))
}

#[test]
fn a_threshold_the_engine_does_not_serve_as_a_bucket_is_reported_with_the_served_neighbours() {
    let defaults = Exporter::start(page_with_buckets(&["0.5", "0.75", "1.0", "2.5", "5.0"]));
    let changed = Exporter::start(page_with_buckets(&["0.2", "0.8", "1.6", "3.2"]));
    let plain = Exporter::start(vllm_page);
    let good = with_ttft_objective(resource_yaml("good", "vllm", &[defaults.addr()]));
    let moved = with_ttft_objective(resource_yaml("moved", "vllm", &[changed.addr()]));
    let none = resource_yaml("none", "vllm", &[plain.addr()]);
    let resources = [good.as_str(), &moved, &none];
    let prometheus = Prometheus::start(&prometheus_config(&resources));
    let targets: Vec<HealthTarget> = resources.iter().map(|y| health_target(y)).collect();
    let backend =
        PrometheusBackend::new(&prometheus.url(), &Credentials::default(), DEFAULT_TIMEOUT)
            .unwrap();

    let mut reports = Vec::new();
    let seen = support::wait_until(TARGET_TIMEOUT, POLL, || {
        reports = check(&backend, &targets);
        // Every target scraped (the third has no objective) and both objectives' buckets seen.
        reports.iter().all(|r| r.is_healthy())
            && reports[..2].iter().all(|r| {
                r.slos
                    .as_ref()
                    .is_some_and(|d| d.reason != ConditionReason::BucketsNotSeen)
            })
    });
    assert!(
        seen,
        "targets or buckets not seen within {TARGET_TIMEOUT:?}: {reports:#?}"
    );

    let good = reports[0].slos.as_ref().unwrap();
    assert_eq!(
        (good.status, good.reason),
        (ConditionStatus::True, ConditionReason::BucketsServed),
        "{}",
        good.message
    );
    let moved = reports[1].slos.as_ref().unwrap();
    assert_eq!(
        (moved.status, moved.reason),
        (ConditionStatus::False, ConditionReason::ThresholdNotServed),
        "{}",
        moved.message
    );
    assert!(
        moved.message.starts_with(
            "spec.slos[0] ttft-1s: the threshold 1 s is not a bucket boundary vLLM serves"
        ) && moved.message.contains("the nearest are 0.8 s and 1.6 s"),
        "{}",
        moved.message
    );
    // Without objectives there is no verdict, and the targets are healthy all the same.
    assert_eq!(reports[2].slos, None);
    assert!(reports.iter().all(|r| r.is_healthy()), "{reports:#?}");
}
