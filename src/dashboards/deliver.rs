//! Delivering dashboards as sidecar ConfigMaps or `GrafanaDashboard`s. The embedded
//! dashboards (overview, GPU, one per engine) are cluster-shared: one copy per dashboards
//! namespace, uid `infmon-<name>`, serving every resource through the dashboard variables
//! ([`shared_children`]). A resource whose `spec.metrics` (or custom engine) changes its
//! engine's queries gets a dashboard of its own, with its own uid and a name that includes its
//! namespace ([`children`]).

use serde_json::{Value, json};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use super::model::show_cluster_variable;
use super::{EMBEDDED, GPU, OVERVIEW, SLO, embedded, generate};
use crate::api::DashboardTarget;
use crate::engines;
use crate::model::{Child, ChildKind, RenderError, foreign_name, shared_labels, standard_labels};
use crate::validate::{Dashboards, DcgmPlan, Validated};

/// The size limit of a Kubernetes object; a dashboard above it is never emitted.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// Component label of dashboard objects.
const COMPONENT: &str = "dashboard";

/// Whether the resource's engine dashboard is the shared, embedded one (its catalog entry is
/// the engine's preset).
fn uses_shared_engine_dashboard(resource: &Validated) -> bool {
    embedded(resource.engine.as_str()).is_some()
        && engines::profile(resource.engine).as_ref() == Some(&resource.profile)
}

/// The resource's own dashboard: its engine's, generated from its merged catalog entry, when
/// that differs from the shared one (`spec.metrics`, custom engines); otherwise nothing.
pub fn children(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    let Some(dashboards) = &resource.dashboards else {
        return Ok(Vec::new());
    };
    if uses_shared_engine_dashboard(resource) {
        return Ok(Vec::new());
    }
    let file = resource.engine.as_str();
    let mut json = generate::resource_dashboard(resource).to_json();
    if dashboards.multi_cluster {
        show_cluster_variable(&mut json);
    }
    let text = json.to_string();
    let json = within_limit(file, text)?;
    let name = foreign_name(resource, &format!("dashboard-{file}"));
    let labels = standard_labels(resource, COMPONENT);
    Ok(vec![package(dashboards, name, labels, file, json)])
}

/// The shared dashboards of every resource: per dashboards namespace, the overview, the GPU
/// dashboard when any resource there wants GPU telemetry, the SLO dashboard when any has
/// objectives, and each engine dashboard some resource there uses unchanged. The delivery
/// settings (target, labels, folder, instance selector) of a namespace's copies are those of
/// its first resource by `namespace/name`.
pub fn shared_children(resources: &[Validated]) -> Result<Vec<Child>, RenderError> {
    let mut children = Vec::new();
    for (dashboards, users) in by_dashboards_namespace(resources).into_values() {
        let mut names = BTreeSet::from([OVERVIEW]);
        if users.iter().any(|r| r.dcgm != DcgmPlan::Disabled) {
            names.insert(GPU);
        }
        if users.iter().any(|r| !r.slos.is_empty()) {
            names.insert(SLO);
        }
        names.extend(
            users
                .iter()
                .filter(|r| uses_shared_engine_dashboard(r))
                .map(|r| r.engine.as_str()),
        );
        let multi_cluster = users
            .iter()
            .any(|r| r.dashboards.as_ref().is_some_and(|d| d.multi_cluster));
        for file in names {
            let name = format!("infmon-dashboard-{file}");
            let labels = shared_labels(COMPONENT);
            let json = embedded_minified(file, multi_cluster)?;
            children.push(package(dashboards, name, labels, file, json));
        }
    }
    Ok(children)
}

/// For each resource whose dashboard delivery settings differ from those of the first
/// resource (by `namespace/name`) in its dashboards namespace, which the shared copies there
/// follow ([`shared_children`]): a sentence naming that resource and the settings that differ.
/// Keyed by `namespace/name`; resources that agree are absent.
pub fn shared_settings_notes(resources: &[Validated]) -> BTreeMap<String, String> {
    let mut notes = BTreeMap::new();
    for (theirs, users) in by_dashboards_namespace(resources).into_values() {
        for resource in &users[1..] {
            let Some(mine) = &resource.dashboards else {
                continue;
            };
            let differ: Vec<&str> = [
                ("target", mine.target != theirs.target),
                ("labels", mine.labels != theirs.labels),
                ("folder", mine.folder != theirs.folder),
                (
                    "instanceSelector",
                    mine.instance_selector != theirs.instance_selector,
                ),
            ]
            .into_iter()
            .filter_map(|(field, differs)| differs.then_some(field))
            .collect();
            if !differ.is_empty() {
                notes.insert(
                    resource.key(),
                    format!(
                        "the shared dashboards in namespace {} are delivered with the settings of {}, the first resource there by namespace/name; this resource's spec.dashboards {} differ{} and apply only to dashboards of its own",
                        mine.namespace,
                        users[0].key(),
                        differ.join(", "),
                        if differ.len() == 1 { "s" } else { "" },
                    ),
                );
            }
        }
    }
    notes
}

/// The resources with dashboards, per dashboards namespace, sorted by `namespace/name`, with
/// the delivery settings of the first, which that namespace's shared copies follow.
fn by_dashboards_namespace(
    resources: &[Validated],
) -> BTreeMap<&str, (&Dashboards, Vec<&Validated>)> {
    let mut sorted: Vec<&Validated> = resources.iter().collect();
    sorted.sort_by_key(|r| r.key());
    let mut by_namespace: BTreeMap<&str, (&Dashboards, Vec<&Validated>)> = BTreeMap::new();
    for resource in sorted {
        if let Some(dashboards) = &resource.dashboards {
            by_namespace
                .entry(dashboards.namespace.as_str())
                .or_insert_with(|| (dashboards, Vec::new()))
                .1
                .push(resource);
        }
    }
    by_namespace
}

/// An embedded dashboard, minified once per process rather than on every reconcile; with
/// `multi_cluster`, with its `cluster` picker shown.
fn embedded_minified(name: &str, multi_cluster: bool) -> Result<String, RenderError> {
    type Cache = BTreeMap<(&'static str, bool), String>;
    static MINIFIED: OnceLock<Cache> = OnceLock::new();
    let cache = MINIFIED.get_or_init(|| {
        let mut cache = Cache::new();
        for (name, json) in EMBEDDED {
            let Ok(text) = minified(name, json) else {
                continue;
            };
            let mut shown: Value = serde_json::from_str(&text).expect("minified JSON parses");
            show_cluster_variable(&mut shown);
            cache.insert((name, true), shown.to_string());
            cache.insert((name, false), text);
        }
        cache
    });
    match cache.get(&(name, multi_cluster)) {
        Some(text) => Ok(text.clone()),
        // Not embedded, or over the limit: say why.
        None => minified(name, embedded(name).unwrap_or_default()),
    }
}

/// The dashboard JSON without whitespace; an error when it exceeds [`MAX_OBJECT_BYTES`].
pub fn minified(name: &str, json: &str) -> Result<String, RenderError> {
    let value: Value = serde_json::from_str(json).map_err(|source| RenderError::Serialize {
        kind: "dashboard",
        name: name.to_string(),
        source,
    })?;
    within_limit(name, value.to_string())
}

/// The text, or an error when it exceeds [`MAX_OBJECT_BYTES`].
fn within_limit(name: &str, text: String) -> Result<String, RenderError> {
    if text.len() > MAX_OBJECT_BYTES {
        return Err(RenderError::TooLarge {
            name: name.to_string(),
            size: text.len(),
            limit: MAX_OBJECT_BYTES,
            hint: "remove panels from the generator or deliver it by URL; it was not emitted",
        });
    }
    Ok(text)
}

/// A dashboard `file` (`<file>.json`) as the object `dashboards.target` asks for, labelled
/// with `labels` (and, for the sidecar, `spec.dashboards.labels`).
fn package(
    dashboards: &Dashboards,
    name: String,
    labels: BTreeMap<String, String>,
    file: &str,
    json: String,
) -> Child {
    match dashboards.target {
        DashboardTarget::ConfigMap => config_map(dashboards, name, labels, file, json),
        DashboardTarget::GrafanaDashboard => grafana_dashboard(dashboards, name, labels, json),
    }
}

fn config_map(
    dashboards: &Dashboards,
    name: String,
    labels: BTreeMap<String, String>,
    file: &str,
    json: String,
) -> Child {
    let mut all = dashboards.labels.clone();
    all.extend(labels);
    let mut metadata = json!({
        "name": name,
        "namespace": dashboards.namespace,
        "labels": all,
    });
    if let Some(folder) = &dashboards.folder {
        metadata["annotations"] = json!({ folder.annotation.clone(): folder.title });
    }
    Child::from_value(
        ChildKind::ConfigMap,
        json!({
            "metadata": metadata,
            "data": { format!("{file}.json"): json },
        }),
    )
}

fn grafana_dashboard(
    dashboards: &Dashboards,
    name: String,
    labels: BTreeMap<String, String>,
    json: String,
) -> Child {
    let mut spec = json!({
        "instanceSelector": dashboards.instance_selector.clone().unwrap_or_default(),
        "json": json,
    });
    if let Some(folder) = &dashboards.folder {
        spec["folder"] = json!(folder.title);
    }
    Child::from_value(
        ChildKind::GrafanaDashboard,
        json!({
            "metadata": {
                "name": name,
                "namespace": dashboards.namespace,
                "labels": labels,
            },
            "spec": spec,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_dashboards_are_an_error_naming_them() {
        let big = json!({"panels": [{"description": "x".repeat(MAX_OBJECT_BYTES)}]}).to_string();
        let err = minified("vllm", &big).unwrap_err();
        assert!(matches!(err, RenderError::TooLarge { ref name, .. } if name == "vllm"));
        assert!(err.to_string().contains("over the 1048576-byte limit"));
    }

    fn resource(namespace: &str, name: &str, dashboards: Value) -> Validated {
        let r: crate::api::InferenceMonitoring = serde_json::from_value(json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"engine": "vllm", "selector": {}, "dashboards": dashboards},
        }))
        .unwrap();
        crate::validate::resolve(&r, &crate::validate::ClusterFacts::assumed_offline()).unwrap()
    }

    #[test]
    fn resources_whose_delivery_settings_lose_to_the_first_are_told_which_differ() {
        let monitoring = || json!({"namespace": "monitoring"});
        let resources = [
            // Listed out of order: the first by namespace/name is ai/a.
            resource("team", "c", monitoring()),
            resource(
                "ai",
                "b",
                json!({"namespace": "monitoring", "labels": {"dash": "yes"}, "folder": "LLM"}),
            ),
            resource("ai", "a", monitoring()),
            // Alone in its namespace: its settings are the ones used there.
            resource(
                "ai",
                "d",
                json!({"namespace": "grafana", "folder": "Other"}),
            ),
            resource("ai", "e", json!({"enabled": false})),
        ];
        let notes = shared_settings_notes(&resources);
        assert_eq!(notes.keys().collect::<Vec<_>>(), ["ai/b"]);
        assert_eq!(
            notes["ai/b"],
            "the shared dashboards in namespace monitoring are delivered with the settings of ai/a, the first resource there by namespace/name; this resource's spec.dashboards labels, folder differ and apply only to dashboards of its own"
        );
    }

    #[test]
    fn minifying_drops_whitespace_only() {
        let text = minified("x", "{\n  \"a\": [1, 2]\n}\n").unwrap();
        assert_eq!(text, r#"{"a":[1,2]}"#);
    }
}
