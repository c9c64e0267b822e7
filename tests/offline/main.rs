//! The tests that need nothing but cargo: CRD and validation, rendering and golden files,
//! dashboards and rules as data, the controller against a scripted API server, diagnosis.
//! What a contributor runs while editing: `cargo test --test offline` (or `make test-offline`).

mod catalog_pages;
mod cli_validate;
mod controller_apply;
mod controller_discovery;
mod controller_fleet;
mod controller_health;
mod controller_health_loading;
mod controller_leader;
mod controller_reconcile;
mod controller_run;
mod controller_shared;
mod crd;
mod dashboards;
mod dashboards_cluster;
mod health_diagnosis;
mod kube_client;
mod metrics_overrides;
mod readme;
mod render_cli;
mod render_golden;
mod tenant_boundary;
