//! Cluster discovery against a scripted API server: which optional APIs are served, the
//! `Prometheus` and `PrometheusAgent` selectors, other consumers of monitors (VictoriaMetrics,
//! Alloy, the OpenTelemetry target allocator), and an already running DCGM exporter of each
//! known kind.

use infmon_devkit::mock_api;

use infmon::discovery::{KNOWN_EXPORTERS, discover};
use infmon::model::shared_labels;
use infmon::render::ChildKind;
use infmon::validate::GpuExporterSettings;
use mock_api::{Exchange, encode, list, serve};
use serde_json::json;

fn resources(group_version: &str, plurals: &[&str]) -> serde_json::Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": plurals.iter().map(|p| json!({"name": p, "singularName": "", "namespaced": true,
            "kind": "X", "verbs": ["get", "list"]})).collect::<Vec<_>>()})
}

fn not_found(uri: &str) -> Exchange {
    Exchange::fail("GET", uri.to_string(), 404, "NotFound")
}

/// The Prometheus Operator's v1 API with PodMonitors, ServiceMonitors, rules and Prometheuses.
fn prometheus_operator_v1() -> Exchange {
    Exchange::new(
        "GET",
        "/apis/monitoring.coreos.com/v1",
        resources(
            "monitoring.coreos.com/v1",
            &[
                "podmonitors",
                "servicemonitors",
                "prometheusrules",
                "prometheuses",
            ],
        ),
    )
}

/// A cluster with the Prometheus Operator's v1 API but no Prometheus object, with the
/// `v1alpha1`, OpenTelemetry and VictoriaMetrics group versions answered as given and
/// `consumers` as the requests that follow the group-version lookups.
fn cluster_without_prometheus(
    alloy: Exchange,
    v1alpha1: Exchange,
    opentelemetry: Exchange,
    victoriametrics: Exchange,
    consumers: Vec<Exchange>,
) -> Vec<Exchange> {
    let mut script = vec![
        alloy,
        not_found("/apis/grafana.integreatly.org/v1beta1"),
        prometheus_operator_v1(),
        v1alpha1,
        opentelemetry,
        victoriametrics,
        Exchange::new(
            "GET",
            "/apis/monitoring.coreos.com/v1/prometheuses?",
            list("Prometheus", vec![]),
        ),
    ];
    script.extend(consumers);
    script.extend(KNOWN_EXPORTERS.iter().map(|known| {
        Exchange::new(
            "GET",
            dcgm_pods_uri(None, known.selector),
            list("Pod", vec![]),
        )
    }));
    script
}

fn object(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
) -> serde_json::Value {
    json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

#[tokio::test]
async fn prometheus_agents_are_read_as_selectors() {
    let script = cluster_without_prometheus(
        not_found("/apis/collectors.grafana.com/v1alpha1"),
        Exchange::new(
            "GET",
            "/apis/monitoring.coreos.com/v1alpha1",
            resources(
                "monitoring.coreos.com/v1alpha1",
                &["scrapeconfigs", "prometheusagents"],
            ),
        ),
        not_found("/apis/opentelemetry.io/v1beta1"),
        not_found("/apis/operator.victoriametrics.com/v1beta1"),
        vec![Exchange::new(
            "GET",
            "/apis/monitoring.coreos.com/v1alpha1/prometheusagents?",
            list(
                "PrometheusAgent",
                vec![object(
                    "monitoring.coreos.com/v1alpha1",
                    "PrometheusAgent",
                    "monitoring",
                    "agent",
                    json!({"podMonitorSelector": {"matchLabels": {"team": "ml"}}, "podMonitorNamespaceSelector": {}}),
                )],
            ),
        )],
    );
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &[], &GpuExporterSettings::default())
        .await
        .unwrap();
    server.await.unwrap();
    assert!(found.serves(ChildKind::ScrapeConfig));
    assert_eq!(found.prometheuses.len(), 1);
    assert_eq!(
        found.prometheuses[0].key,
        "monitoring/agent (PrometheusAgent)"
    );
    assert!(found.prometheuses[0].pod_monitor_selector.is_some());
    assert!(found.other_consumers.is_empty());
}

#[tokio::test]
async fn victoriametrics_alloy_and_an_enabled_target_allocator_are_other_consumers() {
    let script = cluster_without_prometheus(
        Exchange::new(
            "GET",
            "/apis/collectors.grafana.com/v1alpha1",
            resources("collectors.grafana.com/v1alpha1", &["alloys"]),
        ),
        not_found("/apis/monitoring.coreos.com/v1alpha1"),
        Exchange::new(
            "GET",
            "/apis/opentelemetry.io/v1beta1",
            resources("opentelemetry.io/v1beta1", &["opentelemetrycollectors"]),
        ),
        Exchange::new(
            "GET",
            "/apis/operator.victoriametrics.com/v1beta1",
            resources(
                "operator.victoriametrics.com/v1beta1",
                &["vmagents", "vmpodscrapes"],
            ),
        ),
        vec![
            Exchange::new(
                "GET",
                "/apis/collectors.grafana.com/v1alpha1/alloys?",
                list(
                    "Alloy",
                    vec![object(
                        "collectors.grafana.com/v1alpha1",
                        "Alloy",
                        "monitoring",
                        "metrics",
                        json!({}),
                    )],
                ),
            ),
            Exchange::new(
                "GET",
                "/apis/opentelemetry.io/v1beta1/opentelemetrycollectors?",
                list(
                    "OpenTelemetryCollector",
                    vec![
                        object(
                            "opentelemetry.io/v1beta1",
                            "OpenTelemetryCollector",
                            "otel",
                            "with-ta",
                            json!({"targetAllocator": {"enabled": true, "prometheusCR": {"enabled": true}}}),
                        ),
                        // A target allocator that does not read monitors is no consumer.
                        object(
                            "opentelemetry.io/v1beta1",
                            "OpenTelemetryCollector",
                            "otel",
                            "plain",
                            json!({"targetAllocator": {"enabled": true}}),
                        ),
                    ],
                ),
            ),
            Exchange::new(
                "GET",
                "/apis/operator.victoriametrics.com/v1beta1/vmagents?",
                list(
                    "VMAgent",
                    vec![object(
                        "operator.victoriametrics.com/v1beta1",
                        "VMAgent",
                        "vm",
                        "agent",
                        json!({}),
                    )],
                ),
            ),
        ],
    );
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &[], &GpuExporterSettings::default())
        .await
        .unwrap();
    server.await.unwrap();
    assert!(found.prometheuses.is_empty());
    assert_eq!(
        found.other_consumers,
        [
            "Alloy monitoring/metrics (Grafana Alloy)",
            "OpenTelemetryCollector otel/with-ta (OpenTelemetry target allocator)",
            "VMAgent vm/agent (VictoriaMetrics operator)",
        ]
    );
}

#[tokio::test]
async fn installed_apis_without_objects_are_no_consumers() {
    let script = cluster_without_prometheus(
        not_found("/apis/collectors.grafana.com/v1alpha1"),
        not_found("/apis/monitoring.coreos.com/v1alpha1"),
        not_found("/apis/opentelemetry.io/v1beta1"),
        Exchange::new(
            "GET",
            "/apis/operator.victoriametrics.com/v1beta1",
            resources("operator.victoriametrics.com/v1beta1", &["vmagents"]),
        ),
        vec![Exchange::new(
            "GET",
            "/apis/operator.victoriametrics.com/v1beta1/vmagents?",
            list("VMAgent", vec![]),
        )],
    );
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &[], &GpuExporterSettings::default())
        .await
        .unwrap();
    server.await.unwrap();
    assert!(found.prometheuses.is_empty());
    assert!(found.other_consumers.is_empty());
}

fn dcgm_pods_uri(namespace: Option<&str>, selector: &str) -> String {
    let base = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
        None => "/api/v1/pods".to_string(),
    };
    format!("{base}?&labelSelector={}", encode(selector))
}

fn exporter_pod(namespace: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "dcgm-exporter-x", "namespace": namespace, "labels": labels}})
}

/// The discovery requests of a bare cluster (no optional APIs), before the exporter search.
fn bare_cluster() -> Vec<Exchange> {
    vec![
        not_found("/apis/collectors.grafana.com/v1alpha1"),
        not_found("/apis/grafana.integreatly.org/v1beta1"),
        not_found("/apis/monitoring.coreos.com/v1"),
        not_found("/apis/monitoring.coreos.com/v1alpha1"),
        not_found("/apis/opentelemetry.io/v1beta1"),
        not_found("/apis/operator.victoriametrics.com/v1beta1"),
    ]
}

#[tokio::test]
async fn the_prometheus_operator_its_selectors_and_a_running_dcgm_exporter_are_found() {
    let script = vec![
        not_found("/apis/collectors.grafana.com/v1alpha1"),
        not_found("/apis/grafana.integreatly.org/v1beta1"),
        prometheus_operator_v1(),
        not_found("/apis/monitoring.coreos.com/v1alpha1"),
        not_found("/apis/opentelemetry.io/v1beta1"),
        not_found("/apis/operator.victoriametrics.com/v1beta1"),
        Exchange::new(
            "GET",
            "/apis/monitoring.coreos.com/v1/prometheuses?",
            list(
                "Prometheus",
                vec![
                    json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
                "metadata": {"name": "kps", "namespace": "monitoring"},
                "spec": {"podMonitorSelector": {"matchLabels": {"release": "kps"}}}}),
                ],
            ),
        ),
        Exchange::new(
            "GET",
            dcgm_pods_uri(None, "app=nvidia-dcgm-exporter"),
            list(
                "Pod",
                vec![exporter_pod(
                    "gpu-operator",
                    json!({"app": "nvidia-dcgm-exporter"}),
                )],
            ),
        ),
    ];
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &[], &GpuExporterSettings::default())
        .await
        .unwrap();
    server.await.unwrap();
    assert!(found.serves(ChildKind::PodMonitor) && found.serves(ChildKind::PrometheusRule));
    assert!(!found.serves(ChildKind::ScrapeConfig) && !found.serves(ChildKind::GrafanaDashboard));
    assert!(found.serves(ChildKind::Secret) && found.serves(ChildKind::DaemonSet));
    assert_eq!(found.prometheuses.len(), 1);
    assert_eq!(found.prometheuses[0].key, "monitoring/kps");
    assert!(found.prometheuses[0].pod_monitor_selector.is_some());
    assert!(found.prometheuses[0].service_monitor_selector.is_none());
    let exporter = found
        .existing_dcgm_exporter
        .expect("the GPU Operator's exporter");
    assert_eq!(exporter.namespace, "gpu-operator");
    assert!(
        exporter.to_string().contains("NVIDIA GPU Operator"),
        "{exporter}"
    );
}

/// Each known kind of exporter is found cluster-wide (whatever namespaces the operator
/// watches), looked for with its own label selector.
#[tokio::test]
async fn every_known_kind_of_exporter_is_found() {
    let kinds = [
        (
            "app=nvidia-dcgm-exporter",
            json!({"app": "nvidia-dcgm-exporter"}),
            "gpu-operator",
            "NVIDIA GPU Operator",
        ),
        (
            "app.kubernetes.io/name=dcgm-exporter",
            json!({"app.kubernetes.io/name": "dcgm-exporter"}),
            "monitoring",
            "dcgm-exporter Helm chart",
        ),
        (
            "app.kubernetes.io/name=gke-managed-dcgm-exporter",
            json!({"app.kubernetes.io/name": "gke-managed-dcgm-exporter"}),
            "gke-managed-system",
            "GKE",
        ),
    ];
    assert_eq!(KNOWN_EXPORTERS.len(), kinds.len());
    for (i, (selector, labels, namespace, origin)) in kinds.iter().enumerate() {
        let mut script = bare_cluster();
        for (earlier, ..) in &kinds[..i] {
            script.push(Exchange::new(
                "GET",
                dcgm_pods_uri(None, earlier),
                list("Pod", vec![]),
            ));
        }
        script.push(Exchange::new(
            "GET",
            dcgm_pods_uri(None, selector),
            list("Pod", vec![exporter_pod(namespace, labels.clone())]),
        ));
        let (client, handle) = mock_api::client();
        let server = tokio::spawn(serve(handle, script));
        let found = discover(&client, &["team-a".into()], &GpuExporterSettings::default())
            .await
            .unwrap();
        server.await.unwrap();
        let exporter = found.existing_dcgm_exporter.expect("an exporter");
        assert_eq!(exporter.namespace, *namespace);
        assert!(exporter.to_string().contains(origin), "{exporter}");
    }
}

/// infmon's own shared exporter is not mistaken for one it did not deploy.
#[test]
fn our_own_exporter_matches_no_known_selector() {
    let ours = shared_labels("dcgm-exporter");
    for known in KNOWN_EXPORTERS {
        let (key, value) = known.selector.split_once('=').unwrap();
        assert_ne!(
            ours.get(key).map(String::as_str),
            Some(value),
            "{}",
            known.selector
        );
    }
}

/// Without the right to list pods cluster-wide, the watched namespaces are searched instead.
#[tokio::test]
async fn a_bare_cluster_in_namespaced_mode_reads_only_its_namespaces() {
    let mut script = bare_cluster();
    for known in KNOWN_EXPORTERS {
        script.push(Exchange::fail(
            "GET",
            dcgm_pods_uri(None, known.selector),
            403,
            "Forbidden",
        ));
        for ns in ["team-a", "team-b"] {
            script.push(Exchange::new(
                "GET",
                dcgm_pods_uri(Some(ns), known.selector),
                list("Pod", vec![]),
            ));
        }
    }
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    // Any namespace may hold an exporter here, so each watched namespace is searched.
    let any: GpuExporterSettings =
        GpuExporterSettings::from_json(r#"{"existingExporterNamespaces": ["*"]}"#).unwrap();
    let found = discover(&client, &["team-a".into(), "team-b".into()], &any)
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(
        found.served.into_iter().collect::<Vec<_>>(),
        [
            ChildKind::Secret,
            ChildKind::ConfigMap,
            ChildKind::Service,
            ChildKind::DaemonSet
        ]
    );
    assert!(found.prometheuses.is_empty());
    assert!(found.other_consumers.is_empty());
    assert!(found.existing_dcgm_exporter.is_none());
}

/// A pod labelled like a known exporter in a namespace the operator's settings do not trust
/// (a team's own) is not an exporter: no team can switch the shared one off.
#[tokio::test]
async fn an_exporter_lookalike_in_a_team_namespace_is_ignored() {
    let mut script = bare_cluster();
    script.push(Exchange::new(
        "GET",
        dcgm_pods_uri(None, KNOWN_EXPORTERS[0].selector),
        list(
            "Pod",
            vec![exporter_pod(
                "team-a",
                json!({"app": "nvidia-dcgm-exporter"}),
            )],
        ),
    ));
    for known in &KNOWN_EXPORTERS[1..] {
        script.push(Exchange::new(
            "GET",
            dcgm_pods_uri(None, known.selector),
            list("Pod", vec![]),
        ));
    }
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &[], &GpuExporterSettings::default())
        .await
        .unwrap();
    server.await.unwrap();
    assert!(found.existing_dcgm_exporter.is_none());
}
