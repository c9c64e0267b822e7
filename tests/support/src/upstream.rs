//! Validation of custom-resource objects against the upstream CRDs in the shared folder
//! (`../shared/upstream/crds/*.yaml`, or `$INFMON_UPSTREAM_DIR/crds`).
//!
//! For each CRD version the `openAPIV3Schema` gets `metadata` relaxed to `{type: object}` and
//! `additionalProperties: false` on every object schema that lists `properties` (unless it
//! preserves unknown fields), so unknown fields are errors as with the API server. CEL
//! `x-kubernetes-validations` are not evaluated.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

/// The upstream data directory: `$INFMON_UPSTREAM_DIR`, else
/// `<CARGO_MANIFEST_DIR>/../shared/upstream`. Panics when it does not exist.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("INFMON_UPSTREAM_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("../shared/upstream"));
    assert!(
        dir.is_dir(),
        "upstream data directory {} not found: set INFMON_UPSTREAM_DIR to the folder holding \
         crds/*.yaml (the shared `upstream` folder next to the repository)",
        dir.display()
    );
    dir
}

/// A file inside the upstream directory, e.g. `dcgm-exporter/default-counters.csv`. Panics
/// when it does not exist.
pub fn file(relative: &str) -> PathBuf {
    let path = dir().join(relative);
    assert!(path.is_file(), "upstream file {} not found", path.display());
    path
}

/// `(apiVersion, kind)`, e.g. `("monitoring.coreos.com/v1", "ServiceMonitor")`.
type Key = (String, String);

/// The raw `openAPIV3Schema` of every served CRD version, parsed once.
fn raw_schemas() -> &'static HashMap<Key, Value> {
    static SCHEMAS: OnceLock<HashMap<Key, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let crds = dir().join("crds");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&crds)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", crds.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no CRD files in {}", crds.display());
        let mut schemas = HashMap::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
            for crd in super::yaml_docs(&text) {
                if crd["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let group = crd["spec"]["group"].as_str().unwrap_or_default();
                let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
                for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
                    let name = version["name"].as_str().unwrap_or_default();
                    let schema = &version["schema"]["openAPIV3Schema"];
                    if !schema.is_null() {
                        schemas.insert(
                            (format!("{group}/{name}"), kind.to_string()),
                            schema.clone(),
                        );
                    }
                }
            }
        }
        schemas
    })
}

/// The strict schema used for `(api_version, kind)`, or `None` when no CRD defines it.
pub fn crd_schema(api_version: &str, kind: &str) -> Option<Value> {
    let mut schema = raw_schemas()
        .get(&(api_version.to_string(), kind.to_string()))?
        .clone();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("metadata".into(), json!({"type": "object"}));
    }
    infmon::validate::strict_structural_schema(&mut schema);
    expand_case_insensitive_patterns(&mut schema);
    Some(schema)
}

/// Rewrites `(?i)` patterns (RE2 inline flag, e.g. PrometheusRule's
/// `^(?i)(abort|warn)?$`) into explicit case classes (`[aA][bB]…`), because the JSON-schema
/// crate checks every `pattern` against ECMA syntax, which has no inline flags. Patterns with
/// classes or escapes are left alone (none upstream has both).
fn expand_case_insensitive_patterns(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(pattern)) = map.get_mut("pattern")
                && pattern.contains("(?i)")
                && !pattern.contains(['[', '\\'])
            {
                *pattern = pattern
                    .replace("(?i)", "")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphabetic() {
                            format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
            }
            map.values_mut().for_each(expand_case_insensitive_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(expand_case_insensitive_patterns),
        _ => {}
    }
}

/// The `(apiVersion, kind)` pairs the upstream CRDs define, sorted.
pub fn known_kinds() -> Vec<(String, String)> {
    let mut kinds: Vec<_> = raw_schemas().keys().cloned().collect();
    kinds.sort();
    kinds
}

fn validator(api_version: &str, kind: &str) -> Option<Arc<jsonschema::Validator>> {
    static VALIDATORS: OnceLock<Mutex<HashMap<Key, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let key = (api_version.to_string(), kind.to_string());
    let mut cache = VALIDATORS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(validator) = cache.get(&key) {
        return Some(Arc::clone(validator));
    }
    let schema = crd_schema(api_version, kind)?;
    // The API server evaluates `pattern` with Go's RE2; the `regex` crate has its syntax.
    let validator = jsonschema::draft7::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&schema)
        .unwrap_or_else(|err| {
            panic!("the upstream schema for {api_version} {kind} does not compile: {err}")
        });
    let validator = Arc::new(validator);
    cache.insert(key, Arc::clone(&validator));
    Some(validator)
}

/// Validates one object (JSON) against the upstream CRD for its `apiVersion` and `kind`.
/// Errors read `"<instance path>: <message>"` (`(root)` for the object itself), sorted; an
/// object whose kind no upstream CRD defines is an error too.
pub fn validate_against_crd(doc: &Value) -> Result<(), Vec<String>> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let Some(validator) = validator(api_version, kind) else {
        return Err(vec![format!(
            "(root): no upstream CRD in {} defines apiVersion {api_version:?} kind {kind:?}",
            dir().join("crds").display()
        )]);
    };
    let mut errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|err| {
            let path = err.instance_path().to_string();
            let path = if path.is_empty() {
                "(root)".to_string()
            } else {
                path
            };
            format!("{path}: {err}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort();
        errors.dedup();
        Err(errors)
    }
}
