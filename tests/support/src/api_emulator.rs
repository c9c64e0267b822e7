//! A small Kubernetes API server over HTTP on 127.0.0.1, enough for `infmon run` to start,
//! watch and reconcile against it: API discovery of the groups it is told to serve, lists
//! (label selectors `k=v`, the `metadata.name` field selector, `limit`/`continue` pages),
//! watches that stream every later change of their collection, single reads, server-side
//! applies (the stored object takes the applied body; `status` applies replace the status),
//! deletes, and Events. Every request is recorded, so a benchmark can tell the operator's
//! requests apart by kind (watches, reads, writes). It keeps no history beyond the current
//! objects and the change log watches read from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::mock_api::decode;

/// `(namespace, name)` of a stored object (`""` for cluster-scoped ones).
type Key = (String, String);

/// One change, as watches deliver it.
struct Change {
    version: u64,
    collection: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    /// Objects by collection (`v1/pods`, `monitoring.coreos.com/v1/podmonitors`).
    objects: BTreeMap<String, BTreeMap<Key, Value>>,
    changes: Vec<Change>,
    /// Served resources (plural names) by group version (`monitoring.coreos.com/v1`).
    served: BTreeMap<String, Vec<String>>,
    /// `METHOD path?query` of every request.
    requests: Vec<String>,
}

/// The emulator's shared state.
#[derive(Default)]
pub struct Emulated {
    inner: Mutex<Inner>,
    version: AtomicU64,
    changed: Notify,
}

/// A request path taken apart: the collection, the namespace and the object.
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse(path: &str) -> Option<Result<Target, String>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", group, version] => return Some(Err(format!("{group}/{version}"))),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.to_string()), None),
        [plural, name, sub] => (plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Ok(Target {
        collection: format!("{group_version}/{plural}"),
        namespace,
        name,
        subresource,
    }))
}

fn query(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect()
}

/// Whether `object` matches a label selector of `k=v` pairs and a `metadata.name=` field
/// selector.
fn selected(object: &Value, labels: Option<&String>, fields: Option<&String>) -> bool {
    let labels_match = labels.is_none_or(|selector| {
        selector
            .split(',')
            .filter(|s| !s.is_empty())
            .all(|pair| match pair.split_once('=') {
                Some((k, v)) => object["metadata"]["labels"][k].as_str() == Some(v),
                None => object["metadata"]["labels"].get(pair).is_some(),
            })
    });
    let fields_match = fields.is_none_or(|selector| {
        selector
            .split(',')
            .filter(|s| !s.is_empty())
            .all(|pair| match pair.split_once('=') {
                Some(("metadata.name", v)) => object["metadata"]["name"].as_str() == Some(v),
                Some(("metadata.namespace", v)) => {
                    object["metadata"]["namespace"].as_str() == Some(v)
                }
                _ => true,
            })
    });
    labels_match && fields_match
}

fn json_response(code: u16, value: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{reason} (from the API emulator)"), "reason": reason, "code": code})
}

impl Emulated {
    fn next_version(&self) -> u64 {
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Serves the resources `plurals` under `group_version` (e.g. `monitoring.coreos.com/v1`).
    pub fn serve_group(&self, group_version: &str, plurals: &[&str]) {
        self.inner.lock().unwrap().served.insert(
            group_version.to_string(),
            plurals.iter().map(|p| p.to_string()).collect(),
        );
    }

    /// Stores `object` in `collection` (`v1/pods`), as created before the operator starts.
    pub fn insert(&self, collection: &str, mut object: Value) {
        let version = self.next_version();
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}-{}", key.0, key.1));
        }
        self.inner
            .lock()
            .unwrap()
            .objects
            .entry(collection.to_string())
            .or_default()
            .insert(key, object);
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The stored object `namespace/name` of `collection`.
    pub fn get(&self, collection: &str, namespace: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(collection)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// How many objects `collection` holds.
    pub fn count(&self, collection: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(collection)
            .map_or(0, BTreeMap::len)
    }

    fn record(&self, collection: &str, kind: &'static str, object: &Value, version: u64) {
        let mut inner = self.inner.lock().unwrap();
        inner.changes.push(Change {
            version,
            collection: collection.to_string(),
            kind,
            object: object.clone(),
        });
        drop(inner);
        self.changed.notify_waiters();
    }

    fn list(&self, target: &Target, params: &BTreeMap<String, String>) -> Value {
        let inner = self.inner.lock().unwrap();
        let version = self.version.load(Ordering::SeqCst);
        let empty = BTreeMap::new();
        let all = inner.objects.get(&target.collection).unwrap_or(&empty);
        let matching: Vec<&Value> = all
            .iter()
            .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|n| n == ns))
            .map(|(_, o)| o)
            .filter(|o| selected(o, params.get("labelSelector"), params.get("fieldSelector")))
            .collect();
        let start: usize = params
            .get("continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit: usize = params
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(matching.len());
        let mut metadata = json!({"resourceVersion": version.to_string()});
        if end < matching.len() {
            metadata["continue"] = json!(end.to_string());
        }
        json!({"apiVersion": "v1", "kind": "List", "metadata": metadata,
               "items": matching[start.min(end)..end]})
    }

    fn watch(self: &Arc<Self>, target: Target, params: BTreeMap<String, String>) -> Response {
        let since: u64 = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let me = self.clone();
        let stream = futures::stream::unfold(since, move |seen| {
            let me = me.clone();
            let target = Target {
                collection: target.collection.clone(),
                namespace: target.namespace.clone(),
                name: None,
                subresource: None,
            };
            let params = params.clone();
            async move {
                loop {
                    let changed = me.changed.notified();
                    let (lines, last) = {
                        let inner = me.inner.lock().unwrap();
                        let mut last = seen;
                        let mut lines = String::new();
                        for change in inner.changes.iter().filter(|c| {
                            c.version > seen
                                && c.collection == target.collection
                                && target.namespace.as_ref().is_none_or(|n| {
                                    c.object["metadata"]["namespace"].as_str() == Some(n)
                                })
                                && selected(
                                    &c.object,
                                    params.get("labelSelector"),
                                    params.get("fieldSelector"),
                                )
                        }) {
                            last = last.max(change.version);
                            lines.push_str(
                                &json!({"type": change.kind, "object": change.object}).to_string(),
                            );
                            lines.push('\n');
                        }
                        let newest = inner.changes.last().map_or(seen, |c| c.version);
                        (lines, last.max(newest))
                    };
                    if !lines.is_empty() {
                        return Some((Ok::<_, std::io::Error>(Bytes::from(lines)), last));
                    }
                    changed.await;
                }
            }
        });
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap()
    }

    fn write(&self, method: &str, target: &Target, body: Value) -> Response {
        let Some(name) = target.name.clone() else {
            // POST to a collection (Events): created, not kept.
            return json_response(201, &body);
        };
        let key = (target.namespace.clone().unwrap_or_default(), name);
        let version = self.next_version();
        let mut inner = self.inner.lock().unwrap();
        let objects = inner.objects.entry(target.collection.clone()).or_default();
        if method == "DELETE" {
            return match objects.remove(&key) {
                Some(gone) => {
                    drop(inner);
                    self.record(&target.collection, "DELETED", &gone, version);
                    json_response(200, &gone)
                }
                None => json_response(404, &status(404, "NotFound")),
            };
        }
        let existing = objects.get(&key).cloned();
        let mut stored = match (target.subresource.as_deref(), existing) {
            (Some("status"), Some(mut stored)) => {
                stored["status"] = body["status"].clone();
                stored
            }
            (Some(_), None) => return json_response(404, &status(404, "NotFound")),
            (_, existing) if body.is_object() => {
                let mut stored = body;
                if let Some(old) = &existing {
                    stored["metadata"]["uid"] = old["metadata"]["uid"].clone();
                    if !old["status"].is_null() {
                        stored["status"] = old["status"].clone();
                    }
                }
                stored
            }
            // A JSON patch (finalizers) is not emulated: the object stays as it is.
            (_, Some(existing)) => existing,
            (_, None) => return json_response(404, &status(404, "NotFound")),
        };
        let created = stored["metadata"]["uid"].is_null();
        if created {
            stored["metadata"]["uid"] = json!(format!("uid-{}-{}", key.0, key.1));
        }
        stored["metadata"]["resourceVersion"] = json!(version.to_string());
        objects.insert(key, stored.clone());
        drop(inner);
        let kind = if created { "ADDED" } else { "MODIFIED" };
        self.record(&target.collection, kind, &stored, version);
        json_response(200, &stored)
    }
}

async fn handle(State(state): State<Arc<Emulated>>, request: Request) -> Response {
    let method = request.method().to_string();
    let uri = request.uri().clone();
    state
        .inner
        .lock()
        .unwrap()
        .requests
        .push(format!("{method} {uri}"));
    let params = query(&uri);
    let target = match parse(uri.path()) {
        None => return json_response(404, &status(404, "NotFound")),
        Some(Err(group_version)) => {
            let served = state
                .inner
                .lock()
                .unwrap()
                .served
                .get(&group_version)
                .cloned();
            return match served {
                Some(plurals) => json_response(
                    200,
                    &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                            "resources": plurals.iter().map(|p| json!({"name": p, "singularName": "",
                                "namespaced": true, "kind": "Object", "verbs": ["get", "list", "watch"]})).collect::<Vec<_>>()}),
                ),
                None => json_response(404, &status(404, "NotFound")),
            };
        }
        Some(Ok(target)) => target,
    };
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match (method.as_str(), &target.name) {
        ("GET", None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            state.watch(target, params)
        }
        ("GET", None) => json_response(200, &state.list(&target, &params)),
        ("GET", Some(name)) => {
            let namespace = target.namespace.clone().unwrap_or_default();
            match state.get(&target.collection, &namespace, name) {
                Some(object) => json_response(200, &object),
                None => json_response(404, &status(404, "NotFound")),
            }
        }
        ("PATCH" | "PUT" | "POST" | "DELETE", _) => state.write(&method, &target, body),
        _ => Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .body(Body::empty())
            .unwrap(),
    }
}

/// A running emulator.
pub struct ApiEmulator {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its objects and requests.
    pub state: Arc<Emulated>,
}

impl ApiEmulator {
    /// Starts an emulator on a free port of 127.0.0.1 (on the current tokio runtime).
    pub async fn start(state: Arc<Emulated>) -> ApiEmulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ApiEmulator { addr, state }
    }

    /// A kubeconfig pointing at the emulator.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster: {{server: \"http://{}\"}}\ncontexts:\n- name: emulator\n  context: {{cluster: emulator, user: nobody, namespace: default}}\ncurrent-context: emulator\nusers:\n- name: nobody\n  user: {{}}\n",
            self.addr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_collection_the_namespace_and_the_object() {
        let t = parse("/api/v1/namespaces/ai/pods").unwrap().unwrap();
        assert_eq!(
            (t.collection.as_str(), t.namespace.as_deref(), t.name),
            ("v1/pods", Some("ai"), None)
        );
        let t = parse("/api/v1/namespaces").unwrap().unwrap();
        assert_eq!(
            (t.collection.as_str(), t.namespace),
            ("v1/namespaces", None)
        );
        let t = parse(
            "/apis/monitoring.inference.dev/v1alpha1/namespaces/ai/inferencemonitorings/llm/status",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            t.collection,
            "monitoring.inference.dev/v1alpha1/inferencemonitorings"
        );
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("llm"), Some("status"))
        );
        assert_eq!(
            parse("/apis/monitoring.coreos.com/v1")
                .unwrap()
                .err()
                .unwrap(),
            "monitoring.coreos.com/v1"
        );
        assert_eq!(
            decode("app.kubernetes.io%2Fmanaged-by%3Dinfmon"),
            "app.kubernetes.io/managed-by=infmon"
        );
    }
}
