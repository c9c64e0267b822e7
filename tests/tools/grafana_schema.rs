//! Every file in `dashboards/` checked with Grafana's own published types, not ours:
//!
//! - TypeScript (`tsc --noEmit`, strict) type-checks each file as `@grafana/schema`'s
//!   `Dashboard`, its panels as time-series panels with the time-series panel's `Options` and
//!   `FieldConfig`: unknown fields, wrong enum values and incomplete variable options fail;
//! - every unit is looked up in `@grafana/data`'s value formats (the unit picker's ids).
//!
//! `make tools` installs the packages into `.tools/grafana/` (versions in `.ci/install-tools`).
//! A test that cannot find them fails with the install command.

use infmon_devkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::tools::{self, Tool};

const INSTALL: &str = "run `make tools` (npm install --prefix .tools/grafana \
    @grafana/schema@13.2.3 @grafana/data@13.2.3 typescript@5.9.3)";

/// Grafana's types as the dashboards must satisfy them. Grafana's string enums
/// (`LegendDisplayMode`, `SortOrder`, …) are compared by value, as Grafana reads JSON.
const TYPES: &str = r#"import type { Dashboard, FieldConfigSource, Panel } from "@grafana/schema";
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";

/** A type as JSON spells it: string enums become the union of their values. */
type Json<T> = T extends string
  ? `${T}`
  : T extends Array<infer U>
    ? Array<Json<U>>
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

type TimeSeriesPanel = Omit<Panel, "type" | "options" | "fieldConfig"> & {
  type: "timeseries";
  options: TimeSeriesOptions;
  fieldConfig: FieldConfigSource<TimeSeriesFieldConfig>;
};

export type InfmonDashboard = Json<Omit<Dashboard, "panels"> & { panels: TimeSeriesPanel[] }>;
"#;

const TSCONFIG: &str = r#"{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "es2022",
    "skipLibCheck": true,
    "types": []
  },
  "include": ["*.ts"]
}
"#;

/// Prints the ids of Grafana's unit picker as a JSON array. Grafana's date formats read the
/// browser's locale, so a `navigator` stands in for the browser's.
const UNIT_IDS: &str = r#"globalThis.navigator ??= { language: "en-US", languages: ["en-US"] };
const { createRequire } = require("node:module");
const data = createRequire(process.argv[2])("@grafana/data");
const ids = data.getValueFormats().flatMap((category) => category.submenu.map((unit) => unit.value));
console.log(JSON.stringify(ids));
"#;

/// `.tools/grafana/node_modules`, with the packages the checks need.
fn grafana_modules() -> PathBuf {
    let dir = support::repo_path(".tools/grafana/node_modules");
    for package in ["@grafana/schema", "@grafana/data", "typescript"] {
        assert!(
            dir.join(package).join("package.json").is_file(),
            "{package} is not installed in {}: {INSTALL}",
            dir.display()
        );
    }
    dir
}

/// Every `dashboards/*.json`: (file name, text), sorted.
fn dashboard_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(support::repo_path("dashboards"))
        .expect("dashboards/")
        .map(|entry| entry.expect("dashboards/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&path).expect("read dashboard"),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "only {} dashboards found", files.len());
    files
}

/// Type-checks each dashboard as Grafana's `Dashboard`. `Err(tsc's diagnostics)` when any
/// fails; line numbers in them are the JSON file's.
fn type_check(dashboards: &[(String, String)]) -> Result<(), String> {
    let modules = grafana_modules();
    // Inside `.tools/grafana/` so that `@grafana/schema` resolves from its node_modules.
    let dir = tempfile::tempdir_in(modules.parent().unwrap()).expect("temp dir");
    std::fs::write(dir.path().join("tsconfig.json"), TSCONFIG).unwrap();
    std::fs::write(dir.path().join("grafana-types.ts"), TYPES).unwrap();
    for (name, json) in dashboards {
        // One line of prefix, so tsc's line numbers are the JSON file's.
        let source = format!(
            "import type {{ InfmonDashboard }} from \"./grafana-types.js\"; export const dashboard = {} satisfies InfmonDashboard;\n",
            json.trim_end()
        );
        let stem = name.trim_end_matches(".json");
        std::fs::write(dir.path().join(format!("{stem}.ts")), source).unwrap();
    }
    let tsc = modules.join("typescript/bin/tsc");
    support::run(
        Command::new(tools::require(Tool::Node))
            .arg(&tsc)
            .arg("--project")
            .arg(dir.path())
            .arg("--pretty")
            .arg("false"),
    )
    .map(drop)
}

/// The ids of Grafana's units, from `@grafana/data`.
fn grafana_unit_ids(modules: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("unit-ids.cjs");
    std::fs::write(&script, UNIT_IDS).unwrap();
    let output = support::run(
        Command::new(tools::require(Tool::Node))
            .arg(&script)
            .arg(format!("{}/", modules.display())),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let ids: Vec<String> = serde_json::from_str(output.trim())
        .unwrap_or_else(|err| panic!("unit ids: {err}: {output}"));
    assert!(ids.len() > 100, "only {} unit ids: {output}", ids.len());
    ids
}

/// Every unit a dashboard sets (panel defaults and overrides): (panel title, unit).
fn units(dashboard: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        let field_config = &panel["fieldConfig"];
        if let Some(unit) = field_config["defaults"]["unit"].as_str() {
            found.push((title.clone(), unit.to_string()));
        }
        for override_ in field_config["overrides"].as_array().into_iter().flatten() {
            for property in override_["properties"].as_array().into_iter().flatten() {
                if property["id"] == "unit"
                    && let Some(unit) = property["value"].as_str()
                {
                    found.push((title.clone(), unit.to_string()));
                }
            }
        }
    }
    found
}

/// Units of `dashboards` that are not Grafana unit ids: "file/panel: unit".
fn unknown_units(dashboards: &[(String, String)], ids: &[String]) -> Vec<String> {
    dashboards
        .iter()
        .flat_map(|(name, json)| {
            let dashboard: Value = serde_json::from_str(json).expect("dashboard JSON");
            units(&dashboard)
                .into_iter()
                .filter(|(_, unit)| !ids.contains(unit))
                .map(move |(title, unit)| format!("{name}/{title}: {unit}"))
        })
        .collect()
}

#[test]
fn every_dashboard_satisfies_grafanas_published_dashboard_type() {
    type_check(&dashboard_files()).unwrap_or_else(|diagnostics| {
        panic!("dashboards/ against @grafana/schema's Dashboard:\n{diagnostics}")
    });
}

#[test]
fn every_panel_unit_is_a_grafana_unit_id() {
    let files = dashboard_files();
    let ids = grafana_unit_ids(&grafana_modules());
    let unknown = unknown_units(&files, &ids);
    assert!(unknown.is_empty(), "not Grafana unit ids: {unknown:#?}");
    let checked: usize = files
        .iter()
        .map(|(_, json)| units(&serde_json::from_str(json).unwrap()).len())
        .sum();
    assert!(checked > 50, "only {checked} units checked");
}

/// The checks can fail: a dashboard with the faults Grafana's types catch is rejected with a
/// diagnostic for each, and a made-up unit is reported.
#[test]
fn the_checks_reject_a_broken_dashboard() {
    let (name, json) = dashboard_files().remove(0);
    let mut broken: Value = serde_json::from_str(&json).unwrap();
    broken["templating"]["list"][0]["current"] = serde_json::json!({});
    broken["panels"][0]["options"]["legend"]["displayMode"] = "tabel".into();
    broken["panels"][2]["colour"] = "red".into();
    broken["panels"][1]["fieldConfig"]["defaults"]["unit"] = "tokens/s".into();
    let broken_json = serde_json::to_string_pretty(&broken).unwrap();
    let broken_file = vec![(format!("broken-{name}"), broken_json)];

    let diagnostics = type_check(&broken_file).expect_err("tsc accepted a broken dashboard");
    for expected in [
        "missing the following properties",
        "\"tabel\"",
        "\"colour\"",
    ] {
        assert!(
            diagnostics.contains(expected),
            "no diagnostic naming {expected}:\n{diagnostics}"
        );
    }
    let ids = grafana_unit_ids(&grafana_modules());
    let unknown = unknown_units(&broken_file, &ids);
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].ends_with(": tokens/s"), "{unknown:?}");
}
