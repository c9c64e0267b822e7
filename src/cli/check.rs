//! `infmon check -f FILE… --prometheus URL`: asks Prometheus whether the resources' targets
//! are scraped and export their engine's core metric, once or until healthy within
//! `--wait`. The post-sync hook of a GitOps pipeline: exit 0 healthy, 1 unhealthy, 2 could
//! not check.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use infmon::api::{Engine, parse_duration};
use infmon::health::{
    ConditionStatus, DEFAULT_TIMEOUT, HealthReport, HealthTarget, PrometheusBackend, check_all,
};
use infmon::manifests::read_files;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

/// How often `--wait` asks again.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Output format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// One JSON document.
    Json,
}

/// Arguments of `infmon check`.
#[derive(clap::Args)]
pub struct Args {
    /// Files with InferenceMonitoring resources (several YAML documents per file are fine; `-` reads stdin).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Base URL of the Prometheus-compatible query API (a path prefix is kept, e.g. http://mimir/prometheus).
    #[arg(long, env = "INFMON_PROMETHEUS_URL")]
    prometheus: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Keep asking until every resource is healthy or this much time has passed, e.g. 60s.
    #[arg(long, value_parser = parse_wait)]
    wait: Option<Duration>,
    /// The engine to assume for resources with `engine: auto`.
    #[arg(long, value_parser = super::parse_engine)]
    engine: Option<Engine>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    #[command(flatten)]
    auth: super::QueryAuthArgs,
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration such as 30s or 2m"))
}

/// Runs the check; see the module documentation for exit codes.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let targets = match load_targets(args) {
        Ok(targets) => targets,
        Err(err) => {
            eprintln!("error: {err:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let credentials = args.auth.credentials()?;
    let backend = PrometheusBackend::new(&args.prometheus, &credentials, DEFAULT_TIMEOUT)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reports = runtime.block_on(async {
        let deadline = args.wait.map(|wait| Instant::now() + wait);
        let mut last_progress = String::new();
        loop {
            let reports = check_all(&backend, &targets, now()).await;
            let all_healthy = reports.iter().all(HealthReport::is_healthy);
            match deadline {
                Some(deadline) if !all_healthy && Instant::now() < deadline => {
                    let progress = progress_line(&reports);
                    if progress != last_progress {
                        eprintln!("{progress}");
                        last_progress = progress;
                    }
                    tokio::time::sleep(POLL_INTERVAL.min(deadline - Instant::now())).await;
                }
                _ => break reports,
            }
        }
    });
    match args.output {
        Format::Table => print!("{}", table(&reports)),
        Format::Json => println!("{:#}", to_json(&reports)),
    }
    Ok(if reports.iter().any(|r| !r.was_checked()) {
        ExitCode::from(2)
    } else if reports.iter().all(HealthReport::is_healthy) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reads, validates and resolves every resource in the files.
fn load_targets(args: &Args) -> anyhow::Result<Vec<HealthTarget>> {
    let documents = read_files(&args.files)?;
    anyhow::ensure!(
        !documents.is_empty(),
        "no documents found in the files given"
    );
    documents
        .iter()
        .map(|document| {
            let validated = super::resolve_offline(document, args.engine, &args.policy.policy())
                .map_err(|errors| {
                    anyhow::anyhow!(
                        "{}: invalid resource:\n  {}",
                        document.location(),
                        errors.join("\n  ")
                    )
                })?;
            Ok(HealthTarget::from_validated(&validated, None))
        })
        .collect()
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn progress_line(reports: &[HealthReport]) -> String {
    let healthy = reports.iter().filter(|r| r.is_healthy()).count();
    let waiting: Vec<String> = reports
        .iter()
        .filter(|r| !r.is_healthy())
        .map(|r| format!("{} {}", r.key, r.diagnosis.reason.as_str()))
        .collect();
    format!(
        "waiting: {healthy}/{} healthy ({})",
        reports.len(),
        waiting.join(", ")
    )
}

/// The reports as an aligned table: RESOURCE, ENGINE, TARGETS (up/total), STATUS (reason),
/// MESSAGE; then, for each resource whose latency objectives cannot be counted as written
/// (`SLOsMeasurable` not True), a line naming it and why.
pub fn table(reports: &[HealthReport]) -> String {
    let mut text = targets_table(reports);
    for r in reports {
        if let Some(d) = r
            .slos
            .as_ref()
            .filter(|d| d.status != ConditionStatus::True)
        {
            text.push_str(&format!(
                "{}: SLOs {}: {}\n",
                r.key,
                d.reason.as_str(),
                d.message
            ));
        }
    }
    text
}

fn targets_table(reports: &[HealthReport]) -> String {
    let header = ["RESOURCE", "ENGINE", "TARGETS", "STATUS", "MESSAGE"].map(String::from);
    let rows: Vec<[String; 5]> = reports
        .iter()
        .map(|r| {
            [
                r.key.clone(),
                r.engine.as_str().to_string(),
                format!("{}/{}", r.observation.up, r.observation.total),
                r.diagnosis.reason.as_str().to_string(),
                r.diagnosis.message.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line.push('\n');
            line
        })
        .collect()
}

/// The reports as JSON: `{"resources": [...]}`.
pub fn to_json(reports: &[HealthReport]) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            let o = &r.observation;
            json!({
                "resource": r.key,
                "engine": r.engine.as_str(),
                "status": r.diagnosis.status.as_str(),
                "reason": r.diagnosis.reason.as_str(),
                "message": r.diagnosis.message,
                "targets": {"up": o.up, "down": o.down, "total": o.total},
                "failing": o.failing.iter().map(|f| json!({
                    "instance": f.instance,
                    "scrapeUrl": f.scrape_url,
                    "lastError": f.last_error,
                })).collect::<Vec<_>>(),
                "coreMetricPresent": o.core_metric_present,
                "slos": r.slos.as_ref().map(|d| json!({
                    "status": d.status.as_str(),
                    "reason": d.reason.as_str(),
                    "message": d.message,
                })),
                "lastChecked": r.checked_at.0.to_string(),
            })
        })
        .collect();
    json!({ "resources": resources })
}

#[cfg(test)]
mod tests {
    use super::*;
    use infmon::api::ConditionReason;
    use infmon::health::{Diagnosis, Observation};

    fn report(key: &str, slos: Option<Diagnosis>) -> HealthReport {
        HealthReport {
            key: key.into(),
            engine: Engine::Vllm,
            observation: Observation::default(),
            diagnosis: Diagnosis {
                status: ConditionStatus::True,
                reason: ConditionReason::Healthy,
                message: "1/1 targets up".into(),
            },
            slos,
            checked_at: Time(Timestamp::from_second(0).unwrap()),
        }
    }

    #[test]
    fn an_objective_that_cannot_be_counted_is_named_under_the_table_and_in_json() {
        let served = Diagnosis {
            status: ConditionStatus::True,
            reason: ConditionReason::BucketsServed,
            message: "every threshold served".into(),
        };
        let moved = Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::ThresholdNotServed,
            message: "spec.slos[0] ttft: not a served bucket".into(),
        };
        let reports = [
            report("ai/plain", None),
            report("ai/good", Some(served)),
            report("ai/moved", Some(moved)),
        ];
        let text = table(&reports);
        let notes: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            notes,
            ["ai/moved: SLOs ThresholdNotServed: spec.slos[0] ttft: not a served bucket"]
        );
        let json = to_json(&reports);
        assert_eq!(json["resources"][0]["slos"], serde_json::Value::Null);
        assert_eq!(json["resources"][2]["slos"]["reason"], "ThresholdNotServed");
        assert_eq!(json["resources"][2]["slos"]["status"], "False");
    }
}
