//! The operator's in-memory view of the cluster: reflector stores fed by watches, so a
//! reconcile reads memory instead of the API server. Each store keeps only what the operator
//! reads (the `compact_*`/`strip_*` functions run on every watch event before the object is
//! stored):
//!
//! - children of every served kind (label `app.kubernetes.io/managed-by=infmon`): metadata
//!   plus a fingerprint of the body, enough to plan applies and prunes and to notice edits;
//! - pods: name, namespace, labels and the container images, commands and ports that engine
//!   detection reads;
//! - `Prometheus` and `PrometheusAgent` objects: their eight selectors; the other known
//!   consumers of monitors (VictoriaMetrics, Alloy, OpenTelemetry): how they are described,
//!   when they read monitors;
//! - namespaces: metadata only (labels, for Prometheus namespace selectors);
//! - the InferenceMonitorings themselves (the controllers' stores), for objects computed from
//!   all resources.
//!
//! Watching is the runner's job ([`super::runner`]); tests and benchmarks fill stores directly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::DaemonSetStatus;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

use super::watches::selects_pod;
use crate::api::{Engine, InferenceMonitoring};
use crate::discovery::engine::pod_verdict;
use crate::discovery::exporters::{FoundExporter, KNOWN_EXPORTERS};
use crate::discovery::{
    Consumer, Discovered, OTHER_CONSUMERS, PROMETHEUS_AGENT, PrometheusSelectors,
};
use crate::health::PodState;
use crate::model::shared_labels;
use crate::render::dcgm::{DCGM_COMPONENT, EXPORTER_NAME};
use crate::render::{ChildKind, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL};
use crate::validate::{GpuExporterSettings, Namespaces, Targets};

/// Annotation holding the hash of the desired object: the apply plan compares it, and the cache
/// keeps it beside the fingerprint of each child's body.
pub const DESIRED_HASH_ANNOTATION: &str = "monitoring.inference.dev/desired-hash";

/// In-memory annotation on cached children holding the fingerprint of the body as the API
/// server stored it. Never written to the cluster.
pub const FINGERPRINT_ANNOTATION: &str = "monitoring.inference.dev/cached-fingerprint";

/// Metadata fields that change without anyone changing the object's content.
const VOLATILE_METADATA: [&str; 6] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// SHA-256 (first 16 hex digits) of an object as stored, without `status` and without the
/// metadata the API server moves on its own: two fingerprints differ when someone changed
/// the object's content.
pub fn fingerprint(object: &Value) -> String {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in VOLATILE_METADATA {
                meta.remove(field);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.remove(FINGERPRINT_ANNOTATION);
            }
        }
    }
    crate::render::hex_sha256(&content.to_string(), 8)
}

/// Replaces a watched child's body by its fingerprint: the store keeps metadata only.
pub fn compact_child(object: &mut DynamicObject) {
    let print = serde_json::to_value(&*object)
        .map(|v| fingerprint(&v))
        .unwrap_or_default();
    object.data = Value::Object(Default::default());
    object.metadata.managed_fields = None;
    object
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(FINGERPRINT_ANNOTATION.to_string(), print);
}

/// [`compact_child`] for a child of `kind`; of a DaemonSet (infmon's only one is the shared
/// DCGM exporter) the two status counts its readiness is read from are kept too.
pub fn compact_child_of(kind: ChildKind, object: &mut DynamicObject) {
    let counts = (kind == ChildKind::DaemonSet)
        .then(|| object.data.get("status"))
        .flatten()
        .map(|status| {
            let count = |field: &str| status.get(field).cloned().unwrap_or(Value::from(0));
            serde_json::json!({"status": {
                "desiredNumberScheduled": count("desiredNumberScheduled"),
                "numberReady": count("numberReady"),
            }})
        });
    compact_child(object);
    if let Some(counts) = counts {
        object.data = counts;
    }
}

/// In-memory annotation on cached pods of infmon's DCGM exporter holding why a container
/// waits (`REASON` or `REASON: message`), read into `GpuExporterReady`. Never written to the
/// cluster.
pub const WAITING_ANNOTATION: &str = "monitoring.inference.dev/cached-waiting";

/// Whether `labels` are those of infmon's DCGM exporter pods.
pub fn is_exporter_pod(labels: &BTreeMap<String, String>) -> bool {
    shared_labels(DCGM_COMPONENT)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether `labels` are those of a known DCGM exporter's pods (see [`KNOWN_EXPORTERS`]).
pub fn is_known_exporter(labels: &BTreeMap<String, String>) -> bool {
    KNOWN_EXPORTERS.iter().any(|kind| {
        kind.selector
            .split_once('=')
            .is_some_and(|(k, v)| labels.get(k).map(String::as_str) == Some(v))
    })
}

/// Why the first waiting container of `pod` waits (`REASON` or `REASON: message`).
fn waiting(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        Some(match &waiting.message {
            Some(message) => format!("{reason}: {message}"),
            None => reason.to_string(),
        })
    })
}

/// Annotation in which `kubectl apply` keeps a copy of the applied object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the store of watched InferenceMonitorings drops: `managedFields` and kubectl's
/// last-applied copy of the object, which nothing reads and which can outweigh the rest.
pub fn trim_resource(watched: &mut super::Watched) {
    let meta = match &mut watched.0 {
        Ok(resource) => &mut resource.metadata,
        Err(invalid) => &mut invalid.metadata,
    };
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// In-memory label on cached pods holding the engines the pod looks like (see
/// [`crate::discovery::engine::pod_verdict`]), comma-separated. Kept among the labels, which
/// costs no allocation of its own; never written to the cluster, and no selector a user
/// writes names it.
pub const ENGINES_LABEL: &str = "monitoring.inference.dev/cached-engines";

/// In-memory label on cached pods: when the kubelet started the pod (`status.startTime`, in
/// Unix seconds); absent before it starts. Like [`ENGINES_LABEL`], never written anywhere.
pub const STARTED_LABEL: &str = "monitoring.inference.dev/cached-started";

/// In-memory label on cached pods: `true` when the pod's `Ready` condition is `True`.
pub const READY_LABEL: &str = "monitoring.inference.dev/cached-ready";

/// What the pod cache keeps of a pod: name, namespace, labels (for selectors) and, instead
/// of its containers and status, the engines they look like, when it started and whether it
/// is Ready (for the health check's `Loading`); of infmon's DCGM exporter pods also why a
/// container waits ([`WAITING_ANNOTATION`]). A typed `Pod` costs kilobytes even when nearly
/// empty; this costs little more than its labels. (No resourceVersion: the watch keeps its
/// own, so two cached pods compare equal when what infmon reads is equal.)
pub fn cached_pod(pod: Pod) -> PartialObjectMeta<Pod> {
    let engines = pod_verdict(&pod)
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let waits = waiting(&pod);
    let status = pod.status.unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let meta = pod.metadata;
    let mut labels = meta.labels.unwrap_or_default();
    let annotations = is_exporter_pod(&labels)
        .then_some(waits)
        .flatten()
        .map(|w| BTreeMap::from([(WAITING_ANNOTATION.to_string(), w)]));
    labels.insert(ENGINES_LABEL.to_string(), engines);
    if let Some(started) = status.start_time {
        labels.insert(STARTED_LABEL.to_string(), started.0.as_second().to_string());
    }
    labels.insert(READY_LABEL.to_string(), ready.to_string());
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            labels: Some(labels),
            annotations,
            ..ObjectMeta::default()
        },
        _phantom: Default::default(),
    }
}

fn cached_verdict(pod: &PartialObjectMeta<Pod>) -> Vec<Engine> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ENGINES_LABEL))
        .map(|engines| {
            engines
                .split(',')
                .filter_map(|e| e.parse::<Engine>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The `Prometheus` spec fields [`PrometheusSelectors`] reads.
const PROMETHEUS_SELECTOR_FIELDS: [&str; 8] = [
    "podMonitorSelector",
    "podMonitorNamespaceSelector",
    "serviceMonitorSelector",
    "serviceMonitorNamespaceSelector",
    "scrapeConfigSelector",
    "scrapeConfigNamespaceSelector",
    "ruleSelector",
    "ruleNamespaceSelector",
];

/// Keeps of a `Prometheus` only its name, namespace and selectors.
pub fn strip_prometheus(object: &mut DynamicObject) {
    let spec = object.data.get("spec").cloned().unwrap_or(Value::Null);
    let kept: serde_json::Map<String, Value> = PROMETHEUS_SELECTOR_FIELDS
        .iter()
        .filter_map(|f| spec.get(*f).map(|v| (f.to_string(), v.clone())))
        .collect();
    object.data = serde_json::json!({ "spec": kept });
    let meta = std::mem::take(&mut object.metadata);
    object.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        ..ObjectMeta::default()
    };
}

/// In-memory annotation on cached consumers of monitors (other than `Prometheus` and
/// `PrometheusAgent`) holding how status messages describe them
/// ([`crate::discovery::Consumer::describe`]); absent when the object reads no monitors.
pub const CONSUMER_ANNOTATION: &str = "monitoring.inference.dev/cached-consumer";

/// Keeps of a consumer of monitors what selection reads: a `PrometheusAgent`'s selectors
/// (as [`strip_prometheus`]), or, of another kind, its description when it reads monitors.
pub fn strip_consumer(consumer: &Consumer, object: &mut DynamicObject) {
    if *consumer == PROMETHEUS_AGENT {
        return strip_prometheus(object);
    }
    let described = serde_json::to_value(&*object)
        .ok()
        .and_then(|value| consumer.describe(&value));
    object.data = Value::Object(Default::default());
    let meta = std::mem::take(&mut object.metadata);
    object.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        annotations: described.map(|d| BTreeMap::from([(CONSUMER_ANNOTATION.to_string(), d)])),
        ..ObjectMeta::default()
    };
}

/// A cached child as planning sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveChild {
    /// Its kind.
    pub kind: ChildKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (a precondition of deletes).
    pub uid: Option<String>,
    /// `namespace/name` of the InferenceMonitoring its owner labels name.
    pub owner: Option<String>,
    /// The desired-hash annotation it carries.
    pub desired_hash: Option<String>,
    /// The fingerprint of its body ([`fingerprint`]).
    pub fingerprint: Option<String>,
}

impl LiveChild {
    /// Reads a compacted child.
    pub fn from_cached(kind: ChildKind, object: &DynamicObject) -> Self {
        Self::from_meta(kind, &object.metadata)
    }

    /// Reads a child's metadata (a cached object's, or one listed as metadata only).
    pub fn from_meta(kind: ChildKind, meta: &ObjectMeta) -> Self {
        let labels = meta.labels.as_ref();
        let annotations = meta.annotations.as_ref();
        let owner = labels.and_then(|l| {
            Some(format!(
                "{}/{}",
                l.get(OWNER_NAMESPACE_LABEL)?,
                l.get(OWNER_NAME_LABEL)?
            ))
        });
        Self {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            owner,
            desired_hash: annotations
                .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
                .cloned(),
            fingerprint: annotations
                .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
                .cloned(),
        }
    }
}

/// One store per watched scope (one in cluster mode, one per namespace in namespaced mode).
type Scoped<K> = Vec<Store<K>>;

/// Every store the reconcile reads. Stores are added as their watches become ready, so a
/// kind whose CRD appears later joins without a restart.
#[derive(Default)]
pub struct Caches {
    children: RwLock<BTreeMap<ChildKind, Scoped<DynamicObject>>>,
    pods: RwLock<Option<Scoped<PartialObjectMeta<Pod>>>>,
    prometheuses: RwLock<Option<Store<DynamicObject>>>,
    consumers: RwLock<BTreeMap<&'static str, Store<DynamicObject>>>,
    namespaces: RwLock<Option<Store<PartialObjectMeta<Namespace>>>>,
    resources: RwLock<Vec<Store<super::Watched>>>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Caches {
    /// Empty caches (nothing watched yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Caches whose stores of `kinds` start empty and are fed through the returned writers,
    /// as watches would feed them (for tests and benchmarks).
    pub fn fed_by_hand(
        kinds: impl IntoIterator<Item = ChildKind>,
    ) -> (Self, BTreeMap<ChildKind, Writer<DynamicObject>>) {
        let caches = Self::new();
        let mut writers = BTreeMap::new();
        for kind in kinds {
            let (store, writer) = child_store_of(kind, Vec::new());
            caches.set_children(kind, vec![store]);
            writers.insert(kind, writer);
        }
        (caches, writers)
    }

    /// Adds the (ready) stores of one child kind.
    pub fn set_children(&self, kind: ChildKind, stores: Vec<Store<DynamicObject>>) {
        self.children
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, stores);
    }

    /// Drops the stores of a kind the cluster no longer serves.
    pub fn remove_children(&self, kind: ChildKind) {
        self.children
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&kind);
    }

    /// Whether pods are cached.
    pub fn pods_cached(&self) -> bool {
        self.pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Adds the (ready) pod stores.
    pub fn set_pods(&self, stores: Vec<Store<PartialObjectMeta<Pod>>>) {
        *self.pods.write().unwrap_or_else(|p| p.into_inner()) = Some(stores);
    }

    /// Adds the (ready) `Prometheus` store.
    pub fn set_prometheuses(&self, store: Store<DynamicObject>) {
        *self.prometheuses.write().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    /// Adds the (ready) store of a consumer of monitors besides `Prometheus`.
    pub fn set_consumers(&self, consumer: &Consumer, store: Store<DynamicObject>) {
        self.consumers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(consumer.kind, store);
    }

    /// Drops the store of a consumer kind the cluster no longer serves.
    pub fn remove_consumers(&self, consumer: &Consumer) {
        self.consumers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(consumer.kind);
    }

    /// Who picks monitors up, from the caches where they are filled and from `discovered`
    /// for the kinds not cached (yet): the selectors of every `Prometheus` and
    /// `PrometheusAgent`, and the other consumers as status messages describe them.
    pub fn consumers(&self, discovered: &Discovered) -> (Vec<PrometheusSelectors>, Vec<String>) {
        const AGENT: &str = " (PrometheusAgent)";
        let stores = read(&self.consumers);
        let selectors = |store: &Store<DynamicObject>, agent: bool| -> Vec<PrometheusSelectors> {
            store
                .state()
                .iter()
                .filter_map(|o| {
                    let mut found =
                        PrometheusSelectors::from_object(&serde_json::to_value(&**o).ok()?).ok()?;
                    if agent {
                        found.mark_agent();
                    }
                    Some(found)
                })
                .collect()
        };
        let from_discovery = |agent: bool| {
            discovered
                .prometheuses
                .iter()
                .filter(|p| p.key.ends_with(AGENT) == agent)
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut prometheuses = match read(&self.prometheuses) {
            Some(store) => selectors(&store, false),
            None => from_discovery(false),
        };
        prometheuses.extend(match stores.get(PROMETHEUS_AGENT.kind) {
            Some(store) => selectors(store, true),
            None => from_discovery(true),
        });
        let mut others: Vec<String> = OTHER_CONSUMERS
            .iter()
            .flat_map(|consumer| match stores.get(consumer.kind) {
                Some(store) => store
                    .state()
                    .iter()
                    .filter_map(|o| {
                        o.metadata
                            .annotations
                            .as_ref()?
                            .get(CONSUMER_ANNOTATION)
                            .cloned()
                    })
                    .collect::<Vec<_>>(),
                None => discovered
                    .other_consumers
                    .iter()
                    .filter(|d| d.starts_with(&format!("{} ", consumer.kind)))
                    .cloned()
                    .collect(),
            })
            .collect();
        others.sort();
        (prometheuses, others)
    }

    /// Adds the (ready) namespace store.
    pub fn set_namespaces(&self, store: Store<PartialObjectMeta<Namespace>>) {
        *self.namespaces.write().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    /// Adds the stores of the watched InferenceMonitorings (the controllers' own).
    pub fn set_resources(&self, stores: Vec<Store<super::Watched>>) {
        *self.resources.write().unwrap_or_else(|p| p.into_inner()) = stores;
    }

    /// Every watched InferenceMonitoring that could be read: the input of objects shared by
    /// all resources that want them.
    pub fn resources(&self) -> Vec<Arc<InferenceMonitoring>> {
        read(&self.resources)
            .iter()
            .flat_map(|store| store.state())
            .filter_map(|watched| watched.0.as_ref().ok().cloned().map(Arc::new))
            .collect()
    }

    /// The child kinds whose stores are ready.
    pub fn watched_kinds(&self) -> BTreeSet<ChildKind> {
        self.children
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The cached child of `kind` at `namespace/name`, if infmon manages one there.
    pub fn child(&self, kind: ChildKind, namespace: &str, name: &str) -> Option<LiveChild> {
        let children = self.children.read().unwrap_or_else(|p| p.into_inner());
        let key = ObjectRef::<DynamicObject>::new_with(name, kind.api_resource()).within(namespace);
        children
            .get(&kind)?
            .iter()
            .find_map(|store| store.get(&key))
            .map(|o| LiveChild::from_cached(kind, &o))
    }

    /// Every cached child of `kinds` labelled `key=value` (e.g. the cluster-shared objects),
    /// or `None` when one of the kinds is not cached.
    pub fn labelled(
        &self,
        kinds: &BTreeSet<ChildKind>,
        key: &str,
        value: &str,
    ) -> Option<Vec<LiveChild>> {
        let children = self.children.read().unwrap_or_else(|p| p.into_inner());
        let mut found = Vec::new();
        for kind in kinds {
            for store in children.get(kind)? {
                found.extend(
                    store
                        .state_filter(|o| {
                            o.metadata
                                .labels
                                .as_ref()
                                .is_some_and(|l| l.get(key).map(String::as_str) == Some(value))
                        })
                        .iter()
                        .map(|o| LiveChild::from_cached(*kind, o)),
                );
            }
        }
        Some(found)
    }

    /// Every cached child whose owner labels name `owner` (`namespace/name`).
    pub fn owned_by(&self, owner_namespace: &str, owner_name: &str) -> Vec<LiveChild> {
        let owner_name = crate::render::label_value(owner_name);
        let owner_name = owner_name.as_str();
        let children = self.children.read().unwrap_or_else(|p| p.into_inner());
        let mut owned = Vec::new();
        for (kind, stores) in children.iter() {
            for store in stores {
                owned.extend(
                    store
                        .state_filter(|o| {
                            o.metadata.labels.as_ref().is_some_and(|l| {
                                l.get(OWNER_NAME_LABEL).map(String::as_str) == Some(owner_name)
                                    && l.get(OWNER_NAMESPACE_LABEL).map(String::as_str)
                                        == Some(owner_namespace)
                            })
                        })
                        .iter()
                        .map(|o| LiveChild::from_cached(*kind, o)),
                );
            }
        }
        owned.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        owned
    }

    /// The engine verdicts of the pods `resource` selects, or `None` while pods are not
    /// cached.
    pub fn selected_pods(&self, resource: &InferenceMonitoring) -> Option<Vec<Vec<Engine>>> {
        let stores = read(&self.pods)?;
        Some(
            stores
                .iter()
                .flat_map(|store| {
                    store.state_filter(|pod| {
                        selects_pod(
                            resource,
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                        )
                    })
                })
                .map(|pod| cached_verdict(&pod))
                .collect(),
        )
    }

    /// For each of `targets`, the start time and readiness of the pods it selects for which
    /// `keep` holds (the health check keeps the loading ones), or `None` while pods are not
    /// cached. One pass over the pods: each is matched against the selectors only when kept,
    /// so the cost is the pods plus the kept pods times the targets. Static targets select
    /// none.
    pub fn pod_states(
        &self,
        targets: &[&Targets],
        keep: impl Fn(&PodState) -> bool,
    ) -> Option<Vec<Vec<PodState>>> {
        let stores = read(&self.pods)?;
        let mut found = vec![Vec::new(); targets.len()];
        let empty = BTreeMap::new();
        for pod in stores.iter().flat_map(|store| store.state()) {
            let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let state = PodState {
                key: format!(
                    "{namespace}/{}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ),
                started: labels
                    .get(STARTED_LABEL)
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())
                    .map(Time),
                ready: labels.get(READY_LABEL).is_some_and(|r| r == "true"),
            };
            if !keep(&state) {
                continue;
            }
            for (i, targets) in targets.iter().enumerate() {
                let Targets::Pods {
                    selector,
                    namespaces,
                } = targets
                else {
                    continue;
                };
                let in_scope = match namespaces {
                    Namespaces::Any => true,
                    Namespaces::Names(names) => names.iter().any(|n| n == namespace),
                };
                if in_scope && crate::selector::matches(selector, labels) {
                    found[i].push(state.clone());
                }
            }
        }
        Some(found)
    }

    /// The DCGM exporter infmon did not deploy that runs in a namespace `exporters` trusts:
    /// the pod cache's answer where the cache covers the cluster (`cluster_wide`) or found one,
    /// otherwise what discovery found.
    pub fn existing_exporter(
        &self,
        discovered: &Discovered,
        cluster_wide: bool,
        exporters: &GpuExporterSettings,
    ) -> Option<FoundExporter> {
        match self.found_exporter(exporters) {
            Some(found) if cluster_wide || found.is_some() => found,
            _ => discovered.existing_dcgm_exporter.clone(),
        }
    }

    /// The first known DCGM exporter infmon did not deploy whose pods run in a namespace
    /// `exporters` trusts (see [`KNOWN_EXPORTERS`]), or `None` while pods are not cached.
    /// Scans the pod cache: ask only when the answer matters.
    pub fn found_exporter(&self, exporters: &GpuExporterSettings) -> Option<Option<FoundExporter>> {
        let stores = read(&self.pods)?;
        Some(KNOWN_EXPORTERS.into_iter().find_map(|kind| {
            let (key, value) = kind.selector.split_once('=')?;
            stores.iter().find_map(|store| {
                let pod = store.find(|pod| {
                    let labelled = pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(key))
                        .is_some_and(|v| v == value);
                    labelled
                        && pod
                            .metadata
                            .namespace
                            .as_deref()
                            .is_some_and(|ns| exporters.trusts_exporters_in(ns))
                })?;
                Some(FoundExporter {
                    kind,
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                })
            })
        }))
    }

    /// The shared exporter's DaemonSet status in `namespace`, from the DaemonSet cache:
    /// `None` while DaemonSets are not cached, `Some(None)` while it has no status.
    pub fn exporter_status(&self, namespace: &str) -> Option<Option<DaemonSetStatus>> {
        let children = self.children.read().unwrap_or_else(|p| p.into_inner());
        let kind = ChildKind::DaemonSet;
        let key = ObjectRef::<DynamicObject>::new_with(EXPORTER_NAME, kind.api_resource())
            .within(namespace);
        let found = children.get(&kind)?.iter().find_map(|s| s.get(&key));
        Some(found.and_then(|o| serde_json::from_value(o.data.get("status")?.clone()).ok()))
    }

    /// Why an exporter pod in `namespace` waits (`pod x is CrashLoopBackOff: …`, the first by
    /// name), from the pod cache.
    pub fn exporter_waiting(&self, namespace: &str) -> Option<String> {
        let stores = read(&self.pods)?;
        stores
            .iter()
            .flat_map(|store| {
                store.state_filter(|pod| {
                    pod.metadata.namespace.as_deref() == Some(namespace)
                        && pod
                            .metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| a.contains_key(WAITING_ANNOTATION))
                })
            })
            .filter_map(|pod| {
                let name = pod.metadata.name.clone()?;
                let why = pod.metadata.annotations.as_ref()?.get(WAITING_ANNOTATION)?;
                Some(format!("pod {name} is {why}"))
            })
            .min()
    }

    /// The labels of `namespace`, or `None` while namespaces are not cached (namespaced
    /// installs: matched by name only).
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let store = read(&self.namespaces)?;
        let found = store.get(&ObjectRef::new(namespace))?;
        Some(found.metadata.labels.clone().unwrap_or_default())
    }
}

/// A store holding `objects`, ready (for tests, benchmarks and one-off readers).
pub fn store_of<K>(
    objects: impl IntoIterator<Item = K>,
) -> (Store<K>, kube::runtime::reflector::store::Writer<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    use kube::runtime::watcher::Event;
    let mut writer = Writer::<K>::default();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    (writer.as_reader(), writer)
}

/// A pod store holding `pods` as the pod watch stores them (for tests and benchmarks).
pub fn pod_store_of(pods: impl IntoIterator<Item = Pod>) -> Store<PartialObjectMeta<Pod>> {
    store_of(pods.into_iter().map(cached_pod)).0
}

/// [`store_of`] for kinds whose dynamic type is an `ApiResource` (children).
pub fn child_store_of(
    kind: ChildKind,
    objects: impl IntoIterator<Item = DynamicObject>,
) -> (
    Store<DynamicObject>,
    kube::runtime::reflector::store::Writer<DynamicObject>,
) {
    use kube::runtime::watcher::Event;
    let mut writer = Writer::<DynamicObject>::new(kind.api_resource());
    writer.apply_watcher_event(&Event::Init);
    for mut object in objects {
        compact_child_of(kind, &mut object);
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    (writer.as_reader(), writer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_status_and_server_bookkeeping_but_not_content() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "uid": "u"}, "data": {"k": "v"}, "status": {"n": 1}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "9", "uid": "u", "managedFields": []}, "data": {"k": "v"}, "status": {"n": 2}});
        let edited =
            json!({"metadata": {"name": "x", "resourceVersion": "9"}, "data": {"k": "edited"}});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&edited));
    }

    #[test]
    fn cached_pods_keep_labels_and_the_engines_their_containers_look_like() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ai", "labels": {"app": "vllm"}, "annotations": {"big": "x"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "m", "image": "vllm/vllm-openai", "args": ["--model", "m"],
                "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 8000, "name": "http"}]}]},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        let cached = cached_pod(pod);
        assert_eq!(
            serde_json::to_value(&cached.metadata).unwrap(),
            json!({"name": "p", "namespace": "ai", "labels": {"app": "vllm", ENGINES_LABEL: "vllm", READY_LABEL: "false"}})
        );
        assert_eq!(cached_verdict(&cached), [Engine::Vllm]);
    }

    #[test]
    fn cached_pods_keep_when_they_started_and_whether_they_are_ready_for_the_health_check() {
        let pod = |name: &str, namespace: &str, status: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": "vllm"}},
                "status": status,
            }))
            .unwrap()
        };
        let caches = Caches::new();
        let targets = Targets::Pods {
            selector: serde_json::from_value(json!({"matchLabels": {"app": "vllm"}})).unwrap(),
            namespaces: Namespaces::Names(vec!["ai".into()]),
        };
        let all = |caches: &Caches, targets: &[&Targets]| caches.pod_states(targets, |_| true);
        assert_eq!(all(&caches, &[&targets]), None);
        caches.set_pods(vec![pod_store_of([
            pod(
                "ready",
                "ai",
                json!({"startTime": "2026-01-01T10:00:00Z", "conditions": [{"type": "Ready", "status": "True"}]}),
            ),
            pod(
                "starting",
                "ai",
                json!({"startTime": "2026-01-01T11:00:00Z", "conditions": [{"type": "Ready", "status": "False"}]}),
            ),
            pod("pending", "ai", json!({"phase": "Pending"})),
            pod("elsewhere", "prod", json!({})),
        ])]);
        let static_targets = Targets::Static(vec!["10.0.0.1:8000".into()]);
        let mut found = all(&caches, &[&targets, &static_targets]).unwrap();
        assert_eq!(found[1], [], "static targets select no pod");
        let mut states = found.remove(0);
        states.sort_by(|a, b| a.key.cmp(&b.key));
        let started = |t: &str| Some(Time(t.parse().unwrap()));
        assert_eq!(
            states,
            [
                PodState {
                    key: "ai/pending".into(),
                    started: None,
                    ready: false
                },
                PodState {
                    key: "ai/ready".into(),
                    started: started("2026-01-01T10:00:00Z"),
                    ready: true
                },
                PodState {
                    key: "ai/starting".into(),
                    started: started("2026-01-01T11:00:00Z"),
                    ready: false
                },
            ]
        );
        let unready = caches.pod_states(&[&targets], |pod| !pod.ready).unwrap();
        let keys: Vec<&str> = unready[0].iter().map(|p| p.key.as_str()).collect();
        assert!(
            keys.len() == 2 && keys.contains(&"ai/pending") && keys.contains(&"ai/starting"),
            "{keys:?}"
        );
    }

    fn pod(namespace: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": namespace, "labels": labels}}),
        )
        .unwrap()
    }

    #[test]
    fn selected_pods_and_a_running_dcgm_exporter_are_read_from_the_pod_store() {
        let caches = Caches::new();
        assert_eq!(caches.found_exporter(&GpuExporterSettings::default()), None);
        let resource: InferenceMonitoring = serde_json::from_value(json!({
            "apiVersion": "monitoring.inference.dev/v1alpha1", "kind": "InferenceMonitoring",
            "metadata": {"name": "llm", "namespace": "ai"},
            "spec": {"selector": {"matchLabels": {"app": "vllm"}}},
        }))
        .unwrap();
        let mut other = pod("ai", json!({"app": "web"}));
        other.metadata.name = Some("web".into());
        let mut elsewhere = pod("prod", json!({"app": "vllm"}));
        elsewhere.metadata.name = Some("elsewhere".into());
        let mut vllm = pod("ai", json!({"app": "vllm"}));
        vllm.metadata.name = Some("vllm".into());
        vllm.spec = Some(
            serde_json::from_value(
                json!({"containers": [{"name": "m", "image": "vllm/vllm-openai"}]}),
            )
            .unwrap(),
        );
        caches.set_pods(vec![pod_store_of([
            pod("ai", json!({"app": "vllm"})),
            vllm,
            other,
            elsewhere,
        ])]);
        let mut selected = caches.selected_pods(&resource).unwrap();
        selected.sort();
        assert_eq!(selected, [vec![], vec![Engine::Vllm]]);
        assert_eq!(
            caches.found_exporter(&GpuExporterSettings::default()),
            Some(None)
        );
        // A lookalike in a team's namespace is no exporter; the GPU Operator's is.
        caches.set_pods(vec![pod_store_of([pod(
            "team-a",
            json!({"app": "nvidia-dcgm-exporter"}),
        )])]);
        assert_eq!(
            caches.found_exporter(&GpuExporterSettings::default()),
            Some(None)
        );
        caches.set_pods(vec![pod_store_of([pod(
            "gpu-operator",
            json!({"app": "nvidia-dcgm-exporter"}),
        )])]);
        let found = caches
            .found_exporter(&GpuExporterSettings::default())
            .unwrap()
            .unwrap();
        assert_eq!(found.namespace, "gpu-operator");
        assert_eq!(found.kind, KNOWN_EXPORTERS[0]);
    }

    #[test]
    fn children_are_found_by_name_and_by_owner_labels_even_for_long_names() {
        let long = "a".repeat(70);
        let labels = json!({
            crate::render::OWNER_NAMESPACE_LABEL: "ai",
            crate::render::OWNER_NAME_LABEL: crate::render::label_value(&long),
        });
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "dash", "namespace": "grafana", "labels": labels,
                         "annotations": {super::DESIRED_HASH_ANNOTATION: "h1"}},
            "data": {"k": "v"},
        }))
        .unwrap();
        let (caches, _) = Caches::fed_by_hand([]);
        caches.set_children(
            ChildKind::ConfigMap,
            vec![child_store_of(ChildKind::ConfigMap, [object]).0],
        );
        let found = caches
            .child(ChildKind::ConfigMap, "grafana", "dash")
            .unwrap();
        assert_eq!(found.desired_hash.as_deref(), Some("h1"));
        assert!(found.fingerprint.is_some());
        assert_eq!(caches.owned_by("ai", &long), [found]);
        assert!(caches.owned_by("ai", "other").is_empty());
        assert!(caches.child(ChildKind::Secret, "grafana", "dash").is_none());
    }

    #[test]
    fn consumers_come_from_their_caches_and_from_discovery_for_kinds_not_cached() {
        let selectors = |key: &str| {
            let (namespace, name) = key.split_once('/').unwrap();
            PrometheusSelectors::from_object(&json!({
                "metadata": {"namespace": namespace, "name": name}, "spec": {"podMonitorSelector": {}},
            }))
            .unwrap()
        };
        let mut old_agent = selectors("monitoring/old");
        old_agent.mark_agent();
        let discovered = Discovered {
            prometheuses: vec![selectors("monitoring/kps"), old_agent],
            other_consumers: vec!["VMAgent vm/agent (VictoriaMetrics operator)".into()],
            ..Discovered::default()
        };
        let caches = Caches::new();
        let keys = |caches: &Caches| {
            let (prometheuses, others) = caches.consumers(&discovered);
            let keys: Vec<String> = prometheuses.into_iter().map(|p| p.key).collect();
            (keys, others)
        };
        assert_eq!(
            keys(&caches),
            (
                vec![
                    "monitoring/kps".into(),
                    "monitoring/old (PrometheusAgent)".into()
                ],
                vec!["VMAgent vm/agent (VictoriaMetrics operator)".into()]
            )
        );
        // Agents and Alloys are cached: the agent deleted since discovery is gone, the new
        // one is there; Alloys read monitors always; VMAgents still come from discovery.
        let mut agent: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "PrometheusAgent",
            "metadata": {"name": "new", "namespace": "monitoring", "managedFields": [{}]},
            "spec": {"podMonitorSelector": {"matchLabels": {"a": "b"}}, "remoteWrite": [{"url": "x"}]},
        }))
        .unwrap();
        strip_consumer(&PROMETHEUS_AGENT, &mut agent);
        assert_eq!(agent.data["spec"].as_object().unwrap().len(), 1);
        let alloy_kind = OTHER_CONSUMERS[0];
        let mut alloy: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "collectors.grafana.com/v1alpha1", "kind": "Alloy",
            "metadata": {"name": "alloy", "namespace": "obs"}, "spec": {"big": "x"},
        }))
        .unwrap();
        strip_consumer(&alloy_kind, &mut alloy);
        assert_eq!(alloy.data, json!({}));
        let store_with = |object: DynamicObject, consumer: &Consumer| {
            let mut writer = Writer::<DynamicObject>::new(consumer.resource());
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(object));
            writer.as_reader()
        };
        caches.set_consumers(&PROMETHEUS_AGENT, store_with(agent, &PROMETHEUS_AGENT));
        caches.set_consumers(&alloy_kind, store_with(alloy, &alloy_kind));
        assert_eq!(
            keys(&caches),
            (
                vec![
                    "monitoring/kps".into(),
                    "monitoring/new (PrometheusAgent)".into()
                ],
                vec![
                    "Alloy obs/alloy (Grafana Alloy)".into(),
                    "VMAgent vm/agent (VictoriaMetrics operator)".into()
                ]
            )
        );
        caches.remove_consumers(&PROMETHEUS_AGENT);
        assert!(
            keys(&caches)
                .0
                .contains(&"monitoring/old (PrometheusAgent)".to_string())
        );
    }

    #[test]
    fn labelled_children_are_found_only_when_every_kind_is_cached() {
        let shared: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "infmon-dashboard-gpu", "namespace": "grafana",
                         "labels": {"monitoring.inference.dev/shared": "true"}},
        }))
        .unwrap();
        let (caches, _) = Caches::fed_by_hand([ChildKind::Secret]);
        caches.set_children(
            ChildKind::ConfigMap,
            vec![child_store_of(ChildKind::ConfigMap, [shared]).0],
        );
        let kinds = BTreeSet::from([ChildKind::Secret, ChildKind::ConfigMap]);
        let found = caches
            .labelled(&kinds, "monitoring.inference.dev/shared", "true")
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "infmon-dashboard-gpu");
        let more = BTreeSet::from([ChildKind::ConfigMap, ChildKind::DaemonSet]);
        assert!(
            caches
                .labelled(&more, "monitoring.inference.dev/shared", "true")
                .is_none()
        );
    }
}
