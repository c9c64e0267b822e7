//! `make demo` runs in CI too: the script passes shellcheck, and it runs to the end (healthy,
//! then TargetsDown after a stand-in stops) with the binaries cargo built for the tests.

use infmon_devkit as support;

use std::path::Path;
use std::process::Command;

use support::tools::{Tool, require};

#[test]
fn demo_script_passes_shellcheck() {
    let script = support::repo_path("scripts/demo.sh");
    support::run(Command::new(require(Tool::Shellcheck)).arg(&script))
        .unwrap_or_else(|output| panic!("{output}"));
}

#[test]
fn demo_turns_healthy_then_diagnoses_the_stopped_stand_in() {
    let prometheus = require(Tool::Prometheus);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_infmon"))
        .parent()
        .expect("binary directory");
    assert!(
        bin_dir.join("infmon-demo-exporter").exists(),
        "no demo stand-in next to the infmon binary: build it with `cargo build -p infmon-devkit --bins` (`make test` does)"
    );
    let path = format!(
        "{}:{}",
        prometheus.parent().expect("prometheus directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = support::run(
        Command::new(support::repo_path("scripts/demo.sh"))
            .env("INFMON_DEMO_BIN_DIR", bin_dir)
            .env("PATH", path),
    )
    .unwrap_or_else(|output| panic!("{output}"));
    assert!(
        output.contains("demo/chat       vllm    2/2      Healthy"),
        "{output}"
    );
    assert!(
        output.contains("demo/chat       vllm    1/2      TargetsDown  1 of 2 targets down;")
            && output.contains("connection refused"),
        "{output}"
    );
    assert!(output.contains("exit code: 1"), "{output}");
}
