//! One module per subcommand. Each returns the process exit code; `anyhow` is used only here,
//! at the binary's edge.

pub mod check;
pub mod crd;
pub mod render;
pub mod run;
pub mod validate;

use std::path::PathBuf;

use anyhow::Context as _;
use infmon::api::Engine;
use infmon::health::{BasicCredentials, ClientCertificate, Credentials, Secret};
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
    /// As the operator's --without-secrets: refuse what needs Secrets.
    #[arg(long)]
    without_secrets: bool,
}

impl PolicyArgs {
    /// The policy these flags describe.
    pub fn policy(&self) -> Policy {
        let allowed =
            |list: &Option<Vec<String>>| list.as_ref().map_or(Allowed::Any, Allowed::from_list);
        Policy {
            prometheus_urls: allowed(&self.allowed_prometheus_urls),
            dashboard_namespaces: allowed(&self.dashboard_namespaces),
            without_secrets: self.without_secrets,
        }
    }
}

/// Credentials for the Prometheus query API from flags (files for anything secret, so no
/// credential shows in the process list). Shared by `infmon run` (its `--prometheus-url`) and
/// `infmon check`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct QueryAuthArgs {
    /// A file holding a bearer token for the query API (never printed).
    #[arg(
        long,
        env = "INFMON_PROMETHEUS_BEARER_TOKEN_FILE",
        alias = "bearer-token-file"
    )]
    prometheus_bearer_token_file: Option<PathBuf>,
    /// Basic-auth user name for the query API (with --prometheus-basic-auth-password-file).
    #[arg(
        long,
        env = "INFMON_PROMETHEUS_BASIC_AUTH_USER",
        requires = "prometheus_basic_auth_password_file"
    )]
    prometheus_basic_auth_user: Option<String>,
    /// A file holding the basic-auth password (never printed).
    #[arg(
        long,
        env = "INFMON_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
        requires = "prometheus_basic_auth_user"
    )]
    prometheus_basic_auth_password_file: Option<PathBuf>,
    /// A PEM file of CA certificates trusted for an https query URL, besides the system's.
    #[arg(long, env = "INFMON_PROMETHEUS_CA_FILE")]
    prometheus_ca_file: Option<PathBuf>,
    /// A PEM client certificate for a query API that requires mutual TLS (with --prometheus-key-file).
    #[arg(
        long,
        env = "INFMON_PROMETHEUS_CERT_FILE",
        requires = "prometheus_key_file"
    )]
    prometheus_cert_file: Option<PathBuf>,
    /// The PEM private key of --prometheus-cert-file (never printed).
    #[arg(
        long,
        env = "INFMON_PROMETHEUS_KEY_FILE",
        requires = "prometheus_cert_file"
    )]
    prometheus_key_file: Option<PathBuf>,
    /// An extra header sent with every query, NAME=VALUE, e.g. X-Scope-OrgID=team-a for a Mimir
    /// tenant; repeat the flag (or separate with commas in the variable) for more.
    #[arg(long, env = "INFMON_PROMETHEUS_HEADERS", value_delimiter = ',', value_parser = parse_header)]
    prometheus_header: Vec<(String, String)>,
}

impl QueryAuthArgs {
    /// The credentials these flags name, files read now.
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the {what} file {}", path.display()))
        };
        let client_cert = match (&self.prometheus_cert_file, &self.prometheus_key_file) {
            (Some(cert), Some(key)) => Some(ClientCertificate {
                cert_pem: read(cert, "client certificate")?,
                key_pem: Secret::new(read(key, "client key")?),
            }),
            _ => None,
        };
        let basic_auth = match (
            &self.prometheus_basic_auth_user,
            &self.prometheus_basic_auth_password_file,
        ) {
            (Some(username), Some(password)) => Some(BasicCredentials {
                username: username.clone(),
                password: Secret::new(read(password, "basic-auth password")?),
            }),
            _ => None,
        };
        Ok(Credentials {
            bearer_token: self
                .prometheus_bearer_token_file
                .as_ref()
                .map(|path| read(path, "bearer token").map(Secret::new))
                .transpose()?,
            basic_auth,
            ca_pem: self
                .prometheus_ca_file
                .as_ref()
                .map(|path| read(path, "CA").map(String::into_bytes))
                .transpose()?,
            client_cert,
            headers: self
                .prometheus_header
                .iter()
                .map(|(name, value)| (name.clone(), Secret::new(value.clone())))
                .collect(),
        })
    }
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!(
            "{text:?} is not NAME=VALUE, e.g. X-Scope-OrgID=team-a"
        )),
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
    format!(
        "spec.engine: auto is detected from the running pods, and offline there are none; pass --engine ENGINE (one of {}) or set spec.engine",
        infmon::engines::engine_choices()
    )
}
