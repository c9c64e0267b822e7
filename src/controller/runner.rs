//! `infmon run`: wires discovery, leader election, the controllers, the health loop and the
//! HTTP endpoints together, and shuts them down in order.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use super::context::{Config, Context, system_clock};
use super::leader::{LeaseLock, LeaseSettings};
use super::metrics::Metrics;
use super::server::{self, Probes};
use super::watches::selects_pod;
use super::{Error, error_policy, reconcile};
use super::{health_loop, shared};
use crate::api::InferenceMonitoring;
use crate::discovery::{self, Discovered, prometheus_resource};
use crate::render::ChildKind;

/// How often the health loop looks for resources whose check is due (each resource is
/// checked at its own interval).
const HEALTH_TICK: Duration = Duration::from_secs(5);

/// How often the shared objects are recomputed from every resource besides after each
/// reconcile (catches resources deleted while the operator was down).
const SHARED_TICK: Duration = Duration::from_secs(60);

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
        discovery::discover(&client, &settings.config.namespaces),
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
    let watch_prometheus = first.serves(ChildKind::PodMonitor);
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

    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.config.clone(),
        discovered.clone(),
        metrics,
        system_clock(),
    ));
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let refresh = Arc::new(Notify::new());
    tokio::spawn(rediscover(
        client.clone(),
        settings.config.namespaces.clone(),
        without_secrets,
        discovered,
        settings.discovery_interval,
        refresh.clone(),
        changed_tx,
    ));
    if watch_prometheus {
        tokio::spawn(watch_prometheuses(client.clone(), refresh));
    }

    let scopes: Vec<Option<String>> = if settings.config.namespaces.is_empty() {
        vec![None]
    } else {
        settings
            .config
            .namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    let (stores, runs): (Vec<Store<Guarded>>, Vec<_>) = scopes
        .into_iter()
        .map(|scope| {
            controller(
                client.clone(),
                scope,
                &served,
                ctx.clone(),
                changed_rx.clone(),
                shutdown.clone(),
            )
        })
        .unzip();
    let shared_stores = stores.clone();
    let ready_stores = stores.clone();
    let shared = tokio::spawn(shared::run(
        ctx.clone(),
        SHARED_TICK,
        async move {
            for store in &ready_stores {
                let _ = store.wait_until_ready().await;
            }
        },
        move || {
            shared_stores
                .iter()
                .flat_map(|s| decoded(&s.state()))
                .collect()
        },
    ));
    let health_loop = health_loop::run(
        ctx.clone(),
        health_loop::prometheus_backends(),
        HEALTH_TICK,
        move || stores.iter().flat_map(|s| decoded(&s.state())).collect(),
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

/// Re-reads the cluster facts every `interval` (or when a `Prometheus` changed) and bumps
/// `changed` when they differ, which reconciles every resource. Without Secrets (the policy's
/// `without_secrets`) Secrets are never counted as a served kind, so nothing lists them.
async fn rediscover(
    client: Client,
    scope: Vec<String>,
    without_secrets: bool,
    discovered: Arc<RwLock<Discovered>>,
    interval: Duration,
    refresh: Arc<Notify>,
    changed: watch::Sender<u64>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = refresh.notified() => {}
        }
        match discovery::discover(&client, &scope).await {
            Ok(mut facts) => {
                if without_secrets {
                    facts.served.remove(&ChildKind::Secret);
                }
                let mut current = discovered.write().unwrap_or_else(|p| p.into_inner());
                if *current != facts {
                    if current.served != facts.served {
                        info!(
                            "the served APIs changed; restart the operator to watch children of new kinds"
                        );
                    }
                    info!("cluster facts changed; reconciling every resource");
                    *current = facts;
                    changed.send_modify(|n| *n += 1);
                }
            }
            Err(err) => warn!(error = %err, "cluster discovery failed; keeping the last facts"),
        }
    }
}

/// Pokes the discovery loop whenever a `Prometheus` resource changes.
async fn watch_prometheuses(client: Client, refresh: Arc<Notify>) {
    let api: Api<DynamicObject> = Api::all_with(client, &prometheus_resource());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut initialized = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitDone) => initialized = true,
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) if initialized => {
                refresh.notify_one()
            }
            Ok(_) => {}
            Err(err) => warn!(error = %err, "watching Prometheus resources failed"),
        }
    }
}

/// A resource as the controller watches it: decoded, or kept aside (with its metadata and the
/// decoding error) so that one stored object that does not match the types cannot stop the
/// list, and with it every other resource's reconciles.
pub type Guarded = DeserializeGuard<InferenceMonitoring>;

/// The decoded resources of a store snapshot.
fn decoded(state: &[Arc<Guarded>]) -> Vec<Arc<InferenceMonitoring>> {
    state
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok().cloned().map(Arc::new))
        .collect()
}

/// How long a resource whose reconcile panicked waits before it is tried again (a change to
/// it tries at once).
const AFTER_PANIC: Duration = Duration::from_secs(300);

/// Reconciles a decoded resource; reports and skips one that cannot be decoded; turns a panic
/// while handling one resource into a logged failure for that resource only.
pub async fn reconcile_guarded(guard: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action, Error> {
    let obj = match &guard.0 {
        Ok(obj) => Arc::new(obj.clone()),
        Err(invalid) => {
            warn!(
                resource = %format!("{}/{}", invalid.metadata.namespace.as_deref().unwrap_or_default(), invalid.metadata.name.as_deref().unwrap_or_default()),
                error = %invalid.error,
                "skipping a resource that does not match the InferenceMonitoring schema; fix or delete it"
            );
            return Ok(Action::await_change());
        }
    };
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    match AssertUnwindSafe(reconcile(obj, ctx)).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            error!(resource = %key, "reconcile panicked; other resources are not affected, this one is retried in 5 minutes or when it changes");
            Ok(Action::requeue(AFTER_PANIC))
        }
    }
}

fn error_policy_guarded(guard: Arc<Guarded>, err: &Error, ctx: Arc<Context>) -> Action {
    match &guard.0 {
        Ok(obj) => error_policy(Arc::new(obj.clone()), err, ctx),
        Err(_) => Action::await_change(),
    }
}

/// Builds the controller of one scope; returns its store (for the health loop) and the
/// future that runs it until shutdown.
fn controller(
    client: Client,
    scope: Option<String>,
    served: &std::collections::BTreeSet<ChildKind>,
    ctx: Arc<Context>,
    changed: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
) -> (Store<Guarded>, impl Future<Output = ()>) {
    let resources: Api<Guarded> = match &scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut controller = Controller::new(resources, watcher::Config::default().any_semantic())
        .with_config(controller::Config::default().debounce(Duration::from_millis(500)));
    // The exporter's DaemonSet and Service belong to no resource (and may only be read in the
    // exporter's namespace): nothing to watch for a reconcile.
    for kind in served.iter().filter(|k| !k.exporter_only()) {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = match &scope {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        controller = controller.owns_with(
            api,
            resource,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=infmon"),
        );
    }
    let store = controller.store();
    let health_store = store.clone();
    let pods: Api<Pod> = match &scope {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let triggers = futures::stream::unfold(changed, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let running = controller
        .watches(pods, watcher::Config::default(), move |pod: Pod| {
            let namespace = pod.namespace().unwrap_or_default();
            let labels = pod.labels().clone();
            store
                .state()
                .into_iter()
                .filter(|g| {
                    g.0.as_ref()
                        .is_ok_and(|r| selects_pod(r, &namespace, &labels))
                })
                .map(|g| ObjectRef::from_obj(&*g))
                .collect::<Vec<_>>()
        })
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(wait_for(shutdown))
        .run(reconcile_guarded, error_policy_guarded, ctx)
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
        });
    (health_store, running)
}
