//! Cluster discovery against a scripted API server: which optional APIs are served, the
//! `Prometheus` selectors, and an already running DCGM exporter.

use infmon_devkit::mock_api;

use infmon::discovery::{DCGM_EXPORTER_SELECTOR, discover};
use infmon::render::ChildKind;
use mock_api::{Exchange, encode, list, serve};
use serde_json::json;

fn resources(group_version: &str, plurals: &[&str]) -> serde_json::Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": plurals.iter().map(|p| json!({"name": p, "singularName": "", "namespaced": true,
            "kind": "X", "verbs": ["get", "list"]})).collect::<Vec<_>>()})
}

fn dcgm_pods_uri(namespace: Option<&str>) -> String {
    let base = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
        None => "/api/v1/pods".to_string(),
    };
    format!(
        "{base}?&labelSelector={}&limit=1",
        encode(DCGM_EXPORTER_SELECTOR)
    )
}

#[tokio::test]
async fn the_prometheus_operator_its_selectors_and_a_running_dcgm_exporter_are_found() {
    let script = vec![
        Exchange::fail(
            "GET",
            "/apis/grafana.integreatly.org/v1beta1",
            404,
            "NotFound",
        ),
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
        ),
        Exchange::fail(
            "GET",
            "/apis/monitoring.coreos.com/v1alpha1",
            404,
            "NotFound",
        ),
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
            dcgm_pods_uri(None),
            list(
                "Pod",
                vec![json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "nvidia-dcgm-exporter-x", "namespace": "gpu-operator", "labels": {"app": "nvidia-dcgm-exporter"}}})],
            ),
        ),
    ];
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &[]).await.unwrap();
    server.await.unwrap();
    assert!(found.serves(ChildKind::PodMonitor) && found.serves(ChildKind::PrometheusRule));
    assert!(!found.serves(ChildKind::ScrapeConfig) && !found.serves(ChildKind::GrafanaDashboard));
    assert!(found.serves(ChildKind::Secret) && found.serves(ChildKind::DaemonSet));
    assert_eq!(found.prometheuses.len(), 1);
    assert_eq!(found.prometheuses[0].key, "monitoring/kps");
    assert!(found.prometheuses[0].pod_monitor_selector.is_some());
    assert!(found.prometheuses[0].service_monitor_selector.is_none());
    assert!(found.existing_dcgm_exporter);
}

#[tokio::test]
async fn a_bare_cluster_in_namespaced_mode_reads_only_its_namespaces() {
    let script = vec![
        Exchange::fail(
            "GET",
            "/apis/grafana.integreatly.org/v1beta1",
            404,
            "NotFound",
        ),
        Exchange::fail("GET", "/apis/monitoring.coreos.com/v1", 404, "NotFound"),
        Exchange::fail(
            "GET",
            "/apis/monitoring.coreos.com/v1alpha1",
            404,
            "NotFound",
        ),
        Exchange::new("GET", dcgm_pods_uri(Some("team-a")), list("Pod", vec![])),
        Exchange::new("GET", dcgm_pods_uri(Some("team-b")), list("Pod", vec![])),
    ];
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let found = discover(&client, &["team-a".into(), "team-b".into()])
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
    assert!(!found.existing_dcgm_exporter);
}
