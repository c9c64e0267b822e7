//! `infmon render -f FILE… [--format kubernetes|prometheus] [--engine ENGINE]`: every child
//! object the operator would create, offline, for GitOps pipelines and hosts without Kubernetes,
//! including the cluster-shared objects the given resources want together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use infmon::api::Engine;
use infmon::manifests::{Document, read_files};
use infmon::render::scrape::{prometheus_scrape_configs, prometheus_yml};
use infmon::render::{Child, render_all, render_shared, sort_children};
use infmon::rules;
use infmon::validate::{GpuExporterSettings, Validated};

/// What to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Every child object as multi-document Kubernetes YAML.
    Kubernetes,
    /// A complete prometheus.yml for `staticTargets` resources (no Kubernetes needed).
    Prometheus,
}

/// Arguments of `infmon render`.
#[derive(clap::Args)]
pub struct Args {
    /// Files with InferenceMonitoring resources (several YAML documents per file are fine; `-` reads stdin).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "kubernetes")]
    format: Format,
    /// With `--format prometheus`: also write the recording rules and alerts to this file and
    /// list it under `rule_files` (a path relative to prometheus.yml, or absolute).
    #[arg(long, value_name = "FILE")]
    rules_file: Option<PathBuf>,
    /// Engine to assume for `engine: auto` resources (no pods can be inspected offline).
    #[arg(long, value_parser = super::parse_engine)]
    engine: Option<Engine>,
    /// The shared DCGM exporter's settings as JSON, as `infmon run --gpu-exporter` takes them.
    #[arg(long, env = "INFMON_GPU_EXPORTER", value_parser = parse_gpu_exporter, default_value = "")]
    gpu_exporter: Box<GpuExporterSettings>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    /// Show the dashboards' cluster picker, as the operator's --multi-cluster-dashboards: for
    /// a Grafana data source that holds several clusters (Thanos Query, Mimir).
    #[arg(long)]
    multi_cluster_dashboards: bool,
}

fn parse_gpu_exporter(text: &str) -> Result<Box<GpuExporterSettings>, String> {
    GpuExporterSettings::from_json(text).map(Box::new)
}

/// Renders every document; exit 0 when all rendered, 1 when any is invalid or cannot be
/// rendered in the chosen format, 2 when a file cannot be read or parsed. Nothing is printed
/// to standard output unless every document succeeded.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let documents = match read_files(&args.files) {
        Ok(documents) if documents.is_empty() => {
            eprintln!("error: no documents found");
            return Ok(ExitCode::from(2));
        }
        Ok(documents) => documents,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let policy = args.policy.policy();
    let mut failed = false;
    let mut resources = Vec::new();
    for document in &documents {
        match super::resolve_offline(document, args.engine, &policy) {
            Ok(mut resource) => {
                if let Some(dashboards) = &mut resource.dashboards {
                    dashboards.multi_cluster = args.multi_cluster_dashboards;
                }
                resources.push(resource);
            }
            Err(errors) => {
                failed = true;
                eprintln!("{}: invalid", describe(document));
                for error in errors {
                    eprintln!("  {error}");
                }
            }
        }
    }
    if failed {
        return Ok(ExitCode::from(1));
    }
    let output = match args.format {
        Format::Kubernetes => kubernetes(&resources, &args.gpu_exporter),
        Format::Prometheus => prometheus(&resources, args.rules_file.as_deref()),
    };
    match output {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn describe(document: &Document) -> String {
    let name = document
        .value
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("<unnamed>");
    format!("{}: {name}", document.location())
}

/// Every resource's own children and the cluster-shared objects they want together.
fn kubernetes(
    resources: &[Validated],
    gpu_exporter: &GpuExporterSettings,
) -> Result<String, Vec<String>> {
    let mut children: Vec<Child> = Vec::new();
    let mut errors = Vec::new();
    for resource in resources {
        match render_all(resource) {
            Ok(more) => children.extend(more),
            Err(err) => errors.push(format!("{}: {err}", resource.key())),
        }
    }
    match render_shared(resources, gpu_exporter) {
        Ok(shared) => children.extend(shared),
        Err(err) => errors.push(format!("shared objects: {err}")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    sort_children(&mut children);
    let mut text = String::new();
    for child in &children {
        let yaml = serde_yaml::to_string(&child.object)
            .map_err(|err| vec![format!("{}: {err}", child.display_name())])?;
        text.push_str("---\n");
        text.push_str(&yaml);
    }
    Ok(text)
}

fn prometheus(resources: &[Validated], rules_file: Option<&Path>) -> Result<String, Vec<String>> {
    let mut scrape_configs = Vec::new();
    let mut errors = Vec::new();
    for resource in resources {
        match prometheus_scrape_configs(resource) {
            Ok(jobs) => scrape_configs.extend(jobs),
            Err(err) => errors.push(err.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut config = prometheus_yml(scrape_configs);
    if let Some(path) = rules_file {
        let groups: Vec<serde_json::Value> = resources
            .iter()
            .filter_map(rules::groups)
            .flat_map(|groups| groups.as_array().cloned().unwrap_or_default())
            .collect();
        let text = serde_yaml::to_string(&serde_json::json!({ "groups": groups }))
            .map_err(|err| vec![err.to_string()])?;
        std::fs::write(
            path,
            format!("# Generated by `infmon render --format prometheus`.\n{text}"),
        )
        .map_err(|err| vec![format!("cannot write {}: {err}", path.display())])?;
        config["rule_files"] = serde_json::json!([path.display().to_string()]);
    }
    let yaml = serde_yaml::to_string(&config).map_err(|err| vec![err.to_string()])?;
    Ok(format!(
        "# Generated by `infmon render --format prometheus`; regenerate instead of editing.\n{yaml}"
    ))
}
