//! Realistic Prometheus exposition pages for every engine in the catalog and for the DCGM
//! exporter, generated from the catalog itself: every series a dashboard or rule reads is on
//! the page, in the engine's own units, with counters and histograms that advance with
//! `tick` (the scrape number). Tests serve them to a real Prometheus; the demo reuses them.

use std::collections::BTreeMap;
use std::fmt::Write;

use infmon::engines::{EngineProfile, Source, Unit};
use infmon::promql::{self, Scope};

/// The model name fixture series carry in the engine's model label.
pub const FIXTURE_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// The GPU model fixture DCGM series carry.
pub const FIXTURE_GPU_MODEL: &str = "NVIDIA H100 80GB HBM3";

const HELP: &str = "infmon fixture generated from the engine catalog.";

/// Latency bucket bounds in seconds.
const LATENCY_BOUNDS: [f64; 7] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Count bucket bounds (tokens, sequences).
const COUNT_BOUNDS: [f64; 7] = [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0];
/// Cumulative tenths of observations at or below each bound; all ten below `+Inf`.
const CUMULATIVE_TENTHS: [u64; 7] = [0, 1, 3, 6, 8, 9, 10];
/// Observations per tick in every histogram.
const OBSERVATIONS_PER_TICK: u64 = 10;

type Labels = BTreeMap<String, String>;

#[derive(Default)]
struct Family {
    kind: &'static str,
    /// (sample name, labels) → value; one entry per series.
    samples: BTreeMap<(String, Labels), f64>,
}

/// A page being built: families by name.
#[derive(Default)]
struct Page(BTreeMap<String, Family>);

impl Page {
    fn add(&mut self, family: &str, kind: &'static str, sample: &str, labels: &Labels, value: f64) {
        let entry = self.0.entry(family.to_string()).or_default();
        entry.kind = kind;
        entry
            .samples
            .insert((sample.to_string(), labels.clone()), value);
    }

    fn counter(&mut self, name: &str, labels: &Labels, value: f64) {
        self.add(name, "counter", name, labels, value);
    }

    fn gauge(&mut self, name: &str, labels: &Labels, value: f64) {
        self.add(name, "gauge", name, labels, value);
    }

    /// A histogram whose observations all lie between the first and last bound, `tick`
    /// batches of [`OBSERVATIONS_PER_TICK`] so far.
    fn histogram(&mut self, name: &str, labels: &Labels, bounds: &[f64; 7], tick: u64) {
        let mut sum = 0.0;
        let mut previous = 0;
        for (bound, tenths) in bounds.iter().zip(CUMULATIVE_TENTHS) {
            let mut bucket = labels.clone();
            bucket.insert("le".into(), bound.to_string());
            self.add(
                name,
                "histogram",
                &format!("{name}_bucket"),
                &bucket,
                (tick * tenths) as f64,
            );
            sum += (tenths - previous) as f64 * bound * 0.8;
            previous = tenths;
        }
        let mut inf = labels.clone();
        inf.insert("le".into(), "+Inf".into());
        let count = (tick * OBSERVATIONS_PER_TICK) as f64;
        self.add(name, "histogram", &format!("{name}_bucket"), &inf, count);
        self.add(
            name,
            "histogram",
            &format!("{name}_sum"),
            labels,
            sum * tick as f64,
        );
        self.add(name, "histogram", &format!("{name}_count"), labels, count);
    }

    fn has(&self, sample: &str) -> bool {
        self.0
            .values()
            .any(|f| f.samples.keys().any(|(n, _)| n == sample))
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in &self.0 {
            let _ = writeln!(out, "# HELP {name} {HELP}");
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for ((sample, labels), value) in &family.samples {
                let _ = writeln!(out, "{sample}{} {value}", format_labels(labels));
            }
        }
        out
    }
}

fn format_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('\n', r"\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Labels for a catalog matcher list such as `status=~"5..",method="prefill"`: equality
/// matchers give their value, regex matchers a value they match (each `.` as `0`).
fn matcher_labels(matchers: &str) -> Labels {
    matchers
        .split(',')
        .filter_map(|m| {
            let (key, value) = m.split_once('=')?;
            let (regex, value) = match value.strip_prefix('~') {
                Some(v) => (true, v),
                None => (false, value),
            };
            let value = value.trim().trim_matches('"');
            let value = if regex {
                value.replace('.', "0")
            } else {
                value.to_string()
            };
            Some((key.trim().to_string(), value))
        })
        .collect()
}

fn bounds(unit: Unit) -> [f64; 7] {
    match unit {
        Unit::Count => COUNT_BOUNDS,
        unit => LATENCY_BOUNDS.map(|b| b / unit.to_base_factor()),
    }
}

fn gauge_value(unit: Unit, tick: u64) -> f64 {
    let wobble = (tick % 5) as f64;
    match unit {
        Unit::Ratio => 0.4 + wobble / 100.0,
        Unit::Percent => 40.0 + wobble,
        Unit::Megabytes => 20_000.0 + wobble,
        Unit::Bytes => 2e10 + wobble,
        _ => 2.0 + wobble,
    }
}

/// Marker selector used to find the series an approximation template reads.
const MARKER: &str = r#"fixture="1""#;

/// The series a template reads: `(name, extra labels, read with a range)`.
fn template_series(source: &Source) -> Vec<(String, Labels, bool)> {
    let scope = Scope {
        sel: MARKER,
        by: "pod",
        window: "1m",
    };
    let text = promql::expr(source, 0.5, &scope);
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(MARKER) {
        let before = &rest[..start];
        let open = before.rfind('{').unwrap_or(0);
        let name_start = before[..open]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let name = before[name_start..open].to_string();
        let after = &rest[start + MARKER.len()..];
        let close = after.find('}').unwrap_or(after.len());
        let labels = matcher_labels(after[..close].trim_start_matches(','));
        let ranged = after[close..].starts_with("}[");
        found.push((name, labels, ranged));
        rest = &after[close..];
    }
    found
}

/// The exposition page of an engine at scrape number `tick`: every series its catalog entry
/// reads, labelled with its model label (when it has one) set to [`FIXTURE_MODEL`].
pub fn engine_page(profile: &EngineProfile, tick: u64) -> String {
    let mut base = Labels::new();
    if let Some(label) = profile.model_label.as_deref() {
        base.insert(label.to_string(), FIXTURE_MODEL.to_string());
    }
    let mut page = Page::default();
    for (_, source) in &profile.roles {
        add_source(&mut page, source, &base, tick);
    }
    let extras = &profile.extras;
    let named = extras
        .stages
        .iter()
        .chain(&extras.queues)
        .map(|n| &n.source);
    for source in named
        .chain(&extras.gpu_memory)
        .chain(&extras.gpu_utilization)
    {
        add_source(&mut page, source, &base, tick);
    }
    if let Some(view) = &extras.per_worker {
        for worker in ["1", "2"] {
            let mut labels = base.clone();
            labels.insert(view.label.to_string(), worker.to_string());
            for series in &view.series {
                add_source(&mut page, &series.source, &labels, tick);
            }
        }
    }
    if let Some((source, worker_label)) = &extras.worker_requests {
        for (index, worker) in ["worker-0", "worker-1"].into_iter().enumerate() {
            let mut labels = base.clone();
            labels.insert(worker_label.clone(), worker.to_string());
            add_source(&mut page, source, &labels, tick * (index as u64 + 1));
        }
    }
    if let Some(core) = &profile.core_metric
        && !page.has(core)
    {
        page.counter(core, &base, (tick * 7) as f64);
    }
    page.render()
}

/// Adds the series one source reads, in its unit, advancing with `tick`.
fn add_source(page: &mut Page, source: &Source, base: &Labels, tick: u64) {
    let with = |matchers: &str| {
        let mut labels = base.clone();
        labels.extend(matcher_labels(matchers));
        labels
    };
    match source {
        Source::Counter { name, matchers } => {
            // Matched subsets (errors) advance slower than the whole.
            let step = if matchers.is_empty() { 7 } else { 1 };
            page.counter(name, &with(matchers), (tick * step) as f64);
        }
        Source::Gauge {
            name,
            matchers,
            unit,
        } => page.gauge(name, &with(matchers), gauge_value(*unit, tick)),
        Source::Histogram {
            name,
            matchers,
            unit,
        } => page.histogram(name, &with(matchers), &bounds(*unit), tick),
        Source::HistogramSum { name } => page.histogram(name, base, &COUNT_BOUNDS, tick),
        Source::DurationCounter { name, count, unit } => {
            let mean = 0.3 / unit.to_base_factor();
            page.counter(count, base, (tick * 7) as f64);
            page.counter(name, base, (tick * 7) as f64 * mean);
        }
        Source::Approximation { .. } => {
            for (name, labels, ranged) in template_series(source) {
                let labels = with_labels(base, labels);
                match name.strip_suffix("_bucket") {
                    Some(family) => page.histogram(family, &labels, &LATENCY_BOUNDS, tick),
                    None if ranged => page.counter(&name, &labels, (tick * 5) as f64),
                    None => page.gauge(&name, &labels, 20.0 + (tick % 5) as f64),
                }
            }
        }
    }
}

fn with_labels(base: &Labels, extra: Labels) -> Labels {
    let mut labels = base.clone();
    labels.extend(extra);
    labels
}

/// A DCGM exporter page at scrape number `tick`: one GPU per `(namespace, pod)` workload,
/// with the exporter's Kubernetes labels. Even GPUs spell the host label `Hostname` (before
/// dcgm-exporter 4.8.2), odd ones `hostname` (after), as a mixed fleet would.
pub fn dcgm_page(workloads: &[(&str, &str)], tick: u64) -> String {
    let mut page = Page::default();
    for (gpu, (namespace, pod)) in workloads.iter().enumerate() {
        let host_label = if gpu % 2 == 0 { "Hostname" } else { "hostname" };
        let labels = Labels::from([
            ("gpu".into(), gpu.to_string()),
            (
                "UUID".into(),
                format!("GPU-00000000-0000-0000-0000-{gpu:012}"),
            ),
            (
                "pci_bus_id".into(),
                format!("00000000:{:02X}:00.0", gpu + 1),
            ),
            ("device".into(), format!("nvidia{gpu}")),
            ("modelName".into(), FIXTURE_GPU_MODEL.into()),
            (host_label.into(), format!("gpu-node-{}", gpu / 8)),
            ("DCGM_FI_DRIVER_VERSION".into(), "570.124.06".into()),
            ("namespace".into(), namespace.to_string()),
            ("pod".into(), pod.to_string()),
            ("container".into(), "server".into()),
        ]);
        let wobble = (tick % 10) as f64;
        page.gauge("DCGM_FI_DEV_GPU_UTIL", &labels, 60.0 + wobble);
        page.gauge("DCGM_FI_DEV_FB_USED", &labels, 61_440.0);
        page.gauge("DCGM_FI_DEV_FB_FREE", &labels, 19_560.0);
        page.gauge("DCGM_FI_DEV_POWER_USAGE", &labels, 350.0 + wobble);
        page.gauge("DCGM_FI_DEV_GPU_TEMP", &labels, 62.0);
        page.gauge("DCGM_FI_DEV_SM_CLOCK", &labels, 1_980.0);
        page.counter(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            &labels,
            (tick * 350_000) as f64,
        );
    }
    page.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use infmon::api::Engine;
    use infmon::engines::{all_profiles, profile};

    #[test]
    fn every_catalog_series_is_on_its_engines_page() {
        for p in all_profiles() {
            let page = engine_page(&p, 3);
            for name in p.series_names() {
                assert!(
                    page.lines().any(|l| l.starts_with(&format!("{name}{{"))
                        || l.starts_with(&format!("{name} "))),
                    "{} page lacks {name}:\n{page}",
                    p.title
                );
            }
        }
    }

    #[test]
    fn counters_and_histograms_advance_with_the_tick() {
        let p = profile(Engine::Vllm).unwrap();
        let line = |tick, prefix: &str| {
            engine_page(&p, tick)
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap()
                .to_string()
        };
        let value = |tick, prefix: &str| -> f64 {
            line(tick, prefix)
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (first, second) = (
            value(1, "vllm:generation_tokens_total"),
            value(2, "vllm:generation_tokens_total"),
        );
        assert!(first > 0.0 && second == 2.0 * first, "{first} {second}");
        assert!(line(2, "vllm:time_to_first_token_seconds_count").ends_with(" 20"));
        assert!(
            engine_page(&p, 2)
                .lines()
                .any(|l| l.starts_with("http_requests_total{") && l.contains(r#"status="500""#))
        );
    }

    #[test]
    fn approximation_inputs_and_units_follow_the_catalog() {
        let tgi = engine_page(&profile(Engine::Tgi).unwrap(), 1);
        assert!(
            tgi.contains(r#"tgi_batch_inference_duration_bucket{le="+Inf",method="prefill"} 10"#)
        );
        assert!(tgi.contains("# TYPE tgi_request_queue_duration histogram"));
        assert!(tgi.contains("# TYPE tgi_request_count counter"));
        let max = engine_page(&profile(Engine::Max).unwrap(), 1);
        assert!(max.contains(r#"maxserve_time_to_first_token_milliseconds_bucket{le="25"}"#));
        let llama = engine_page(&profile(Engine::Llamacpp).unwrap(), 1);
        assert!(llama.contains("# TYPE llamacpp:predicted_tokens_seconds gauge"));
    }

    #[test]
    fn dcgm_pages_carry_pods_and_both_host_spellings() {
        let page = dcgm_page(&[("llm", "a"), ("llm", "b")], 1);
        assert!(page.contains(r#"Hostname="gpu-node-0""#));
        assert!(page.contains(r#"hostname="gpu-node-0""#));
        assert!(page.contains(r#"pod="b""#));
    }
}
