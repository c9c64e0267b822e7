//! `infmon crd`: print the CRD.

use std::process::ExitCode;

/// Prints the CRD YAML to standard output.
pub fn run() -> anyhow::Result<ExitCode> {
    print!("{}", infmon::crd::crd_yaml()?);
    Ok(ExitCode::SUCCESS)
}
