//! The catalog files: one YAML document per engine, embedded at build time and parsed once
//! into [`EngineProfile`]s. A file that does not parse, names an unknown role or gives a
//! source two kinds is a build-time mistake: the first use panics with the file and the
//! reason, and `every_catalog_file_parses` fails.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::{Detection, EngineProfile, Extras, Role, Source, Unit, WorkerSeries, WorkerView};
use crate::api::{Engine, Scheme};

/// Every catalog file, in the order of [`Engine::ALL`].
pub(crate) const FILES: [(&str, &str); 10] = [
    ("vllm.yaml", include_str!("catalog/vllm.yaml")),
    ("sglang.yaml", include_str!("catalog/sglang.yaml")),
    ("tgi.yaml", include_str!("catalog/tgi.yaml")),
    ("triton.yaml", include_str!("catalog/triton.yaml")),
    ("trtllm.yaml", include_str!("catalog/trtllm.yaml")),
    ("jetstream.yaml", include_str!("catalog/jetstream.yaml")),
    ("max.yaml", include_str!("catalog/max.yaml")),
    ("dynamo.yaml", include_str!("catalog/dynamo.yaml")),
    (
        "dynamoworker.yaml",
        include_str!("catalog/dynamoworker.yaml"),
    ),
    ("llamacpp.yaml", include_str!("catalog/llamacpp.yaml")),
];

/// One engine's file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EngineFile {
    engine: String,
    title: String,
    release: String,
    port: u16,
    path: String,
    #[serde(default)]
    https: bool,
    metrics_flag: String,
    core_metric: String,
    #[serde(default)]
    model_label: Option<String>,
    #[serde(default)]
    per_model: bool,
    detection: DetectionFile,
    roles: BTreeMap<String, SourceFile>,
    #[serde(default)]
    per_worker: Option<PerWorkerFile>,
}

/// Series a component reports about each worker, told apart by `label`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PerWorkerFile {
    label: String,
    series: Vec<WorkerSeriesFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerSeriesFile {
    title: String,
    description: String,
    #[serde(default)]
    ratio: bool,
    source: SourceFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionFile {
    images: Vec<String>,
    commands: Vec<String>,
}

/// A source: exactly one of the kind keys names the series.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SourceFile {
    counter: Option<String>,
    gauge: Option<String>,
    histogram: Option<String>,
    histogram_sum: Option<String>,
    duration_counter: Option<String>,
    approximation: Option<String>,
    #[serde(default)]
    matchers: String,
    unit: Option<String>,
    count: Option<String>,
    note: Option<String>,
    /// A histogram's default bucket boundaries in its own unit, without `+Inf`.
    buckets: Option<Vec<f64>>,
}

/// The parsed catalog, in file order.
static PROFILES: LazyLock<Vec<EngineProfile>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(file, text)| {
            parse(text).unwrap_or_else(|err| panic!("src/engines/catalog/{file}: {err}"))
        })
        .collect()
});

/// Every profile of the catalog.
pub(crate) fn profiles() -> &'static [EngineProfile] {
    &PROFILES
}

/// Strings of the catalog live as long as the process: each file is parsed once.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn parse(text: &str) -> Result<EngineProfile, String> {
    let file: EngineFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let engine: Engine = file.engine.parse()?;
    let mut roles = Vec::new();
    let mut buckets = Vec::new();
    for (key, mut spec) in file.roles {
        let role = Role::ALL
            .into_iter()
            .find(|r| r.key() == key)
            .ok_or_else(|| format!("roles.{key}: not a role"))?;
        if let Some(bounds) = spec.buckets.take() {
            check_buckets(&spec, &bounds).map_err(|e| format!("roles.{key}.buckets: {e}"))?;
            buckets.push((role, &*Box::leak(bounds.into_boxed_slice())));
        }
        let source = source(spec).map_err(|e| format!("roles.{key}: {e}"))?;
        roles.push((role, source));
    }
    roles.sort_by_key(|(role, _)| *role);
    let per_worker = match file.per_worker {
        None => None,
        Some(view) => Some(WorkerView {
            label: leak(view.label),
            series: view
                .series
                .into_iter()
                .map(|s| {
                    Ok(WorkerSeries {
                        title: leak(s.title),
                        description: leak(s.description),
                        ratio: s.ratio,
                        source: source(s.source).map_err(|e| format!("perWorker: {e}"))?,
                    })
                })
                .collect::<Result<_, String>>()?,
        }),
    };
    let list = |items: Vec<String>| -> &'static [&'static str] {
        Box::leak(
            items
                .into_iter()
                .map(leak)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    };
    Ok(EngineProfile {
        engine,
        title: leak(file.title),
        release: leak(file.release),
        port: file.port,
        path: leak(file.path),
        scheme: if file.https {
            Scheme::Https
        } else {
            Scheme::Http
        },
        metrics_flag: leak(file.metrics_flag),
        core_metric: Some(Cow::Owned(file.core_metric)),
        model_label: file.model_label.map(Cow::Owned),
        per_model: file.per_model,
        roles,
        buckets,
        detection: Detection {
            images: list(file.detection.images),
            commands: list(file.detection.commands),
        },
        extras: Extras {
            per_worker,
            ..Extras::default()
        },
    })
}

/// Boundaries belong to a histogram and rise strictly.
fn check_buckets(spec: &SourceFile, bounds: &[f64]) -> Result<(), String> {
    if spec.histogram.is_none() {
        return Err("only a histogram has buckets".into());
    }
    if bounds.is_empty() || !bounds.windows(2).all(|w| w[0] < w[1]) {
        return Err("list at least one boundary, in rising order".into());
    }
    Ok(())
}

fn unit(name: &str) -> Result<Unit, String> {
    Ok(match name {
        "seconds" => Unit::Seconds,
        "milliseconds" => Unit::Milliseconds,
        "microseconds" => Unit::Microseconds,
        "ratio" => Unit::Ratio,
        "percent" => Unit::Percent,
        "count" => Unit::Count,
        "tokensPerSecond" => Unit::TokensPerSecond,
        "megabytes" => Unit::Megabytes,
        "bytes" => Unit::Bytes,
        other => return Err(format!("unknown unit {other:?}")),
    })
}

fn source(spec: SourceFile) -> Result<Source, String> {
    let kinds = [
        spec.counter.is_some(),
        spec.gauge.is_some(),
        spec.histogram.is_some(),
        spec.histogram_sum.is_some(),
        spec.duration_counter.is_some(),
        spec.approximation.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("name exactly one of counter, gauge, histogram, histogramSum, durationCounter, approximation".into());
    }
    let unit = || unit(spec.unit.as_deref().ok_or("unit is required")?);
    let matchers = Cow::Owned(spec.matchers.clone());
    Ok(if let Some(name) = spec.counter {
        Source::Counter {
            name: Cow::Owned(name),
            matchers,
        }
    } else if let Some(name) = spec.gauge {
        Source::Gauge {
            name: Cow::Owned(name),
            matchers,
            unit: unit()?,
        }
    } else if let Some(name) = spec.histogram {
        Source::Histogram {
            name: Cow::Owned(name),
            matchers,
            unit: unit()?,
        }
    } else if let Some(name) = spec.histogram_sum {
        Source::HistogramSum {
            name: Cow::Owned(name),
        }
    } else if let Some(name) = spec.duration_counter {
        Source::DurationCounter {
            name: Cow::Owned(name),
            count: Cow::Owned(spec.count.clone().ok_or("count is required")?),
            unit: unit()?,
        }
    } else {
        Source::Approximation {
            template: Cow::Owned(spec.approximation.unwrap_or_default()),
            note: Cow::Owned(spec.note.ok_or("note is required")?),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_file_parses_and_names_its_own_engine() {
        for (file, text) in FILES {
            let profile = parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(format!("{}.yaml", profile.engine), file);
            assert!(!profile.release.is_empty(), "{file}: no release");
            assert!(!profile.roles.is_empty(), "{file}: no roles");
        }
        let engines: Vec<Engine> = profiles().iter().map(|p| p.engine).collect();
        let concrete: Vec<Engine> = Engine::ALL
            .into_iter()
            .filter(|e| FILES.iter().any(|(f, _)| *f == format!("{e}.yaml")))
            .collect();
        assert_eq!(
            engines, concrete,
            "catalog files are not in Engine::ALL order"
        );
    }

    #[test]
    fn a_source_with_two_kinds_or_no_unit_is_refused() {
        let two = "engine: vllm\ntitle: t\nrelease: r\nport: 1\npath: /m\nmetricsFlag: f\ncoreMetric: c\ndetection: {images: [], commands: []}\nroles:\n  waiting: {counter: a, gauge: b, unit: count}\n";
        assert!(parse(two).unwrap_err().contains("roles.waiting"));
        let no_unit = two.replace("counter: a, ", "");
        let no_unit = no_unit.replace(", unit: count", "");
        assert!(parse(&no_unit).unwrap_err().contains("unit is required"));
        let unknown = two.replace("waiting: {counter: a, ", "sleeping: {");
        assert!(parse(&unknown).unwrap_err().contains("not a role"));
        let gauge_buckets = two.replace("counter: a, ", "buckets: [1, 2], ");
        assert!(
            parse(&gauge_buckets)
                .unwrap_err()
                .contains("only a histogram")
        );
        let falling = two.replace("counter: a, gauge: b", "histogram: b, buckets: [2, 1]");
        assert!(parse(&falling).unwrap_err().contains("rising order"));
    }
}
