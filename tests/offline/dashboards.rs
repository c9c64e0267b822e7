//! The committed dashboards: generated from the catalog, structurally sound, every query
//! parsing and reading only series the catalog (or the recording rules, or DCGM) provides,
//! and delivered as valid ConfigMaps and GrafanaDashboards of the right size.
//!
//! Regenerate `dashboards/*.json` with `make dashboards`
//! (`INFMON_UPDATE_GOLDEN=1 cargo test --test offline dashboards`).

use infmon_devkit as support;
use infmon_devkit::lint;

use std::collections::BTreeSet;

use infmon::dashboards::{EMBEDDED, generate, generate_all};
use infmon::engines::{Role, Source, all_profiles};
use infmon::render::ChildKind;
use infmon::rules::records;
use serde_json::Value;

const REGEN: &str = "run `make dashboards` (INFMON_UPDATE_GOLDEN=1 cargo test --test offline dashboards) and commit dashboards/";

fn dashboards() -> Vec<(&'static str, Value)> {
    EMBEDDED
        .iter()
        .map(|(name, json)| (*name, serde_json::from_str(json).expect("dashboard JSON")))
        .collect()
}

#[test]
fn committed_dashboards_match_the_generators() {
    let dir = support::repo_path("dashboards");
    let generated = generate_all();
    let update = std::env::var_os("INFMON_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, text) in &generated {
        let path = dir.join(format!("{name}.json"));
        if update {
            std::fs::write(&path, text).expect("write dashboard");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "dashboards/ is stale for {stale:?}: {REGEN}"
    );
    let generated_names: BTreeSet<&str> = generated.iter().map(|(n, _)| n.as_str()).collect();
    let embedded_names: BTreeSet<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        generated_names, embedded_names,
        "src/dashboards EMBEDDED list"
    );
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = generated.iter().map(|(n, _)| format!("{n}.json")).collect();
    assert_eq!(
        on_disk, expected,
        "files in dashboards/ without a generator"
    );
}

#[test]
fn dashboards_are_structurally_sound() {
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap();
        assert!(
            uid.len() <= 40 && uids.insert(uid.to_string()),
            "{name}: uid {uid}"
        );
        assert_eq!(
            d["schemaVersion"], 42,
            "{name}: Grafana's current schema version"
        );
        let vars = d["templating"]["list"].as_array().unwrap();
        assert_eq!(vars[0]["type"], "datasource", "{name}");
        assert_eq!(vars[0]["query"], "prometheus", "{name}");
        let mut ids = BTreeSet::new();
        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{name} has no panels");
        for panel in panels {
            let title = &panel["title"];
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{name}: duplicate id at {title}"
            );
            let ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
            assert_eq!(panel["datasource"], ds, "{name}/{title}");
            for t in panel["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"], ds, "{name}/{title}");
            }
            for key in ["h", "w", "x", "y"] {
                assert!(
                    panel["gridPos"][key].is_u64(),
                    "{name}/{title}: gridPos.{key}"
                );
            }
            assert!(
                !panel["description"].as_str().unwrap().is_empty(),
                "{name}/{title}"
            );
        }
        for v in &vars[1..] {
            assert_eq!(
                v["datasource"]["uid"], "${datasource}",
                "{name}: {}",
                v["name"]
            );
        }
    }
}

/// Every target of a dashboard: (panel title, expr, legend).
fn targets(d: &Value) -> Vec<(String, String, String)> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            panel["targets"].as_array().unwrap().iter().map(|t| {
                (
                    panel["title"].as_str().unwrap().to_string(),
                    t["expr"].as_str().unwrap().to_string(),
                    t["legendFormat"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn the_model_picker_filters_every_panel_of_the_engines_own_series() {
    let mut checked = 0;
    for profile in all_profiles() {
        let Some(label) = profile.model_label.as_deref() else {
            continue;
        };
        let name = profile.engine.as_str();
        let d: Value = serde_json::from_str(infmon::dashboards::embedded(name).unwrap()).unwrap();
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["name"] == "model"),
            "{name}: no model variable"
        );
        // `|` also keeps series of another layer that lack the label (vLLM's and SGLang's
        // HTTP counters, as the engines' pages show).
        let model = format!(r#"{label}=~"$model|""#);
        for (title, expr, _) in targets(&d) {
            // DCGM series carry no model label; every other selector is the engine's.
            if expr.contains("DCGM_FI_") {
                continue;
            }
            for selector in expr.split('{').skip(1) {
                let selector = selector.split('}').next().unwrap();
                assert!(
                    selector.contains(&model),
                    "{name}/{title}: selector {{{selector}}} ignores the model picker ({model})"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} selectors checked");
}

#[test]
fn overview_legends_tell_resources_apart() {
    let d: Value = serde_json::from_str(infmon::dashboards::embedded("overview").unwrap()).unwrap();
    for (title, expr, legend) in targets(&d) {
        assert!(
            legend.contains("{{inference_monitoring}}"),
            "overview/{title}: legend {legend:?} does not name the resource"
        );
        if let Some(by) = expr.split("by (").nth(1) {
            let by = by.split(')').next().unwrap();
            assert!(
                by.contains("inference_monitoring"),
                "overview/{title}: {expr} sums resources together"
            );
        }
    }
}

/// The series a dashboard may read: its engine's catalog entry (with histogram suffixes and
/// approximation inputs), the recording rules, or DCGM.
fn allowed_names(name: &str) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    if let Some(p) = all_profiles()
        .into_iter()
        .find(|p| p.engine.as_str() == name)
    {
        allowed.extend(p.core_metric.iter().map(ToString::to_string));
        if p.extras.gpu_panels {
            allowed.extend(generate::DCGM_METRICS.map(String::from));
        }
        let per_worker = p
            .extras
            .per_worker
            .iter()
            .flat_map(|v| &v.series)
            .map(|s| &s.source);
        for source in p.roles.iter().map(|(_, s)| s).chain(per_worker) {
            match source {
                Source::Histogram { name, .. } | Source::HistogramSum { name } => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        allowed.insert(format!("{name}{suffix}"));
                    }
                }
                Source::Approximation { template, .. } => {
                    let expr = template
                        .replace("{sel}", "a=\"b\"")
                        .replace("{by}", "pod")
                        .replace("{q}", "0.5")
                        .replace("{w}", "1m");
                    allowed.extend(lint::metric_names(&lint::parse(name, &expr)));
                }
                other => allowed.extend(other.series_names()),
            }
        }
    } else {
        allowed.extend(
            [
                records::REQUESTS,
                records::ERROR_RATIO,
                records::WAITING,
                records::RUNNING,
                records::TTFT_P50,
                records::TTFT_P95,
                records::TTFT_P99,
                records::ITL_P95,
                records::E2E_P95,
                records::PROMPT_TOKENS,
                records::GENERATION_TOKENS,
                records::KV_CACHE_USAGE,
                records::PREFIX_CACHE_HIT_RATE,
                records::QUEUE_TIME_P95,
                records::PREFILL_TIME_P95,
                records::DECODE_TIME_P95,
            ]
            .map(String::from),
        );
        if name == "gpu" {
            allowed.extend(generate::DCGM_METRICS.map(String::from));
        }
        if name == "slo" {
            use infmon::rules::slos;
            allowed.extend(
                slos::WINDOWS
                    .iter()
                    .map(|w| format!("{}{w}", slos::ERROR_RATIO_PREFIX)),
            );
            allowed.extend([slos::OBJECTIVE, slos::BUDGET_REMAINING, "ALERTS"].map(String::from));
        }
    }
    allowed
}

#[test]
fn every_query_parses_and_reads_only_catalog_series() {
    for (name, d) in dashboards() {
        let allowed = allowed_names(name);
        let queries = lint::panel_queries(&d)
            .into_iter()
            .chain(lint::variable_selectors(&d));
        for (what, expr) in queries {
            for values in [
                &lint::ALL,
                &lint::Values {
                    namespace: "llm",
                    pod: "p-0",
                    model: "m",
                    engine: "vllm",
                },
            ] {
                let text = lint::substitute(&expr, values);
                let parsed = lint::parse(&format!("{name}/{what}"), &text);
                for metric in lint::metric_names(&parsed) {
                    assert!(
                        allowed.contains(&metric),
                        "{name}/{what}: {metric} is not in the catalog: {expr}"
                    );
                }
            }
        }
    }
}

fn panel<'a>(d: &'a Value, title: &str) -> Option<&'a Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
}

#[test]
fn engine_panels_follow_the_catalog_roles_and_units() {
    let all = dashboards();
    let get = |n: &str| &all.iter().find(|(name, _)| *name == n).unwrap().1;
    // llama.cpp has no TTFT: no panel that could never show data.
    assert!(panel(get("llamacpp"), "Time to first token").is_none());
    assert!(panel(get("llamacpp"), "KV-cache usage").is_none());
    for p in all_profiles() {
        let d = get(p.engine.as_str());
        assert_eq!(
            panel(d, "Time to first token").is_some(),
            p.source(Role::Ttft).is_some(),
            "{}",
            p.title
        );
    }
    // TGI's TTFT is an approximation and says so.
    let tgi = panel(get("tgi"), "Time to first token").unwrap();
    assert!(
        tgi["description"]
            .as_str()
            .unwrap()
            .contains("approximated")
    );
    assert_eq!(tgi["targets"].as_array().unwrap().len(), 3);
    // MAX reports milliseconds, Triton microseconds: converted to seconds.
    let max = panel(get("max"), "Time to first token").unwrap();
    assert_eq!(max["fieldConfig"]["defaults"]["unit"], "s");
    assert!(
        max["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .ends_with("* 0.001")
    );
    let triton = panel(get("triton"), "End-to-end latency").unwrap();
    assert!(
        triton["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .ends_with("* 0.000001")
    );
    // Triton counts requests per model (ensembles count again per composing model).
    assert_eq!(
        triton["targets"][0]["legendFormat"],
        "{{pod}} {{model}} mean"
    );
    // Variables: a model variable only where the engine has a model label.
    let has_model = |n: &str| {
        lint::variable_selectors(get(n))
            .iter()
            .any(|(v, _)| v == "model")
    };
    assert!(has_model("vllm") && !has_model("tgi") && !has_model("llamacpp"));
    // GPU: both host label spellings.
    let temp = panel(get("gpu"), "GPU temperature").unwrap();
    assert!(
        temp["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("by (Hostname, hostname,")
    );
}

#[test]
fn delivery_picks_the_engine_overview_and_gpu_dashboards() {
    let vllm = lint::example("vllm");
    // The preset engine dashboard is shared: the resource has none of its own.
    assert!(infmon::dashboards::children(&vllm).unwrap().is_empty());
    let names: Vec<String> = infmon::dashboards::shared_children(std::slice::from_ref(&vllm))
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        names,
        ["infmon-dashboard-overview", "infmon-dashboard-vllm"]
    );
    let kitchen = lint::example("kitchen-sink");
    let children = infmon::dashboards::shared_children(std::slice::from_ref(&kitchen)).unwrap();
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "infmon-dashboard-gpu",
            "infmon-dashboard-overview",
            "infmon-dashboard-vllm"
        ]
    );
    for child in &children {
        assert_eq!(child.kind, ChildKind::ConfigMap);
        assert_eq!(child.namespace, "monitoring");
        let meta = &child.object["metadata"];
        assert_eq!(meta["labels"]["grafana_dashboard"], "1");
        assert_eq!(meta["annotations"]["grafana_folder"], "Inference");
        let data = child.object["data"].as_object().unwrap();
        assert_eq!(data.len(), 1);
        let (key, json) = data.iter().next().unwrap();
        let json = json.as_str().unwrap();
        assert!(
            key.ends_with(".json") && !json.contains('\n'),
            "{key} is not minified"
        );
        let dashboard: Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            format!(
                "{}.json",
                dashboard["uid"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("infmon-")
            ),
            *key
        );
    }
    let mut disabled = vllm.clone();
    disabled.dashboards = None;
    assert!(
        infmon::dashboards::shared_children(&[disabled])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn grafana_dashboards_match_the_upstream_crd() {
    let resource = lint::example("grafana-operator");
    let children = infmon::dashboards::shared_children(&[resource]).unwrap();
    assert_eq!(children.len(), 2);
    for child in children {
        assert_eq!(child.kind, ChildKind::GrafanaDashboard);
        assert_eq!(child.namespace, "grafana");
        assert_eq!(child.object["spec"]["folder"], "Inference");
        assert_eq!(
            child.object["spec"]["instanceSelector"]["matchLabels"]["dashboards"],
            "grafana"
        );
        support::upstream::validate_against_crd(&child.object)
            .unwrap_or_else(|e| panic!("{}: {e:?}", child.display_name()));
    }
}

#[test]
fn the_readme_shows_which_panels_exist_for_which_engine() {
    let table = generate::panel_table(&all_profiles());
    let readme = std::fs::read_to_string(support::repo_path("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's panel table is stale; replace it with:\n{table}"
    );
}

#[test]
fn the_shared_objects_hold_the_dashboards_and_render_all_the_rules() {
    let kitchen = lint::example("kitchen-sink");
    let own = infmon::render::render_all(&kitchen).unwrap();
    let shared = infmon::render::render_shared(
        std::slice::from_ref(&kitchen),
        &infmon::validate::GpuExporterSettings::default(),
    )
    .unwrap();
    let count = |children: &[infmon::render::Child], kind| {
        children.iter().filter(|c| c.kind == kind).count()
    };
    assert_eq!(count(&own, ChildKind::ConfigMap), 0);
    assert_eq!(count(&own, ChildKind::PrometheusRule), 1);
    // Three dashboards and the exporter's counters.
    assert_eq!(count(&shared, ChildKind::ConfigMap), 4);
    assert_eq!(count(&shared, ChildKind::DaemonSet), 1);
}
