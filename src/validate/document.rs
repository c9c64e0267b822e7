//! The checks the API server applies to an `InferenceMonitoring` at `kubectl apply` time,
//! reproduced offline: the structural schema of our own generated CRD (types, enums, patterns,
//! ranges, unknown fields), then its CEL rules, evaluated by kube's CEL interpreter with the very
//! same rule text. `infmon validate`, `render` and `check` all go through here.

use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::{GROUP, InferenceMonitoring, KIND, VERSION};

/// One problem with a document, naming the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.endpoint.interval` (`spec` for object-level rules).
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Validates one document and returns the typed resource with defaults applied.
pub fn validate_document(value: &Value) -> Result<InferenceMonitoring, Vec<FieldError>> {
    check_type_meta(value)?;
    let schema_errors = schema_errors(value);
    if !schema_errors.is_empty() {
        return Err(schema_errors);
    }
    let resource: InferenceMonitoring = serde_json::from_value(value.clone()).map_err(|err| {
        vec![FieldError {
            field: "spec".into(),
            message: err.to_string(),
        }]
    })?;
    resource.validate_cel().map_err(|errors| {
        errors
            .into_vec()
            .into_iter()
            .map(|e| FieldError {
                field: if e.field_path.is_empty() {
                    "spec".into()
                } else {
                    e.field_path
                },
                message: e.message,
            })
            .collect::<Vec<_>>()
    })?;
    Ok(resource)
}

fn check_type_meta(value: &Value) -> Result<(), Vec<FieldError>> {
    let expected_api_version = format!("{GROUP}/{VERSION}");
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != expected_api_version || kind != KIND {
        return Err(vec![FieldError {
            field: "apiVersion".into(),
            message: format!(
                "expected apiVersion {expected_api_version} and kind {KIND}, found apiVersion {api_version:?} and kind {kind:?}"
            ),
        }]);
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        return Err(vec![FieldError {
            field: "metadata.name".into(),
            message: "Required value: every resource needs a name".into(),
        }]);
    }
    Ok(())
}

/// The CRD's openAPIV3Schema as a validator that, like the API server with strict field
/// validation (kubectl's default), treats unknown fields as errors.
fn schema_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let crd = InferenceMonitoring::crd();
        let mut schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("the derived CRD has a schema"),
        )
        .expect("schema serializes");
        strict_structural_schema(&mut schema);
        schema["properties"]["metadata"] = serde_json::json!({"type": "object"});
        schema["properties"]["apiVersion"] = serde_json::json!({"type": "string"});
        schema["properties"]["kind"] = serde_json::json!({"type": "string"});
        // RE2 syntax, as the API server's Go regexes.
        jsonschema::draft7::options()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&schema)
            .expect("the derived CRD schema compiles")
    })
}

/// Adds `additionalProperties: false` to every object schema with `properties`, the way the
/// API server rejects unknown fields. Shared with the tests that check generated objects
/// against upstream CRDs.
pub fn strict_structural_schema(schema: &mut Value) {
    if let Value::Object(map) = schema {
        let preserves_unknown = map
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if map.contains_key("properties")
            && !map.contains_key("additionalProperties")
            && !preserves_unknown
        {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
        for child in map.values_mut() {
            strict_structural_schema(child);
        }
    } else if let Value::Array(items) = schema {
        items.iter_mut().for_each(strict_structural_schema);
    }
}

fn schema_errors(value: &Value) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = schema_validator()
        .iter_errors(value)
        .map(|err| {
            let path = err.instance_path().to_string();
            let field = path.trim_start_matches('/').replace('/', ".");
            FieldError {
                field: if field.is_empty() {
                    "(root)".into()
                } else {
                    field
                },
                message: err.to_string(),
            }
        })
        .collect();
    errors.sort_by(|a, b| a.field.cmp(&b.field).then(a.message.cmp(&b.message)));
    errors.dedup();
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(spec: Value) -> Value {
        json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1",
            "kind": "InferenceMonitoring",
            "metadata": {"name": "llm", "namespace": "ai"},
            "spec": spec,
        })
    }

    fn errors(spec: Value) -> Vec<String> {
        validate_document(&resource(spec))
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn minimal_resource_is_valid_and_gets_defaults() {
        let r = validate_document(&resource(
            json!({"selector": {"matchLabels": {"app": "vllm"}}}),
        ))
        .unwrap();
        assert_eq!(r.spec.engine, crate::api::Engine::Auto);
        assert!(r.spec.dashboards.enabled);
        assert_eq!(r.spec.dashboards.labels["grafana_dashboard"], "1");
        assert!(r.spec.gpu.dcgm_exporter.skip_if_present);
    }

    #[test]
    fn selector_and_static_targets_are_exclusive() {
        let both = errors(json!({"selector": {}, "staticTargets": ["a:1"]}));
        assert_eq!(
            both,
            ["spec: exactly one of spec.selector and spec.staticTargets must be set"]
        );
        let neither = errors(json!({}));
        assert_eq!(
            neither,
            ["spec: exactly one of spec.selector and spec.staticTargets must be set"]
        );
    }

    #[test]
    fn unknown_fields_and_enum_values_name_the_field() {
        let e = errors(json!({"selector": {}, "engnie": "vllm"}));
        assert!(
            e.iter()
                .any(|m| m.starts_with("spec:") && m.contains("engnie")),
            "{e:?}"
        );
        let e = errors(json!({"selector": {}, "engine": "ollama"}));
        assert!(e.iter().any(|m| m.starts_with("spec.engine:")), "{e:?}");
    }

    #[test]
    fn durations_are_checked_and_compared() {
        let e = errors(json!({"selector": {}, "endpoint": {"interval": "5 minutes"}}));
        assert!(
            e.iter().any(|m| m.starts_with("spec.endpoint.interval:")),
            "{e:?}"
        );
        let e =
            errors(json!({"selector": {}, "endpoint": {"interval": "15s", "scrapeTimeout": "1m"}}));
        assert_eq!(
            e,
            [
                "spec.endpoint: spec.endpoint.scrapeTimeout must not be longer than spec.endpoint.interval"
            ]
        );
        assert!(
            errors(json!({"selector": {}, "endpoint": {"interval": "1m", "scrapeTimeout": "30s"}}))
                .is_empty()
        );
    }

    #[test]
    fn ports_must_be_in_range_or_valid_names() {
        let e = errors(json!({"selector": {}, "endpoint": {"port": 70000}}));
        assert!(
            e.iter()
                .any(|m| m.starts_with("spec.endpoint.port:") && m.contains("65535")),
            "{e:?}"
        );
        let e = errors(json!({"selector": {}, "endpoint": {"port": 0}}));
        assert!(e.iter().any(|m| m.contains("65535")), "{e:?}");
        assert!(errors(json!({"selector": {}, "endpoint": {"port": "metrics"}})).is_empty());
        assert!(errors(json!({"selector": {}, "endpoint": {"port": 8000}})).is_empty());
    }

    #[test]
    fn type_meta_is_checked() {
        let mut doc = resource(json!({"selector": {}}));
        doc["kind"] = json!("ConfigMap");
        let e = validate_document(&doc).unwrap_err();
        assert_eq!(e[0].field, "apiVersion");
    }
}
