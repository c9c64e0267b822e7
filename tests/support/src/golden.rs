//! The inputs of the golden-file tests and `infmon render` run on them, shared by the offline
//! golden tests and the tools suite's schema checks of the same output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every input: `examples/*.yaml` and `tests/golden/inputs/*.yaml`, sorted by file name.
pub fn inputs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "tests/golden/inputs"] {
        for entry in std::fs::read_dir(crate::repo_path(dir)).expect("input dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort_by_key(|p| p.file_name().map(ToOwned::to_owned));
    assert!(files.len() >= 13, "inputs missing: {files:?}");
    files
}

pub fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// `infmon render -f FILE --engine vllm [--format FORMAT]` (`--engine` only matters for
/// `engine: auto`). Panics unless it exits 0.
pub fn render(infmon: &str, input: &Path, format: &str) -> String {
    let output = Command::new(infmon)
        .args(["render", "--engine", "vllm", "--format", format, "-f"])
        .arg(input)
        .output()
        .expect("run infmon");
    assert!(
        output.status.success(),
        "infmon render -f {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
