//! Which `Prometheus` and `PrometheusAgent` resources pick up the generated monitors and
//! rules, and which labels the monitors need to be picked up. Pure functions over their
//! selectors (an agent's are the same fields; it has no rule selector, as it runs no rules).
//!
//! The Prometheus Operator's rules: a monitor selector that is omitted (null) selects
//! nothing, `{}` selects everything; a namespace selector that is omitted means the
//! Prometheus' own namespace only, `{}` means every namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use crate::selector::{self, matches};
use crate::validate::Output;

/// The selectors of one `Prometheus` resource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSelectors {
    /// `namespace/name` of the Prometheus.
    #[serde(skip)]
    pub key: String,
    /// Its namespace (the default scope of null namespace selectors).
    #[serde(skip)]
    pub namespace: String,
    /// `spec.podMonitorSelector`.
    #[serde(default)]
    pub pod_monitor_selector: Option<LabelSelector>,
    /// `spec.podMonitorNamespaceSelector`.
    #[serde(default)]
    pub pod_monitor_namespace_selector: Option<LabelSelector>,
    /// `spec.serviceMonitorSelector`.
    #[serde(default)]
    pub service_monitor_selector: Option<LabelSelector>,
    /// `spec.serviceMonitorNamespaceSelector`.
    #[serde(default)]
    pub service_monitor_namespace_selector: Option<LabelSelector>,
    /// `spec.scrapeConfigSelector`.
    #[serde(default)]
    pub scrape_config_selector: Option<LabelSelector>,
    /// `spec.scrapeConfigNamespaceSelector`.
    #[serde(default)]
    pub scrape_config_namespace_selector: Option<LabelSelector>,
    /// `spec.ruleSelector`.
    #[serde(default)]
    pub rule_selector: Option<LabelSelector>,
    /// `spec.ruleNamespaceSelector`.
    #[serde(default)]
    pub rule_namespace_selector: Option<LabelSelector>,
}

impl PrometheusSelectors {
    /// Marks these as a `PrometheusAgent`'s: its key names the kind, so status and messages
    /// tell it from a `Prometheus` of the same name.
    pub fn mark_agent(&mut self) {
        self.key = format!("{} (PrometheusAgent)", self.key);
    }

    /// Reads the selectors of a `Prometheus` (`monitoring.coreos.com/v1`) or `PrometheusAgent`
    /// (`v1alpha1`) object.
    pub fn from_object(object: &serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut selectors: Self = serde_json::from_value(object["spec"].clone())?;
        let meta = &object["metadata"];
        selectors.namespace = meta["namespace"].as_str().unwrap_or_default().to_string();
        selectors.key = format!(
            "{}/{}",
            selectors.namespace,
            meta["name"].as_str().unwrap_or_default()
        );
        Ok(selectors)
    }

    /// The (object selector, namespace selector, field name) pair for a kind of monitor.
    fn pair(
        &self,
        kind: SelectedKind,
    ) -> (Option<&LabelSelector>, Option<&LabelSelector>, &'static str) {
        match kind {
            SelectedKind::PodMonitor => (
                self.pod_monitor_selector.as_ref(),
                self.pod_monitor_namespace_selector.as_ref(),
                "podMonitor",
            ),
            SelectedKind::ServiceMonitor => (
                self.service_monitor_selector.as_ref(),
                self.service_monitor_namespace_selector.as_ref(),
                "serviceMonitor",
            ),
            SelectedKind::ScrapeConfig => (
                self.scrape_config_selector.as_ref(),
                self.scrape_config_namespace_selector.as_ref(),
                "scrapeConfig",
            ),
            SelectedKind::Rule => (
                self.rule_selector.as_ref(),
                self.rule_namespace_selector.as_ref(),
                "rule",
            ),
        }
    }

    /// Why this Prometheus does not pick up an object of `kind` with `labels` in `namespace`
    /// (`None` when it does).
    pub fn rejects(
        &self,
        kind: SelectedKind,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Option<String> {
        let (selector, namespace_selector, field) = self.pair(kind);
        let Some(selector) = selector else {
            return Some(format!(
                "{}: spec.{field}Selector is not set, so it selects no {}",
                self.key,
                kind.plural()
            ));
        };
        let in_namespace = match namespace_selector {
            None => self.namespace == namespace,
            Some(ns) => matches(ns, namespace_labels),
        };
        if !in_namespace {
            return Some(format!(
                "{}: spec.{field}NamespaceSelector does not match namespace {namespace}",
                self.key
            ));
        }
        (!matches(selector, labels)).then(|| {
            format!(
                "{}: spec.{field}Selector ({}) does not match the labels {}",
                self.key,
                selector::describe(selector),
                describe_labels(labels)
            )
        })
    }
}

/// The kinds a `Prometheus` selects with its own selector pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectedKind {
    /// PodMonitors.
    PodMonitor,
    /// ServiceMonitors.
    ServiceMonitor,
    /// ScrapeConfigs.
    ScrapeConfig,
    /// PrometheusRules.
    Rule,
}

impl SelectedKind {
    /// The kind a resolved output generates, if a `Prometheus` selects it (the raw scrape
    /// config Secret is referenced explicitly instead; `none` generates nothing to select).
    pub fn of_output(output: Output) -> Option<Self> {
        match output {
            Output::PodMonitor => Some(Self::PodMonitor),
            Output::ServiceMonitor => Some(Self::ServiceMonitor),
            Output::ScrapeConfig => Some(Self::ScrapeConfig),
            Output::RawScrapeConfig | Output::None => None,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::PodMonitor => "PodMonitors",
            Self::ServiceMonitor => "ServiceMonitors",
            Self::ScrapeConfig => "ScrapeConfigs",
            Self::Rule => "PrometheusRules",
        }
    }
}

/// Labels that, added to an object, make `selector` match it: `matchLabels`, plus the first
/// value of each `In` requirement. `None` when labels alone cannot satisfy it (`Exists` asks
/// for a value only the user can choose).
pub fn labels_satisfying(selector: &LabelSelector) -> Option<BTreeMap<String, String>> {
    let mut labels = selector.match_labels.clone().unwrap_or_default();
    for req in selector.match_expressions.iter().flatten() {
        match req.operator.as_str() {
            "In" => {
                let first = req.values.as_ref()?.first()?;
                labels
                    .entry(req.key.clone())
                    .or_insert_with(|| first.clone());
            }
            "NotIn" | "DoesNotExist" => {}
            _ => return None,
        }
    }
    matches(selector, &labels).then_some(labels)
}

fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "{} (none)".into();
    }
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// The outcome of matching the generated objects against the cluster's `Prometheus` resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Labels to stamp on monitors and rules when `spec.prometheus.monitorLabels` is empty.
    pub required_labels: BTreeMap<String, String>,
    /// `namespace/name` of every Prometheus that picks the monitors up, sorted.
    pub selected_by: Vec<String>,
    /// Why none does, when none does.
    pub problem: Option<String>,
    /// Why the health check decides instead, when no Prometheus or PrometheusAgent selects
    /// the monitors but another known consumer runs.
    pub note: Option<String>,
}

impl Selection {
    /// With `others` (other consumers of monitors found in the cluster, see
    /// [`crate::discovery::OTHER_CONSUMERS`]) and nothing else selecting: no problem, the
    /// others listed in `selected_by`, and a note saying that the health check decides.
    /// `NotSelected` then stays for clusters where infmon knows nothing selects the monitors.
    pub fn or_other_consumers(mut self, others: &[String]) -> Self {
        if self.problem.is_none() || others.is_empty() {
            return self;
        }
        let problem = self.problem.take().unwrap_or_default();
        self.note = Some(format!(
            "{problem}; but {} may pick them up (infmon cannot read its selection), so the health check decides",
            others.join(", ")
        ));
        self.selected_by = others.to_vec();
        self
    }
}

/// Matches the monitors a resource generates (`kind`, in `namespace`) against the cluster's
/// Prometheus resources. With `explicit` labels (the spec's `monitorLabels`) only reports;
/// without, it picks the labels of the first Prometheus (by `namespace/name`) that watches
/// the namespace, merged with what its `ruleSelector` needs when `with_rules`.
pub fn select(
    prometheuses: &[PrometheusSelectors],
    kind: SelectedKind,
    with_rules: bool,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    explicit: Option<&BTreeMap<String, String>>,
) -> Selection {
    let mut sorted: Vec<&PrometheusSelectors> = prometheuses.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let required_labels = match explicit {
        Some(labels) => labels.clone(),
        None => sorted
            .iter()
            .find_map(|p| {
                let (selector, _, _) = p.pair(kind);
                let mut labels = labels_satisfying(selector?)?;
                if p.rejects(kind, namespace, namespace_labels, &labels)
                    .is_some()
                {
                    return None;
                }
                if with_rules {
                    let rule_labels = p.rule_selector.as_ref().and_then(labels_satisfying);
                    for (k, v) in rule_labels.unwrap_or_default() {
                        labels.entry(k).or_insert(v);
                    }
                }
                Some(labels)
            })
            .unwrap_or_default(),
    };
    let verdicts: Vec<(&str, Option<String>)> = sorted
        .iter()
        .map(|p| {
            (
                p.key.as_str(),
                p.rejects(kind, namespace, namespace_labels, &required_labels),
            )
        })
        .collect();
    let selected_by: Vec<String> = verdicts
        .iter()
        .filter(|(_, why)| why.is_none())
        .map(|(key, _)| key.to_string())
        .collect();
    let problem = if !selected_by.is_empty() {
        None
    } else if sorted.is_empty() {
        Some(format!(
            "no Prometheus or PrometheusAgent resource was found, and no other known consumer of monitors (VictoriaMetrics operator, OpenTelemetry target allocator, Grafana Alloy), so nothing picks up the {}; install one or use spec.prometheus.output rawScrapeConfig",
            kind.plural()
        ))
    } else {
        let reasons: Vec<String> = verdicts.into_iter().filter_map(|(_, why)| why).collect();
        Some(format!(
            "no Prometheus picks up the {}: {}; set spec.prometheus.monitorLabels to labels a Prometheus selects",
            kind.plural(),
            reasons.join("; ")
        ))
    };
    Selection {
        required_labels,
        selected_by,
        problem,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prometheus(spec: serde_json::Value) -> PrometheusSelectors {
        PrometheusSelectors::from_object(&json!({
            "metadata": {"namespace": "monitoring", "name": "kps"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn null_selector_selects_nothing_and_empty_selects_everything() {
        let none = prometheus(json!({"podMonitorNamespaceSelector": {}}));
        let why = none
            .rejects(SelectedKind::PodMonitor, "ai", &labels(&[]), &labels(&[]))
            .unwrap();
        assert_eq!(
            why,
            "monitoring/kps: spec.podMonitorSelector is not set, so it selects no PodMonitors"
        );
        let all = prometheus(json!({"podMonitorSelector": {}, "podMonitorNamespaceSelector": {}}));
        assert_eq!(
            all.rejects(SelectedKind::PodMonitor, "ai", &labels(&[]), &labels(&[])),
            None
        );
    }

    #[test]
    fn null_namespace_selector_means_own_namespace_only() {
        let p = prometheus(json!({"serviceMonitorSelector": {}}));
        assert_eq!(
            p.rejects(
                SelectedKind::ServiceMonitor,
                "monitoring",
                &labels(&[]),
                &labels(&[])
            ),
            None
        );
        assert_eq!(
            p.rejects(
                SelectedKind::ServiceMonitor,
                "ai",
                &labels(&[]),
                &labels(&[])
            )
            .unwrap(),
            "monitoring/kps: spec.serviceMonitorNamespaceSelector does not match namespace ai"
        );
        let labelled = prometheus(json!({
            "serviceMonitorSelector": {},
            "serviceMonitorNamespaceSelector": {"matchLabels": {"team": "ml"}},
        }));
        assert!(
            labelled
                .rejects(
                    SelectedKind::ServiceMonitor,
                    "ai",
                    &labels(&[("team", "ml")]),
                    &labels(&[])
                )
                .is_none()
        );
        assert!(
            labelled
                .rejects(
                    SelectedKind::ServiceMonitor,
                    "ai",
                    &labels(&[("team", "web")]),
                    &labels(&[])
                )
                .is_some()
        );
    }

    #[test]
    fn match_expressions_follow_kubernetes_semantics() {
        let sel: LabelSelector = serde_json::from_value(json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "owner", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ]}))
        .unwrap();
        assert!(matches(
            &sel,
            &labels(&[("tier", "b"), ("owner", "x"), ("env", "prod")])
        ));
        assert!(!matches(
            &sel,
            &labels(&[("tier", "b"), ("owner", "x"), ("env", "dev")])
        ));
        assert!(!matches(&sel, &labels(&[("tier", "c"), ("owner", "x")])));
        assert!(!matches(&sel, &labels(&[("tier", "a")])));
        assert!(!matches(
            &sel,
            &labels(&[("tier", "a"), ("owner", "x"), ("legacy", "1")])
        ));
        // Exists needs a value only the user can choose.
        assert_eq!(labels_satisfying(&sel), None);
    }

    #[test]
    fn kube_prometheus_stack_release_label_is_required_and_reported() {
        let kps = prometheus(json!({
            "podMonitorSelector": {"matchLabels": {"release": "kps"}},
            "podMonitorNamespaceSelector": {},
            "ruleSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["alert-rules"]}]},
            "ruleNamespaceSelector": {},
        }));
        let s = select(
            std::slice::from_ref(&kps),
            SelectedKind::PodMonitor,
            true,
            "ai",
            &labels(&[]),
            None,
        );
        assert_eq!(
            s.required_labels,
            labels(&[("release", "kps"), ("role", "alert-rules")])
        );
        assert_eq!(s.selected_by, ["monitoring/kps"]);
        assert_eq!(s.problem, None);

        let explicit = labels(&[("team", "a")]);
        let s = select(
            &[kps],
            SelectedKind::PodMonitor,
            false,
            "ai",
            &labels(&[]),
            Some(&explicit),
        );
        assert!(s.selected_by.is_empty());
        assert_eq!(
            s.problem.unwrap(),
            "no Prometheus picks up the PodMonitors: monitoring/kps: spec.podMonitorSelector (release=kps) does not match the labels {team=a}; set spec.prometheus.monitorLabels to labels a Prometheus selects"
        );
    }

    #[test]
    fn no_prometheus_at_all_is_reported() {
        let s = select(
            &[],
            SelectedKind::ServiceMonitor,
            false,
            "ai",
            &labels(&[]),
            None,
        );
        assert!(s.required_labels.is_empty());
        assert!(
            s.problem
                .unwrap()
                .starts_with("no Prometheus or PrometheusAgent resource was found")
        );
    }

    #[test]
    fn a_prometheus_outside_the_namespace_does_not_lend_its_labels() {
        let scoped = prometheus(json!({"podMonitorSelector": {"matchLabels": {"release": "kps"}}}));
        let s = select(
            &[scoped],
            SelectedKind::PodMonitor,
            false,
            "ai",
            &labels(&[]),
            None,
        );
        assert!(s.required_labels.is_empty());
        assert!(
            s.problem
                .unwrap()
                .contains("NamespaceSelector does not match namespace ai")
        );
    }

    #[test]
    fn an_agent_selects_like_a_prometheus_and_is_named_as_an_agent() {
        let mut agent = PrometheusSelectors::from_object(&json!({
            "metadata": {"namespace": "monitoring", "name": "agent"},
            "spec": {"podMonitorSelector": {"matchLabels": {"team": "ml"}}, "podMonitorNamespaceSelector": {}},
        }))
        .unwrap();
        agent.mark_agent();
        let s = select(
            &[agent],
            SelectedKind::PodMonitor,
            true,
            "ai",
            &labels(&[]),
            None,
        );
        assert_eq!(s.required_labels, labels(&[("team", "ml")]));
        assert_eq!(s.selected_by, ["monitoring/agent (PrometheusAgent)"]);
        assert_eq!(s.problem, None);
    }

    #[test]
    fn other_consumers_replace_not_selected_only_when_nothing_else_selects() {
        let others = ["VMAgent monitoring/vm (VictoriaMetrics operator)".to_string()];
        let pod_monitor_in_ai = |prometheuses: &[PrometheusSelectors], others: &[String]| {
            select(
                prometheuses,
                SelectedKind::PodMonitor,
                false,
                "ai",
                &labels(&[]),
                None,
            )
            .or_other_consumers(others)
        };
        let none = pod_monitor_in_ai(&[], &others);
        assert_eq!(none.problem, None);
        assert_eq!(none.selected_by, others);
        let note = none.note.unwrap();
        assert!(
            note.contains("VMAgent monitoring/vm (VictoriaMetrics operator) may pick them up")
                && note.ends_with("so the health check decides"),
            "{note}"
        );

        let kps = prometheus(json!({"podMonitorSelector": {}, "podMonitorNamespaceSelector": {}}));
        let selected = pod_monitor_in_ai(&[kps], &others);
        assert_eq!(selected.selected_by, ["monitoring/kps"]);
        assert_eq!(selected.note, None);

        let alone = pod_monitor_in_ai(&[], &[]);
        assert!(alone.problem.is_some() && alone.note.is_none());
    }
}
