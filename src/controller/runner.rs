//! `infmon run`: wires discovery, leader election, the watches that fill the caches, the
//! controllers, the health loop and the HTTP endpoints together, and shuts them down in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::cache::{
    Caches, cached_pod, compact_child_of, is_exporter_pod, is_known_exporter, strip_consumer,
    strip_prometheus, trim_resource,
};
use super::context::{Config, Context, system_clock};
use super::leader::{LeaseLock, LeaseSettings};
use super::metrics::Metrics;
use super::reconcile::watched_key;
use super::server::{self, Probes};
use super::watches::{drain, selects_pod};
use super::{Error, Watched, error_policy, reconcile};
use super::{health_loop, shared};
use crate::api::{Engine, InferenceMonitoring};
use crate::discovery::{
    self, Consumer, Discovered, OTHER_CONSUMERS, PROMETHEUS_AGENT, prometheus_resource,
};
use crate::render::{ChildKind, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL};

/// The label selector of every generated object.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=infmon";

/// How often the health loop looks for resources whose check is due (each resource is
/// checked at its own interval).
const HEALTH_TICK: Duration = Duration::from_secs(5);

/// How often the shared objects are recomputed from every resource besides after each
/// reconcile (catches resources deleted while the operator was down).
const SHARED_TICK: Duration = Duration::from_secs(60);

/// How many reconciles of one controller run at once. Each holds its rendered children
/// (dashboards are tens of KiB) until it is done: unbounded, a cold start with 1,000 resources
/// held them all at once (about 150 MiB); the work is CPU-bound, so a few are as fast.
const RECONCILE_CONCURRENCY: u16 = 4;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Reconcile settings.
    pub config: Config,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// Where `/healthz` and `/readyz` are served.
    pub probe_addr: SocketAddr,
    /// Leader election, when enabled.
    pub leader: Option<LeaseSettings>,
    /// How often the cluster is discovered again.
    pub discovery_interval: Duration,
    /// How long the first contact with the API server may take.
    pub startup_timeout: Duration,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The API server could not be reached or refused the discovery requests.
    #[error(
        "cannot reach the Kubernetes API server at {url} (check KUBECONFIG or the in-cluster ServiceAccount, and the operator's RBAC)"
    )]
    Unreachable {
        /// The API server URL.
        url: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error(
        "the Kubernetes API server at {url} did not answer within {seconds} s; check KUBECONFIG and network access"
    )]
    Timeout {
        /// The API server URL.
        url: String,
        /// The limit.
        seconds: u64,
    },
    /// An HTTP endpoint could not be opened.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election with Lease {lease} failed")]
    Lease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Another replica took the Lease over; the process exits so it restarts as a candidate.
    #[error("lost the leader Lease {0}; exiting so that this replica restarts as a candidate")]
    LostLeadership(String),
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen { addr, source })
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Runs the operator until `shutdown` turns true (or leadership is lost).
pub async fn run(
    client: Client,
    cluster_url: String,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let probes = Arc::new(Probes {
        metrics: metrics.clone(),
        ..Probes::default()
    });
    let probe_listener = bind(settings.probe_addr).await?;
    let metrics_listener = bind(settings.metrics_addr).await?;
    tokio::spawn(server::serve(
        probe_listener,
        server::probe_routes(probes.clone()),
        wait_for(shutdown.clone()),
    ));
    tokio::spawn(server::serve(
        metrics_listener,
        server::metrics_routes(probes.clone()),
        wait_for(shutdown.clone()),
    ));

    let seconds = settings.startup_timeout.as_secs();
    let first = tokio::time::timeout(
        settings.startup_timeout,
        discovery::discover(
            &client,
            &settings.config.namespaces,
            &settings.config.gpu_exporter,
        ),
    )
    .await
    .map_err(|_| RunError::Timeout {
        url: cluster_url.clone(),
        seconds,
    })?
    .map_err(|source| RunError::Unreachable {
        url: cluster_url.clone(),
        source,
    })?;
    info!(
        served = ?first.served.iter().map(|k| k.kind()).collect::<Vec<_>>(),
        prometheuses = first.prometheuses.len(),
        existing_dcgm_exporter = ?first.existing_dcgm_exporter,
        "discovered the cluster"
    );
    let without_secrets = settings.config.policy.without_secrets;
    let mut first = first;
    if without_secrets {
        first.served.remove(&ChildKind::Secret);
    }
    let served = first.served.clone();
    let discovered = Arc::new(RwLock::new(first));
    probes.ready.store(true, Ordering::Release);

    let lease = match &settings.leader {
        Some(lease_settings) => {
            let lock = LeaseLock::new(client.clone(), lease_settings);
            let name = format!("{}/{}", lease_settings.namespace, lease_settings.name);
            if !acquire(&lock, &name, shutdown.clone()).await? {
                return Ok(());
            }
            Some((lock, name))
        }
        None => None,
    };
    let (lost_tx, mut lost_rx) = watch::channel(false);
    if let Some((lock, _)) = &lease {
        tokio::spawn(keep_leading(lock.clone(), lost_tx));
    }

    let caches = Arc::new(Caches::new());
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            settings.config.clone(),
            discovered.clone(),
            metrics,
            system_clock(),
        )
        .with_caches(caches.clone()),
    );
    if !without_secrets {
        // Credentials of the health check come from watches of the referenced Secrets.
        ctx.watch_secrets();
    }
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let scopes = scopes(&settings.config.namespaces);

    // The controllers first (their stores map pod events to resources), run only once the
    // caches they read are filled.
    let mut senders = HashMap::new();
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    for scope in &scopes {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(scope.clone(), tx);
        let (store, controller) = controller(client.clone(), scope.clone(), rx, changed_rx.clone());
        stores.push(store);
        controllers.push((scope.clone(), controller));
    }
    caches.set_resources(stores.clone());
    let (trigger_tx, trigger_rx) = mpsc::unbounded_channel();
    ctx.set_trigger(trigger_tx);
    tokio::spawn(dispatch(trigger_rx, senders));

    let watches = Arc::new(Watches {
        client: client.clone(),
        scopes: scopes.clone(),
        caches: caches.clone(),
        ctx: ctx.clone(),
        resources: stores.clone(),
        changed: changed_tx.clone(),
        running: Mutex::new(BTreeMap::new()),
        prometheus_started: AtomicBool::new(false),
        without_secrets,
    });
    watches.start_pods();
    if settings.config.namespaces.is_empty() {
        watches.start_namespaces();
    }
    for kind in &served {
        watches.start_children(*kind);
    }
    if served.contains(&ChildKind::PodMonitor) {
        watches.start_prometheuses();
    }
    if let Some(consumers) = served_consumers(&client).await {
        watches.follow_consumers(&consumers);
    }
    tokio::select! {
        _ = wait_for_caches(&caches, &served) => info!("caches filled; reconciling"),
        _ = wait_for(shutdown.clone()) => {
            watches.stop_all();
            return Ok(());
        }
    }
    let definitions = tokio::spawn(watch_definitions(
        watches.clone(),
        discovered.clone(),
        settings.discovery_interval,
    ));
    watches.keep("customresourcedefinitions", vec![definitions]);

    let runs: Vec<_> = controllers
        .into_iter()
        .map(|(scope, controller)| run_controller(scope, controller, ctx.clone(), shutdown.clone()))
        .collect();
    let ready_stores = stores.clone();
    let shared_caches = caches.clone();
    let shared = tokio::spawn(shared::run(
        ctx.clone(),
        SHARED_TICK,
        async move {
            for store in &ready_stores {
                let _ = store.wait_until_ready().await;
            }
        },
        move || shared_caches.resources(),
    ));
    let health_loop = health_loop::run(
        ctx.clone(),
        health_loop::prometheus_backends(),
        HEALTH_TICK,
        move || {
            stores
                .iter()
                .flat_map(|s| s.state())
                .map(|r| watched_key(&r))
                .collect()
        },
    );
    let watched = probes.clone();
    let health = tokio::spawn(async move {
        // The loop contains each cycle's panics itself; should it still end, /readyz says so.
        let outcome = AssertUnwindSafe(health_loop).catch_unwind().await;
        watched.health_loop_stopped.store(true, Ordering::Release);
        if outcome.is_err() {
            error!("the health loop stopped after a panic; health checks no longer run");
        }
    });
    let controllers = futures::future::join_all(runs);
    let lost = async {
        let _ = lost_rx.wait_for(|lost| *lost).await;
    };
    let outcome = tokio::select! {
        _ = controllers => Ok(()),
        _ = lost => Err(RunError::LostLeadership(lease.as_ref().map(|(_, n)| n.clone()).unwrap_or_default())),
    };
    health.abort();
    watches.stop_all();
    shared.abort();
    if let Some((lock, name)) = &lease
        && outcome.is_ok()
    {
        match lock.release().await {
            Ok(()) => info!(lease = %name, "released the leader Lease"),
            Err(err) => warn!(lease = %name, error = %err, "cannot release the leader Lease"),
        }
    }
    outcome
}

fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    }
}

/// Waits until the pods and every served kind are cached.
async fn wait_for_caches(caches: &Caches, served: &BTreeSet<ChildKind>) {
    let mut waited = Duration::ZERO;
    loop {
        let watched = caches.watched_kinds();
        if caches.pods_cached() && served.iter().all(|k| watched.contains(k)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
        if waited.as_secs() > 0 && waited.as_millis().is_multiple_of(30_000) {
            warn!(
                "still waiting for the first list of pods and generated objects; check the operator's RBAC"
            );
        }
    }
}

/// Forwards `(namespace, name)` reconcile requests to the controller of that scope.
async fn dispatch(
    mut requests: mpsc::UnboundedReceiver<(String, String)>,
    senders: HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<Watched>>>,
) {
    while let Some((namespace, name)) = requests.recv().await {
        let sender = senders
            .get(&Some(namespace.clone()))
            .or_else(|| senders.get(&None));
        if let Some(sender) = sender {
            let _ = sender.send(ObjectRef::new(&name).within(&namespace));
        }
    }
}

/// The watches that fill the caches, started per kind (kinds whose CRD appears later are
/// started then) and stopped with the operator.
struct Watches {
    client: Client,
    scopes: Vec<Option<String>>,
    caches: Arc<Caches>,
    ctx: Arc<Context>,
    resources: Vec<Store<Watched>>,
    changed: watch::Sender<u64>,
    running: Mutex<BTreeMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    prometheus_started: AtomicBool,
    /// The policy's `without_secrets`: Secrets are never a served kind, so nothing watches them.
    without_secrets: bool,
}

impl Watches {
    fn dynamic_api(&self, scope: &Option<String>, kind: ChildKind) -> Api<DynamicObject> {
        match scope {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &kind.api_resource()),
            None => Api::all_with(self.client.clone(), &kind.api_resource()),
        }
    }

    fn keep(&self, name: &str, handles: Vec<tokio::task::JoinHandle<()>>) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), handles);
    }

    fn stop(&self, name: &str) {
        let removed = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        for handle in removed.into_iter().flatten() {
            handle.abort();
        }
    }

    fn stop_all(&self) {
        let all = std::mem::take(&mut *self.running.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in all.into_values().flatten() {
            handle.abort();
        }
    }

    fn reconcile_all(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// The resources `matches` picks, reconciled.
    fn reconcile_where(&self, matches: impl Fn(&InferenceMonitoring) -> bool) {
        for store in &self.resources {
            for watched in store.state() {
                if let Ok(resource) = &watched.0
                    && matches(resource)
                {
                    self.ctx.reconcile_soon(
                        &resource.namespace().unwrap_or_default(),
                        &resource.name_any(),
                    );
                }
            }
        }
    }

    /// Children of `kind` (label `app.kubernetes.io/managed-by=infmon`), compacted; a change
    /// after the first list reconciles the owner, so someone else's edit is reverted.
    /// The kinds only the shared exporter uses are watched in its namespace only: no resource
    /// owns them, and the operator's rights on them end there.
    fn start_children(self: &Arc<Self>, kind: ChildKind) {
        let resource = kind.api_resource();
        let mut stores = Vec::new();
        let mut handles = Vec::new();
        let scopes = if kind.exporter_only() {
            vec![Some(self.ctx.config.gpu_exporter.namespace.clone())]
        } else {
            self.scopes.clone()
        };
        for scope in &scopes {
            let api = self.dynamic_api(scope, kind);
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            stores.push(store.clone());
            let me = self.clone();
            let before = store.clone();
            // A change of content (not of status or bookkeeping) or a deletion reconciles
            // the owner; a change of the shared exporter's readiness (the status counts its
            // DaemonSet keeps), every resource that wants it.
            let stream = watcher::watcher(api, watcher::Config::default().labels(MANAGED_BY))
                .default_backoff()
                .modify(move |o| compact_child_of(kind, o))
                .inspect_ok(move |event| {
                    let changed = match event {
                        watcher::Event::Apply(o) => before
                            .get(&ObjectRef::from_obj_with(o, kind.api_resource()))
                            .is_none_or(|old| {
                                old.metadata.annotations != o.metadata.annotations
                                    || old.data != o.data
                            }),
                        watcher::Event::Delete(_) => true,
                        _ => false,
                    };
                    if changed && let watcher::Event::Apply(o) | watcher::Event::Delete(o) = event {
                        match owner_of(o) {
                            Some((namespace, name)) => me.ctx.reconcile_soon(&namespace, &name),
                            None if kind == ChildKind::DaemonSet => {
                                me.reconcile_where(|r| r.spec.gpu.dcgm_exporter.enabled)
                            }
                            None => {}
                        }
                    }
                })
                .reflect(writer);
            handles.push(tokio::spawn(drain(stream, kind.plural())));
        }
        self.keep(kind.plural(), handles);
        let caches = self.caches.clone();
        tokio::spawn(async move {
            for store in &stores {
                if store.wait_until_ready().await.is_err() {
                    return;
                }
            }
            caches.set_children(kind, stores);
        });
    }

    /// Pods, stripped to what engine detection reads; a change of those fields reconciles
    /// the `engine: auto` resources that select the pod.
    fn start_pods(self: &Arc<Self>) {
        let mut stores = Vec::new();
        let mut handles = Vec::new();
        for scope in &self.scopes {
            let api: Api<Pod> = match scope {
                Some(ns) => Api::namespaced(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            };
            let (store, writer) = reflector::store();
            stores.push(store.clone());
            let me = self.clone();
            let before = store.clone();
            let stream = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .map_ok(cache_pod_event)
                .inspect_ok(move |event| {
                    if let watcher::Event::Apply(pod) | watcher::Event::Delete(pod) = event {
                        let old = before.get(&ObjectRef::from_obj(pod));
                        let same = matches!(event, watcher::Event::Apply(_))
                            && old.is_some_and(|old| old.metadata == pod.metadata);
                        if !same {
                            let namespace = pod.namespace().unwrap_or_default();
                            let labels = pod.labels().clone();
                            // A DCGM exporter's pod (infmon's or another) concerns every
                            // resource that wants GPU telemetry.
                            let exporter = is_exporter_pod(&labels) || is_known_exporter(&labels);
                            me.reconcile_where(|r| {
                                (r.spec.engine == Engine::Auto
                                    && selects_pod(r, &namespace, &labels))
                                    || (exporter && r.spec.gpu.dcgm_exporter.enabled)
                            });
                        }
                    }
                })
                .reflect(writer);
            handles.push(tokio::spawn(drain(stream, "pods")));
        }
        self.keep("pods", handles);
        let caches = self.caches.clone();
        tokio::spawn(async move {
            for store in &stores {
                if store.wait_until_ready().await.is_err() {
                    return;
                }
            }
            caches.set_pods(stores);
        });
    }

    /// `Prometheus` objects, stripped to their selectors; a change after the first list
    /// reconciles every resource.
    fn start_prometheuses(self: &Arc<Self>) {
        if self.prometheus_started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.watch_consumers(
            "prometheuses",
            prometheus_resource(),
            strip_prometheus,
            |c, s| c.set_prometheuses(s),
        );
    }

    /// Starts watching the consumers of monitors in `served` (`PrometheusAgent`s and the
    /// other known kinds, stripped to what selection reads) not watched yet, and stops those
    /// no longer served; a change after the first list reconciles every resource.
    fn follow_consumers(self: &Arc<Self>, served: &[Consumer]) {
        for consumer in std::iter::once(PROMETHEUS_AGENT).chain(OTHER_CONSUMERS) {
            let running = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(consumer.plural);
            match (served.contains(&consumer), running) {
                (true, false) => {
                    self.watch_consumers(
                        consumer.plural,
                        consumer.resource(),
                        move |o| strip_consumer(&consumer, o),
                        move |c, s| c.set_consumers(&consumer, s),
                    );
                }
                (false, true) => {
                    self.stop(consumer.plural);
                    self.caches.remove_consumers(&consumer);
                }
                _ => {}
            }
        }
    }

    /// Watches every object of `resource` cluster-wide as `strip` leaves it; `ready` hands the
    /// store to the caches once listed. After the first list, an object that appears, goes or
    /// changes what `strip` keeps reconciles every resource.
    fn watch_consumers(
        self: &Arc<Self>,
        name: &str,
        resource: ApiResource,
        strip: impl Fn(&mut DynamicObject) + Send + 'static,
        ready: impl FnOnce(&Caches, Store<DynamicObject>) + Send + 'static,
    ) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let before = store.clone();
        let me = self.clone();
        let listed = AtomicBool::new(false);
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(strip)
            .inspect_ok(move |event| {
                let changed = match event {
                    watcher::Event::InitDone => listed.swap(true, Ordering::AcqRel),
                    watcher::Event::Apply(o) => before
                        .get(&ObjectRef::from_obj_with(o, resource.clone()))
                        .is_none_or(|old| *old != *o),
                    watcher::Event::Delete(_) => true,
                    _ => false,
                };
                if changed && listed.load(Ordering::Acquire) {
                    me.reconcile_all();
                }
            })
            .reflect(writer);
        let what = format!("{name} (consumers of monitors)");
        self.keep(
            name,
            vec![tokio::spawn(async move { drain(stream, &what).await })],
        );
        let caches = self.caches.clone();
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                ready(&caches, store);
            }
        });
    }

    /// Namespace metadata (labels for Prometheus namespace selectors); a label change
    /// reconciles the resources of that namespace.
    fn start_namespaces(self: &Arc<Self>) {
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(self.client.clone());
        let (store, writer) = reflector::store();
        let before = store.clone();
        let me = self.clone();
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|ns: &mut PartialObjectMeta<Namespace>| {
                // Only the name and the labels are read.
                let meta = std::mem::take(&mut ns.metadata);
                ns.metadata.name = meta.name;
                ns.metadata.labels = meta.labels;
            })
            .inspect_ok(move |event| {
                if let watcher::Event::Apply(ns) = event {
                    let old = before.get(&ObjectRef::from_obj(ns));
                    if old.is_some_and(|old| old.metadata.labels != ns.metadata.labels) {
                        let name = ns.name_any();
                        me.reconcile_where(|r| r.namespace().as_deref() == Some(name.as_str()));
                    }
                }
            })
            .reflect(writer);
        self.keep(
            "namespaces",
            vec![tokio::spawn(drain(stream, "namespaces"))],
        );
        let caches = self.caches.clone();
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                caches.set_namespaces(store);
            }
        });
    }

    /// Starts the watches of kinds newly served and stops those of kinds no longer served;
    /// `discovered.served` follows once their caches are filled, and every resource is
    /// reconciled.
    async fn follow(
        self: &Arc<Self>,
        discovered: &RwLock<Discovered>,
        mut now: BTreeSet<ChildKind>,
    ) {
        if self.without_secrets {
            now.remove(&ChildKind::Secret);
        }
        let before = discovered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .served
            .clone();
        if before == now {
            return;
        }
        for kind in now.difference(&before) {
            info!(
                kind = kind.kind(),
                "a generated kind is now served; watching it"
            );
            self.start_children(*kind);
        }
        for kind in before.difference(&now) {
            info!(kind = kind.kind(), "a generated kind is no longer served");
            self.stop(kind.plural());
            self.caches.remove_children(*kind);
        }
        if now.contains(&ChildKind::PodMonitor) {
            self.start_prometheuses();
        }
        wait_for_caches(&self.caches, &now).await;
        discovered.write().unwrap_or_else(|p| p.into_inner()).served = now;
        self.reconcile_all();
    }
}

/// A pod watch event as the pod cache stores it ([`cached_pod`]).
fn cache_pod_event(event: watcher::Event<Pod>) -> watcher::Event<PartialObjectMeta<Pod>> {
    match event {
        watcher::Event::Apply(pod) => watcher::Event::Apply(cached_pod(pod)),
        watcher::Event::Delete(pod) => watcher::Event::Delete(cached_pod(pod)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(pod) => watcher::Event::InitApply(cached_pod(pod)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Key of a child's owner: the controller owner reference when there is one (same
/// namespace), else the owner labels.
fn owner_of(object: &DynamicObject) -> Option<(String, String)> {
    let meta = &object.metadata;
    if let Some(reference) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == InferenceMonitoring::kind(&()))
    {
        return Some((meta.namespace.clone()?, reference.name.clone()));
    }
    let labels = meta.labels.as_ref()?;
    Some((
        labels.get(OWNER_NAMESPACE_LABEL)?.clone(),
        labels.get(OWNER_NAME_LABEL)?.clone(),
    ))
}

/// Watches CustomResourceDefinitions (metadata only): when one appears, changes or goes, the
/// served kinds are read again and their watches follow. Without access to CRDs, the served
/// kinds are read every `fallback` instead.
async fn watch_definitions(
    watches: Arc<Watches>,
    discovered: Arc<RwLock<Discovered>>,
    fallback: Duration,
) {
    let api: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(watches.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = false;
    let mut failing = false;
    loop {
        let event = if failing {
            match tokio::time::timeout(fallback, events.next()).await {
                Ok(event) => event,
                Err(_) => {
                    rediscover(&watches, &discovered).await;
                    continue;
                }
            }
        } else {
            events.next().await
        };
        match event {
            None => return,
            Some(Ok(watcher::Event::InitDone)) => {
                failing = false;
                if listed {
                    rediscover(&watches, &discovered).await;
                }
                listed = true;
            }
            Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) if listed => {
                failing = false;
                rediscover(&watches, &discovered).await;
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                if !failing {
                    warn!(error = %err, "cannot watch CustomResourceDefinitions; reading the served APIs periodically instead");
                }
                failing = true;
            }
        }
    }
}

/// Discovers the cluster again (served kinds, consumers of monitors, exporters): the other
/// facts are taken as they are, the served kinds through [`Watches::follow`].
async fn rediscover(watches: &Arc<Watches>, discovered: &RwLock<Discovered>) {
    let scope: Vec<String> = watches.scopes.iter().flatten().cloned().collect();
    match discovery::discover(&watches.client, &scope, &watches.ctx.config.gpu_exporter).await {
        Ok(facts) => {
            {
                let mut current = discovered.write().unwrap_or_else(|p| p.into_inner());
                current.prometheuses = facts.prometheuses;
                current.other_consumers = facts.other_consumers;
                current.existing_dcgm_exporter = facts.existing_dcgm_exporter;
            }
            if let Some(consumers) = served_consumers(&watches.client).await {
                watches.follow_consumers(&consumers);
            }
            watches.follow(discovered, facts.served).await;
        }
        Err(err) => {
            warn!(error = %err, "cannot discover the cluster again; keeping the last facts")
        }
    }
}

/// The consumers of monitors the cluster serves, or `None` (the watches stay as they are)
/// when that cannot be read.
async fn served_consumers(client: &Client) -> Option<Vec<Consumer>> {
    discovery::served_consumers(client)
        .await
        .inspect_err(|err| {
            warn!(error = %err, "cannot read which consumers of monitors the cluster serves; watching what was found before");
        })
        .ok()
}

/// Waits until this replica leads (true) or shutdown was asked for (false).
async fn acquire(
    lock: &LeaseLock,
    name: &str,
    mut shutdown: watch::Receiver<bool>,
) -> Result<bool, RunError> {
    loop {
        match lock.try_acquire_or_renew(Timestamp::now()).await {
            Ok(true) => {
                info!(lease = %name, "became the leader");
                return Ok(true);
            }
            Ok(false) => info!(lease = %name, "another replica leads; waiting"),
            Err(kube::Error::Api(status)) if status.is_forbidden() => {
                return Err(RunError::Lease {
                    lease: name.to_string(),
                    source: kube::Error::Api(status),
                });
            }
            Err(err) => warn!(lease = %name, error = %err, "leader election round failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(lock.renew_period()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(false),
        }
    }
}

/// Renews the Lease every renew period; reports loss when a round is lost or renewals fail
/// for longer than the Lease is valid.
async fn keep_leading(lock: LeaseLock, lost: watch::Sender<bool>) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lock.renew_period()).await;
        match lock.try_acquire_or_renew(Timestamp::now()).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => break,
            Err(err) => {
                warn!(error = %err, "cannot renew the leader Lease");
                if last_renewal.elapsed() >= lock.renew_period() * 3 {
                    break;
                }
            }
        }
    }
    let _ = lost.send(true);
}

/// How long a resource whose reconcile panicked waits before it is tried again (a change to
/// it tries at once).
const AFTER_PANIC: Duration = Duration::from_secs(300);

/// [`reconcile`], with a panic while handling one resource turned into a logged failure for
/// that resource only.
pub async fn reconcile_contained(guard: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = watched_key(&guard);
    match AssertUnwindSafe(reconcile(guard, ctx)).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            error!(resource = %key, "reconcile panicked; other resources are not affected, this one is retried in 5 minutes or when it changes");
            Ok(Action::requeue(AFTER_PANIC))
        }
    }
}

/// Builds the controller of one scope: reconcile requests come from its own watch, from
/// `requests` (children, pods, the health loop) and from `changed` (every resource).
fn controller(
    client: Client,
    scope: Option<String>,
    requests: mpsc::UnboundedReceiver<ObjectRef<Watched>>,
    changed: watch::Receiver<u64>,
) -> (Store<Watched>, Controller<Watched>) {
    let resources: Api<Watched> = match &scope {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let requests = futures::stream::unfold(requests, |mut rx| async move {
        let next = rx.recv().await?;
        Some((next, rx))
    });
    let triggers = futures::stream::unfold(changed, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let writer = reflector::store::Writer::<Watched>::default();
    let store = writer.as_reader();
    let stream = watcher::watcher(resources, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(trim_resource)
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(stream, store)
        .with_config(
            controller::Config::default()
                .debounce(Duration::from_millis(500))
                .concurrency(RECONCILE_CONCURRENCY),
        )
        .reconcile_on(requests)
        .reconcile_all_on(triggers);
    (controller.store(), controller)
}

/// Runs one scope's controller until shutdown.
fn run_controller(
    scope: Option<String>,
    controller: Controller<Watched>,
    ctx: Arc<Context>,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> {
    controller
        .graceful_shutdown_on(wait_for(shutdown))
        .run(reconcile_contained, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                warn!(error = %err, "controller event");
            }
        })
        .map(move |()| {
            info!(
                scope = scope.as_deref().unwrap_or("all namespaces"),
                "controller stopped"
            );
        })
}
