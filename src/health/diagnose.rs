//! Pure diagnosis: what Prometheus reported for a resource's targets ([`Observation`]), and
//! what that means for the user ([`Diagnosis`]: the `TargetsHealthy` condition's status,
//! reason and message). No I/O and no clock here; the caller passes the check time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::backend::{Sample, ScrapeHealth, Target};
use crate::api::{ConditionReason, ConditionType, Conditions, Engine, TargetsStatus};
use crate::render::relabel::{INFERENCE_ENGINE_LABEL, INFERENCE_MONITORING_LABEL};
use crate::validate::{ExistingJob, Namespaces, Output, Targets, Validated};

/// The target label that names the resource (`namespace/name`) on every generated scrape
/// target (the DCGM exporter's too); the checks group by it.
pub const RESOURCE_LABEL: &str = INFERENCE_MONITORING_LABEL;
/// The target label only inference targets carry (not the DCGM exporter's); the checks
/// count only targets that have it.
pub const ENGINE_LABEL: &str = INFERENCE_ENGINE_LABEL;

/// A resource to check: what the diagnosis needs to know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthTarget {
    /// `namespace/name`, the value of [`RESOURCE_LABEL`].
    pub key: String,
    /// The engine.
    pub engine: Engine,
    /// The engine's display name, e.g. `SGLang`.
    pub title: &'static str,
    /// The series every healthy target exports, if known.
    pub core_metric: Option<String>,
    /// What must be switched on for the engine to serve metrics (from the catalog).
    pub metrics_flag: &'static str,
    /// The metrics path scraped.
    pub path: String,
    /// How targets are found.
    pub discovery: Discovery,
    /// How many pods match the selector, when the caller looked (`None`: unknown or static).
    pub pods_matched: Option<usize>,
    /// With `output: none`, the existing job whose targets are this resource's (they carry no
    /// [`RESOURCE_LABEL`]; the queries add it).
    pub existing: Option<ExistingJob>,
}

/// How a resource's targets are found, for explaining an empty target list.
#[derive(Clone, Debug, PartialEq)]
pub enum Discovery {
    /// Pods selected by labels.
    Pods {
        /// The selector, e.g. `app=vllm`.
        selector: String,
        /// Where, e.g. `namespace llm`.
        namespaces: String,
        /// The generated scrape configuration kind.
        output: Output,
        /// The labels the generated monitor carries.
        monitor_labels: BTreeMap<String, String>,
    },
    /// Fixed addresses.
    Static {
        /// The addresses.
        addresses: Vec<String>,
        /// The labels the generated ScrapeConfig carries.
        monitor_labels: BTreeMap<String, String>,
    },
}

impl HealthTarget {
    /// The check's view of a resolved resource. `pods_matched` is the number of pods the
    /// selector matches when the caller listed them.
    pub fn from_validated(resource: &Validated, pods_matched: Option<usize>) -> Self {
        let discovery = match &resource.targets {
            Targets::Pods {
                selector,
                namespaces,
            } => Discovery::Pods {
                selector: match crate::selector::describe(selector).as_str() {
                    "{}" => "{} (every pod)".to_string(),
                    text => text.to_string(),
                },
                namespaces: match namespaces {
                    Namespaces::Any => "any namespace".to_string(),
                    Namespaces::Names(names) if names.len() == 1 => {
                        format!("namespace {}", names[0])
                    }
                    Namespaces::Names(names) => format!("namespaces {}", names.join(", ")),
                },
                output: resource.output,
                monitor_labels: resource.monitor_labels.clone(),
            },
            Targets::Static(addresses) => Discovery::Static {
                addresses: addresses.clone(),
                monitor_labels: resource.monitor_labels.clone(),
            },
        };
        Self {
            key: resource.key(),
            engine: resource.engine,
            title: resource.profile.title,
            core_metric: resource.profile.core_metric.as_ref().map(|m| m.to_string()),
            metrics_flag: resource.profile.metrics_flag,
            path: resource.endpoint.path.clone(),
            discovery,
            pods_matched,
            existing: resource.existing.clone(),
        }
    }
}

/// A condition status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl ConditionStatus {
    /// The `status` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// A scrape target that failed.
#[derive(Clone, Debug, PartialEq)]
pub struct FailingTarget {
    /// The `instance` label.
    pub instance: String,
    /// The URL Prometheus scrapes (unknown without a targets API).
    pub scrape_url: Option<String>,
    /// The last scrape error (unknown without a targets API).
    pub last_error: Option<String>,
}

/// What Prometheus reported for one resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Targets whose last scrape succeeded.
    pub up: u32,
    /// Targets whose last scrape failed.
    pub down: u32,
    /// All targets, including those not scraped yet.
    pub total: u32,
    /// The failing targets, ordered by scrape URL (or instance).
    pub failing: Vec<FailingTarget>,
    /// Whether every up target exports the core metric; `None` when there is no core
    /// metric or no target is up.
    pub core_metric_present: Option<bool>,
    /// Up targets (`instance`) that lack the core metric.
    pub missing_core_metric: Vec<String>,
    /// Whether the counts come from the targets API (`false`: from `up` series only).
    pub from_targets_api: bool,
    /// The resource's metrics endpoints that more than one job scrapes (targets API only),
    /// ordered by scrape URL.
    pub duplicates: Vec<DuplicateTarget>,
}

/// One metrics endpoint (address and path) scraped by more than one job.
#[derive(Clone, Debug, PartialEq)]
pub struct DuplicateTarget {
    /// The resource's target's scrape URL.
    pub scrape_url: String,
    /// Every job scraping the endpoint, sorted.
    pub jobs: Vec<String>,
}

/// The answers of one check cycle for every resource, indexed by [`RESOURCE_LABEL`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    up: HashMap<String, Vec<(String, bool)>>,
    targets: Option<ActiveTargets>,
    core: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

/// The targets API's answer, grouped.
#[derive(Clone, Debug, Default, PartialEq)]
struct ActiveTargets {
    /// Inference targets infmon scrapes, by [`RESOURCE_LABEL`].
    owned: HashMap<String, Vec<Target>>,
    /// Targets without [`RESOURCE_LABEL`], where `output: none` resources find theirs.
    unowned: Vec<Target>,
    /// The jobs scraping each metrics endpoint ([`endpoint`]), over every target.
    jobs: HashMap<String, BTreeSet<String>>,
}

/// A target's metrics endpoint: address and path, without scheme or query
/// (`10.0.0.5:8000/metrics`).
fn endpoint(scrape_url: &str) -> &str {
    let rest = scrape_url
        .split_once("://")
        .map_or(scrape_url, |(_, rest)| rest);
    rest.split(['?', '#']).next().unwrap_or(rest)
}

impl Snapshot {
    /// Groups the answers: `up` samples, the active targets (`None` without a targets API),
    /// and core-metric presence samples labelled `inference_monitoring`, `instance` and
    /// `__name__`. Targets without [`ENGINE_LABEL`] (GPU exporters) are left out.
    pub fn new(up: Vec<Sample>, targets: Option<Vec<Target>>, core: Vec<Sample>) -> Self {
        let mut snapshot = Snapshot::default();
        for mut sample in up {
            if !sample.labels.contains_key(ENGINE_LABEL) {
                continue;
            }
            if let Some(key) = sample.labels.remove(RESOURCE_LABEL) {
                let instance = sample.labels.remove("instance").unwrap_or_default();
                snapshot
                    .up
                    .entry(key)
                    .or_default()
                    .push((instance, sample.value == 1.0));
            }
        }
        snapshot.targets = targets.map(|targets| {
            let mut grouped = ActiveTargets::default();
            for target in targets {
                grouped
                    .jobs
                    .entry(endpoint(&target.scrape_url).to_string())
                    .or_default()
                    .insert(target.labels.get("job").cloned().unwrap_or_default());
                match (
                    target.labels.get(RESOURCE_LABEL).filter(|k| !k.is_empty()),
                    target.labels.get(ENGINE_LABEL),
                ) {
                    (Some(key), Some(_)) => {
                        grouped.owned.entry(key.clone()).or_default().push(target);
                    }
                    (None, _) => grouped.unowned.push(target),
                    (Some(_), None) => {}
                }
            }
            grouped
        });
        for mut sample in core {
            if let (Some(key), Some(name)) = (
                sample.labels.remove(RESOURCE_LABEL),
                sample.labels.remove("__name__"),
            ) {
                let instance = sample.labels.remove("instance").unwrap_or_default();
                snapshot
                    .core
                    .entry(key)
                    .or_default()
                    .entry(instance)
                    .or_default()
                    .insert(name);
            }
        }
        snapshot
    }

    /// What the snapshot says about one resource.
    pub fn observe(&self, target: &HealthTarget) -> Observation {
        let mut observation = Observation::default();
        let mut up_instances = Vec::new();
        match &self.targets {
            Some(all) => {
                observation.from_targets_api = true;
                let own: Vec<&Target> = match &target.existing {
                    Some(job) => all
                        .unowned
                        .iter()
                        .filter(|t| job.matches(&t.labels))
                        .collect(),
                    None => all.owned.get(&target.key).into_iter().flatten().collect(),
                };
                for t in own {
                    if let Some(jobs) = all.jobs.get(endpoint(&t.scrape_url))
                        && jobs.len() > 1
                    {
                        observation.duplicates.push(DuplicateTarget {
                            scrape_url: t.scrape_url.clone(),
                            jobs: jobs.iter().cloned().collect(),
                        });
                    }
                    observation.total += 1;
                    let instance = t.labels.get("instance").cloned().unwrap_or_default();
                    match t.health {
                        ScrapeHealth::Up => {
                            observation.up += 1;
                            up_instances.push(instance);
                        }
                        ScrapeHealth::Down => {
                            observation.down += 1;
                            observation.failing.push(FailingTarget {
                                instance,
                                scrape_url: Some(t.scrape_url.clone()),
                                last_error: Some(t.last_error.clone()),
                            });
                        }
                        ScrapeHealth::Unknown => {}
                    }
                }
            }
            None => {
                for (instance, up) in self.up.get(&target.key).into_iter().flatten() {
                    observation.total += 1;
                    if *up {
                        observation.up += 1;
                        up_instances.push(instance.clone());
                    } else {
                        observation.down += 1;
                        observation.failing.push(FailingTarget {
                            instance: instance.clone(),
                            scrape_url: None,
                            last_error: None,
                        });
                    }
                }
            }
        }
        observation
            .failing
            .sort_by(|a, b| (&a.scrape_url, &a.instance).cmp(&(&b.scrape_url, &b.instance)));
        observation
            .duplicates
            .sort_by(|a, b| a.scrape_url.cmp(&b.scrape_url));
        if let Some(metric) = &target.core_metric
            && !up_instances.is_empty()
        {
            let present = self.core.get(&target.key);
            up_instances.sort();
            observation.missing_core_metric = up_instances
                .into_iter()
                .filter(|instance| {
                    !present
                        .and_then(|by_instance| by_instance.get(instance))
                        .is_some_and(|names| names.contains(metric))
                })
                .collect();
            observation.core_metric_present = Some(observation.missing_core_metric.is_empty());
        }
        observation
    }
}

/// The `TargetsHealthy` condition for one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    /// The condition status.
    pub status: ConditionStatus,
    /// The reason.
    pub reason: ConditionReason,
    /// What is wrong and what to do, in one sentence or two.
    pub message: String,
}

/// Diagnoses a resource from what Prometheus reported.
pub fn diagnose(target: &HealthTarget, observation: &Observation) -> Diagnosis {
    let o = observation;
    if o.total == 0 {
        return Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::NoTargets,
            message: no_targets_message(target),
        };
    }
    if o.down > 0 {
        let not_found: Vec<&FailingTarget> = o
            .failing
            .iter()
            .filter(|f| f.last_error.as_deref().is_some_and(is_http_404))
            .collect();
        if let Some(first) = not_found.first() {
            return Diagnosis {
                status: ConditionStatus::False,
                reason: ConditionReason::MetricsEndpointMissing,
                message: format!(
                    "{} of {} targets answer HTTP 404 on {}, e.g. {}: {} does not serve metrics there; {}",
                    not_found.len(),
                    o.total,
                    target.path,
                    scrape_location(first),
                    target.title,
                    target.metrics_flag
                ),
            };
        }
        let first = &o.failing[0];
        let detail = match &first.last_error {
            Some(error) => format!("{}: {error}", scrape_location(first)),
            None => format!(
                "e.g. instance {} (up == 0; this query API has no targets endpoint, so the scrape error is not known)",
                first.instance
            ),
        };
        return Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::TargetsDown,
            message: format!("{} of {} targets down; {detail}", o.down, o.total),
        };
    }
    if o.up < o.total {
        return Diagnosis {
            status: ConditionStatus::Unknown,
            reason: ConditionReason::Progressing,
            message: format!(
                "{}/{} targets up, {} not scraped yet",
                o.up,
                o.total,
                o.total - o.up
            ),
        };
    }
    let metric = target.core_metric.as_deref().unwrap_or_default();
    if o.core_metric_present == Some(false) {
        return Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::CoreMetricAbsent,
            message: format!(
                "{}/{} targets up, but {} lack {metric} (e.g. {}): check that the target is {} on the right port ({})",
                o.up,
                o.total,
                o.missing_core_metric.len(),
                o.missing_core_metric[0],
                target.title,
                target.metrics_flag
            ),
        };
    }
    if let Some(first) = o.duplicates.first() {
        return Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::DuplicateTargets,
            message: format!(
                "{} of {} targets are scraped by more than one job, e.g. {} by {}: every sum counts them twice; {}",
                o.duplicates.len(),
                o.total,
                first.scrape_url,
                first.jobs.join(", "),
                duplicate_remedy(target)
            ),
        };
    }
    Diagnosis {
        status: ConditionStatus::True,
        reason: ConditionReason::Healthy,
        message: if metric.is_empty() {
            format!("{}/{} targets up", o.up, o.total)
        } else {
            format!("{}/{} targets up; {metric} present", o.up, o.total)
        },
    }
}

/// The diagnosis when the query API cannot be asked: status `Unknown`.
pub fn diagnose_unreachable(error: &super::BackendError) -> Diagnosis {
    Diagnosis {
        status: ConditionStatus::Unknown,
        reason: ConditionReason::PrometheusUnreachable,
        message: error.to_string(),
    }
}

/// One resource's health as of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    /// `namespace/name`.
    pub key: String,
    /// The engine.
    pub engine: Engine,
    /// What Prometheus reported (empty when it could not be asked).
    pub observation: Observation,
    /// The resulting condition.
    pub diagnosis: Diagnosis,
    /// When the check ran.
    pub checked_at: Time,
}

impl HealthReport {
    /// Whether the resource is healthy.
    pub fn is_healthy(&self) -> bool {
        self.diagnosis.status == ConditionStatus::True
    }

    /// Whether Prometheus could be asked at all.
    pub fn was_checked(&self) -> bool {
        self.diagnosis.reason != ConditionReason::PrometheusUnreachable
    }

    /// The `status.targets` block.
    pub fn targets_status(&self) -> TargetsStatus {
        let o = &self.observation;
        TargetsStatus {
            up: o.up,
            down: o.down,
            total: o.total,
            summary: format!("{}/{}", o.up, o.total),
            last_error: o.failing.iter().find_map(|f| f.last_error.clone()),
            last_checked: Some(self.checked_at.clone()),
        }
    }

    /// Writes the `TargetsHealthy` condition (its transition time moves only on a status
    /// change).
    pub fn apply_condition(
        &self,
        conditions: &mut Vec<Condition>,
        observed_generation: Option<i64>,
    ) {
        let d = &self.diagnosis;
        match d.status {
            ConditionStatus::Unknown => conditions.set_unknown(
                ConditionType::TargetsHealthy,
                d.reason,
                d.message.clone(),
                observed_generation,
                &self.checked_at,
            ),
            status => conditions.set_condition(
                ConditionType::TargetsHealthy,
                status == ConditionStatus::True,
                d.reason,
                d.message.clone(),
                observed_generation,
                &self.checked_at,
            ),
        }
    }
}

/// Prometheus' scrape error for a 404 answer.
fn is_http_404(error: &str) -> bool {
    error.contains("HTTP status 404")
}

fn scrape_location(failing: &FailingTarget) -> &str {
    failing.scrape_url.as_deref().unwrap_or(&failing.instance)
}

/// What to do about an endpoint scraped twice.
fn duplicate_remedy(target: &HealthTarget) -> String {
    match &target.existing {
        Some(_) => "remove the other jobs' monitors for these pods, or narrow spec.selector (infmon scrapes nothing itself with output none)".to_string(),
        None => "if the platform already scrapes these pods, set spec.prometheus.output to none and spec.prometheus.existingTargets to its job, so infmon reads that job instead of scraping again; otherwise remove the other monitor".to_string(),
    }
}

fn no_targets_message(target: &HealthTarget) -> String {
    if let Some(job) = &target.existing {
        let missing = format!(
            "Prometheus has no target {} that no other InferenceMonitoring claims",
            job.describe()
        );
        let hint = "check spec.prometheus.existingTargets against the labels of the existing job's targets (Prometheus' Status > Targets page), and that a Prometheus selects that job's monitors";
        return match (&target.discovery, target.pods_matched) {
            (
                Discovery::Pods {
                    selector,
                    namespaces,
                    ..
                },
                Some(0),
            ) => format!(
                "no pod matches the selector {selector} in {namespaces}; fix spec.selector or start the pods"
            ),
            (_, Some(n)) => format!("{n} pods match the selector but {missing}: {hint}"),
            _ => format!("{missing}: {hint}"),
        };
    }
    let missing = format!(
        "Prometheus has no target labelled {RESOURCE_LABEL}=\"{}\"",
        target.key
    );
    match &target.discovery {
        Discovery::Pods {
            selector,
            namespaces,
            output,
            monitor_labels,
        } => {
            let not_selected = not_selected_hint(*output, monitor_labels);
            match target.pods_matched {
                Some(0) => format!(
                    "no pod matches the selector {selector} in {namespaces}; fix spec.selector or start the pods"
                ),
                Some(n) => {
                    format!("{n} pods match the selector {selector} but {missing}: {not_selected}")
                }
                None => format!(
                    "{missing}: either no pod matches the selector {selector} in {namespaces}, or {not_selected}"
                ),
            }
        }
        Discovery::Static {
            addresses,
            monitor_labels,
        } => format!(
            "{missing} (static targets {}): Prometheus has not loaded this resource's scrape configuration; with a plain Prometheus add the output of `infmon render --format prometheus` to prometheus.yml and reload it; with the Prometheus Operator, {}",
            addresses.join(", "),
            not_selected_hint(Output::ScrapeConfig, monitor_labels)
        ),
    }
}

fn not_selected_hint(output: Output, monitor_labels: &BTreeMap<String, String>) -> String {
    let (kind, selector) = match output {
        Output::PodMonitor => ("PodMonitor", "podMonitorSelector"),
        Output::ServiceMonitor => ("ServiceMonitor", "serviceMonitorSelector"),
        Output::ScrapeConfig => ("ScrapeConfig", "scrapeConfigSelector"),
        Output::RawScrapeConfig => {
            return "no Prometheus loads the generated scrape-config Secret; reference it from the Prometheus' additionalScrapeConfigs".to_string();
        }
        Output::None => {
            return "with output none infmon generates no scrape configuration; set spec.prometheus.existingTargets to the job that scrapes these pods".to_string();
        }
    };
    if monitor_labels.is_empty() {
        format!(
            "no Prometheus selects the generated {kind}, which carries no selector labels; set spec.prometheus.monitorLabels to the labels your Prometheus' {selector} requires (kube-prometheus-stack: release=<release name>)"
        )
    } else {
        let labels: Vec<String> = monitor_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "no Prometheus selects the generated {kind}; it is labelled {}, so a Prometheus' {selector} (and its namespace selector) must match those labels",
            labels.join(",")
        )
    }
}
