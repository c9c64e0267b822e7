//! The health check against a real Prometheus scraping loopback exporters, configured with
//! the prometheus.yml infmon itself renders for the resources.

use infmon_devkit as support;
use infmon_devkit::health_common;

use std::collections::HashMap;

use health_common::{
    MutualTlsProxy, Proxy, TestPki, health_target, prometheus_config, resource_yaml, tgi_page,
    vllm_page,
};
use infmon::api::ConditionReason;
use infmon::health::{
    BasicCredentials, ClientCertificate, ConditionStatus, Credentials, DEFAULT_TIMEOUT,
    HealthReport, HealthTarget, PrometheusBackend, Secret, check_all,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use support::exporter::Exporter;
use support::prometheus::{POLL, Prometheus, TARGET_TIMEOUT};

fn check(backend: &PrometheusBackend, targets: &[HealthTarget]) -> HashMap<String, HealthReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(check_all(backend, targets, Time(Timestamp::now())))
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect()
}

fn backend(url: &str, credentials: &Credentials) -> PrometheusBackend {
    PrometheusBackend::new(url, credentials, DEFAULT_TIMEOUT).unwrap()
}

/// Polls until `accept` holds for the reports; panics with the last reports otherwise.
fn wait_for(
    backend: &PrometheusBackend,
    targets: &[HealthTarget],
    what: &str,
    accept: impl Fn(&HashMap<String, HealthReport>) -> bool,
) -> HashMap<String, HealthReport> {
    let mut last = HashMap::new();
    let ok = support::wait_until(TARGET_TIMEOUT, POLL, || {
        last = check(backend, targets);
        accept(&last)
    });
    assert!(ok, "not {what} within {TARGET_TIMEOUT:?}: {last:#?}");
    last
}

/// The message of `demo/chat`'s report, which must say the query API could not be reached.
fn unreachable_message(backend: &PrometheusBackend, targets: &[HealthTarget]) -> String {
    let report = check(backend, targets).remove("demo/chat").unwrap();
    assert_eq!(
        report.diagnosis.reason,
        ConditionReason::PrometheusUnreachable
    );
    report.diagnosis.message
}

fn reason(reports: &HashMap<String, HealthReport>, key: &str) -> ConditionReason {
    reports[key].diagnosis.reason
}

#[test]
fn diagnoses_healthy_404_missing_core_metric_refused_and_unreachable() {
    let vllm_a = Exporter::start(vllm_page);
    let mut vllm_b = Exporter::start(vllm_page);
    let tgi = Exporter::start(tgi_page);
    let sglang_404 = Exporter::builder().not_found().start(|_| String::new());
    // Serves TGI's page where vLLM was expected: up, but the core metric is missing.
    let wrong = Exporter::start(tgi_page);

    let chat = resource_yaml("chat", "vllm", &[vllm_a.addr(), vllm_b.addr()]);
    let tgi_yaml = resource_yaml("tgi", "tgi", &[tgi.addr()]);
    let sg = resource_yaml("sg", "sglang", &[sglang_404.addr()]);
    let wrong_yaml = resource_yaml("wrong", "vllm", &[wrong.addr()]);
    let resources = [chat.as_str(), &tgi_yaml, &sg, &wrong_yaml];
    let mut prometheus = Prometheus::start(&prometheus_config(&resources));
    let targets: Vec<HealthTarget> = resources.iter().map(|y| health_target(y)).collect();
    let backend = backend(&prometheus.url(), &Credentials::default());

    let reports = wait_for(&backend, &targets, "diagnosed", |r| {
        reason(r, "demo/chat") == ConditionReason::Healthy
            && reason(r, "demo/tgi") == ConditionReason::Healthy
            && reason(r, "demo/sg") == ConditionReason::MetricsEndpointMissing
            && reason(r, "demo/wrong") == ConditionReason::CoreMetricAbsent
    });
    let chat_report = &reports["demo/chat"];
    assert_eq!(chat_report.diagnosis.status, ConditionStatus::True);
    assert_eq!(
        (chat_report.observation.up, chat_report.observation.total),
        (2, 2)
    );
    assert_eq!(chat_report.observation.core_metric_present, Some(true));
    let sg_message = &reports["demo/sg"].diagnosis.message;
    assert!(
        sg_message.contains("--enable-metrics") && sg_message.contains(&sglang_404.url()),
        "{sg_message}"
    );
    assert_eq!(
        reports["demo/wrong"].observation.missing_core_metric,
        [wrong.addr()]
    );

    // A stopped exporter: Prometheus reports the refused connection.
    let stopped_url = vllm_b.url();
    vllm_b.stop();
    let reports = wait_for(&backend, &targets, "down", |r| {
        reason(r, "demo/chat") == ConditionReason::TargetsDown
    });
    let chat_report = &reports["demo/chat"];
    assert_eq!(chat_report.diagnosis.status, ConditionStatus::False);
    assert_eq!(
        (chat_report.observation.up, chat_report.observation.down),
        (1, 1)
    );
    let message = &chat_report.diagnosis.message;
    assert!(
        message.starts_with(&format!("1 of 2 targets down; {stopped_url}: "))
            && message.contains("connection refused"),
        "{message}"
    );
    assert_eq!(
        chat_report.targets_status().last_error.as_deref(),
        chat_report.observation.failing[0].last_error.as_deref()
    );

    // Prometheus gone: Unknown, never a crash.
    prometheus.stop();
    let reports = check(&backend, &targets);
    for report in reports.values() {
        assert_eq!(
            report.diagnosis.reason,
            ConditionReason::PrometheusUnreachable
        );
        assert_eq!(report.diagnosis.status, ConditionStatus::Unknown);
        assert!(
            report.diagnosis.message.contains("refused"),
            "{}",
            report.diagnosis.message
        );
    }
}

#[test]
fn works_behind_a_bearer_token_proxy_under_a_path_prefix() {
    let exporter = Exporter::start(vllm_page);
    let chat = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let prometheus = Prometheus::start(&prometheus_config(&[&chat]));
    let proxy = Proxy::start(
        &prometheus.url(),
        "/prometheus",
        Some("Bearer s3cret-token"),
    );
    let targets = [health_target(&chat)];

    let with_token = Credentials {
        bearer_token: Some(Secret::new("s3cret-token\n")),
        ..Credentials::default()
    };
    let authorized = backend(&proxy.url(), &with_token);
    wait_for(&authorized, &targets, "healthy through the proxy", |r| {
        reason(r, "demo/chat") == ConditionReason::Healthy
    });

    for credentials in [
        Credentials::default(),
        Credentials {
            bearer_token: Some(Secret::new("wrong")),
            ..Credentials::default()
        },
    ] {
        let message = unreachable_message(&backend(&proxy.url(), &credentials), &targets);
        assert!(
            message.contains("401 Unauthorized") && message.contains("bearer token"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[test]
fn works_with_a_mimir_tenant_header() {
    let exporter = Exporter::start(vllm_page);
    let chat = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let prometheus = Prometheus::start(&prometheus_config(&[&chat]));
    let proxy = Proxy::requiring(
        &prometheus.url(),
        "/prometheus",
        Some(("X-Scope-OrgID", "team-a")),
    );
    let targets = [health_target(&chat)];
    let tenant = |value: &str| Credentials {
        headers: vec![("X-Scope-OrgID".into(), Secret::new(value))],
        ..Credentials::default()
    };
    wait_for(
        &backend(&proxy.url(), &tenant("team-a")),
        &targets,
        "healthy with the tenant header",
        |r| reason(r, "demo/chat") == ConditionReason::Healthy,
    );
    for credentials in [Credentials::default(), tenant("team-b")] {
        let message = unreachable_message(&backend(&proxy.url(), &credentials), &targets);
        assert!(
            message.contains("401 Unauthorized") && message.contains("X-Scope-OrgID"),
            "{message}"
        );
        assert!(!message.contains("team-b"), "{message}");
    }
}

#[test]
fn works_with_a_client_certificate_and_says_why_without_one() {
    let exporter = Exporter::start(vllm_page);
    let chat = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let prometheus = Prometheus::start(&prometheus_config(&[&chat]));
    let pki = TestPki::generate();
    let proxy = MutualTlsProxy::start(&prometheus.url(), &pki);
    let targets = [health_target(&chat)];
    let trusting = Credentials {
        ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..Credentials::default()
    };
    let with_certificate = Credentials {
        client_cert: Some(ClientCertificate {
            cert_pem: pki.client_cert_pem.clone(),
            key_pem: Secret::new(pki.client_key_pem.clone()),
        }),
        ..trusting.clone()
    };
    wait_for(
        &backend(&proxy.url(), &with_certificate),
        &targets,
        "healthy with a client certificate",
        |r| reason(r, "demo/chat") == ConditionReason::Healthy,
    );
    let message = unreachable_message(&backend(&proxy.url(), &trusting), &targets).to_lowercase();
    assert!(
        message.contains("certificaterequired") && message.contains("client certificate and key"),
        "{message}"
    );
    assert!(!message.contains("private key"), "{message}");
}

#[test]
fn works_with_basic_auth() {
    let exporter = Exporter::start(vllm_page);
    let chat = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let prometheus = Prometheus::start(&prometheus_config(&[&chat]));
    // admin:hunter2, base64-encoded.
    let proxy = Proxy::start(&prometheus.url(), "", Some("Basic YWRtaW46aHVudGVyMg=="));
    let credentials = Credentials {
        basic_auth: Some(BasicCredentials {
            username: "admin".into(),
            password: Secret::new("hunter2"),
        }),
        ..Credentials::default()
    };
    let targets = [health_target(&chat)];
    wait_for(
        &backend(&proxy.url(), &credentials),
        &targets,
        "healthy with basic auth",
        |r| reason(r, "demo/chat") == ConditionReason::Healthy,
    );
}

#[test]
fn requests_per_cycle_do_not_grow_with_the_number_of_resources() {
    let exporter = Exporter::start(vllm_page);
    let chat = resource_yaml("chat", "vllm", &[exporter.addr()]);
    let prometheus = Prometheus::start(&prometheus_config(&[&chat]));
    let proxy = Proxy::start(&prometheus.url(), "", None);
    let backend = backend(&proxy.url(), &Credentials::default());

    let one = [health_target(&chat)];
    let many: Vec<HealthTarget> = (0..200u32)
        .map(|i| {
            let engine = if i.is_multiple_of(2) { "vllm" } else { "tgi" };
            health_target(&resource_yaml(
                &format!("r{i}"),
                engine,
                &[format!("127.0.0.1:{}", 20000 + i)],
            ))
        })
        .chain(one.iter().cloned())
        .collect();

    let before = proxy.requests();
    let reports = check(&backend, &one);
    let for_one = proxy.requests() - before;
    assert!(reports["demo/chat"].was_checked());

    let before = proxy.requests();
    let reports = check(&backend, &many);
    let for_many = proxy.requests() - before;
    assert_eq!(reports.len(), 201);
    assert!(reports.values().all(|r| r.was_checked()));

    assert_eq!(
        for_one, 3,
        "one up query, one targets call, one core-metric query"
    );
    assert_eq!(for_many, for_one);
    // The answers were real: the resource turns healthy through the same proxy.
    wait_for(&backend, &one, "healthy", |r| {
        reason(r, "demo/chat") == ConditionReason::Healthy
    });
}
