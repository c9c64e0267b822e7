//! The committed CRD is generated, complete and documented.

use serde_json::Value;

fn committed_crd() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(infmon::crd::CRD_PATH);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn committed_crd_matches_the_code() {
    let generated = infmon::crd::crd_yaml().unwrap();
    assert!(
        committed_crd() == generated,
        "{} is out of date with src/api; regenerate it with `make crds`",
        infmon::crd::CRD_PATH
    );
}

/// Every property under spec and status has a description (they are `kubectl explain`'s text).
#[test]
fn every_field_is_described() {
    let crd: Value = serde_yaml::from_str(&committed_crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    for root in ["spec", "status"] {
        walk(&schema["properties"][root], root, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
    if node
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        missing.push(path.to_string());
    }
    // Types from Kubernetes itself (LabelSelector, Toleration, …) are described upstream.
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(child, &format!("{path}.{name}"), missing);
        }
    }
    if let Some(props) = node.pointer("/items/properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(child, &format!("{path}[].{name}"), missing);
        }
    }
}

#[test]
fn printer_columns_show_engine_targets_ready_and_age() {
    let crd: Value = serde_yaml::from_str(&committed_crd()).unwrap();
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Engine", "Targets", "Ready", "Reason", "Age"]);
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "infmon");
    assert_eq!(
        crd["spec"]["versions"][0]["subresources"]["status"],
        serde_json::json!({})
    );
}

#[test]
fn duration_fields_carry_the_shared_pattern() {
    let crd = committed_crd();
    let pattern_lines = crd
        .lines()
        .filter(|l| l.trim_start().starts_with("pattern: ^(("))
        .count();
    let expected = crd.matches(infmon::api::DURATION_PATTERN).count();
    assert_eq!(pattern_lines, 3, "three duration fields");
    assert_eq!(expected, 3, "each carries api::DURATION_PATTERN");
}
