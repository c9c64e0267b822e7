//! Grafana dashboards: generated from the engine catalog ([`generate`]), committed as
//! `dashboards/*.json` for users who import them by hand, embedded into the binary, and
//! delivered as ConfigMaps or `GrafanaDashboard`s: one shared copy of each per dashboards
//! namespace ([`shared_children`]), plus a resource's own engine dashboard when its
//! `spec.metrics` changes the queries ([`children`]).
//!
//! Regenerate the committed files after changing the catalog or a generator with
//! `make dashboards`.

mod deliver;
pub mod generate;
pub mod model;

pub use deliver::{MAX_OBJECT_BYTES, children, minified, shared_children, shared_settings_notes};

use crate::engines;

/// Every dashboard infmon ships: its name (`dashboards/<name>.json`, uid `infmon-<name>`)
/// and the committed JSON embedded at build time.
pub const EMBEDDED: [(&str, &str); 13] = [
    ("vllm", include_str!("../../dashboards/vllm.json")),
    ("sglang", include_str!("../../dashboards/sglang.json")),
    ("tgi", include_str!("../../dashboards/tgi.json")),
    ("triton", include_str!("../../dashboards/triton.json")),
    ("trtllm", include_str!("../../dashboards/trtllm.json")),
    ("jetstream", include_str!("../../dashboards/jetstream.json")),
    ("max", include_str!("../../dashboards/max.json")),
    ("dynamo", include_str!("../../dashboards/dynamo.json")),
    (
        "dynamoworker",
        include_str!("../../dashboards/dynamoworker.json"),
    ),
    ("llamacpp", include_str!("../../dashboards/llamacpp.json")),
    ("overview", include_str!("../../dashboards/overview.json")),
    ("gpu", include_str!("../../dashboards/gpu.json")),
    ("slo", include_str!("../../dashboards/slo.json")),
];

/// Name of the engine-neutral overview dashboard.
pub const OVERVIEW: &str = "overview";
/// Name of the GPU dashboard.
pub const GPU: &str = "gpu";
/// Name of the SLO dashboard.
pub const SLO: &str = "slo";

/// The embedded JSON of a dashboard, by name.
pub fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, json)| *json)
}

/// Every dashboard as the generators build it now, as pretty JSON with a final newline: what
/// each `dashboards/<name>.json` must hold.
pub fn generate_all() -> Vec<(String, String)> {
    let mut all: Vec<(String, model::Dashboard)> = engines::all_profiles()
        .iter()
        .map(|p| {
            (
                generate::engine_dashboard_name(p).to_string(),
                generate::engine_dashboard(p),
            )
        })
        .collect();
    all.push((OVERVIEW.to_string(), generate::overview()));
    all.push((GPU.to_string(), generate::gpu()));
    all.push((SLO.to_string(), generate::slo()));
    all.into_iter()
        .map(|(name, dashboard)| {
            let mut text =
                serde_json::to_string_pretty(&dashboard.to_json()).expect("JSON values serialize");
            text.push('\n');
            (name, text)
        })
        .collect()
}
