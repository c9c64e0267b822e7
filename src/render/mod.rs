//! Pure builders: from one [`Validated`] resource to every child object. No I/O, no clock, no
//! randomness: the same input gives byte-identical output, which `infmon render` prints and
//! the controller applies.
//!
//! Two sets of objects: a resource's own children ([`render_all`]: owner labels, pruned
//! with it) and the cluster-shared objects computed from all resources at once
//! ([`render_shared`]: the DCGM exporter and the shared dashboards, removed when no resource
//! wants them).
//!
//! Layering: the child model lives in [`crate::model`] (re-exported here); the builders here,
//! in [`crate::dashboards`] and in [`crate::rules`] import it and never this module's
//! orchestration ([`render_all`]), which sits on top and calls them all.

pub mod dcgm;
pub mod endpoint;
pub mod monitors;
pub mod relabel;
pub mod scrape;

pub use crate::model::{
    Child, ChildKind, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, RenderError, child_name, hex_sha256,
    label_value, object_meta, owner_selector, short_hash, sort_children, standard_labels,
};

use crate::validate::{GpuExporterSettings, Validated};

/// Every per-resource child of a resource (owned by it, pruned with it), sorted with
/// [`sort_children`]. Each builder module contributes its kinds here.
pub fn render_all(resource: &Validated) -> Result<Vec<Child>, RenderError> {
    let mut children: Vec<Child> = Vec::new();
    children.extend(scrape::children(resource)?);
    children.extend(crate::dashboards::children(resource)?);
    children.extend(crate::rules::children(resource)?);
    sort_children(&mut children);
    Ok(children)
}

/// The cluster-shared objects of all `resources` together: the one DCGM exporter (settings
/// from the operator) and one copy of each shared dashboard per dashboards namespace. Empty
/// when no resource wants any; sorted with [`sort_children`].
pub fn render_shared(
    resources: &[Validated],
    gpu_exporter: &GpuExporterSettings,
) -> Result<Vec<Child>, RenderError> {
    let mut children = dcgm::children(gpu_exporter, resources)?;
    children.extend(crate::dashboards::shared_children(resources)?);
    sort_children(&mut children);
    Ok(children)
}

/// Test fixture: resolves a YAML resource with the offline cluster facts.
#[cfg(test)]
pub(crate) fn validated_from_yaml(yaml: &str) -> Validated {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("fixture YAML");
    let resource = crate::validate::validate_document(&value)
        .unwrap_or_else(|errors| panic!("fixture invalid: {errors:?}"));
    crate::validate::resolve(&resource, &crate::validate::ClusterFacts::assumed_offline())
        .expect("fixture resolves")
}
