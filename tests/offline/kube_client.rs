//! Building a kube Client must not panic over the rustls crypto provider: kube is built with
//! aws-lc-rs only (default features off), the same provider reqwest uses for Prometheus.

#[tokio::test]
async fn client_builds_from_a_throwaway_kubeconfig() {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(
        r#"
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody, namespace: default}
current-context: nowhere
users:
- name: nobody
  user: {token: not-a-real-token}
"#,
    )
    .unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:1/");
    let client =
        kube::Client::try_from(config).expect("a client builds without a crypto-provider panic");
    assert_eq!(client.default_namespace(), "default");
    // A Prometheus client in the same process uses the same rustls provider.
    let prometheus = prometheus_http_query::Client::try_from("https://127.0.0.1:1").unwrap();
    assert_eq!(prometheus.base_url().as_str(), "https://127.0.0.1:1/");
}
