//! The first half of one pass: [`dereference`] gathers every cluster fact a resource needs
//! from the caches (no request), and [`resolve_once`] turns the resource and those facts into
//! one [`Resolved`]: the `Validated` value with its monitor labels, plus the Prometheus
//! selection. The reconcile renders, applies and writes status from it; the health loop
//! checks the same value.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Engine, InferenceMonitoring};
use crate::discovery::engine::{self, Undetermined};
use crate::discovery::{self, Discovered, PrometheusSelectors, SelectedKind, Selection, selectors};
use crate::render::ChildKind;
use crate::validate::{ClusterFacts, ResolveError, Validated, planned_output, resolve};

use super::cache::Caches;
use super::config::Config;

/// What the cluster says about one resource, read from memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dereferenced {
    /// Child kinds the cluster serves (and the operator watches).
    pub served: BTreeSet<ChildKind>,
    /// The `Prometheus` resources' selectors.
    pub prometheuses: Vec<PrometheusSelectors>,
    /// Labels of the resource's namespace (its name label only when namespaces are not cached).
    pub namespace_labels: BTreeMap<String, String>,
    /// The engine detected from the selected pods (`engine: auto` with a selector only).
    pub detected: Option<Result<Engine, Undetermined>>,
    /// A DCGM exporter already runs.
    pub existing_dcgm_exporter: bool,
    /// Other consumers of monitors that run in the cluster (whose selection infmon cannot
    /// read), as discovery describes them.
    pub other_consumers: Vec<String>,
}

/// Reads what `resource` needs from the caches (falling back to the discovered facts for
/// what is not cached).
pub fn dereference(
    resource: &InferenceMonitoring,
    caches: &Caches,
    discovered: &Discovered,
    config: &Config,
) -> Dereferenced {
    let namespace = resource.metadata.namespace.clone().unwrap_or_default();
    let detected = (resource.spec.engine == Engine::Auto && resource.spec.selector.is_some())
        .then(|| engine::detect_from(&caches.selected_pods(resource).unwrap_or_default()));
    let (prometheuses, other_consumers) = caches.consumers(discovered);
    Dereferenced {
        served: discovered.served.clone(),
        prometheuses,
        namespace_labels: caches.namespace_labels(&namespace).unwrap_or_else(|| {
            BTreeMap::from([(discovery::NAMESPACE_NAME_LABEL.to_string(), namespace)])
        }),
        detected,
        other_consumers,
        // Scanning the pods for an exporter only matters to a resource that wants one.
        existing_dcgm_exporter: resource.spec.gpu.dcgm_exporter.enabled
            && caches
                .existing_exporter(
                    discovered,
                    config.namespaces.is_empty(),
                    &config.gpu_exporter,
                )
                .is_some(),
    }
}

/// A resource resolved against the cluster: everything a pass and the health loop need.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The resolved resource (its `monitor_labels` are the ones applied).
    pub validated: Validated,
    /// Which Prometheus picks the monitors up (`None` for outputs no Prometheus selects).
    pub selection: Option<Selection>,
}

/// Whether the health loop checks a resource: it has a query URL and a Prometheus selects its
/// monitors (or none has to). The status drops the loop's findings when it does not.
pub fn health_checked(validated: &Validated, selection: Option<&Selection>) -> bool {
    validated.health.url.is_some() && selection.is_none_or(|s| s.problem.is_none())
}

/// Resolves `resource` once with the facts `found`. Pure.
pub fn resolve_once(
    resource: &InferenceMonitoring,
    found: &Dereferenced,
    config: &Config,
) -> Result<Resolved, ResolveError> {
    let detected_engine = match &found.detected {
        Some(Ok(engine)) => Some(*engine),
        Some(Err(why)) => {
            return Err(ResolveError::EngineUndetermined {
                reason: why.to_string(),
            });
        }
        None => None,
    };
    let prometheus_operator = found.served.contains(&ChildKind::PodMonitor);
    let mut facts = ClusterFacts {
        prometheus_operator,
        scrape_config_api: found.served.contains(&ChildKind::ScrapeConfig),
        grafana_operator: found.served.contains(&ChildKind::GrafanaDashboard),
        detected_engine,
        existing_dcgm_exporter: found.existing_dcgm_exporter,
        required_monitor_labels: BTreeMap::new(),
        default_prometheus_url: config.default_prometheus_url.clone(),
        policy: config.policy.clone(),
        multi_cluster_dashboards: config.multi_cluster_dashboards,
    };
    let output = planned_output(resource, &facts)?;
    let with_rules = resource.spec.alerts.enabled;
    let namespace = resource
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let explicit = &resource.spec.prometheus.monitor_labels;
    let select = |kind, with_rules, labels: Option<&BTreeMap<String, String>>| {
        selectors::select(
            &found.prometheuses,
            kind,
            with_rules,
            &namespace,
            &found.namespace_labels,
            labels,
        )
    };
    let or_default = |labels: BTreeMap<String, String>| {
        if labels.is_empty() {
            config.default_monitor_labels.clone()
        } else {
            labels
        }
    };
    let (labels, selection) = match SelectedKind::of_output(output).filter(|_| prometheus_operator)
    {
        Some(kind) => {
            let labels = if explicit.is_empty() {
                or_default(select(kind, with_rules, None).required_labels)
            } else {
                explicit.clone()
            };
            let selection =
                select(kind, with_rules, Some(&labels)).or_other_consumers(&found.other_consumers);
            (labels, Some(selection))
        }
        // The raw scrape config is referenced explicitly; rules still need labels.
        None if !explicit.is_empty() => (explicit.clone(), None),
        None if with_rules && prometheus_operator => (
            or_default(select(SelectedKind::Rule, false, None).required_labels),
            None,
        ),
        None => (config.default_monitor_labels.clone(), None),
    };
    facts.required_monitor_labels = labels;
    Ok(Resolved {
        validated: resolve(resource, &facts)?,
        selection,
    })
}

#[cfg(test)]
mod tests {
    use super::super::watches::test_resource as resource;
    use super::*;
    use serde_json::json;

    fn kps() -> PrometheusSelectors {
        PrometheusSelectors::from_object(&json!({
            "metadata": {"namespace": "monitoring", "name": "kps"},
            "spec": {"podMonitorSelector": {"matchLabels": {"release": "kps"}}, "podMonitorNamespaceSelector": {},
                     "ruleSelector": {"matchLabels": {"role": "alerts"}}, "ruleNamespaceSelector": {}},
        }))
        .unwrap()
    }

    fn found(served: &[ChildKind]) -> Dereferenced {
        Dereferenced {
            served: served.iter().copied().collect(),
            prometheuses: vec![kps()],
            namespace_labels: BTreeMap::new(),
            detected: None,
            existing_dcgm_exporter: false,
            other_consumers: Vec::new(),
        }
    }

    #[test]
    fn the_selected_prometheus_lends_its_labels_and_is_named() {
        let r = resource(json!({"engine": "vllm", "selector": {}, "alerts": {"enabled": true}}));
        let resolved = resolve_once(&r, &found(&ChildKind::ALL), &Config::default()).unwrap();
        assert_eq!(
            resolved.validated.monitor_labels,
            BTreeMap::from([
                ("release".to_string(), "kps".to_string()),
                ("role".to_string(), "alerts".to_string())
            ])
        );
        assert_eq!(
            resolved.selection.unwrap().selected_by,
            vec!["monitoring/kps".to_string()]
        );
    }

    #[test]
    fn a_raw_scrape_config_still_gets_labels_for_its_rules() {
        let config = Config {
            default_monitor_labels: BTreeMap::from([("team".to_string(), "ml".to_string())]),
            ..Config::default()
        };
        let raw = resource(json!({"engine": "vllm", "selector": {},
            "prometheus": {"output": "rawScrapeConfig"}, "alerts": {"enabled": true}}));
        let with_operator = resolve_once(&raw, &found(&ChildKind::ALL), &config).unwrap();
        assert_eq!(
            with_operator.validated.monitor_labels,
            BTreeMap::from([("role".to_string(), "alerts".to_string())])
        );
        assert_eq!(with_operator.selection, None);
        let core: Vec<ChildKind> = ChildKind::ALL
            .into_iter()
            .filter(|k| !k.is_optional_api())
            .collect();
        let bare = resolve_once(&raw, &found(&core), &config).unwrap();
        assert_eq!(bare.validated.monitor_labels, config.default_monitor_labels);
    }

    #[test]
    fn an_undetectable_engine_says_why() {
        let auto = resource(json!({"selector": {"matchLabels": {"app": "x"}}}));
        let mut facts = found(&ChildKind::ALL);
        facts.detected = Some(Err(Undetermined::NoPods));
        let err = resolve_once(&auto, &facts, &Config::default()).unwrap_err();
        assert!(err.to_string().contains("no pod matches"), "{err}");
    }
}
