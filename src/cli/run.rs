//! `infmon run`: the operator. Flags have `INFMON_*` environment twins so the Helm chart
//! can set them either way.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use infmon::api::parse_duration;
use infmon::controller::Config;
use infmon::controller::leader::LeaseSettings;
use infmon::controller::runner::{self, Settings};
use infmon::validate::{Allowed, GpuExporterSettings, Policy};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with the resource's namespace and name on every line.
    Json,
    /// Human-readable text.
    Text,
}

/// Arguments of `infmon run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Prometheus query API used for health checks when a resource sets no spec.prometheus.url.
    #[arg(long, env = "INFMON_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Further Prometheus query URLs a resource may name in spec.prometheus.url (comma-separated;
    /// `*` allows any). The --prometheus-url is always allowed; a resource's query credentials are
    /// only ever sent to an allowed URL.
    #[arg(long, env = "INFMON_ALLOWED_PROMETHEUS_URLS", value_delimiter = ',')]
    allowed_prometheus_urls: Vec<String>,
    /// Credentials for --prometheus-url (sent to it only; a resource naming its own URL brings
    /// its own spec.prometheus.auth).
    #[command(flatten)]
    prometheus_auth: super::QueryAuthArgs,
    /// Namespaces a resource may write dashboards to with spec.dashboards.namespace, besides its
    /// own (comma-separated; `*` allows any; empty allows only the resource's own).
    #[arg(
        long,
        env = "INFMON_DASHBOARD_NAMESPACES",
        value_delimiter = ',',
        default_value = "monitoring"
    )]
    dashboard_namespaces: Vec<String>,
    /// Show the generated dashboards' cluster picker, for a Grafana data source that holds
    /// several clusters (Thanos Query, Mimir); hidden otherwise.
    #[arg(long, env = "INFMON_MULTI_CLUSTER_DASHBOARDS")]
    multi_cluster_dashboards: bool,
    /// Run without access to Secrets: resources may not use the rawScrapeConfig output or
    /// spec.prometheus.auth (pair with the chart's rbac.secrets: false).
    #[arg(long, env = "INFMON_WITHOUT_SECRETS")]
    without_secrets: bool,
    /// Labels for generated monitors and rules when a resource sets none and no Prometheus selector asks for any, e.g. release=kps,team=ml.
    #[arg(long, env = "INFMON_DEFAULT_MONITOR_LABELS", value_parser = parse_labels, default_value = "")]
    default_monitor_labels: BTreeMap<String, String>,
    /// Port of /metrics.
    #[arg(long, env = "INFMON_METRICS_PORT", default_value_t = 8080)]
    metrics_port: u16,
    /// Port of /healthz and /readyz.
    #[arg(long, env = "INFMON_PROBE_PORT", default_value_t = 8081)]
    probe_port: u16,
    /// Address /metrics listens on (0.0.0.0: every interface; 127.0.0.1: only inside the pod).
    #[arg(long, env = "INFMON_METRICS_BIND_ADDRESS", default_value = "0.0.0.0")]
    metrics_bind_address: IpAddr,
    /// Address /healthz and /readyz listen on.
    #[arg(long, env = "INFMON_PROBE_BIND_ADDRESS", default_value = "0.0.0.0")]
    probe_bind_address: IpAddr,
    /// Log format.
    #[arg(long, env = "INFMON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Log level or filter directives, e.g. info or infmon=debug,kube=warn.
    #[arg(long, env = "INFMON_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// The shared DCGM exporter's settings as JSON, e.g. {"namespace":"gpu","profiling":true}
    /// (keys: image, namespace, nodeSelector, tolerations, priorityClassName, runtimeClassName,
    /// resources, profiling, interval; the chart passes its gpuExporter values).
    #[arg(long, env = "INFMON_GPU_EXPORTER", value_parser = GpuExporterSettings::from_json, default_value = "")]
    gpu_exporter: GpuExporterSettings,
    /// Namespaces to watch, comma-separated; empty watches every namespace.
    #[arg(long, env = "INFMON_WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Elect a leader with a coordination.k8s.io Lease so several replicas can run.
    #[arg(long, env = "INFMON_LEADER_ELECTION")]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "INFMON_LEASE_NAME", default_value = "infmon-leader")]
    lease_name: String,
    /// Namespace of the leader Lease (the operator's own; the chart passes the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (the chart passes the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How often health checks ask Prometheus (a resource's spec.prometheus.healthCheckInterval, if longer, wins).
    #[arg(long, env = "INFMON_HEALTH_CHECK_INTERVAL", value_parser = parse_duration_arg, default_value = "30s")]
    health_check_interval: Duration,
    /// How often an unchanged resource is reconciled again (reads only, unless something drifted).
    #[arg(long, env = "INFMON_RESYNC_INTERVAL", value_parser = parse_duration_arg, default_value = "5m")]
    resync_interval: Duration,
    /// How often the served APIs are read again when CustomResourceDefinitions cannot be
    /// watched (with the watch, a CRD change triggers the read at once).
    #[arg(long, env = "INFMON_DISCOVERY_INTERVAL", value_parser = parse_duration_arg, default_value = "1m")]
    discovery_interval: Duration,
    /// How long the first contact with the API server may take before giving up.
    #[arg(long, env = "INFMON_STARTUP_TIMEOUT", value_parser = parse_duration_arg, default_value = "8s")]
    startup_timeout: Duration,
}

/// The operator's policy from its flags.
fn policy(args: &Args) -> Policy {
    Policy {
        prometheus_urls: Allowed::from_list(&args.allowed_prometheus_urls),
        dashboard_namespaces: Allowed::from_list(&args.dashboard_namespaces),
        without_secrets: args.without_secrets,
    }
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration like 30s, 5m or 1h"))
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("{pair:?} is not key=value")),
        })
        .collect()
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match args.log_format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging(args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(operate(args))
}

async fn operate(args: &Args) -> anyhow::Result<ExitCode> {
    let config = kube::Config::infer().await.context(
        "cannot load a Kubernetes configuration (in-cluster ServiceAccount or KUBECONFIG)",
    )?;
    let cluster_url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("cannot build the Kubernetes client")?;
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => {
            std::env::var("HOSTNAME").unwrap_or_else(|_| format!("infmon-{}", std::process::id()))
        }
    };
    if args.leader_election && identity.is_empty() {
        bail!("--identity (POD_NAME) must not be empty with --leader-election");
    }
    let settings = Settings {
        config: Config {
            default_prometheus_url: args.prometheus_url.clone(),
            default_credentials: args.prometheus_auth.credentials()?,
            default_monitor_labels: args.default_monitor_labels.clone(),
            resync: args.resync_interval,
            health_interval: args.health_check_interval,
            namespaces: args
                .watch_namespaces
                .iter()
                .filter(|ns| !ns.is_empty())
                .cloned()
                .collect(),
            gpu_exporter: args.gpu_exporter.clone(),
            policy: policy(args),
            multi_cluster_dashboards: args.multi_cluster_dashboards,
        },
        metrics_addr: SocketAddr::from((args.metrics_bind_address, args.metrics_port)),
        probe_addr: SocketAddr::from((args.probe_bind_address, args.probe_port)),
        leader: args.leader_election.then(|| LeaseSettings {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity,
            duration: Duration::from_secs(15),
        }),
        discovery_interval: args.discovery_interval,
        startup_timeout: args.startup_timeout,
    };
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    runner::run(client, cluster_url, settings, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_comma_separated_pairs() {
        assert_eq!(
            parse_labels("release=kps, team=ml").unwrap(),
            BTreeMap::from([
                ("release".into(), "kps".into()),
                ("team".into(), "ml".into())
            ])
        );
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("release").is_err());
    }
}
