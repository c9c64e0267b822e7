//! Validation: raw documents checked as the API server would ([`document`]), then a spec
//! resolved against the engine catalog and cluster facts into a [`Validated`] resource, the
//! only input of the builders.

mod document;
mod error;
mod gpu_exporter;
mod grammar;
mod policy;
mod resolve;
mod slos;

pub use document::{FieldError, strict_structural_schema, validate_document};
pub use gpu_exporter::{
    DEFAULT_GPU_EXPORTER_IMAGE, DEFAULT_GPU_EXPORTER_NAMESPACE, GpuExporterSettings,
};
pub use grammar::{
    ENGINE_TARGET_LABEL, MAX_DURATION, OWNER_TARGET_LABEL, RESERVED_LABELS, is_dns_label,
    is_dns_subdomain, is_label_name, promql_string,
};
pub use policy::{Allowed, Policy, normalize_url};
pub use resolve::{
    ClusterFacts, DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_INTERVAL, DEFAULT_SCRAPE_TIMEOUT,
    Dashboards, DcgmPlan, Endpoint, ExistingJob, Folder, HealthCheck, Namespaces, Output, PortRef,
    ResolveError, Targets, Validated, output_name, planned_output, pod_namespaces, resolve,
};
pub use slos::{
    Slo, Threshold, describe_boundary, indicator_role, nearest_boundaries, same_boundary,
};
