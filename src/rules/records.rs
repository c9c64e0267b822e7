//! Engine-neutral recording rules: one rule per engine feeding each shared series name, in
//! seconds, ratios and per-second rates, so dashboards and alerts do not depend on the engine.
//! Every record keeps `cluster` where the series carry one, so a global ruler (Thanos, Mimir)
//! does not merge clusters; grouping by an absent label is harmless.

use serde_json::{Value, json};

use crate::engines::{EngineProfile, Role};
use crate::promql::{self, Scope};

/// Requests finished per second, per pod.
pub const REQUESTS: &str = "inference:requests:rate5m";
/// Failed over all requests (both counted on the same layer), per resource and namespace,
/// and per model where the engine counts requests per model.
pub const ERROR_RATIO: &str = "inference:errors:ratio_rate5m";
/// Requests waiting in the queue, per pod.
pub const WAITING: &str = "inference:requests_waiting";
/// Requests in flight, per pod.
pub const RUNNING: &str = "inference:requests_running";
/// Time to first token, median, per model.
pub const TTFT_P50: &str = "inference:ttft_seconds:p50";
/// Time to first token, 95th percentile, per model.
pub const TTFT_P95: &str = "inference:ttft_seconds:p95";
/// Time to first token, 99th percentile, per model.
pub const TTFT_P99: &str = "inference:ttft_seconds:p99";
/// Inter-token latency, 95th percentile, per model.
pub const ITL_P95: &str = "inference:inter_token_latency_seconds:p95";
/// End-to-end latency, 95th percentile, per model.
pub const E2E_P95: &str = "inference:e2e_latency_seconds:p95";
/// Prompt tokens per second, per pod.
pub const PROMPT_TOKENS: &str = "inference:prompt_tokens:rate5m";
/// Generated tokens per second, per pod.
pub const GENERATION_TOKENS: &str = "inference:generation_tokens:rate5m";
/// KV-cache usage 0–1, per pod.
pub const KV_CACHE_USAGE: &str = "inference:kv_cache_usage:ratio";
/// Prefix-cache hit rate 0–1, per pod.
pub const PREFIX_CACHE_HIT_RATE: &str = "inference:prefix_cache_hit:ratio";
/// Preemptions per second, per pod.
pub const PREEMPTIONS: &str = "inference:preemptions:rate5m";
/// Queue time, 95th percentile, per model.
pub const QUEUE_TIME_P95: &str = "inference:queue_time_seconds:p95";
/// Prefill time, 95th percentile, per model.
pub const PREFILL_TIME_P95: &str = "inference:prefill_time_seconds:p95";
/// Decode time, 95th percentile, per model.
pub const DECODE_TIME_P95: &str = "inference:decode_time_seconds:p95";
/// Speculative-decoding acceptance 0–1, per pod.
pub const SPEC_DECODE_ACCEPTANCE: &str = "inference:spec_decode_acceptance:ratio";

/// How a record aggregates its role.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Key {
    /// Sums and levels keep `pod`: they add up exactly and join to GPU series.
    Pod,
    /// Quantiles cannot be aggregated further: one per model.
    Model(f64),
}

/// (record, role, key): the records fed straight from one role.
const RECORDS: [(&str, Role, Key); 17] = [
    (REQUESTS, Role::Requests, Key::Pod),
    (WAITING, Role::Waiting, Key::Pod),
    (RUNNING, Role::Running, Key::Pod),
    (TTFT_P50, Role::Ttft, Key::Model(0.5)),
    (TTFT_P95, Role::Ttft, Key::Model(0.95)),
    (TTFT_P99, Role::Ttft, Key::Model(0.99)),
    (ITL_P95, Role::InterTokenLatency, Key::Model(0.95)),
    (E2E_P95, Role::E2eLatency, Key::Model(0.95)),
    (PROMPT_TOKENS, Role::PromptTokens, Key::Pod),
    (GENERATION_TOKENS, Role::GenerationTokens, Key::Pod),
    (KV_CACHE_USAGE, Role::KvCacheUsage, Key::Pod),
    (PREFIX_CACHE_HIT_RATE, Role::PrefixCacheHitRate, Key::Pod),
    (PREEMPTIONS, Role::Preemptions, Key::Pod),
    (QUEUE_TIME_P95, Role::QueueTime, Key::Model(0.95)),
    (PREFILL_TIME_P95, Role::PrefillTime, Key::Model(0.95)),
    (DECODE_TIME_P95, Role::DecodeTime, Key::Model(0.95)),
    (SPEC_DECODE_ACCEPTANCE, Role::SpecDecodeAcceptance, Key::Pod),
];

/// The rate window of every record.
const WINDOW: &str = "5m";

/// The recording rules for one engine, filtered by `selector` (the resource's
/// `inference_monitoring` matcher). Records for roles the engine lacks are left out.
pub fn recording_rules(profile: &EngineProfile, selector: &str) -> Vec<Value> {
    let keys = |pod: bool| {
        let mut labels = vec![
            "cluster",
            "inference_monitoring",
            "inference_engine",
            "namespace",
        ];
        if pod {
            labels.push("pod");
        }
        labels.extend(profile.model_label.as_deref());
        labels.join(", ")
    };
    let mut rules: Vec<Value> = RECORDS
        .iter()
        .filter_map(|(record, role, key)| {
            let source = profile.source(*role)?;
            let (by, q) = match key {
                Key::Pod => (keys(true), 0.5),
                Key::Model(q) => (keys(false), *q),
            };
            let scope = Scope {
                sel: selector,
                by: &by,
                window: WINDOW,
            };
            Some(rule(
                record,
                with_model(profile, promql::expr(source, q, &scope)),
            ))
        })
        .collect();
    let mut by = "cluster, inference_monitoring, inference_engine, namespace".to_string();
    if profile.per_model {
        by.extend(profile.model_label.as_deref().map(|l| format!(", {l}")));
    }
    let scope = Scope {
        sel: selector,
        by: &by,
        window: WINDOW,
    };
    if let Some(expr) = error_ratio(profile, &scope) {
        let expr = if profile.per_model {
            with_model(profile, expr)
        } else {
            expr
        };
        rules.insert(1, rule(ERROR_RATIO, expr));
    }
    rules
}

/// Failed over all requests, both from the same layer (the engine's `allRequests` role; for a
/// custom service without one, its `requests` series counts every request): 0.5 when half
/// the requests fail. `None` when the engine has no error counter.
pub fn error_ratio(profile: &EngineProfile, scope: &Scope) -> Option<String> {
    let errors = profile.source(Role::Errors)?;
    let all = profile
        .source(Role::AllRequests)
        .or_else(|| profile.source(Role::Requests))?;
    let all = promql::expr(all, 0.5, scope);
    // `or 0 * all`: a healthy engine may have no error series at all, which is a ratio of 0.
    Some(format!(
        "({} or 0 * ({all})) / ({all})",
        promql::expr(errors, 0.5, scope)
    ))
}

fn rule(record: &str, expr: String) -> Value {
    json!({"record": record, "expr": expr})
}

/// Copies the engine's model label to `model`, the shared name.
fn with_model(profile: &EngineProfile, expr: String) -> String {
    match profile.model_label.as_deref() {
        Some(label) if label != "model" => {
            format!(r#"label_replace({expr}, "model", "$1", "{label}", "(.*)")"#)
        }
        _ => expr,
    }
}
