//! Delivering the embedded dashboards for one resource: its engine's, the overview and, when
//! the DCGM exporter is on, the GPU dashboard; as sidecar ConfigMaps or `GrafanaDashboard`s.

use serde_json::{Value, json};

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::{EMBEDDED, GPU, OVERVIEW, embedded, generate};
use crate::api::DashboardTarget;
use crate::engines;
use crate::model::{Child, ChildKind, RenderError, child_name, standard_labels};
use crate::validate::{Dashboards, DcgmPlan, Validated};

/// The size limit of a Kubernetes object; a dashboard above it is never emitted.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// The dashboards of a resource (its engine's, none for `custom`; the overview; GPU when the
/// DCGM exporter is on), or none when dashboards are disabled.
pub fn children(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    let Some(dashboards) = &resource.dashboards else {
        return Ok(Vec::new());
    };
    let mut names = vec![resource.engine.as_str(), OVERVIEW];
    if resource.dcgm != DcgmPlan::Disabled {
        names.push(GPU);
    }
    names
        .into_iter()
        .map(|name| {
            let json = if name == resource.engine.as_str() {
                engine_dashboard_json(resource)?
            } else {
                embedded_minified(name)?
            };
            Ok(match dashboards.target {
                DashboardTarget::ConfigMap => config_map(resource, dashboards, name, json),
                DashboardTarget::GrafanaDashboard => {
                    grafana_dashboard(resource, dashboards, name, json)
                }
            })
        })
        .collect()
}

/// The engine dashboard of a resource, minified: the embedded one when its catalog entry is
/// the engine's preset, else one generated from its merged entry (`spec.metrics`, custom
/// services).
fn engine_dashboard_json(resource: &Validated) -> Result<String, RenderError> {
    let name = resource.engine.as_str();
    if embedded(name).is_some()
        && engines::profile(resource.engine).as_ref() == Some(&resource.profile)
    {
        return embedded_minified(name);
    }
    let text = generate::resource_dashboard(resource).to_json().to_string();
    within_limit(name, text)
}

/// An embedded dashboard, minified once per process rather than on every reconcile.
fn embedded_minified(name: &str) -> Result<String, RenderError> {
    static MINIFIED: OnceLock<BTreeMap<&'static str, String>> = OnceLock::new();
    let cache = MINIFIED.get_or_init(|| {
        EMBEDDED
            .iter()
            .filter_map(|(name, json)| Some((*name, minified(name, json).ok()?)))
            .collect()
    });
    match cache.get(name) {
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

fn object_name(resource: &Validated, dashboard: &str) -> String {
    child_name(&resource.name, &format!("dashboard-{dashboard}"))
}

fn config_map(resource: &Validated, dashboards: &Dashboards, name: &str, json: String) -> Child {
    let mut labels = dashboards.labels.clone();
    labels.extend(standard_labels(resource, "dashboard"));
    let mut metadata = json!({
        "name": object_name(resource, name),
        "namespace": dashboards.namespace,
        "labels": labels,
    });
    if let Some(folder) = &dashboards.folder {
        metadata["annotations"] = json!({ folder.annotation.clone(): folder.title });
    }
    Child::from_value(
        ChildKind::ConfigMap,
        json!({
            "metadata": metadata,
            "data": { format!("{name}.json"): json },
        }),
    )
}

fn grafana_dashboard(
    resource: &Validated,
    dashboards: &Dashboards,
    name: &str,
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
                "name": object_name(resource, name),
                "namespace": dashboards.namespace,
                "labels": standard_labels(resource, "dashboard"),
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

    #[test]
    fn minifying_drops_whitespace_only() {
        let text = minified("x", "{\n  \"a\": [1, 2]\n}\n").unwrap();
        assert_eq!(text, r#"{"a":[1,2]}"#);
    }
}
