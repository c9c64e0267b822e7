//! The `cluster` variable of every dashboard: each query filters on it, its "All" (`.*`) also
//! matches series without a `cluster` label, and it is hidden unless multi-cluster dashboards
//! are asked for (the operator's `--multi-cluster-dashboards`, `infmon render`'s flag of the
//! same name), which shows it on the shared copies and on a resource's own dashboard alike.

use infmon_devkit::lint;

use infmon::dashboards::{EMBEDDED, children, shared_children};
use infmon::validate::ClusterFacts;
use infmon::validate::{Validated, resolve, validate_document};
use serde_json::Value;

const MATCHER: &str = r#"cluster=~"$cluster""#;

/// Every `{...}` label matcher list of a PromQL text (not Grafana's `${...}`).
fn selectors(expr: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}').expect("closed selector");
        if start == 0 || !rest[..start].ends_with('$') {
            found.push(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    found
}

fn cluster_variable(dashboard: &Value) -> &Value {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "cluster")
        .expect("a cluster variable")
}

#[test]
fn every_query_filters_on_a_hidden_cluster_variable_whose_all_keeps_unlabelled_series() {
    for (name, json) in EMBEDDED {
        let dashboard: Value = serde_json::from_str(json).unwrap();
        let cluster = cluster_variable(&dashboard);
        assert_eq!(cluster["hide"], 2, "{name}: hidden by default");
        assert_eq!(cluster["includeAll"], true, "{name}");
        // `cluster=~".*"` also matches a series that has no cluster label at all.
        assert_eq!(cluster["allValue"], ".*", "{name}");
        let query = cluster["query"]["query"].as_str().unwrap();
        assert!(
            query.starts_with("label_values(") && query.ends_with(", cluster)"),
            "{name}: {query}"
        );
        let mut checked = 0;
        for (title, expr) in lint::panel_queries(&dashboard) {
            for selector in selectors(&expr) {
                assert!(
                    selector.contains(MATCHER),
                    "{name}/{title}: {{{selector}}} ignores the cluster picker"
                );
                checked += 1;
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if variable["type"] != "query" || variable["name"] == "cluster" {
                continue;
            }
            let query = variable["query"]["query"].as_str().unwrap();
            assert!(
                query.contains(MATCHER),
                "{name}: variable {} ignores the cluster picker: {query}",
                variable["name"]
            );
        }
        assert!(checked > 0, "{name}: no selector checked");
    }
}

/// Each delivered dashboard's `cluster` variable `hide` value.
fn hide_values(resource: &Validated) -> Vec<(String, Value)> {
    let mut objects = children(resource).unwrap();
    objects.extend(shared_children(std::slice::from_ref(resource)).unwrap());
    objects
        .iter()
        .flat_map(|child| {
            child.object["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(key, text)| {
                    let dashboard: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
                    (key.clone(), cluster_variable(&dashboard)["hide"].clone())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn resolved(example: &str, multi_cluster_dashboards: bool) -> Validated {
    let path = infmon_devkit::repo_path(format!("examples/{example}.yaml"));
    let value: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let facts = ClusterFacts {
        multi_cluster_dashboards,
        ..ClusterFacts::assumed_offline()
    };
    resolve(&validate_document(&value).unwrap(), &facts).unwrap()
}

#[test]
fn multi_cluster_dashboards_show_the_picker_on_shared_and_own_dashboards() {
    // vllm-older-version maps a series of its own, so it also gets its own dashboard.
    for example in ["vllm", "vllm-older-version"] {
        let hidden = hide_values(&resolved(example, false));
        let shown = hide_values(&resolved(example, true));
        assert!(hidden.len() >= 2, "{example}: {hidden:?}");
        assert!(hidden.iter().all(|(_, h)| h == 2), "{example}: {hidden:?}");
        assert_eq!(
            shown.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            hidden.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
        assert!(shown.iter().all(|(_, h)| h == 0), "{example}: {shown:?}");
    }
}
