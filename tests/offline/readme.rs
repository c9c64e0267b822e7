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
