//! Helpers shared by the dashboard and rule tests: reading examples into `Validated`,
//! substituting Grafana variables, parsing PromQL and listing the metric names it reads.

use std::collections::BTreeSet;

use infmon::validate::{ClusterFacts, Validated, resolve, validate_document};
use promql_parser::parser::{self, Expr};
use serde_json::Value;

/// Concrete values for the dashboards' variables, as a user picking one of each would get.
pub struct Values<'a> {
    /// `$namespace`.
    pub namespace: &'a str,
    /// `$pod`.
    pub pod: &'a str,
    /// `$model`.
    pub model: &'a str,
    /// `$engine`.
    pub engine: &'a str,
}

/// Values that any label matches (the variables' "All").
pub const ALL: Values<'static> = Values {
    namespace: ".*",
    pod: ".*",
    model: ".*",
    engine: ".*",
};

/// The expression with Grafana variables replaced (`$__rate_interval` → `1m`).
pub fn substitute(expr: &str, values: &Values) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$namespace", values.namespace)
        .replace("$pod", values.pod)
        .replace("$model", values.model)
        .replace("$engine", values.engine)
        .replace("$slo", ".*")
        .replace("$cluster", ".*")
}

/// Parses PromQL; panics naming `what` when it does not parse.
pub fn parse(what: &str, expr: &str) -> Expr {
    parser::parse(expr).unwrap_or_else(|err| panic!("{what}: `{expr}` does not parse: {err}"))
}

/// Every metric name an expression reads.
pub fn metric_names(expr: &Expr) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    walk(expr, &mut names);
    names
}

fn walk(expr: &Expr, names: &mut BTreeSet<String>) {
    match expr {
        Expr::Aggregate(a) => {
            walk(&a.expr, names);
            if let Some(p) = &a.param {
                walk(p, names);
            }
        }
        Expr::Unary(u) => walk(&u.expr, names),
        Expr::Binary(b) => {
            walk(&b.lhs, names);
            walk(&b.rhs, names);
        }
        Expr::Paren(p) => walk(&p.expr, names),
        Expr::Subquery(s) => walk(&s.expr, names),
        Expr::VectorSelector(vs) => names.extend(vs.name.clone()),
        Expr::MatrixSelector(ms) => names.extend(ms.vs.name.clone()),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, names)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every `(panel title, expr)` of a dashboard.
pub fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            panel["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().expect("expr").to_string()))
        })
        .collect()
}

/// Every `(variable name, selector)` of a dashboard's `label_values(selector, label)` variables.
pub fn variable_selectors(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"]["query"].as_str().expect("query");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("not label_values: {query}"));
            let (selector, _label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            (
                v["name"].as_str().unwrap().to_string(),
                selector.trim().to_string(),
            )
        })
        .collect()
}

/// An example manifest resolved as `infmon render` would (offline cluster facts).
pub fn example(name: &str) -> Validated {
    let path = crate::repo_path(format!("examples/{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    resource(&path.display().to_string(), &text)
}

/// A resource from YAML text (`what` names it in panics), validated and resolved offline.
pub fn resource(what: &str, yaml: &str) -> Validated {
    let value: Value = serde_yaml::from_str(yaml).expect("resource YAML");
    let resource = validate_document(&value).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    resolve(&resource, &ClusterFacts::assumed_offline()).expect("resource resolves")
}

/// Examples whose catalog entry comes from `spec.metrics` (a custom service; a vLLM role
/// override): their engine dashboards are generated per resource.
pub const MAPPED_EXAMPLES: [&str; 2] = ["custom-service", "vllm-older-version"];

/// A custom service that reports its latencies in milliseconds: its recording rules and
/// panels must still be in seconds.
pub const CUSTOM_MILLISECONDS: &str = r#"
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: embedder, namespace: search}
spec:
  engine: custom
  selector: {matchLabels: {app: embedder}}
  endpoint: {port: metrics, path: /metrics}
  metrics:
    requests: {name: embed_requests_total, type: counter}
    ttft: {name: embed_first_result_ms, type: histogram, unit: milliseconds}
    e2eLatency: {name: embed_latency_ms, type: histogram, unit: milliseconds}
    stages:
      - {title: tokenize, name: embed_tokenize_ms, type: histogram, unit: milliseconds}
      - {title: forward, name: embed_forward_ms, type: histogram, unit: milliseconds}
"#;

/// Example names with a concrete engine (one per engine plus the variants).
pub const ENGINE_EXAMPLES: [&str; 10] = [
    "vllm",
    "sglang",
    "tgi",
    "triton",
    "trtllm",
    "jetstream",
    "max",
    "dynamo",
    "dynamoworker",
    "llamacpp",
];
