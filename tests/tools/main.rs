//! The tests that run real tools: Prometheus, promtool, helm, kubernetes-validate, yamllint,
//! Checkov, Grafana's dashboard types (TypeScript on node), lua and shellcheck (`make tools`
//! installs them; `make test` does it for you). A missing tool fails its test with the install
//! command.

mod argocd_flux_health;
mod chart;
mod chart_scripts;
mod check_cli;
mod check_demo;
mod checkov;
mod fuzz_render;
mod grafana_schema;
mod health_existing_jobs;
mod health_prometheus;
mod infra;
mod kubernetes_validate;
mod panels_prometheus;
mod relabel_prometheus;
mod render_prometheus;
mod rules;
mod slo_buckets_prometheus;
