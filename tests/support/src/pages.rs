//! The exposition pages of `tests/fixtures/engines/`: written from each engine's own metric
//! definitions in a named release, never from infmon's catalog. The catalog is checked
//! against them, and the panel tests serve them to a real Prometheus.

use std::collections::{BTreeMap, BTreeSet};

use super::repo_path;

/// The model label value on the pages.
pub const PAGE_MODEL: &str = "llama_3_1_8b";

/// The committed page of an engine (`vllm`, …) or of the DCGM exporter (`dcgm`).
pub fn page(name: &str) -> String {
    let path = repo_path(format!("tests/fixtures/engines/{name}.prom"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One family of a page: its type and the label names of each sample name.
#[derive(Debug, Default)]
pub struct Family {
    pub kind: String,
    pub samples: BTreeMap<String, BTreeSet<String>>,
}

/// Families by name, from `# TYPE` lines and the samples after them.
pub fn families(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
            current = name.to_string();
            families.entry(current.clone()).or_default().kind = kind.to_string();
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let (series, _) = line.rsplit_once(' ').expect("sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let names = label_names(labels);
            families
                .entry(current.clone())
                .or_default()
                .samples
                .entry(name.to_string())
                .or_default()
                .extend(names);
        }
    }
    families
}

fn label_names(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').to_string());
        let end = after.find('"').expect("closed label value");
        rest = &after[end + 1..];
    }
    names
}

/// The page as scrape `n` (from 0) sees it: counter and histogram samples
/// multiplied by n + 1, so rates are positive and buckets stay cumulative; gauges as written.
pub fn scrape(text: &str, n: u64) -> String {
    let factor = (n + 1) as f64;
    let mut kind = "";
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            kind = rest.rsplit(' ').next().unwrap_or_default();
        }
        let grows = matches!(kind, "counter" | "histogram");
        match line.rsplit_once(' ') {
            Some((series, value)) if grows && !line.starts_with('#') => {
                let value: f64 = value.parse().expect("numeric sample value");
                out.push_str(&format!("{series} {}\n", value * factor));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
