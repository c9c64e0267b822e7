//! The README's engine table is the catalog's: a changed port, path, flag, core metric or
//! verified release shows up here until the README is updated.

use infmon::engines::all_profiles;

fn engine_table() -> String {
    all_profiles()
        .iter()
        .map(|p| {
            format!(
                "| {} | `{}` | {} | `{}` | {} | `{}` | {} |",
                p.title,
                p.engine,
                p.port,
                p.path,
                p.metrics_flag,
                p.core_metric.as_deref().unwrap_or("-"),
                p.release,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn readme_engine_table_matches_the_catalog() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = engine_table();
    assert!(
        readme.contains(&table),
        "README.md's engine table is stale; replace its rows with:\n{table}"
    );
}

/// Every alert any example renders has an anchor in the README's "Alert runbooks" section,
/// which the default `runbook_url` points at.
#[test]
fn readme_has_a_runbook_for_every_rendered_alert() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut alerts = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(format!("{root}/tests/golden")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            if let Some(name) = line.trim_start().strip_prefix("- alert: ") {
                alerts.insert(name.trim().to_string());
            }
        }
    }
    assert!(
        alerts.contains("InferenceTargetDown") && alerts.contains("InferenceKVCacheSaturated"),
        "the golden files should render the alerts, found {alerts:?}"
    );
    let missing: Vec<_> = alerts
        .iter()
        .filter(|a| !readme.contains(&format!("<a id=\"{a}\"></a>")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md has no runbook anchor for {missing:?}"
    );
}
