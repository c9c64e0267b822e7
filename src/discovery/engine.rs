//! `engine: auto`: which engine the selected pods run, from the catalog's detection data
//! (image and command substrings, default port) and the engine-type labels llm-d and the
//! Gateway API Inference Extension put on pods. Pure: the controller lists the pods.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

use crate::api::Engine;
use crate::engines::{EngineProfile, all_profiles};

/// Pod labels whose value names the engine.
pub const ENGINE_TYPE_LABELS: [&str; 2] = [
    "llm-d.ai/engine-type",
    "inference.networking.k8s.io/engine-type",
];

/// Why no single engine could be picked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Undetermined {
    /// The selector matches no pod.
    #[error("no pod matches spec.selector yet")]
    NoPods,
    /// Pods exist but none looks like a known engine.
    #[error("none of the {pods} selected pods runs a known engine image or command")]
    Unknown {
        /// Number of pods looked at.
        pods: usize,
    },
    /// Pods run different engines, or one pod matches several equally well.
    #[error("the selected pods look like several engines ({})", .engines.join(", "))]
    Ambiguous {
        /// The candidates, sorted.
        engines: Vec<String>,
    },
}

/// The engine the pods run.
pub fn detect(pods: &[Pod]) -> Result<Engine, Undetermined> {
    let profiles = all_profiles();
    let verdicts: Vec<Vec<Engine>> = pods
        .iter()
        .map(|pod| pod_engine(pod, &profiles).engines())
        .collect();
    detect_from(&verdicts)
}

/// The engines one pod looks like: none, one, or several equally well.
pub fn pod_verdict(pod: &Pod) -> Vec<Engine> {
    pod_engine(pod, &all_profiles()).engines()
}

/// [`detect`] from each selected pod's [`pod_verdict`], for callers that keep verdicts
/// instead of pods.
pub fn detect_from(verdicts: &[Vec<Engine>]) -> Result<Engine, Undetermined> {
    if verdicts.is_empty() {
        return Err(Undetermined::NoPods);
    }
    let mut found = BTreeSet::new();
    let mut ambiguous = BTreeSet::new();
    for verdict in verdicts {
        match verdict.as_slice() {
            [] => {}
            [engine] => {
                found.insert(*engine);
            }
            tie => ambiguous.extend(tie.iter().copied()),
        }
    }
    match (found.len(), ambiguous.is_empty()) {
        (1, true) => Ok(found.into_iter().next().expect("one engine")),
        (0, true) => Err(Undetermined::Unknown {
            pods: verdicts.len(),
        }),
        _ => Err(Undetermined::Ambiguous {
            engines: found
                .union(&ambiguous)
                .map(|e| e.as_str().to_string())
                .collect(),
        }),
    }
}

enum PodVerdict {
    One(Engine),
    Tie(Vec<Engine>),
    None,
}

impl PodVerdict {
    fn engines(self) -> Vec<Engine> {
        match self {
            PodVerdict::One(engine) => vec![engine],
            PodVerdict::Tie(engines) => engines,
            PodVerdict::None => Vec::new(),
        }
    }
}

fn pod_engine(pod: &Pod, profiles: &[EngineProfile]) -> PodVerdict {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    if let Some(engine) = ENGINE_TYPE_LABELS
        .iter()
        .filter_map(|key| labels.get(*key))
        .find_map(|value| value.to_lowercase().parse::<Engine>().ok())
        .filter(|e| !matches!(e, Engine::Auto | Engine::Custom))
    {
        return PodVerdict::One(engine);
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut scored: Vec<(u32, Engine)> = profiles
        .iter()
        .map(|profile| {
            let score = containers
                .iter()
                .map(|c| container_score(c, profile))
                .max()
                .unwrap_or(0);
            (score, profile.engine)
        })
        .filter(|(score, _)| *score > 0)
        .collect();
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    match scored.as_slice() {
        [] => PodVerdict::None,
        [(best, engine), rest @ ..] => {
            let tied: Vec<Engine> = rest
                .iter()
                .filter(|(s, _)| s == best)
                .map(|(_, e)| *e)
                .collect();
            if tied.is_empty() {
                PodVerdict::One(*engine)
            } else {
                PodVerdict::Tie(std::iter::once(*engine).chain(tied).collect())
            }
        }
    }
}

/// A command match weighs most, then the image; the default port only breaks ties between
/// engines that already matched by image or command.
fn container_score(
    container: &k8s_openapi::api::core::v1::Container,
    profile: &EngineProfile,
) -> u32 {
    let image = container
        .image
        .as_deref()
        .unwrap_or_default()
        .to_lowercase();
    let command_line = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let by_command = profile
        .detection
        .commands
        .iter()
        .any(|c| command_line.contains(c));
    let by_image = profile.detection.images.iter().any(|i| image.contains(i));
    if !by_command && !by_image {
        return 0;
    }
    let by_port = container
        .ports
        .iter()
        .flatten()
        .any(|p| i64::from(p.container_port) == i64::from(profile.port));
    u32::from(by_command) * 4 + u32::from(by_image) * 2 + u32::from(by_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ai", "labels": labels},
            "spec": {"containers": containers},
        }))
        .unwrap()
    }

    #[test]
    fn images_and_commands_pick_the_engine() {
        let vllm = pod(
            json!({}),
            json!([{"name": "m", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "x"]}]),
        );
        assert_eq!(detect(&[vllm]), Ok(Engine::Vllm));
        let sglang = pod(
            json!({}),
            json!([{"name": "m", "image": "registry.local/serving:1", "command": ["python", "-m", "sglang.launch_server"]}]),
        );
        assert_eq!(detect(&[sglang]), Ok(Engine::Sglang));
    }

    #[test]
    fn the_command_beats_an_image_that_names_two_engines() {
        // Dynamo's vLLM runtime image contains both names; the frontend command decides.
        let frontend = pod(
            json!({}),
            json!([{"name": "f", "image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6", "command": ["python3", "-m", "dynamo.frontend"]}]),
        );
        assert_eq!(detect(&[frontend]), Ok(Engine::Dynamo));
    }

    #[test]
    fn engine_type_labels_win() {
        let labelled = pod(
            json!({"llm-d.ai/engine-type": "sglang"}),
            json!([{"name": "m", "image": "vllm/vllm-openai"}]),
        );
        assert_eq!(detect(&[labelled]), Ok(Engine::Sglang));
    }

    #[test]
    fn no_pods_unknown_and_mixed_pods_are_undetermined() {
        assert_eq!(detect(&[]), Err(Undetermined::NoPods));
        let busybox = pod(json!({}), json!([{"name": "b", "image": "busybox"}]));
        assert_eq!(
            detect(std::slice::from_ref(&busybox)),
            Err(Undetermined::Unknown { pods: 1 })
        );
        let vllm = pod(
            json!({}),
            json!([{"name": "m", "image": "vllm/vllm-openai"}]),
        );
        let tgi = pod(
            json!({}),
            json!([{"name": "m", "image": "ghcr.io/huggingface/text-generation-inference:3"}]),
        );
        let err = detect(&[vllm.clone(), tgi, busybox]).unwrap_err();
        assert_eq!(
            err,
            Undetermined::Ambiguous {
                engines: vec!["vllm".into(), "tgi".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "the selected pods look like several engines (vllm, tgi)"
        );
        assert_eq!(detect(&[vllm.clone(), vllm]), Ok(Engine::Vllm));
    }

    #[test]
    fn the_default_port_breaks_an_image_tie() {
        // An image naming both TensorRT-LLM and Triton; the declared port is Triton's.
        let both = pod(
            json!({}),
            json!([{"name": "t", "image": "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3", "ports": [{"containerPort": 8002}]}]),
        );
        assert_eq!(detect(&[both]), Ok(Engine::Triton));
    }
}
