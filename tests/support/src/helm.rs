//! helm v3.17.3 with a throw-away `HOME` (no repositories, no cluster).

use std::process::Command;

use super::tools::{Tool, require};

/// Runs `helm <args>` with `HOME` and the XDG directories in a temp dir. `Ok(stdout)` when
/// it exits 0 (warnings on stderr are dropped), `Err(stdout + stderr)` otherwise.
pub fn run(args: &[&str]) -> Result<String, String> {
    let home = tempfile::tempdir().expect("temp dir");
    let output = Command::new(require(Tool::Helm))
        .args(args)
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run helm: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "helm {} failed ({}):\n{stdout}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
