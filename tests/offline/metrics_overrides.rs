//! `spec.metrics` overrides one role of a known engine: exactly the queries that read that
//! role change (in the engine dashboard and the rules), every other query stays the preset's.
//! The changed queries are also kept as a golden file (regenerate with `make golden`).

use infmon_devkit::lint;

use std::collections::BTreeMap;

use infmon::dashboards::{embedded, generate};
use infmon::rules;
use infmon::validate::Validated;
use serde_json::Value;

const OLD_NAME: &str = "vllm:gpu_cache_usage_perc";
const PRESET_NAME: &str = "vllm:kv_cache_usage_perc";
const GOLDEN: &str = "tests/golden/overrides/vllm-older-version.txt";

/// Every query of a resource, keyed by where it is used, with the resource's own key
/// replaced so two resources can be compared.
fn queries(resource: &Validated, dashboard: &Value) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            all.insert(
                format!(
                    "dashboard/{} [{}]",
                    panel["title"].as_str().unwrap(),
                    target["legendFormat"].as_str().unwrap()
                ),
                target["expr"].as_str().unwrap().to_string(),
            );
        }
    }
    for group in rules::groups(resource).unwrap().as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["record"].as_str().or(rule["alert"].as_str()).unwrap();
            all.insert(
                format!("rule/{name}"),
                rule["expr"]
                    .as_str()
                    .unwrap()
                    .replace(&resource.key(), "KEY"),
            );
        }
    }
    all
}

#[test]
fn overriding_one_role_changes_exactly_the_queries_that_read_it() {
    let preset = lint::example("vllm");
    let legacy = lint::example("vllm-older-version");
    let preset_queries = queries(
        &preset,
        &serde_json::from_str(embedded("vllm").unwrap()).unwrap(),
    );
    let legacy_queries = queries(&legacy, &generate::resource_dashboard(&legacy).to_json());

    assert_eq!(
        preset_queries.keys().collect::<Vec<_>>(),
        legacy_queries.keys().collect::<Vec<_>>(),
        "the same panels and rules exist"
    );
    let mut changed = Vec::new();
    for (what, expr) in &legacy_queries {
        let original = &preset_queries[what];
        if expr == original {
            assert!(
                !expr.contains(PRESET_NAME),
                "{what} still reads the preset name: {expr}"
            );
            continue;
        }
        assert!(
            expr.contains(OLD_NAME),
            "{what} changed without reading the override: {expr}"
        );
        assert_eq!(
            &expr.replace(OLD_NAME, PRESET_NAME),
            original,
            "{what} changed beyond the metric name"
        );
        changed.push(format!("{what}\n  {expr}\n"));
    }
    assert!(
        changed.len() >= 2,
        "the KV-cache panel and record must both change: {changed:?}"
    );

    let text = changed.concat();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("INFMON_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        text,
        "{GOLDEN} is out of date; regenerate it with `make golden` and review the diff"
    );
}

#[test]
fn a_preset_resource_keeps_the_shared_engine_dashboard() {
    let preset = lint::example("vllm");
    let legacy = lint::example("vllm-older-version");
    let uid = |r: &Validated| {
        let mut children = infmon::dashboards::children(r).unwrap();
        children.extend(infmon::dashboards::shared_children(std::slice::from_ref(r)).unwrap());
        let json = children
            .iter()
            .find(|c| c.name.contains("dashboard-vllm"))
            .map(|c| c.object["data"]["vllm.json"].as_str().unwrap().to_string())
            .unwrap();
        serde_json::from_str::<Value>(&json).unwrap()["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(uid(&preset), "infmon-vllm");
    let own = uid(&legacy);
    assert!(own.starts_with("infmon-vllm-") && own.len() <= 40, "{own}");
}
