//! Pure diagnosis: what Prometheus reported for a resource's targets ([`Observation`]), and
//! what that means for the user ([`Diagnosis`]: the `TargetsHealthy` condition's status,
//! reason and message). No I/O and no clock here; the caller passes the check time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::backend::{Sample, ScrapeHealth, Target};
use crate::api::{ConditionReason, ConditionType, Conditions, Engine, TargetsStatus};
use crate::engines::{Source, Unit};
use crate::render::relabel::{INFERENCE_ENGINE_LABEL, INFERENCE_MONITORING_LABEL};
use crate::validate::{
    ExistingJob, Namespaces, Output, Targets, Validated, describe_boundary, indicator_role,
    nearest_boundaries, same_boundary,
};

/// The target label that names the resource (`namespace/name`) on every generated scrape
/// target (the DCGM exporter's too); the checks group by it.
pub const RESOURCE_LABEL: &str = INFERENCE_MONITORING_LABEL;
/// The target label only inference targets carry (not the DCGM exporter's); the checks
/// count only targets that have it.
pub const ENGINE_LABEL: &str = INFERENCE_ENGINE_LABEL;

/// How long after it started a pod counts as loading its model rather than down: vLLM serves
/// no `/metrics` until the model is loaded, which can take ten minutes for a large one.
pub const LOADING_GRACE: Duration = Duration::from_secs(15 * 60);

/// What the pod cache knows of one selected pod, for telling a loading pod from a down one.
#[derive(Clone, Debug, PartialEq)]
pub struct PodState {
    /// `namespace/name`.
    pub key: String,
    /// When the kubelet started the pod (`status.startTime`), if it has.
    pub started: Option<Time>,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
}

/// Whether the pod is still loading at `now`: not Ready, or started less than
/// [`LOADING_GRACE`] ago (or not started at all).
pub fn is_loading(pod: &PodState, now: &Time) -> bool {
    let grace = k8s_openapi::jiff::SignedDuration::try_from(LOADING_GRACE)
        .expect("the grace period fits a signed duration");
    !pod.ready
        || pod
            .started
            .as_ref()
            .is_none_or(|started| now.0.duration_since(started.0) < grace)
}

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
    /// Selected pods (`namespace/name`) that are still loading (see [`is_loading`]); their
    /// targets being down is expected, not a failure.
    pub loading_pods: BTreeSet<String>,
    /// The latency objectives' thresholds, each checked against the buckets the engine
    /// really serves.
    pub slo_buckets: Vec<SloBucket>,
    /// With `output: none`, the existing job whose targets are this resource's (they carry no
    /// [`RESOURCE_LABEL`]; the queries add it).
    pub existing: Option<ExistingJob>,
}

/// A latency objective's threshold: the `le` its SLI reads.
#[derive(Clone, Debug, PartialEq)]
pub struct SloBucket {
    /// Index in `spec.slos`.
    pub index: usize,
    /// The objective's name.
    pub objective: String,
    /// The histogram's bucket series, e.g. `vllm:time_to_first_token_seconds_bucket`.
    pub series: String,
    /// The threshold in the histogram's unit (the `le` value).
    pub le: f64,
    /// The histogram's unit.
    pub unit: Unit,
}

impl SloBucket {
    /// The latency objectives of a resolved resource.
    pub fn of(resource: &Validated) -> Vec<Self> {
        resource
            .slos
            .iter()
            .enumerate()
            .filter_map(|(index, slo)| {
                let threshold = slo.threshold.as_ref()?;
                let Some(Source::Histogram { name, unit, .. }) =
                    resource.profile.source(indicator_role(slo.indicator)?)
                else {
                    return None;
                };
                Some(SloBucket {
                    index,
                    objective: slo.name.clone(),
                    series: format!("{name}_bucket"),
                    le: threshold.le,
                    unit: *unit,
                })
            })
            .collect()
    }
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
            loading_pods: BTreeSet::new(),
            slo_buckets: SloBucket::of(resource),
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
    /// The pod behind it (`namespace/name`), when the target names one.
    pub pod: Option<String>,
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
    /// The finite bucket boundaries served, per bucket series the objectives read.
    pub served_buckets: BTreeMap<String, Vec<f64>>,
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
    /// Per resource: (instance, pod, up).
    up: HashMap<String, Vec<(String, Option<String>, bool)>>,
    targets: Option<ActiveTargets>,
    core: HashMap<String, HashMap<String, BTreeSet<String>>>,
    /// Per resource and bucket series: the finite `le` values served.
    buckets: HashMap<String, HashMap<String, Vec<f64>>>,
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
                let pod = pod_key(&sample.labels);
                snapshot
                    .up
                    .entry(key)
                    .or_default()
                    .push((instance, pod, sample.value == 1.0));
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

    /// Adds the answer of the bucket query: samples labelled `inference_monitoring`,
    /// `__name__` and `le`.
    pub fn with_buckets(mut self, samples: Vec<Sample>) -> Self {
        for mut sample in samples {
            let (Some(key), Some(name), Some(le)) = (
                sample.labels.remove(RESOURCE_LABEL),
                sample.labels.remove("__name__"),
                sample.labels.remove("le"),
            ) else {
                continue;
            };
            if let Ok(le) = le.parse::<f64>()
                && le.is_finite()
            {
                self.buckets
                    .entry(key)
                    .or_default()
                    .entry(name)
                    .or_default()
                    .push(le);
            }
        }
        for series in self.buckets.values_mut().flat_map(|s| s.values_mut()) {
            series.sort_by(f64::total_cmp);
            series.dedup();
        }
        self
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
                                pod: pod_key(&t.labels),
                            });
                        }
                        ScrapeHealth::Unknown => {}
                    }
                }
            }
            None => {
                for (instance, pod, up) in self.up.get(&target.key).into_iter().flatten() {
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
                            pod: pod.clone(),
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
        if let Some(served) = self.buckets.get(&target.key) {
            for bucket in &target.slo_buckets {
                if let Some(les) = served.get(&bucket.series) {
                    observation
                        .served_buckets
                        .insert(bucket.series.clone(), les.clone());
                }
            }
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
    let (loading, failing): (Vec<&FailingTarget>, Vec<&FailingTarget>) =
        o.failing.iter().partition(|f| {
            f.pod
                .as_ref()
                .is_some_and(|pod| target.loading_pods.contains(pod))
        });
    if !failing.is_empty() {
        let not_found: Vec<&FailingTarget> = failing
            .iter()
            .copied()
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
        let first = failing[0];
        let detail = match &first.last_error {
            Some(error) => format!("{}: {error}", scrape_location(first)),
            None => format!(
                "e.g. instance {} (up == 0; this query API has no targets endpoint, so the scrape error is not known)",
                first.instance
            ),
        };
        let also_loading = match loading.len() {
            0 => String::new(),
            n => format!(" ({n} more down while their pods load)"),
        };
        return Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::TargetsDown,
            message: format!(
                "{} of {} targets down{also_loading}; {detail}",
                failing.len(),
                o.total
            ),
        };
    }
    if let Some(first) = loading.first() {
        return Diagnosis {
            status: ConditionStatus::Unknown,
            reason: ConditionReason::Loading,
            message: format!(
                "{}/{} targets up; {} down while their pods load (started less than {} minutes ago or not Ready), e.g. pod {}: an engine serves no metrics until its model is loaded",
                o.up,
                o.total,
                loading.len(),
                LOADING_GRACE.as_secs() / 60,
                first.pod.as_deref().unwrap_or(&first.instance)
            ),
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

/// The `SLOsMeasurable` condition for a resource with latency objectives (`None` without
/// any): is each threshold among the bucket boundaries the engine really serves? An engine
/// started with other buckets than its defaults (or a histogram mapped in `spec.metrics`)
/// makes an objective count the wrong requests, or none.
pub fn diagnose_slos(target: &HealthTarget, observation: &Observation) -> Option<Diagnosis> {
    if target.slo_buckets.is_empty() {
        return None;
    }
    let mut wrong = Vec::new();
    let mut unseen = Vec::new();
    let mut served_ok = Vec::new();
    for bucket in &target.slo_buckets {
        let threshold = describe_boundary(bucket.le, bucket.unit);
        match observation.served_buckets.get(&bucket.series) {
            None => unseen.push(format!(
                "spec.slos[{}] {}: no {} series seen",
                bucket.index, bucket.objective, bucket.series
            )),
            Some(les) if les.iter().any(|le| same_boundary(*le, bucket.le)) => {
                served_ok.push(format!("{} {threshold}", bucket.objective));
            }
            Some(les) => wrong.push(format!(
                "spec.slos[{}] {}: the threshold {threshold} is not a bucket boundary {} serves in {}, so the objective cannot be counted; {} (the engine runs with buckets other than its defaults: pick one of them, or start it with the default buckets)",
                bucket.index,
                bucket.objective,
                target.title,
                bucket.series,
                nearest_boundaries(les, bucket.le, bucket.unit),
            )),
        }
    }
    Some(if !wrong.is_empty() {
        Diagnosis {
            status: ConditionStatus::False,
            reason: ConditionReason::ThresholdNotServed,
            message: wrong.join("; "),
        }
    } else if !unseen.is_empty() {
        Diagnosis {
            status: ConditionStatus::Unknown,
            reason: ConditionReason::BucketsNotSeen,
            message: format!(
                "{} (not scraped yet, or the engine does not export the histogram: see the InferenceSLOSeriesMissing alert)",
                unseen.join("; ")
            ),
        }
    } else {
        Diagnosis {
            status: ConditionStatus::True,
            reason: ConditionReason::BucketsServed,
            message: format!(
                "every latency threshold is a bucket boundary the engine serves: {}",
                served_ok.join(", ")
            ),
        }
    })
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
    /// The `SLOsMeasurable` condition, for resources with latency objectives.
    pub slos: Option<Diagnosis>,
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

    /// Writes the `TargetsHealthy` condition and, for resources with latency objectives,
    /// `SLOsMeasurable` (removed otherwise); transition times move only on a status change.
    pub fn apply_condition(
        &self,
        conditions: &mut Vec<Condition>,
        observed_generation: Option<i64>,
    ) {
        let write = |conditions: &mut Vec<Condition>, type_, d: &Diagnosis| match d.status {
            ConditionStatus::Unknown => conditions.set_unknown(
                type_,
                d.reason,
                d.message.clone(),
                observed_generation,
                &self.checked_at,
            ),
            status => conditions.set_condition(
                type_,
                status == ConditionStatus::True,
                d.reason,
                d.message.clone(),
                observed_generation,
                &self.checked_at,
            ),
        };
        write(conditions, ConditionType::TargetsHealthy, &self.diagnosis);
        match &self.slos {
            Some(d) => write(conditions, ConditionType::SlosMeasurable, d),
            None => conditions.retain(|c| c.type_ != ConditionType::SlosMeasurable.as_str()),
        }
    }
}

/// `namespace/pod` from a target's or a series' labels, when it has both.
fn pod_key(labels: &BTreeMap<String, String>) -> Option<String> {
    Some(format!(
        "{}/{}",
        labels.get("namespace")?,
        labels.get("pod")?
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    const NOW: i64 = 1_700_000_000;

    fn pod(key: &str, started_minutes_ago: Option<i64>, ready: bool) -> PodState {
        PodState {
            key: key.into(),
            started: started_minutes_ago.map(|m| time(NOW - m * 60)),
            ready,
        }
    }

    #[test]
    fn pods_started_within_the_grace_period_or_not_ready_are_loading() {
        let pods = [
            pod("llm/new", Some(3), true),
            pod("llm/almost", Some(14), true),
            pod("llm/old", Some(16), true),
            pod("llm/old-unready", Some(120), false),
            pod("llm/unscheduled", None, false),
        ];
        let loading: Vec<&str> = pods
            .iter()
            .filter(|pod| is_loading(pod, &time(NOW)))
            .map(|pod| pod.key.as_str())
            .collect();
        assert_eq!(
            loading,
            [
                "llm/new",
                "llm/almost",
                "llm/old-unready",
                "llm/unscheduled"
            ]
        );
    }

    fn vllm(loading: &[&str]) -> HealthTarget {
        HealthTarget {
            key: "llm/chat".into(),
            engine: Engine::Vllm,
            title: "vLLM",
            core_metric: Some("vllm:num_requests_running".into()),
            metrics_flag: "metrics are on by default",
            path: "/metrics".into(),
            discovery: Discovery::Static {
                addresses: vec![],
                monitor_labels: BTreeMap::new(),
            },
            pods_matched: None,
            loading_pods: loading.iter().map(|p| p.to_string()).collect(),
            slo_buckets: Vec::new(),
            existing: None,
        }
    }

    /// Ten targets of pods `vllm-0` … `vllm-9` in `llm`, those listed down (connection
    /// refused), the others up with the core metric.
    fn snapshot(down: &[usize]) -> Snapshot {
        let targets = (0..10)
            .map(|i| Target {
                labels: [
                    (RESOURCE_LABEL, "llm/chat".to_string()),
                    (ENGINE_LABEL, "vllm".to_string()),
                    ("instance", format!("10.0.0.{i}:8000")),
                    ("namespace", "llm".to_string()),
                    ("pod", format!("vllm-{i}")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                scrape_url: format!("http://10.0.0.{i}:8000/metrics"),
                health: if down.contains(&i) {
                    ScrapeHealth::Down
                } else {
                    ScrapeHealth::Up
                },
                last_error: if down.contains(&i) {
                    "connect: connection refused".into()
                } else {
                    String::new()
                },
            })
            .collect();
        let core = (0..10)
            .filter(|i| !down.contains(i))
            .map(|i| Sample {
                labels: [
                    (RESOURCE_LABEL, "llm/chat".to_string()),
                    ("instance", format!("10.0.0.{i}:8000")),
                    ("__name__", "vllm:num_requests_running".to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                value: 1.0,
            })
            .collect();
        Snapshot::new(Vec::new(), Some(targets), core)
    }

    fn diagnosed(down: &[usize], loading: &[&str]) -> Diagnosis {
        let target = vllm(loading);
        diagnose(&target, &snapshot(down).observe(&target))
    }

    #[test]
    fn targets_down_only_because_their_pods_load_are_loading_not_down() {
        let d = diagnosed(&[3, 7], &["llm/vllm-3", "llm/vllm-7", "llm/vllm-8"]);
        assert_eq!(d.reason, ConditionReason::Loading);
        assert_eq!(d.status, ConditionStatus::Unknown);
        assert_eq!(
            d.message,
            "8/10 targets up; 2 down while their pods load (started less than 15 minutes ago or not Ready), e.g. pod llm/vllm-3: an engine serves no metrics until its model is loaded"
        );
    }

    #[test]
    fn a_down_target_of_a_pod_that_is_not_loading_is_still_targets_down() {
        let d = diagnosed(&[3, 7], &["llm/vllm-3"]);
        assert_eq!(d.reason, ConditionReason::TargetsDown);
        assert_eq!(d.status, ConditionStatus::False);
        assert_eq!(
            d.message,
            "1 of 10 targets down (1 more down while their pods load); http://10.0.0.7:8000/metrics: connect: connection refused"
        );
        // A pod of the same name in another namespace is another pod.
        let d = diagnosed(&[3], &["other/vllm-3"]);
        assert_eq!(d.reason, ConditionReason::TargetsDown);
        // Nothing loading: as before.
        let d = diagnosed(&[3], &[]);
        assert_eq!(
            d.message,
            "1 of 10 targets down; http://10.0.0.3:8000/metrics: connect: connection refused"
        );
    }

    #[test]
    fn without_a_targets_api_the_pod_comes_from_the_up_series() {
        let up = |pod: &str, value: f64| Sample {
            labels: [
                (RESOURCE_LABEL, "llm/chat"),
                (ENGINE_LABEL, "vllm"),
                ("instance", pod),
                ("namespace", "llm"),
                ("pod", pod),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            value,
        };
        let snapshot = Snapshot::new(vec![up("a", 1.0), up("b", 0.0)], None, Vec::new());
        let target = HealthTarget {
            core_metric: None,
            ..vllm(&["llm/b"])
        };
        let d = diagnose(&target, &snapshot.observe(&target));
        assert_eq!(d.reason, ConditionReason::Loading, "{}", d.message);
        assert!(d.message.contains("e.g. pod llm/b"), "{}", d.message);
    }

    fn bucket_samples(key: &str, series: &str, les: &[&str]) -> Vec<Sample> {
        les.iter()
            .map(|le| Sample {
                labels: [(RESOURCE_LABEL, key), ("__name__", series), ("le", le)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                value: 1.0,
            })
            .collect()
    }

    fn slo_diagnosis(target: &HealthTarget, samples: Vec<Sample>) -> Option<Diagnosis> {
        let snapshot = Snapshot::default().with_buckets(samples);
        diagnose_slos(target, &snapshot.observe(target))
    }

    #[test]
    fn slo_thresholds_are_checked_against_the_buckets_really_served() {
        const TTFT: &str = "vllm:time_to_first_token_seconds_bucket";
        let mut target = vllm(&[]);
        assert_eq!(slo_diagnosis(&target, Vec::new()), None, "no objective");
        target.slo_buckets = vec![SloBucket {
            index: 1,
            objective: "ttft-1s".into(),
            series: TTFT.into(),
            le: 1.0,
            unit: Unit::Seconds,
        }];
        // The default buckets, spelled as the Python client does.
        let served = slo_diagnosis(
            &target,
            bucket_samples("llm/chat", TTFT, &["0.5", "1.0", "2.5", "+Inf"]),
        )
        .unwrap();
        assert_eq!(served.status, ConditionStatus::True);
        assert_eq!(served.reason, ConditionReason::BucketsServed);
        assert_eq!(
            served.message,
            "every latency threshold is a bucket boundary the engine serves: ttft-1s 1 s"
        );
        // An engine started with other buckets.
        let other = slo_diagnosis(
            &target,
            bucket_samples("llm/chat", TTFT, &["0.8", "2.5", "5.0", "+Inf"]),
        )
        .unwrap();
        assert_eq!(other.status, ConditionStatus::False);
        assert_eq!(other.reason, ConditionReason::ThresholdNotServed);
        assert_eq!(
            other.message,
            "spec.slos[1] ttft-1s: the threshold 1 s is not a bucket boundary vLLM serves in vllm:time_to_first_token_seconds_bucket, so the objective cannot be counted; the nearest are 0.8 s and 2.5 s (the engine runs with buckets other than its defaults: pick one of them, or start it with the default buckets)"
        );
        // Another resource's buckets say nothing about this one.
        let unseen =
            slo_diagnosis(&target, bucket_samples("llm/other", TTFT, &["1.0", "+Inf"])).unwrap();
        assert_eq!(unseen.status, ConditionStatus::Unknown);
        assert_eq!(unseen.reason, ConditionReason::BucketsNotSeen);
        assert!(
            unseen.message.starts_with(
                "spec.slos[1] ttft-1s: no vllm:time_to_first_token_seconds_bucket series seen"
            ),
            "{}",
            unseen.message
        );
    }

    #[test]
    fn millisecond_buckets_are_compared_in_the_engines_unit_whatever_the_spelling() {
        const TTFT: &str = "maxserve_time_to_first_token_milliseconds_bucket";
        let target = HealthTarget {
            title: "MAX Serve",
            slo_buckets: vec![SloBucket {
                index: 0,
                objective: "ttft".into(),
                series: TTFT.into(),
                le: 1980.0,
                unit: Unit::Milliseconds,
            }],
            ..vllm(&[])
        };
        let served = slo_diagnosis(
            &target,
            bucket_samples("llm/chat", TTFT, &["1000.0", "1980.0", "+Inf"]),
        )
        .unwrap();
        assert_eq!(
            served.reason,
            ConditionReason::BucketsServed,
            "{}",
            served.message
        );
        let other = slo_diagnosis(
            &target,
            bucket_samples("llm/chat", TTFT, &["1e+03", "2e+03"]),
        )
        .unwrap();
        assert!(
            other
                .message
                .contains("the threshold 1.98 s (1980 ms) is not a bucket boundary MAX Serve serves in maxserve_time_to_first_token_milliseconds_bucket, so the objective cannot be counted; the nearest are 1 s (1000 ms) and 2 s (2000 ms)"),
            "{}",
            other.message
        );
    }
}
