//! Core objects infmon generates pass `kubernetes-validate --strict` (Kubernetes 1.33's own
//! OpenAPI schemas): every example's rendered children and every dashboard ConfigMap.

use infmon_devkit as support;
use infmon_devkit::lint;

use support::golden::{inputs, render};

#[test]
fn every_dashboard_config_map_fits_client_side_apply_and_is_a_valid_config_map() {
    let mut yaml = String::new();
    let examples: Vec<_> = lint::ENGINE_EXAMPLES
        .iter()
        .chain(&["kitchen-sink"])
        .map(|e| lint::example(e))
        .collect();
    for example in &examples {
        let shared = infmon::dashboards::shared_children(std::slice::from_ref(example)).unwrap();
        let own = infmon::dashboards::children(example).unwrap();
        for child in shared.into_iter().chain(own) {
            let bytes = serde_json::to_vec(&child.object).unwrap().len();
            assert!(
                bytes < 256 * 1024,
                "{} is {bytes} bytes",
                child.display_name()
            );
            yaml.push_str("---\n");
            yaml.push_str(&serde_yaml::to_string(&child.object).unwrap());
        }
    }
    support::kubernetes_validate(&yaml).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn core_objects_pass_kubernetes_validate_strict() {
    let all: String = inputs()
        .iter()
        .map(|input| render(env!("CARGO_BIN_EXE_infmon"), input, "kubernetes"))
        .collect();
    let kinds: Vec<String> = support::yaml_docs(&all)
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in ["DaemonSet", "Service", "Secret"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} rendered");
    }
    if let Err(output) = support::kubernetes_validate(&all) {
        panic!("kubernetes-validate --strict 1.33 failed:\n{output}");
    }
}
