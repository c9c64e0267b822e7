//! The classic Grafana dashboard JSON model, reduced to what infmon's dashboards use: a
//! datasource variable, a `cluster` variable, label-value query variables and time-series
//! panels laid out on a two-column grid with unique ids.
//!
//! Every dashboard is scoped to the `cluster` variable: the `namespace` matcher every query
//! carries gains a `cluster` matcher in front ([`scoped_to_cluster`]). Its "All" is `.*`, which
//! also matches series without a `cluster` label, so a single-cluster Prometheus sees no
//! difference; the variable is hidden unless multi-cluster dashboards are asked for
//! ([`show_cluster_variable`]).

use serde_json::{Value, json};

/// Grafana schema version of the generated JSON: the current one (Grafana 12 and 13), so
/// Grafana runs no migration when it loads a dashboard.
pub const SCHEMA_VERSION: u64 = 42;

/// The datasource reference every panel, target and query variable carries.
pub fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// The `namespace` matcher every generated query carries.
const NAMESPACE_MATCHER: &str = r#"namespace=~"$namespace""#;
/// What it becomes: the same, narrowed to the selected clusters.
const CLUSTER_AND_NAMESPACE: &str = r#"cluster=~"$cluster",namespace=~"$namespace""#;
/// Name of the cluster variable.
pub const CLUSTER_VARIABLE: &str = "cluster";
/// Grafana's `hide` value that hides a variable (label and picker).
const HIDDEN: u64 = 2;

/// A query narrowed to the selected clusters: its namespace matchers gain a cluster matcher,
/// and a `label_values(series, namespace)` without matchers gets one.
pub fn scoped_to_cluster(query: &str) -> String {
    let scoped = query.replace(NAMESPACE_MATCHER, CLUSTER_AND_NAMESPACE);
    match scoped
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(", namespace)"))
    {
        Some(series) if !series.contains('{') => {
            format!(r#"label_values({series}{{cluster=~"$cluster"}}, namespace)"#)
        }
        _ => scoped,
    }
}

/// Shows the hidden `cluster` variable of a dashboard's JSON, for Prometheus setups that hold
/// several clusters (Thanos Query, Mimir); a dashboard without one is left as it is.
pub fn show_cluster_variable(dashboard: &mut Value) {
    if let Some(list) = dashboard["templating"]["list"].as_array_mut() {
        for variable in list {
            if variable["name"] == CLUSTER_VARIABLE {
                variable["hide"] = json!(0);
            }
        }
    }
}

/// One query of a panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// PromQL, with Grafana variables such as `$pod` and `$__rate_interval`.
    pub expr: String,
    /// Legend template, e.g. `{{pod}} p95`.
    pub legend: String,
}

/// A time-series panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Title.
    pub title: String,
    /// What the panel shows, with any approximation spelled out.
    pub description: String,
    /// Grafana unit id (`s`, `reqps`, `percentunit`, `short`, `bytes`, `watt`, `celsius`).
    pub unit: &'static str,
    /// Queries.
    pub targets: Vec<Target>,
}

/// A query variable over `label_values(...)`, multi-select with an "All" of `.*`.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    /// Name, used as `$name` in queries.
    pub name: &'static str,
    /// Label shown in Grafana.
    pub label: &'static str,
    /// The `label_values(...)` query.
    pub query: String,
}

/// A dashboard before it is turned into JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Dashboard {
    /// Stable uid (at most 40 characters).
    pub uid: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Query variables after the datasource variable.
    pub variables: Vec<Variable>,
    /// Panels in reading order.
    pub panels: Vec<Panel>,
}

const PANEL_WIDTH: u64 = 12;
const PANEL_HEIGHT: u64 = 8;

impl Dashboard {
    /// The classic JSON model.
    pub fn to_json(&self) -> Value {
        let panels: Vec<Value> = self
            .panels
            .iter()
            .enumerate()
            .map(|(i, panel)| panel_json(panel, i as u64))
            .collect();
        // The cluster values come from the series the namespace picker reads.
        let cluster_query = self
            .variables
            .iter()
            .find(|v| v.name == "namespace")
            .and_then(|v| v.query.strip_suffix(", namespace)"))
            .map(|series| format!("{series}, cluster)"))
            .unwrap_or_else(|| "label_values(up, cluster)".to_string());
        let cluster = Variable {
            name: CLUSTER_VARIABLE,
            label: "Cluster",
            query: cluster_query,
        };
        // No `current`: Grafana selects the default Prometheus data source (a `current`
        // needs both `text` and `value`).
        let mut templating = vec![json!({
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "hide": 0,
            "includeAll": false,
            "multi": false,
            "options": [],
            "refresh": 1,
            "regex": ""
        })];
        let mut cluster = variable_json(&cluster);
        cluster["hide"] = json!(HIDDEN);
        templating.push(cluster);
        templating.extend(self.variables.iter().map(|v| {
            variable_json(&Variable {
                query: scoped_to_cluster(&v.query),
                ..v.clone()
            })
        }));
        json!({
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": true,
            "graphTooltip": 1,
            "time": {"from": "now-1h", "to": "now"},
            "refresh": "30s",
            "timezone": "",
            "annotations": {"list": []},
            "links": [],
            "templating": {"list": templating},
            "panels": panels
        })
    }
}

fn panel_json(panel: &Panel, index: u64) -> Value {
    let targets: Vec<Value> = panel
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "refId": ref_id(i),
                "datasource": datasource(),
                "expr": scoped_to_cluster(&t.expr),
                "legendFormat": t.legend,
                "range": true
            })
        })
        .collect();
    json!({
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource(),
        "gridPos": {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % 2) * PANEL_WIDTH,
            "y": (index / 2) * PANEL_HEIGHT
        },
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "min": 0},
            "overrides": []
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"], "showLegend": true},
            "tooltip": {"mode": "multi", "sort": "desc"}
        },
        "targets": targets
    })
}

/// Grafana's query letters: `A`…`Z`, then `AA`, `AB`, … for any number of queries.
fn ref_id(index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index;
    loop {
        letters.push(char::from(b'A' + (n % 26) as u8));
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    letters.iter().rev().collect()
}

fn variable_json(var: &Variable) -> Value {
    json!({
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": datasource(),
        "query": {"query": var.query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "includeAll": true,
        "allValue": ".*",
        "multi": true,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1
    })
}

#[cfg(test)]
mod tests {
    use super::{ref_id, scoped_to_cluster};

    #[test]
    fn queries_are_scoped_to_the_cluster_variable() {
        assert_eq!(
            scoped_to_cluster(r#"sum by (pod) (rate(x{namespace=~"$namespace",pod=~"$pod"}[5m]))"#),
            r#"sum by (pod) (rate(x{cluster=~"$cluster",namespace=~"$namespace",pod=~"$pod"}[5m]))"#
        );
        assert_eq!(
            scoped_to_cluster("label_values(vllm:num_requests_running, namespace)"),
            r#"label_values(vllm:num_requests_running{cluster=~"$cluster"}, namespace)"#
        );
        assert_eq!(
            scoped_to_cluster(r#"label_values(x{namespace=~"$namespace"}, pod)"#),
            r#"label_values(x{cluster=~"$cluster",namespace=~"$namespace"}, pod)"#
        );
    }

    #[test]
    fn query_letters_never_run_out() {
        let ids: Vec<String> = [0, 25, 26, 27, 51, 52, 190, 191, 701, 702]
            .into_iter()
            .map(ref_id)
            .collect();
        assert_eq!(
            ids,
            ["A", "Z", "AA", "AB", "AZ", "BA", "GI", "GJ", "ZZ", "AAA"]
        );
    }
}
