//! `infmon validate -f FILE…`: the API server's verdict, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use infmon::api::Engine;
use infmon::manifests::read_files;

/// Arguments of `infmon validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Files with InferenceMonitoring resources (several YAML documents per file are fine; `-` reads stdin).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    policy: super::PolicyArgs,
}

/// Validates every document the way the operator would: the API server's checks, then every
/// value against the grammar of the place it lands and the policy (`engine: auto` is checked
/// with a stand-in engine, as no pods can be inspected offline). Exit 0 when all are valid, 1
/// when any is invalid, 2 when a file cannot be read or parsed.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let documents = match read_files(&args.files) {
        Ok(documents) => documents,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    if documents.is_empty() {
        eprintln!(
            "error: no documents found in {}",
            display_paths(&args.files)
        );
        return Ok(ExitCode::from(2));
    }
    let policy = args.policy.policy();
    let mut invalid = 0;
    for document in &documents {
        let name = document
            .value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("<unnamed>");
        match super::resolve_offline(document, Some(Engine::Vllm), &policy) {
            Ok(_) => println!("{}: {name}: valid", document.location()),
            Err(errors) => {
                invalid += 1;
                println!("{}: {name}: invalid", document.location());
                for error in errors {
                    println!("  {error}");
                }
            }
        }
    }
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
