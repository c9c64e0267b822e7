//! The `infmon` binary: the operator (`run`) and the offline tools (`crd`, `validate`,
//! `render`, `check`) that serve GitOps pipelines and hosts without Kubernetes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Complete, verified observability for LLM inference services.
#[derive(Parser)]
#[command(name = "infmon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the InferenceMonitoring CustomResourceDefinition as YAML.
    Crd,
    /// Check InferenceMonitoring files the way the API server would (exit 0 valid, 1 invalid, 2 unreadable).
    Validate(cli::validate::Args),
    /// Print every object the operator would create, or a prometheus.yml for static targets (exit 0 ok, 1 invalid, 2 unreadable).
    Render(cli::render::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => cli::crd::run(),
        Command::Validate(args) => cli::validate::run(&args),
        Command::Render(args) => cli::render::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
