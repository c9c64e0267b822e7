//! `/healthz` (the process runs), `/readyz` (discovery has run and the health loop still runs;
//! leadership does not matter, so a standby replica is ready) and `/metrics` (the Prometheus
//! text format).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct Probes {
    /// Set once the first discovery has completed.
    pub ready: AtomicBool,
    /// Set when the health loop ended (it should run as long as the process).
    pub health_loop_stopped: AtomicBool,
    /// The metrics to serve.
    pub metrics: Arc<Metrics>,
}

/// The probe routes: `/healthz` and `/readyz`.
pub fn probe_routes(probes: Arc<Probes>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(probes)
}

/// The metrics route: `/metrics`.
pub fn metrics_routes(probes: Arc<Probes>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(probes)
}

async fn readyz(State(probes): State<Arc<Probes>>) -> impl IntoResponse {
    if probes.health_loop_stopped.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the health loop stopped; health checks no longer run",
        )
    } else if probes.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster discovery has not completed",
        )
    }
}

async fn metrics(State(probes): State<Arc<Probes>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probes.metrics.encode(),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn readiness_follows_discovery_and_metrics_are_served() {
        let probes = Arc::new(Probes::default());
        probes.metrics.reconciles.inc();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = probe_routes(probes.clone()).merge(metrics_routes(probes.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, async {
            let _ = stopped.await;
        }));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        probes.ready.store(true, Ordering::Release);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        probes.health_loop_stopped.store(true, Ordering::Release);
        let dead = get(addr, "/readyz").await;
        assert!(dead.starts_with("HTTP/1.1 503"), "{dead}");
        assert!(dead.contains("health loop stopped"), "{dead}");
        probes.health_loop_stopped.store(false, Ordering::Release);
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("infmon_reconciles_total 1"), "{metrics}");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
