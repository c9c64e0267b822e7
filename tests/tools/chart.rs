//! The Helm chart in `charts/infmon`, checked with the real helm v3: `lint --strict`, `template`
//! with default and non-default values, the rendered manifests validated with
//! `kubernetes-validate --strict` for Kubernetes 1.33 (the ServiceMonitor against the upstream
//! CRD), RBAC equal to `infmon::rbac::permissions_with()` scope by scope, and
//! `values.schema.json` rejecting wrong values.

use infmon_devkit as support;

use std::collections::BTreeSet;

use infmon::rbac::Scope;
use serde_json::Value;
use support::{helm, upstream};

const NAMESPACE: &str = "infmon-system";

/// The values scenarios: a name and a values file relative to `charts/infmon` (none: defaults).
const SCENARIOS: &[(&str, Option<&str>)] = &[
    ("default", None),
    ("namespaced", Some("ci/namespaced-values.yaml")),
    ("ha", Some("ci/ha-values.yaml")),
    ("e2e", Some("../../e2e/values.yaml")),
    ("network-policy", Some("ci/network-policy-values.yaml")),
];

fn chart_dir() -> String {
    support::repo_path("charts/infmon").display().to_string()
}

fn values_args(values: Option<&str>) -> Vec<String> {
    values
        .map(|file| {
            vec![
                "--values".to_string(),
                support::repo_path("charts/infmon")
                    .join(file)
                    .display()
                    .to_string(),
            ]
        })
        .unwrap_or_default()
}

/// `helm template` of the chart with the given extra arguments.
fn template(extra: &[String]) -> Result<String, String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        "infmon",
        chart.as_str(),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        "1.33.0",
        "--include-crds",
    ];
    args.extend(extra.iter().map(String::as_str));
    helm::run(&args)
}

fn render(values: Option<&str>) -> Vec<Value> {
    render_with(&values_args(values))
}

fn render_with(extra: &[String]) -> Vec<Value> {
    let yaml = template(extra).unwrap_or_else(|err| panic!("{err}"));
    support::yaml_docs(&yaml)
}

fn find<'a>(docs: &'a [Value], kind: &str, namespace: Option<&str>) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["namespace"].as_str() == namespace)
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str, namespace: Option<&str>) -> &'a Value {
    let found = find(docs, kind, namespace);
    assert_eq!(found.len(), 1, "expected one {kind} in {namespace:?}");
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment", Some(NAMESPACE))["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<&str> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect()
}

#[test]
fn lint_strict_passes_with_every_values_file() {
    let chart = chart_dir();
    for (name, values) in SCENARIOS {
        let values = values_args(*values);
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(values.iter().map(String::as_str));
        let output = helm::run(&args).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(output.contains("0 chart(s) failed"), "{name}: {output}");
    }
}

#[test]
fn rendered_manifests_validate_for_kubernetes_1_33() {
    let mut custom_resources = 0;
    for (name, values) in SCENARIOS {
        let yaml = template(&values_args(*values)).unwrap_or_else(|err| panic!("{err}"));
        support::kubernetes_validate(&yaml).unwrap_or_else(|err| panic!("{name}: {err}"));
        for doc in support::yaml_docs(&yaml) {
            let group = doc["apiVersion"].as_str().unwrap_or_default();
            if group.starts_with("monitoring.coreos.com/") {
                upstream::validate_against_crd(&doc)
                    .unwrap_or_else(|errors| panic!("{name}: {}", errors.join("\n")));
                custom_resources += 1;
            }
        }
    }
    assert_eq!(custom_resources, 1, "the ServiceMonitor of the ha scenario");
}

#[test]
fn default_install_is_one_restricted_replica_watching_everything() {
    let docs = render(None);
    let deployment = one(&docs, "Deployment", Some(NAMESPACE));
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "infmon");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = container(&docs);
    assert_eq!(container["image"], "ghcr.io/infmon/infmon:0.1.0");
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "probes");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(container["resources"]["requests"]["cpu"], "50m");
    assert_eq!(
        args(&docs),
        [
            "run",
            "--log-level=info",
            "--log-format=json",
            "--metrics-port=8080",
            "--probe-port=8081",
            "--metrics-bind-address=0.0.0.0",
            "--probe-bind-address=0.0.0.0",
            "--allowed-prometheus-urls=",
            "--dashboard-namespaces=monitoring",
            "--health-check-interval=1m",
            &gpu_exporter_arg(NAMESPACE),
            "--without-secrets",
        ]
    );
    assert!(find(&docs, "Service", Some(NAMESPACE)).is_empty());
    assert!(find(&docs, "ServiceMonitor", Some(NAMESPACE)).is_empty());
    let crd = one(&docs, "CustomResourceDefinition", None);
    assert_eq!(
        crd["metadata"]["name"],
        "inferencemonitorings.monitoring.inference.dev"
    );
}

/// The `--gpu-exporter` flag of the default `gpuExporter` values (keys sorted, as Helm's
/// `toJson` writes them), with the exporter in `namespace`.
fn gpu_exporter_arg(namespace: &str) -> String {
    let settings = serde_json::json!({
        "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless",
        "interval": "15s",
        "namespace": namespace,
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "profiling": false,
        "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "tolerations": [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    });
    format!("--gpu-exporter={settings}")
}

#[test]
fn ha_values_turn_on_leader_election_defaults_and_self_monitoring() {
    let docs = render(Some("ci/ha-values.yaml"));
    assert_eq!(
        one(&docs, "Deployment", Some(NAMESPACE))["spec"]["replicas"],
        2
    );
    assert_eq!(
        container(&docs)["image"],
        "ghcr.io/infmon/infmon@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        args(&docs),
        [
            "run",
            "--log-level=infmon=debug,kube=warn",
            "--log-format=text",
            "--metrics-port=8080",
            "--probe-port=8081",
            "--metrics-bind-address=0.0.0.0",
            "--probe-bind-address=::",
            "--allowed-prometheus-urls=http://thanos-query.monitoring:9090",
            "--dashboard-namespaces=monitoring,grafana",
            "--health-check-interval=30s",
            "--multi-cluster-dashboards",
            "--prometheus-url=http://prometheus-operated.monitoring:9090",
            "--default-monitor-labels=release=kube-prometheus-stack,team=ml",
            &gpu_exporter_arg(NAMESPACE),
            "--leader-election",
            "--without-secrets",
            "--prometheus-bearer-token-file=/etc/infmon/prometheus/token",
        ]
    );
    // The file that flag reads comes from a Secret volume.
    assert_eq!(
        container(&docs)["volumeMounts"],
        serde_json::json!([{"name": "prometheus-client", "mountPath": "/etc/infmon/prometheus", "readOnly": true}])
    );
    assert_eq!(
        one(&docs, "Deployment", Some(NAMESPACE))["spec"]["template"]["spec"]["volumes"],
        serde_json::json!([{"name": "prometheus-client", "secret": {"secretName": "infmon-prometheus-client"}}])
    );
    let service = one(&docs, "Service", Some(NAMESPACE));
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    let monitor = one(&docs, "ServiceMonitor", Some(NAMESPACE));
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
}

/// `(group, resource, verb)` triples.
type Grants = BTreeSet<(String, String, String)>;

/// Every grant of the rules of the given RBAC objects; panics on wildcards, on a grant given
/// twice by one object and on anything but plain apiGroups/resources/verbs rules.
fn grants(roles: &[&Value]) -> Grants {
    let mut all = Grants::new();
    for role in roles {
        let mut grants = Grants::new();
        for rule in role["rules"].as_array().expect("rules") {
            let rule = rule.as_object().expect("rule");
            let keys: BTreeSet<&str> = rule.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                BTreeSet::from(["apiGroups", "resources", "verbs"]),
                "{rule:?}"
            );
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|v| v.as_str().expect("string").to_string())
                    .collect()
            };
            for list in ["apiGroups", "resources", "verbs"] {
                assert!(
                    strings(list).iter().all(|s| !s.contains('*')),
                    "wildcard in {rule:?}"
                );
            }
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        let grant = (group.clone(), resource.clone(), verb);
                        assert!(grants.insert(grant.clone()), "granted twice: {grant:?}");
                    }
                }
            }
        }
        all.extend(grants);
    }
    all
}

/// The grants of the permission table's `scopes` for a feature set
/// (`infmon::rbac::permissions_in`).
fn expected(scopes: &[Scope], secrets: bool) -> Grants {
    scopes
        .iter()
        .flat_map(|scope| infmon::rbac::permissions_in(*scope, secrets))
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(move |v| (p.group.to_string(), p.resource.to_string(), v.to_string()))
        })
        .collect()
}

/// Asserts that the chart grants exactly `expected`, naming what is missing and what is extra.
fn assert_grants(actual: &Grants, expected: &Grants, context: &str) {
    let missing: Vec<_> = expected.difference(actual).collect();
    let extra: Vec<_> = actual.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}: the chart's RBAC differs from infmon::rbac::permissions_with()\n\
         missing from the chart: {missing:?}\nnot in the table: {extra:?}"
    );
}

/// The Role (and its RoleBinding to the operator) named `name` in `namespace`.
fn bound_role<'a>(docs: &'a [Value], name: &str, namespace: &str) -> &'a Value {
    let roles: Vec<&Value> = find(docs, "Role", Some(namespace))
        .into_iter()
        .filter(|r| r["metadata"]["name"] == name)
        .collect();
    assert_eq!(roles.len(), 1, "expected one Role {name} in {namespace}");
    let binding = find(docs, "RoleBinding", Some(namespace))
        .into_iter()
        .find(|b| b["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no RoleBinding {name} in {namespace}"));
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], name);
    assert_eq!(binding["subjects"][0]["name"], "infmon");
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    roles[0]
}

/// `(name, namespace)` of every Role.
fn roles(docs: &[Value]) -> BTreeSet<(String, String)> {
    docs.iter()
        .filter(|d| d["kind"] == "Role")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["metadata"]["namespace"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A feature set of the chart and the RBAC it must render.
struct FeatureSet {
    /// What it is, for messages.
    name: &'static str,
    /// `--set` values.
    sets: &'static [&'static str],
    /// The table's Secret permissions are in.
    secrets: bool,
    /// Watched namespaces (empty: cluster mode).
    watched: &'static [&'static str],
    /// The shared DCGM exporter's namespace.
    exporter: &'static str,
    /// Leader election (a Lease Role in the release namespace).
    leases: bool,
}

const FEATURE_SETS: &[FeatureSet] = &[
    FeatureSet {
        name: "default",
        sets: &[],
        secrets: false,
        watched: &[],
        exporter: NAMESPACE,
        leases: false,
    },
    FeatureSet {
        name: "secrets on",
        sets: &["rbac.secrets=true"],
        secrets: true,
        watched: &[],
        exporter: NAMESPACE,
        leases: false,
    },
    FeatureSet {
        name: "leader election",
        sets: &["replicas=2"],
        secrets: false,
        watched: &[],
        exporter: NAMESPACE,
        leases: true,
    },
    FeatureSet {
        name: "exporter in another namespace",
        sets: &["gpuExporter.namespace=gpu"],
        secrets: false,
        watched: &[],
        exporter: "gpu",
        leases: false,
    },
    FeatureSet {
        name: "namespaced",
        sets: &["watchNamespaces={llm,llm-staging}"],
        secrets: false,
        watched: &["llm", "llm-staging"],
        exporter: NAMESPACE,
        leases: false,
    },
    FeatureSet {
        name: "namespaced, secrets on, exporter in another namespace",
        sets: &[
            "watchNamespaces={llm,llm-staging}",
            "rbac.secrets=true",
            "gpuExporter.namespace=gpu",
        ],
        secrets: true,
        watched: &["llm", "llm-staging"],
        exporter: "gpu",
        leases: false,
    },
    FeatureSet {
        name: "namespaced, exporter in a watched namespace",
        sets: &["watchNamespaces={llm,gpu}", "gpuExporter.namespace=gpu"],
        secrets: false,
        watched: &["llm", "gpu"],
        exporter: "gpu",
        leases: false,
    },
];

#[test]
fn rbac_of_every_feature_set_is_exactly_the_permission_table() {
    use Scope::{Cluster, ExporterNamespace, OperatorNamespace, Watched};
    for set in FEATURE_SETS {
        let docs = render_set(set.sets);
        let context = |object: &str| format!("{}: {object}", set.name);
        let cluster_role = one(&docs, "ClusterRole", None);
        let binding = one(&docs, "ClusterRoleBinding", None);
        assert_eq!(binding["roleRef"]["name"], cluster_role["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["name"], "infmon");
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
        let mut expected_roles = BTreeSet::new();
        if set.watched.is_empty() {
            assert_grants(
                &grants(&[cluster_role]),
                &expected(&[Cluster, Watched], set.secrets),
                &context("ClusterRole"),
            );
        } else {
            assert_grants(
                &grants(&[cluster_role]),
                &expected(&[Cluster], set.secrets),
                &context("ClusterRole"),
            );
            let mut namespaces = set.watched.to_vec();
            if !namespaces.contains(&set.exporter) {
                namespaces.push(set.exporter);
            }
            for namespace in namespaces {
                let role = bound_role(&docs, "infmon", namespace);
                assert_grants(
                    &grants(&[role]),
                    &expected(&[Watched], set.secrets),
                    &context(&format!("Role in {namespace}")),
                );
                expected_roles.insert(("infmon".to_string(), namespace.to_string()));
            }
        }
        let exporter_role = bound_role(&docs, "infmon-gpu-exporter", set.exporter);
        assert_grants(
            &grants(&[exporter_role]),
            &expected(&[ExporterNamespace], set.secrets),
            &context("the exporter's Role"),
        );
        expected_roles.insert(("infmon-gpu-exporter".into(), set.exporter.into()));
        if set.leases {
            let lease_role = bound_role(&docs, "infmon-leader-election", NAMESPACE);
            assert_grants(
                &grants(&[lease_role]),
                &expected(&[OperatorNamespace], set.secrets),
                &context("the leader-election Role"),
            );
            expected_roles.insert(("infmon-leader-election".into(), NAMESPACE.into()));
        }
        assert_eq!(roles(&docs), expected_roles, "{}: Roles", set.name);
        assert_eq!(
            args(&docs).contains(&"--without-secrets"),
            !set.secrets,
            "{}: {:?}",
            set.name,
            args(&docs)
        );
        assert!(
            args(&docs).iter().any(|a| a.starts_with("--gpu-exporter={")
                && a.contains(&format!("\"namespace\":\"{}\"", set.exporter))),
            "{}: the operator writes the exporter where its Role is: {:?}",
            set.name,
            args(&docs)
        );
    }
}

#[test]
fn default_cluster_role_grants_no_daemon_sets_services_or_secrets() {
    let docs = render(None);
    let cluster_grants = grants(&[one(&docs, "ClusterRole", None)]);
    let granted: Vec<_> = cluster_grants
        .iter()
        .filter(|(_, resource, _)| {
            ["daemonsets", "services", "secrets"].contains(&resource.as_str())
        })
        .collect();
    assert!(granted.is_empty(), "{granted:?}");
    // The exporter's Role in the release namespace holds the DaemonSet and Service rights.
    let exporter = grants(&[bound_role(&docs, "infmon-gpu-exporter", NAMESPACE)]);
    for resource in ["daemonsets", "services"] {
        assert!(
            exporter
                .iter()
                .any(|(_, r, v)| r == resource && v == "create"),
            "{exporter:?}"
        );
    }
    // No object of the default install grants anything on Secrets.
    let all_roles: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .collect();
    assert!(
        grants(&all_roles).iter().all(|(_, r, _)| r != "secrets"),
        "a Secret grant in the default install"
    );
}

#[test]
fn namespaced_mode_writes_only_in_the_watched_namespaces() {
    let docs = render(Some("ci/namespaced-values.yaml"));
    assert!(args(&docs).contains(&"--watch-namespaces=llm,llm-staging"));
    let cluster_grants = grants(&[one(&docs, "ClusterRole", None)]);
    assert!(
        cluster_grants
            .iter()
            .all(|(_, _, verb)| ["get", "list", "watch"].contains(&verb.as_str())),
        "cluster-wide access must be read-only in namespaced mode: {cluster_grants:?}"
    );
}

#[test]
fn schema_rejects_wrong_values() {
    let cases = [
        ("replicas=0", "replicas: Must be greater than or equal to 1"),
        ("operator.logLevel=loud", "operator.logLevel"),
        ("operator.logFormat=xml", "operator.logFormat"),
        ("watchNamespaces={Bad_NS}", "watchNamespaces.0"),
        (
            "operator.prometheusUrl=ftp://prometheus",
            "operator.prometheusUrl",
        ),
        ("operator.metricsPort=70000", "operator.metricsPort"),
        (
            "operator.metricsBindAddress=everywhere",
            "operator.metricsBindAddress",
        ),
        (
            "operator.policy.allowedPrometheusUrls={file:///etc/passwd}",
            "operator.policy.allowedPrometheusUrls.0",
        ),
        (
            "operator.policy.dashboardNamespaces={Kube_System}",
            "operator.policy.dashboardNamespaces.0",
        ),
        (
            "metrics.serviceMonitor.interval=often",
            "metrics.serviceMonitor.interval",
        ),
        ("rbac.create=yes", "rbac.create"),
        ("replica=2", "Additional property replica is not allowed"),
        ("podAntiAffinity=soft", "podAntiAffinity"),
        (
            "podDisruptionBudget.minAvailable=-1",
            "podDisruptionBudget.minAvailable",
        ),
        (
            "networkPolicy.ingress=all",
            "Additional property ingress is not allowed",
        ),
    ];
    for (set, message) in cases {
        let err = template(&["--set".to_string(), set.to_string()])
            .expect_err(&format!("--set {set} must be rejected"));
        assert!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains(message),
            "--set {set}: expected {message:?} in:\n{err}"
        );
    }
    // The same values pass when right, so the failures above come from the values.
    template(&["--set".into(), "replicas=3".into()]).expect("replicas=3 is valid");
}

#[test]
fn chart_crd_is_byte_identical_to_crds_dir() {
    let name = "monitoring.inference.dev_inferencemonitorings.yaml";
    let chart = std::fs::read(support::repo_path("charts/infmon/crds").join(name)).unwrap();
    let crds = std::fs::read(support::repo_path("crds").join(name)).unwrap();
    assert!(
        chart == crds,
        "charts/infmon/crds/{name} differs from crds/{name}: cp crds/{name} charts/infmon/crds/"
    );
}

#[test]
fn chart_versions_follow_the_crate() {
    let text = std::fs::read_to_string(support::repo_path("charts/infmon/Chart.yaml")).unwrap();
    let chart: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
}

/// Copies a directory tree.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `NOTES.txt` as `helm install` would print it. `helm template` does not render NOTES, so a
/// copy of the chart renders it through `tpl` into a one-key YAML document.
fn notes(values: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let chart = dir.path().join("infmon");
    copy_dir(&support::repo_path("charts/infmon"), &chart);
    std::fs::create_dir(chart.join("files")).unwrap();
    std::fs::rename(
        chart.join("templates/NOTES.txt"),
        chart.join("files/NOTES.txt"),
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/notes.yaml"),
        "notes: {{ tpl (.Files.Get \"files/NOTES.txt\") . | quote }}\n",
    )
    .unwrap();
    let chart = chart.display().to_string();
    let mut args = vec![
        "template",
        "infmon",
        chart.as_str(),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/notes.yaml",
    ];
    let values = values_args(values);
    args.extend(values.iter().map(String::as_str));
    let yaml = helm::run(&args).unwrap_or_else(|err| panic!("{err}"));
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    doc["notes"].as_str().expect("notes").to_string()
}

#[test]
fn notes_tell_what_to_apply_next() {
    let default = notes(None);
    assert!(
        default.contains("rollout status deployment/infmon"),
        "{default}"
    );
    assert!(default.contains("watching every namespace"), "{default}");
    assert!(
        default.contains("operator.prometheusUrl is empty"),
        "{default}"
    );
    // The resource the notes suggest applying is valid.
    let (_, rest) = default
        .split_once("<<'YAML'\n")
        .expect("a resource to apply");
    let (resource, _) = rest.split_once("     YAML\n").expect("end of the resource");
    let resource: String = resource
        .lines()
        .map(|line| format!("{}\n", line.strip_prefix("     ").unwrap_or(line)))
        .collect();
    let resource: Value = serde_yaml::from_str(&resource).unwrap();
    infmon::validate::validate_document(&resource)
        .unwrap_or_else(|errors| panic!("the resource in NOTES.txt is invalid: {errors:?}"));

    assert!(default.contains("--set rbac.secrets=true"), "{default}");

    let ha = notes(Some("ci/ha-values.yaml"));
    assert!(!ha.contains("operator.prometheusUrl is empty"), "{ha}");
    let e2e = notes(Some("../../e2e/values.yaml"));
    assert!(!e2e.contains("rbac.secrets"), "{e2e}");

    let namespaced = notes(Some("ci/namespaced-values.yaml"));
    assert!(
        namespaced.contains("watching only: llm, llm-staging"),
        "{namespaced}"
    );
    assert!(namespaced.contains("add the namespaces"), "{namespaced}");
}

/// The Deployment's environment: name → the pod field it comes from.
fn env_fields(docs: &[Value]) -> Vec<(String, String)> {
    container(docs)["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let field = e["valueFrom"]["fieldRef"]["fieldPath"].as_str();
            (
                e["name"].as_str().expect("name").to_string(),
                field.expect("a pod field").to_string(),
            )
        })
        .collect()
}

#[test]
fn infmon_run_accepts_the_arguments_of_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\n\
         clusters: [{name: nowhere, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n\
         current-context: nowhere\n\
         users: [{name: nobody, user: {token: not-a-real-token}}]\n",
    )
    .unwrap();
    for (name, values) in SCENARIOS {
        let docs = render(*values);
        assert_eq!(
            env_fields(&docs),
            [
                ("POD_NAME".to_string(), "metadata.name".to_string()),
                (
                    "POD_NAMESPACE".to_string(),
                    "metadata.namespace".to_string()
                ),
            ],
            "{name}: the pod name and namespace (Lease identity and namespace)"
        );
        // The chart's flags as they are, except for free ports in place of the fixed ones and
        // a file of the test's in place of the mounted token.
        let token = dir.path().join("token");
        std::fs::write(&token, "token").unwrap();
        let args: Vec<String> = args(&docs)
            .into_iter()
            .map(|arg| match arg.split_once('=') {
                Some((flag @ ("--metrics-port" | "--probe-port"), _)) => format!("{flag}=0"),
                Some((flag @ "--prometheus-bearer-token-file", _)) => {
                    format!("{flag}={}", token.display())
                }
                _ => arg.to_string(),
            })
            .collect();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_infmon"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", "infmon-0")
            .env("POD_NAMESPACE", NAMESPACE)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Parsing succeeded when it gets as far as contacting the (absent) API server.
        assert!(
            stderr.contains("cannot reach the Kubernetes API server"),
            "{name}: infmon {args:?}\n{stderr}"
        );
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
    }
}

/// `helm template` with `--set` arguments, parsed.
fn render_set(sets: &[&str]) -> Vec<Value> {
    let args: Vec<String> = sets
        .iter()
        .flat_map(|set| ["--set".to_string(), set.to_string()])
        .collect();
    support::yaml_docs(&template(&args).unwrap_or_else(|err| panic!("{err}")))
}

/// The Deployment's pod selector labels.
fn pod_selector(docs: &[Value]) -> &Value {
    &one(docs, "Deployment", Some(NAMESPACE))["spec"]["selector"]["matchLabels"]
}

/// The Deployment container's port number with the given name.
fn container_port(docs: &[Value], name: &str) -> u64 {
    container(docs)["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port {name}"))
}

#[test]
fn network_policy_is_optional_and_admits_only_the_metrics_and_probe_ports() {
    for (name, values) in SCENARIOS
        .iter()
        .filter(|(name, _)| *name != "network-policy")
    {
        assert!(
            find(&render(*values), "NetworkPolicy", Some(NAMESPACE)).is_empty(),
            "{name}: a NetworkPolicy without networkPolicy.enabled"
        );
    }

    let docs = render(Some("ci/network-policy-values.yaml"));
    let policy = one(&docs, "NetworkPolicy", Some(NAMESPACE));
    let spec = &policy["spec"];
    assert_eq!(&spec["podSelector"]["matchLabels"], pod_selector(&docs));
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress = spec["ingress"].as_array().expect("ingress rules");
    let ports: Vec<(u64, &str)> = ingress
        .iter()
        .flat_map(|rule| rule["ports"].as_array().expect("ports").iter())
        .map(|p| {
            (
                p["port"].as_u64().expect("port number"),
                p["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (container_port(&docs, "metrics"), "TCP"),
            (container_port(&docs, "probes"), "TCP")
        ]
    );
    // metricsFrom of the values file: the monitoring namespace only; the probes from anywhere.
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert!(ingress[1].get("from").is_none(), "{}", ingress[1]);
    assert_eq!(spec["egress"].as_array().map(Vec::len), Some(3));

    // Enabled with nothing else: ingress only, egress left alone, ports follow the values.
    let docs = render_set(&[
        "networkPolicy.enabled=true",
        "operator.metricsPort=9100",
        "operator.probePort=9101",
    ]);
    let spec = &one(&docs, "NetworkPolicy", Some(NAMESPACE))["spec"];
    assert_eq!(spec["policyTypes"], serde_json::json!(["Ingress"]));
    assert!(spec.get("egress").is_none(), "{spec}");
    assert_eq!(spec["ingress"][0]["ports"][0]["port"], 9100);
    assert_eq!(spec["ingress"][1]["ports"][0]["port"], 9101);
    assert_eq!(container_port(&docs, "metrics"), 9100);
}

#[test]
fn more_than_one_replica_gets_a_disruption_budget_and_anti_affinity() {
    let pod_spec = |docs: &[Value]| {
        one(docs, "Deployment", Some(NAMESPACE))["spec"]["template"]["spec"].clone()
    };
    let single = render(None);
    assert!(find(&single, "PodDisruptionBudget", Some(NAMESPACE)).is_empty());
    assert!(pod_spec(&single).get("affinity").is_none());

    // Two replicas (ha values): keep one up, prefer different nodes.
    let ha = render(Some("ci/ha-values.yaml"));
    let budget = one(&ha, "PodDisruptionBudget", Some(NAMESPACE));
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert_eq!(
        &budget["spec"]["selector"]["matchLabels"],
        pod_selector(&ha)
    );
    let preferred = &pod_spec(&ha)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(preferred["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        &preferred["labelSelector"]["matchLabels"],
        pod_selector(&ha)
    );

    // Three replicas, required spreading, two kept up.
    let three = render(Some("ci/network-policy-values.yaml"));
    assert_eq!(
        one(&three, "PodDisruptionBudget", Some(NAMESPACE))["spec"]["minAvailable"],
        2
    );
    let required = &pod_spec(&three)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(required["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        &required["labelSelector"]["matchLabels"],
        pod_selector(&three)
    );

    // The user's affinity wins; both can be turned off.
    let own = render_set(&["replicas=2", "affinity.nodeAffinity.x=1"]);
    assert_eq!(
        pod_spec(&own)["affinity"],
        serde_json::json!({"nodeAffinity": {"x": 1}})
    );
    let off = render_set(&[
        "replicas=2",
        "podAntiAffinity=none",
        "podDisruptionBudget.enabled=false",
    ]);
    assert!(pod_spec(&off).get("affinity").is_none());
    assert!(find(&off, "PodDisruptionBudget", Some(NAMESPACE)).is_empty());

    // A budget that would block every drain is refused.
    let err = template(&[
        "--set".into(),
        "replicas=2".into(),
        "--set".into(),
        "podDisruptionBudget.minAvailable=2".into(),
    ])
    .expect_err("minAvailable equal to replicas must be refused");
    assert!(
        err.contains("podDisruptionBudget.minAvailable (2) must be less than replicas (2)"),
        "{err}"
    );
}
