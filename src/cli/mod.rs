//! One module per subcommand. Each returns the process exit code; `anyhow` is used only here,
//! at the binary's edge.

pub mod check;
pub mod crd;
pub mod render;
pub mod run;
pub mod validate;

use infmon::api::Engine;
use infmon::manifests::Document;
use infmon::validate::{Allowed, ClusterFacts, Policy, Validated, resolve, validate_document};

/// The operator policy to check against offline; without these flags everything is allowed.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// Prometheus URLs spec.prometheus.url may name, comma-separated, as the operator's
    /// --allowed-prometheus-urls (plus its --prometheus-url). Default: any.
    #[arg(long, value_delimiter = ',')]
    allowed_prometheus_urls: Option<Vec<String>>,
    /// Namespaces spec.dashboards.namespace may name besides the resource's own, comma-separated,
    /// as the operator's --dashboard-namespaces. Default: any.
    #[arg(long, value_delimiter = ',')]
    dashboard_namespaces: Option<Vec<String>>,
}

impl PolicyArgs {
    /// The policy these flags describe.
    pub fn policy(&self) -> Policy {
        let allowed =
            |list: &Option<Vec<String>>| list.as_ref().map_or(Allowed::Any, Allowed::from_list);
        Policy {
            prometheus_urls: allowed(&self.allowed_prometheus_urls),
            dashboard_namespaces: allowed(&self.dashboard_namespaces),
        }
    }
}

/// Parses `--engine`: any engine but `auto` (offline, no pods can be inspected).
pub fn parse_engine(text: &str) -> Result<Engine, String> {
    match text.parse::<Engine>()? {
        Engine::Auto => Err("--engine must name an engine, not auto".into()),
        engine => Ok(engine),
    }
}

/// Checks and resolves one document offline under `policy`, `engine` standing in for
/// detection. The errors name the fields to fix.
pub fn resolve_offline(
    document: &Document,
    engine: Option<Engine>,
    policy: &Policy,
) -> Result<Validated, Vec<String>> {
    let facts = ClusterFacts {
        detected_engine: engine,
        policy: policy.clone(),
        ..ClusterFacts::assumed_offline()
    };
    let resource = validate_document(&document.value)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    if resource.spec.engine == Engine::Auto && engine.is_none() {
        return Err(vec![auto_needs_engine_flag()]);
    }
    resolve(&resource, &facts).map_err(|err| vec![err.to_string()])
}

/// Offline there are no pods to detect an `engine: auto` resource's engine from: the user
/// names it. The list comes from the engine catalog.
fn auto_needs_engine_flag() -> String {
    let engines: Vec<&str> = infmon::engines::all_profiles()
        .iter()
        .map(|p| p.engine.as_str())
        .collect();
    format!(
        "spec.engine: auto is detected from the running pods, and offline there are none; pass --engine ENGINE (one of {}) or set spec.engine",
        engines.join(", ")
    )
}
