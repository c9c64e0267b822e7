//! The shell scripts that ship with the chart and CI (`e2e/*.sh`, `.ci/*`), linted with the real
//! shellcheck: they cannot run here (no cluster), so this is what keeps them from rotting.

use infmon_devkit as support;

use std::path::PathBuf;
use std::process::Command;

use support::tools::{Tool, require};

/// The files of `dir` (repo-relative) accepted by `keep`, sorted.
fn files(dir: &str, keep: impl Fn(&PathBuf) -> bool) -> Vec<PathBuf> {
    let dir = support::repo_path(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file() && keep(path))
        .collect();
    files.sort();
    files
}

#[test]
fn scripts_pass_shellcheck() {
    let mut scripts = files("e2e", |p| p.extension().is_some_and(|e| e == "sh"));
    scripts.extend(files(".ci", |_| true));
    let names: Vec<String> = scripts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"run.sh".to_string()) && names.contains(&"install-tools".to_string()),
        "expected e2e/run.sh and .ci/install-tools among {names:?}"
    );
    support::run(
        Command::new(require(Tool::Shellcheck))
            .args(["--shell=bash", "--severity=style"])
            .args(&scripts),
    )
    .unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn e2e_script_is_executable_and_parses() {
    use std::os::unix::fs::PermissionsExt;
    let script = support::repo_path("e2e/run.sh");
    let mode = script.metadata().expect("e2e/run.sh").permissions().mode();
    assert!(mode & 0o111 != 0, "e2e/run.sh is not executable");
    support::run(Command::new("bash").arg("-n").arg(&script)).unwrap_or_else(|err| panic!("{err}"));
}
