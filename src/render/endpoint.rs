//! Scrape settings from [`Endpoint`] (scheme, TLS, authorization, metric relabelings) in the
//! two spellings infmon writes: the Prometheus Operator's camelCase objects, and plain
//! Prometheus' snake_case `scrape_config` keys.

use k8s_openapi::api::core::v1::SecretKeySelector;
use serde_json::{Map, Value, json};

use super::relabel::to_prometheus;
use crate::validate::Endpoint;

/// Where the Prometheus Operator mounts the Secrets listed in `Prometheus.spec.secrets`; plain
/// scrape configs read TLS CAs and tokens from there (`<dir>/<secret>/<key>`).
pub const SECRETS_DIR: &str = "/etc/prometheus/secrets";

/// The file a plain scrape config reads a Secret key from.
pub fn secret_file(selector: &SecretKeySelector) -> String {
    format!("{SECRETS_DIR}/{}/{}", selector.name, selector.key)
}

fn secret_ref(selector: &SecretKeySelector) -> Value {
    json!({"name": selector.name, "key": selector.key})
}

/// `tlsConfig`, `authorization` and `metricRelabelings` for a Prometheus Operator endpoint,
/// added to `out` when set.
pub fn operator_security(endpoint: &Endpoint, out: &mut Map<String, Value>) {
    if let Some(tls) = &endpoint.tls {
        let mut config = Map::new();
        if let Some(ca) = &tls.ca {
            config.insert("ca".into(), json!({"secret": secret_ref(ca)}));
        }
        if let Some(server_name) = &tls.server_name {
            config.insert("serverName".into(), json!(server_name));
        }
        if let Some(skip) = tls.insecure_skip_verify {
            config.insert("insecureSkipVerify".into(), json!(skip));
        }
        out.insert("tlsConfig".into(), Value::Object(config));
    }
    if let Some(auth) = &endpoint.authorization {
        let mut config = Map::new();
        if let Some(kind) = &auth.r#type {
            config.insert("type".into(), json!(kind));
        }
        config.insert("credentials".into(), secret_ref(&auth.credentials));
        out.insert("authorization".into(), Value::Object(config));
    }
    if !endpoint.metric_relabelings.is_empty() {
        out.insert(
            "metricRelabelings".into(),
            serde_json::to_value(&endpoint.metric_relabelings).unwrap_or_default(),
        );
    }
}

/// `tls_config`, `authorization` and `metric_relabel_configs` for a plain scrape config,
/// added to `out` when set. Secrets are read from [`SECRETS_DIR`].
pub fn plain_security(endpoint: &Endpoint, out: &mut Map<String, Value>) {
    if let Some(tls) = &endpoint.tls {
        let mut config = Map::new();
        if let Some(ca) = &tls.ca {
            config.insert("ca_file".into(), json!(secret_file(ca)));
        }
        if let Some(server_name) = &tls.server_name {
            config.insert("server_name".into(), json!(server_name));
        }
        if let Some(skip) = tls.insecure_skip_verify {
            config.insert("insecure_skip_verify".into(), json!(skip));
        }
        out.insert("tls_config".into(), Value::Object(config));
    }
    if let Some(auth) = &endpoint.authorization {
        let mut config = Map::new();
        if let Some(kind) = &auth.r#type {
            config.insert("type".into(), json!(kind));
        }
        config.insert(
            "credentials_file".into(),
            json!(secret_file(&auth.credentials)),
        );
        out.insert("authorization".into(), Value::Object(config));
    }
    if !endpoint.metric_relabelings.is_empty() {
        out.insert(
            "metric_relabel_configs".into(),
            endpoint
                .metric_relabelings
                .iter()
                .map(to_prometheus)
                .collect(),
        );
    }
}
