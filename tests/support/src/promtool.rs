//! promtool (Debian 2.42) checks. Every function returns `Ok(output)` when promtool exits 0
//! and `Err(output)` otherwise; output is stdout followed by stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools::{Tool, require};

fn promtool(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    super::run(Command::new(require(Tool::Promtool)).args(args))
}

/// `promtool check config` on a config given as text (written to `prometheus.yml` in a temp
/// dir; files it references must be given by absolute path).
pub fn check_config(yaml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, yaml).expect("write config");
    check_config_file(&path)
}

/// `promtool check config <file>`.
pub fn check_config_file(path: &Path) -> Result<String, String> {
    promtool(&["check".as_ref(), "config".as_ref(), path.as_os_str()])
}

/// `promtool check rules` on a rule file given as text (`groups: [...]`, i.e. what goes in
/// a `PrometheusRule.spec`).
pub fn check_rules(yaml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, yaml).expect("write rules");
    promtool(&["check".as_ref(), "rules".as_ref(), path.as_os_str()])
}

/// `promtool test rules` on a test file, or on every `*test.yml` / `*test.yaml` file of a
/// directory (rule files they name are resolved relative to each test file). Panics when a
/// directory holds no test file.
pub fn test_rules(path: impl AsRef<Path>) -> Result<String, String> {
    let path = path.as_ref();
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.ends_with("test.yml") || name.ends_with("test.yaml")
            })
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "no *test.yml files in {}",
            path.display()
        );
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut args: Vec<&std::ffi::OsStr> = vec!["test".as_ref(), "rules".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    promtool(&args)
}

/// `promtool test rules` for a rule file and a test file given as text. The rules are
/// written as `rules.yml` next to the tests, so the tests must say `rule_files: [rules.yml]`.
pub fn test_rules_with(rules_yaml: &str, tests_yaml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yml"), rules_yaml).expect("write rules");
    let tests = dir.path().join("rules_test.yml");
    std::fs::write(&tests, tests_yaml).expect("write tests");
    test_rules(&tests)
}
