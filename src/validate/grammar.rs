//! Every string of a resource checked against the grammar of the place it lands: PromQL
//! (label matchers parsed and re-printed, metric names that are not keywords), Prometheus'
//! configuration (RE2 relabel regexes, label names, durations), Kubernetes (object names,
//! Secret keys, label keys and values) and alert templates. [`check`] runs inside
//! [`super::resolve`], so `infmon validate`, `infmon render` and the operator give one verdict.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};

use super::error::ResolveError;
use crate::api::{
    ExistingTargets, InferenceMonitoring, MAX_ITEMS, MAX_PROPERTIES, MetricMapping, MetricsSpec,
    QueryHeader, RelabelAction, RelabelConfig, parse_duration,
};

/// The longest duration accepted anywhere in a spec (scrape interval and timeout, health-check
/// interval): one day. Longer values are rejected before they reach Prometheus or the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The most `spec.metrics.stages` (and `queues`) a resource may list (the CRD's `maxItems`).
pub const MAX_STAGES: usize = 32;
/// The most `spec.staticTargets` a resource may list (the CRD's `maxItems`).
pub const MAX_STATIC_TARGETS: usize = 256;

/// Target label naming the owning resource (`<namespace>/<name>`); the health checks group by it.
pub const OWNER_TARGET_LABEL: &str = "inference_monitoring";
/// Target label naming the engine. Not `engine`: vLLM already exports an `engine` label.
pub const ENGINE_TARGET_LABEL: &str = "inference_engine";
/// Target labels infmon sets on every series; user matchers and relabelings may not use them.
pub const RESERVED_LABELS: [&str; 2] = [OWNER_TARGET_LABEL, ENGINE_TARGET_LABEL];

/// PromQL words a metric name may not be: they parse as operators, modifiers or numbers.
const PROMQL_KEYWORDS: [&str; 32] = [
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
    "start",
    "end",
    "step",
    "smoothed",
];

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ResolveError {
    ResolveError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A DNS-1123 label (namespaces, Service names): at most 63 lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A DNS-1123 subdomain (most object names, Secret names): at most 253 characters, dot-separated
/// DNS labels.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// A Kubernetes label or annotation key: an optional DNS subdomain prefix and `/`, then a name
/// of at most 63 letters, digits, `-`, `_` and `.` starting and ending with a letter or digit.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns_subdomain(p))
        && is_label_value(name)
        && !name.is_empty()
}

/// A Kubernetes label value: empty, or at most 63 letters, digits, `-`, `_` and `.` starting
/// and ending with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric())
}

/// A PromQL string literal holding `value` (Go escaping, as Prometheus reads it).
pub fn promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A metric name as Prometheus exports it that PromQL reads as a series, not as a keyword,
/// number or function.
pub fn check_metric_name(field: &str, name: &str) -> Result<(), ResolveError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid {
        return Err(invalid(
            field,
            format!("{name:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"),
        ));
    }
    let keyword = PROMQL_KEYWORDS.contains(&name.to_ascii_lowercase().as_str());
    let parses_as_series = matches!(
        parser::parse(name),
        Ok(Expr::VectorSelector(ref v)) if v.name.as_deref() == Some(name)
    );
    if keyword || !parses_as_series {
        return Err(invalid(
            field,
            format!(
                "{name:?} is a PromQL keyword and cannot be queried by name; use the series' real name"
            ),
        ));
    }
    Ok(())
}

/// Parses label matchers (`code=~"5..", method="POST"`) with a PromQL parser and prints them
/// again, so nothing in them can end the selector or another string early. Matchers on
/// Prometheus' internal labels (`__*`) and on infmon's own labels are rejected.
pub fn canonical_matchers(field: &str, text: &str) -> Result<String, ResolveError> {
    let expr = parser::parse(&format!("m{{{text}}}")).map_err(|err| {
        invalid(
            field,
            format!("{text:?} is not a list of PromQL label matchers like code=~\"5..\": {err}"),
        )
    })?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(invalid(
            field,
            format!("{text:?} is not a list of PromQL label matchers"),
        ));
    };
    if selector.offset.is_some()
        || selector.at.is_some()
        || !selector.matchers.or_matchers.is_empty()
    {
        return Err(invalid(
            field,
            format!("{text:?} must be plain label matchers joined by commas"),
        ));
    }
    let mut printed = Vec::new();
    for matcher in &selector.matchers.matchers {
        if !is_label_name(&matcher.name) {
            return Err(invalid(
                field,
                format!(
                    "{:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                    matcher.name
                ),
            ));
        }
        if matcher.name.starts_with("__") || RESERVED_LABELS.contains(&matcher.name.as_str()) {
            return Err(invalid(
                field,
                format!(
                    "label {:?} is set by Prometheus or infmon and cannot be matched here",
                    matcher.name
                ),
            ));
        }
        let op = match &matcher.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        printed.push(format!(
            "{}{op}{}",
            matcher.name,
            promql_string(&matcher.value)
        ));
    }
    if printed.is_empty() {
        return Err(invalid(field, "at least one label matcher is needed"));
    }
    Ok(printed.join(", "))
}

/// A duration between 1ms and [`MAX_DURATION`].
pub fn check_duration(field: &str, text: &str) -> Result<Duration, ResolveError> {
    match parse_duration(text) {
        Some(d) if d.is_zero() => Err(invalid(
            field,
            format!("{text:?} is zero; use a positive duration like 15s"),
        )),
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(invalid(
            field,
            format!("{text:?} is longer than the longest allowed duration, 24h"),
        )),
    }
}

/// A Secret reference whose name and key are safe as Kubernetes names and as the path
/// `/etc/prometheus/secrets/<name>/<key>`.
pub fn check_secret(field: &str, selector: &SecretKeySelector) -> Result<(), ResolveError> {
    if !is_dns_subdomain(&selector.name) {
        return Err(invalid(
            format!("{field}.name"),
            format!(
                "{:?} is not a Secret name (lowercase letters, digits, '-' and '.')",
                selector.name
            ),
        ));
    }
    if !is_config_key(&selector.key) {
        return Err(invalid(
            format!("{field}.key"),
            format!(
                "{:?} is not a Secret key (letters, digits, '-', '_' and '.'; not . or ..)",
                selector.key
            ),
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host, without user information.
pub fn check_url(field: &str, text: &str) -> Result<url::Url, ResolveError> {
    let url = url::Url::parse(text)
        .map_err(|err| invalid(field, format!("{text:?} is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            field,
            format!("{text:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            field,
            "credentials do not belong in the URL; use spec.prometheus.auth",
        ));
    }
    Ok(url)
}

/// Text placed into a Prometheus alert template (labels, annotations): no template delimiters.
pub fn check_template_free(field: &str, text: &str) -> Result<(), ResolveError> {
    if text.contains("{{") || text.contains("}}") {
        return Err(invalid(
            field,
            format!(
                "{text:?} contains a template delimiter ({{{{ or }}}}), which Prometheus would expand; remove it"
            ),
        ));
    }
    Ok(())
}

/// A relabeling rule Prometheus and the Prometheus Operator accept, that leaves infmon's own
/// labels alone.
pub fn check_relabeling(field: &str, rule: &RelabelConfig) -> Result<(), ResolveError> {
    let action = rule.action.unwrap_or(RelabelAction::Replace);
    for (i, label) in rule.source_labels.iter().flatten().enumerate() {
        if !is_label_name(label) {
            return Err(invalid(
                format!("{field}.sourceLabels[{i}]"),
                format!("{label:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        }
    }
    if let Some(regex) = &rule.regex {
        // Prometheus anchors relabel regexes and compiles them as RE2. The `regex` crate's
        // syntax is close to RE2 and, like it, rejects lookaround and backreferences.
        regex::Regex::new(&format!("^(?:{regex})$")).map_err(|err| {
            invalid(
                format!("{field}.regex"),
                format!(
                    "{regex:?} is not an RE2 regular expression: {}",
                    last_line(&err.to_string())
                ),
            )
        })?;
    }
    match (action, rule.modulus) {
        (RelabelAction::Hashmod, None | Some(0)) => {
            return Err(invalid(
                format!("{field}.modulus"),
                "action hashmod needs a modulus of at least 1",
            ));
        }
        (RelabelAction::Hashmod, _) | (_, None) => {}
        (_, Some(_)) => {
            return Err(invalid(
                format!("{field}.modulus"),
                "modulus applies to action hashmod only; remove it",
            ));
        }
    }
    let needs_target = matches!(
        action,
        RelabelAction::Replace
            | RelabelAction::Hashmod
            | RelabelAction::Lowercase
            | RelabelAction::Uppercase
            | RelabelAction::Keepequal
            | RelabelAction::Dropequal
    );
    match &rule.target_label {
        None if needs_target => Err(invalid(
            format!("{field}.targetLabel"),
            format!("action {} needs a targetLabel", action_name(action)),
        )),
        Some(target) if RESERVED_LABELS.contains(&target.as_str()) => Err(invalid(
            format!("{field}.targetLabel"),
            format!(
                "{target:?} names this resource's series and is set by infmon; choose another label"
            ),
        )),
        Some(target)
            if !(is_label_name(target)
                || action == RelabelAction::Replace && is_replace_target(target)) =>
        {
            Err(invalid(
                format!("{field}.targetLabel"),
                format!("{target:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ))
        }
        _ => Ok(()),
    }
}

/// A `replace` target may reference regex groups (`$1`, `${name}`) inside a label name.
fn is_replace_target(target: &str) -> bool {
    let pattern = regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$")
        .expect("the pattern compiles");
    pattern.is_match(target)
}

fn action_name(action: RelabelAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

fn check_selector(field: &str, selector: &LabelSelector) -> Result<(), ResolveError> {
    for (key, value) in selector.match_labels.iter().flatten() {
        check_label(&format!("{field}.matchLabels"), key, value)?;
    }
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        if !is_qualified_name(&requirement.key) {
            return Err(invalid(
                format!("{at}.key"),
                format!("{:?} is not a Kubernetes label key", requirement.key),
            ));
        }
        for value in requirement.values.iter().flatten() {
            if !is_label_value(value) {
                return Err(invalid(
                    format!("{at}.values"),
                    format!("{value:?} is not a Kubernetes label value"),
                ));
            }
        }
    }
    Ok(())
}

/// Headers infmon sets itself, which `spec.prometheus.auth.headers` may not name.
const RESERVED_HEADERS: [&str; 6] = [
    "authorization",
    "host",
    "content-length",
    "content-type",
    "connection",
    "transfer-encoding",
];

/// Extra query headers: HTTP token names, each once, none infmon sets itself, and a value
/// (literal or from a Secret) that can travel in a header.
fn check_query_headers(headers: &[QueryHeader]) -> Result<(), ResolveError> {
    let mut seen = BTreeSet::new();
    for (i, header) in headers.iter().enumerate() {
        let field = format!("spec.prometheus.auth.headers[{i}]");
        let name = &header.name;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{name:?} is not an HTTP header name"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(invalid(
                format!("{field}.name"),
                format!(
                    "{name:?} is set by infmon itself; use bearerToken or basicAuth for credentials"
                ),
            ));
        }
        if !seen.insert(lower) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{name:?} is given twice; set each header once"),
            ));
        }
        match (&header.value, &header.value_from) {
            (Some(value), None) => {
                if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
                    return Err(invalid(
                        format!("{field}.value"),
                        "must be printable ASCII (no line breaks or control characters)",
                    ));
                }
            }
            (None, Some(secret)) => check_secret(&format!("{field}.valueFrom"), secret)?,
            _ => {
                return Err(invalid(field, "set value or valueFrom, exactly one"));
            }
        }
    }
    Ok(())
}

/// Longest `existingTargets` job or label value accepted.
const MAX_EXISTING_VALUE: usize = 256;

/// `spec.prometheus.existingTargets`: exactly one of `job` and `label`; a label name that is a
/// Prometheus target label and not one infmon sets; values of bounded length without control
/// characters (they land in PromQL string literals).
fn check_existing_targets(existing: &ExistingTargets) -> Result<(), ResolveError> {
    const FIELD: &str = "spec.prometheus.existingTargets";
    let (field, value) = match (&existing.job, &existing.label) {
        (Some(job), None) => (format!("{FIELD}.job"), job),
        (None, Some(label)) => {
            let name = &label.name;
            if !is_label_name(name) || name.starts_with("__") {
                return Err(invalid(
                    format!("{FIELD}.label.name"),
                    format!(
                        "{name:?} is not a target label name (letters, digits and '_', not starting with a digit or '__')"
                    ),
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(invalid(
                    format!("{FIELD}.label.name"),
                    format!(
                        "{name:?} is set by infmon on its own targets, never by an existing job; name a label the existing monitors set, or use job"
                    ),
                ));
            }
            (format!("{FIELD}.label.value"), &label.value)
        }
        _ => return Err(invalid(FIELD, "set job or label, exactly one")),
    };
    if value.is_empty() || value.len() > MAX_EXISTING_VALUE || value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!(
                "{value:?} must be 1 to {MAX_EXISTING_VALUE} characters without control characters"
            ),
        ));
    }
    Ok(())
}

fn check_label(field: &str, key: &str, value: &str) -> Result<(), ResolveError> {
    if !is_qualified_name(key) {
        return Err(invalid(
            field,
            format!(
                "{key:?} is not a Kubernetes label key (an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.')"
            ),
        ));
    }
    if !is_label_value(value) {
        return Err(invalid(
            format!("{field}.{key}"),
            format!(
                "{value:?} is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
            ),
        ));
    }
    Ok(())
}

fn check_mapping(field: &str, mapping: &mut MetricMapping) -> Result<(), ResolveError> {
    check_metric_name(&format!("{field}.name"), &mapping.name)?;
    if let Some(matchers) = &mapping.matchers {
        mapping.matchers = Some(canonical_matchers(&format!("{field}.matchers"), matchers)?);
    }
    if let Some(label) = &mapping.worker_label
        && (!is_label_name(label) || label.starts_with("__"))
    {
        return Err(invalid(
            format!("{field}.workerLabel"),
            format!("{label:?} is not a label name"),
        ));
    }
    Ok(())
}

/// `spec.metrics` with every name checked and every matcher re-printed.
fn checked_metrics(metrics: &MetricsSpec) -> Result<MetricsSpec, ResolveError> {
    let mut metrics = metrics.clone();
    let roles: [(&str, &mut Option<MetricMapping>); 14] = [
        ("requests", &mut metrics.requests),
        ("errors", &mut metrics.errors),
        ("waiting", &mut metrics.waiting),
        ("running", &mut metrics.running),
        ("ttft", &mut metrics.ttft),
        ("interTokenLatency", &mut metrics.inter_token_latency),
        ("e2eLatency", &mut metrics.e2e_latency),
        ("promptTokens", &mut metrics.prompt_tokens),
        ("generationTokens", &mut metrics.generation_tokens),
        ("kvCacheUsage", &mut metrics.kv_cache_usage),
        ("batchSize", &mut metrics.batch_size),
        ("workerRequests", &mut metrics.worker_requests),
        ("gpuMemory", &mut metrics.gpu_memory),
        ("gpuUtilization", &mut metrics.gpu_utilization),
    ];
    for (role, mapping) in roles {
        if let Some(mapping) = mapping {
            check_mapping(&format!("spec.metrics.{role}"), mapping)?;
        }
    }
    for (i, stage) in metrics.stages.iter_mut().enumerate() {
        check_mapping(&format!("spec.metrics.stages[{i}]"), stage)?;
    }
    for (i, queue) in metrics.queues.iter_mut().enumerate() {
        check_mapping(&format!("spec.metrics.queues[{i}]"), queue)?;
    }
    if let Some(core) = &metrics.core_metric {
        check_metric_name("spec.metrics.coreMetric", core)?;
    }
    if let Some(label) = &metrics.model_label
        && (!is_label_name(label) || label.starts_with("__"))
    {
        return Err(invalid(
            "spec.metrics.modelLabel",
            format!("{label:?} is not a label name"),
        ));
    }
    Ok(metrics)
}

/// `host:port` with a port from 1 to 65535.
fn check_static_target(field: &str, target: &str) -> Result<(), ResolveError> {
    let port = target
        .rsplit_once(':')
        .and_then(|(host, port)| (!host.is_empty()).then_some(port))
        .and_then(|port| port.parse::<u32>().ok());
    match port {
        Some(1..=65535) => Ok(()),
        _ => Err(invalid(
            field,
            format!("{target:?} must be host:port with a port from 1 to 65535"),
        )),
    }
}

/// The list bounds of the CRD schema, checked again: the operator reads stored objects without
/// the API server's schema (one stored before a CRD upgrade may hold more).
fn check_sizes(resource: &InferenceMonitoring) -> Result<(), ResolveError> {
    let spec = &resource.spec;
    let metrics = spec.metrics.as_ref();
    let lists = [
        (
            "spec.metrics.stages",
            metrics.map_or(0, |m| m.stages.len()),
            MAX_STAGES,
        ),
        (
            "spec.metrics.queues",
            metrics.map_or(0, |m| m.queues.len()),
            MAX_STAGES,
        ),
        (
            "spec.staticTargets",
            spec.static_targets.as_ref().map_or(0, Vec::len),
            MAX_STATIC_TARGETS,
        ),
        (
            "spec.endpoint.metricRelabelings",
            spec.endpoint
                .as_ref()
                .and_then(|e| e.metric_relabelings.as_ref())
                .map_or(0, Vec::len),
            MAX_ITEMS as usize,
        ),
        (
            "spec.namespaceSelector.matchNames",
            spec.namespace_selector
                .as_ref()
                .and_then(|n| n.match_names.as_ref())
                .map_or(0, Vec::len),
            MAX_ITEMS as usize,
        ),
        ("spec.slos", spec.slos.len(), crate::api::MAX_SLOS),
        (
            "spec.alerts.labels",
            spec.alerts.labels.len(),
            MAX_PROPERTIES as usize,
        ),
        (
            "spec.dashboards.labels",
            spec.dashboards.labels.len(),
            MAX_PROPERTIES as usize,
        ),
        (
            "spec.prometheus.monitorLabels",
            spec.prometheus.monitor_labels.len(),
            MAX_PROPERTIES as usize,
        ),
    ];
    for (field, len, max) in lists {
        if len > max {
            return Err(invalid(
                field,
                format!("Too many: {len}: must have at most {max} items"),
            ));
        }
    }
    Ok(())
}

/// Checks every user string of `resource` where it lands; returns `spec.metrics` with its
/// matchers re-printed (the only form the builders may use).
pub fn check(resource: &InferenceMonitoring) -> Result<Option<MetricsSpec>, ResolveError> {
    check_sizes(resource)?;
    let meta = &resource.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    if !is_dns_subdomain(name) {
        return Err(invalid(
            "metadata.name",
            format!(
                "{name:?} is not a Kubernetes object name (at most 253 lowercase letters, digits, '-' and '.')"
            ),
        ));
    }
    if let Some(namespace) = &meta.namespace
        && !is_dns_label(namespace)
    {
        return Err(invalid(
            "metadata.namespace",
            format!(
                "{namespace:?} is not a namespace name (at most 63 lowercase letters, digits and '-')"
            ),
        ));
    }
    let spec = &resource.spec;
    if let Some(selector) = &spec.selector {
        check_selector("spec.selector", selector)?;
    }
    for (i, ns) in spec
        .namespace_selector
        .iter()
        .flat_map(|n| n.match_names.iter().flatten())
        .enumerate()
    {
        if !is_dns_label(ns) {
            return Err(invalid(
                format!("spec.namespaceSelector.matchNames[{i}]"),
                format!("{ns:?} is not a namespace name"),
            ));
        }
    }
    for (i, target) in spec.static_targets.iter().flatten().enumerate() {
        check_static_target(&format!("spec.staticTargets[{i}]"), target)?;
    }
    if let Some(endpoint) = &spec.endpoint {
        if let Some(interval) = &endpoint.interval {
            check_duration("spec.endpoint.interval", interval)?;
        }
        if let Some(timeout) = &endpoint.scrape_timeout {
            check_duration("spec.endpoint.scrapeTimeout", timeout)?;
        }
        if let Some(path) = &endpoint.path
            && path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(invalid(
                "spec.endpoint.path",
                format!("{path:?} must be a plain URL path (no spaces, query or fragment)"),
            ));
        }
        if let Some(tls) = &endpoint.tls {
            if let Some(ca) = &tls.ca {
                check_secret("spec.endpoint.tls.ca", ca)?;
            }
            if let Some(server_name) = &tls.server_name
                && (server_name.is_empty() || !is_dns_subdomain(&server_name.to_ascii_lowercase()))
            {
                return Err(invalid(
                    "spec.endpoint.tls.serverName",
                    format!("{server_name:?} is not a host name"),
                ));
            }
        }
        if let Some(auth) = &endpoint.authorization {
            check_secret("spec.endpoint.authorization.credentials", &auth.credentials)?;
            if let Some(kind) = &auth.r#type
                && (kind.is_empty()
                    || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            {
                return Err(invalid(
                    "spec.endpoint.authorization.type",
                    format!("{kind:?} is not an HTTP authorization scheme like Bearer"),
                ));
            }
        }
        for (i, rule) in endpoint.metric_relabelings.iter().flatten().enumerate() {
            check_relabeling(&format!("spec.endpoint.metricRelabelings[{i}]"), rule)?;
        }
    }
    let prometheus = &spec.prometheus;
    for (key, value) in &prometheus.monitor_labels {
        check_label("spec.prometheus.monitorLabels", key, value)?;
    }
    if let Some(url) = &prometheus.url {
        check_url("spec.prometheus.url", url)?;
    }
    if let Some(auth) = &prometheus.auth {
        if let Some(token) = &auth.bearer_token {
            check_secret("spec.prometheus.auth.bearerToken", token)?;
        }
        if let Some(basic) = &auth.basic_auth {
            check_secret("spec.prometheus.auth.basicAuth.username", &basic.username)?;
            check_secret("spec.prometheus.auth.basicAuth.password", &basic.password)?;
        }
        if let Some(ca) = &auth.ca {
            check_secret("spec.prometheus.auth.ca", ca)?;
        }
        if let Some(cert) = &auth.cert {
            check_secret("spec.prometheus.auth.cert", cert)?;
        }
        if let Some(key) = &auth.key {
            check_secret("spec.prometheus.auth.key", key)?;
        }
        if auth.cert.is_some() != auth.key.is_some() {
            return Err(invalid(
                "spec.prometheus.auth",
                "set cert and key together (a client certificate needs its private key)",
            ));
        }
        check_query_headers(&auth.headers)?;
    }
    if let Some(interval) = &prometheus.health_check_interval {
        check_duration("spec.prometheus.healthCheckInterval", interval)?;
    }
    if let Some(existing) = &prometheus.existing_targets {
        check_existing_targets(existing)?;
    }
    let dashboards = &spec.dashboards;
    if let Some(namespace) = &dashboards.namespace
        && !is_dns_label(namespace)
    {
        return Err(invalid(
            "spec.dashboards.namespace",
            format!("{namespace:?} is not a namespace name"),
        ));
    }
    for (key, value) in &dashboards.labels {
        check_label("spec.dashboards.labels", key, value)?;
    }
    if !is_qualified_name(&dashboards.folder_annotation) {
        return Err(invalid(
            "spec.dashboards.folderAnnotation",
            format!(
                "{:?} is not a Kubernetes annotation key",
                dashboards.folder_annotation
            ),
        ));
    }
    if let Some(selector) = &dashboards.instance_selector {
        check_selector("spec.dashboards.instanceSelector", selector)?;
    }
    let alerts = &spec.alerts;
    check_url("spec.alerts.runbookBaseUrl", &alerts.runbook_base_url)?;
    check_template_free("spec.alerts.runbookBaseUrl", &alerts.runbook_base_url)?;
    for (key, value) in &alerts.labels {
        if !is_label_name(key) || key.starts_with("__") || key == "alertname" {
            return Err(invalid(
                "spec.alerts.labels",
                format!(
                    "{key:?} is not an alert label name ([a-zA-Z_][a-zA-Z0-9_]*, not __* or alertname)"
                ),
            ));
        }
        check_template_free(&format!("spec.alerts.labels.{key}"), value)?;
    }
    spec.metrics.as_ref().map(checked_metrics).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_reprinted_so_a_backslash_cannot_escape_the_quote() {
        assert_eq!(
            canonical_matchers("f", r#"code =~ "5..",method="POST""#).unwrap(),
            r#"code=~"5..", method="POST""#
        );
        // A value ending in a backslash is a parse error, not a way out of the string.
        assert!(canonical_matchers("f", r#"a="\", inference_monitoring="x/y", b="""#).is_err());
        let err = canonical_matchers("f", r#"inference_monitoring="other/victim""#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("f: label \"inference_monitoring\""),
            "{err}"
        );
        assert_eq!(
            canonical_matchers("f", r#"a="x\"y\\""#).unwrap(),
            r#"a="x\"y\\""#
        );
    }

    #[test]
    fn keywords_are_not_metric_names() {
        for name in ["sum", "on", "bool", "inf", "NaN", "offset", "by"] {
            assert!(check_metric_name("f", name).is_err(), "{name}");
        }
        for name in [
            "requests_total",
            "vllm:num_requests_running",
            "summary",
            "infinity",
        ] {
            check_metric_name("f", name).unwrap();
        }
    }

    #[test]
    fn names_and_keys_follow_kubernetes() {
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("../../etc"));
        assert!(!is_dns_subdomain("A"));
        assert!(is_config_key("ca.crt") && !is_config_key("..") && !is_config_key("a/b"));
        assert!(is_qualified_name("app.kubernetes.io/name") && !is_qualified_name("a b"));
        assert!(is_label_value("") && !is_label_value("-x") && !is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn relabelings_must_be_re2_and_complete() {
        let rule =
            |json: serde_json::Value| -> RelabelConfig { serde_json::from_value(json).unwrap() };
        for (bad, field) in [
            (
                serde_json::json!({"regex": "(", "action": "drop", "sourceLabels": ["a"]}),
                "f.regex",
            ),
            (
                serde_json::json!({"regex": "(?=x)", "action": "keep", "sourceLabels": ["a"]}),
                "f.regex",
            ),
            (
                serde_json::json!({"action": "hashmod", "targetLabel": "s", "sourceLabels": ["a"]}),
                "f.modulus",
            ),
            (
                serde_json::json!({"action": "replace", "targetLabel": "a-b"}),
                "f.targetLabel",
            ),
            (
                serde_json::json!({"action": "replace", "targetLabel": "inference_monitoring", "replacement": "x"}),
                "f.targetLabel",
            ),
            (
                serde_json::json!({"action": "drop", "sourceLabels": ["a.b"]}),
                "f.sourceLabels[0]",
            ),
        ] {
            let err = check_relabeling("f", &rule(bad.clone())).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{field}:")),
                "{bad}: {err}"
            );
        }
        check_relabeling("f", &rule(serde_json::json!({"action": "replace", "sourceLabels": ["a"], "targetLabel": "${1}_x"}))).unwrap();
        check_relabeling("f", &rule(serde_json::json!({"action": "hashmod", "sourceLabels": ["a"], "targetLabel": "s", "modulus": 4}))).unwrap();
    }

    #[test]
    fn list_bounds_are_the_crds() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(InferenceMonitoring::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(
            spec["metrics"]["properties"]["stages"]["maxItems"],
            MAX_STAGES
        );
        assert_eq!(
            spec["metrics"]["properties"]["queues"]["maxItems"],
            MAX_STAGES
        );
        assert_eq!(spec["staticTargets"]["maxItems"], MAX_STATIC_TARGETS);
        assert_eq!(
            spec["endpoint"]["properties"]["metricRelabelings"]["maxItems"],
            MAX_ITEMS
        );
        assert_eq!(
            spec["alerts"]["properties"]["labels"]["maxProperties"],
            MAX_PROPERTIES
        );
    }

    #[test]
    fn durations_are_bounded() {
        assert!(check_duration("f", "0s").is_err());
        assert!(check_duration("f", "100000000h").is_err());
        assert!(check_duration("f", "25h").is_err());
        assert_eq!(check_duration("f", "24h").unwrap(), MAX_DURATION);
    }
}
