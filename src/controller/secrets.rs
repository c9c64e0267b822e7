//! The Secrets the health check reads query credentials from (`spec.prometheus.auth`), each
//! watched on its own (a `metadata.name` field selector in the resource's namespace) while
//! some resource references it. Credentials are read from memory, a changed Secret arrives on
//! its watch, and no other Secret is ever listed or kept: a namespace's Secrets (Helm release
//! Secrets among them) can be large, the referenced ones are few.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, SecretKeySelector};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::watches::drain;
use crate::api::PrometheusAuth;

/// `(namespace, name)` of a Secret.
pub type SecretKey = (String, String);

/// Every Secret key `auth` reads.
pub fn referenced(auth: &PrometheusAuth) -> Vec<&SecretKeySelector> {
    let basic = auth
        .basic_auth
        .iter()
        .flat_map(|b| [&b.username, &b.password]);
    auth.bearer_token
        .iter()
        .chain(basic)
        .chain(&auth.ca)
        .chain(&auth.cert)
        .chain(&auth.key)
        .chain(auth.headers.iter().filter_map(|h| h.value_from.as_ref()))
        .collect()
}

struct Watch {
    store: Store<Secret>,
    task: tokio::task::JoinHandle<()>,
}

/// The running watches, one per referenced Secret.
pub struct SecretWatches {
    client: Client,
    running: Mutex<BTreeMap<SecretKey, Watch>>,
}

/// Keeps of a Secret what credentials are read from: name, namespace and data.
fn trim(secret: &mut Secret) {
    let meta = std::mem::take(&mut secret.metadata);
    secret.metadata.name = meta.name;
    secret.metadata.namespace = meta.namespace;
    secret.string_data = None;
}

impl SecretWatches {
    /// No watch yet.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<SecretKey, Watch>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a watch for each Secret of `wanted` not watched yet and stops the watches of
    /// Secrets no longer referenced (their cached data goes with them).
    pub fn follow(&self, wanted: &BTreeSet<SecretKey>) {
        let mut running = self.running();
        running.retain(|key, watch| {
            let keep = wanted.contains(key);
            if !keep {
                watch.task.abort();
            }
            keep
        });
        for key in wanted {
            if !running.contains_key(key) {
                running.insert(key.clone(), self.start(key));
            }
        }
    }

    fn start(&self, (namespace, name): &SecretKey) -> Watch {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let (store, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(api, config)
            .default_backoff()
            .modify(trim)
            .reflect(writer);
        let task = tokio::spawn(async move { drain(stream, "a referenced Secret").await });
        Watch { store, task }
    }

    /// The watched Secrets.
    pub fn watched(&self) -> Vec<SecretKey> {
        self.running().keys().cloned().collect()
    }

    /// Secret `namespace/name` as its watch last saw it: `Some(None)` when it does not
    /// exist; `None` when it is not watched or its first list did not arrive within
    /// `patience` (then the caller reads it once itself).
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
        patience: Duration,
    ) -> Option<Option<Secret>> {
        let store = self
            .running()
            .get(&(namespace.to_string(), name.to_string()))?
            .store
            .clone();
        tokio::time::timeout(patience, store.wait_until_ready())
            .await
            .ok()?
            .ok()?;
        Some(
            store
                .get(&ObjectRef::new(name).within(namespace))
                .map(|s| (*s).clone()),
        )
    }
}

impl Drop for SecretWatches {
    fn drop(&mut self) {
        for watch in self.running().values() {
            watch.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_secret_key_of_the_auth_block_is_referenced() {
        let auth: PrometheusAuth = serde_json::from_value(json!({
            "bearerToken": {"name": "token", "key": "t"},
            "basicAuth": {"username": {"name": "basic", "key": "u"}, "password": {"name": "basic", "key": "p"}},
            "ca": {"name": "tls", "key": "ca.crt"},
            "cert": {"name": "tls", "key": "tls.crt"},
            "key": {"name": "tls", "key": "tls.key"},
            "headers": [{"name": "X-A", "value": "v"}, {"name": "X-B", "valueFrom": {"name": "hdr", "key": "b"}}],
        }))
        .unwrap();
        let names: Vec<(&str, &str)> = referenced(&auth)
            .iter()
            .map(|s| (s.name.as_str(), s.key.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("token", "t"),
                ("basic", "u"),
                ("basic", "p"),
                ("tls", "ca.crt"),
                ("tls", "tls.crt"),
                ("tls", "tls.key"),
                ("hdr", "b"),
            ]
        );
    }

    #[test]
    fn a_cached_secret_keeps_its_data_only() {
        let mut secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "token", "namespace": "ai", "labels": {"a": "b"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                         "managedFields": [{"manager": "kubectl"}], "resourceVersion": "7"},
            "data": {"t": "dG9rZW4="},
        }))
        .unwrap();
        trim(&mut secret);
        assert_eq!(
            serde_json::to_value(&secret).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "ai"}, "data": {"t": "dG9rZW4="}})
        );
    }
}
