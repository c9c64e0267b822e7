//! DEMO STAND-IN FOR A GPU SERVER. Serves, on a loopback address, the Prometheus metrics
//! page an inference engine (vLLM, TGI, ... — any engine in the catalog) or NVIDIA's DCGM
//! exporter would serve, so `make demo` can show infmon end to end on a machine without
//! GPUs. The pages come from `infmon_devkit::fixtures` (generated from the engine catalog, counters
//! advancing on every scrape). It runs no model and must not be deployed.
//!
//! Usage: `infmon-demo-exporter ENGINE 127.0.0.1:PORT` where ENGINE is an engine name
//! (`vllm`, `tgi`, ...) or `dcgm`. Port 0 picks a free port; the address actually bound is
//! printed on standard output.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use infmon::api::Engine;
use infmon::engines::{self, EngineProfile};
use infmon_devkit::fixtures::{dcgm_page, engine_page};

/// The Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the stand-in pretends to be.
#[derive(Clone)]
enum Page {
    Engine(Box<EngineProfile>),
    Dcgm,
}

impl Page {
    fn render(&self, tick: u64) -> String {
        match self {
            Page::Engine(profile) => engine_page(profile, tick),
            Page::Dcgm => dcgm_page(&[("demo", "vllm-0"), ("demo", "vllm-1")], tick),
        }
    }
}

fn parse_args(args: &[String]) -> Result<(Page, SocketAddr), String> {
    let [kind, addr] = args else {
        return Err("usage: infmon-demo-exporter ENGINE|dcgm 127.0.0.1:PORT".into());
    };
    let page = if kind == "dcgm" {
        Page::Dcgm
    } else {
        let engine: Engine = kind.parse()?;
        Page::Engine(Box::new(
            engines::profile(engine).ok_or_else(|| format!("{kind} has no catalog entry"))?,
        ))
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|err| format!("invalid address {addr:?}: {err}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; the demo stand-in only listens on loopback"
        ));
    }
    Ok((page, addr))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (page, addr) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("infmon-demo-exporter: {err}");
            return ExitCode::from(2);
        }
    };
    let path = match &page {
        Page::Engine(profile) => profile.path,
        Page::Dcgm => "/metrics",
    };
    let ticks = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        path,
        get(move || {
            let tick = ticks.fetch_add(1, Ordering::SeqCst);
            let body = page.render(tick);
            async move { ([(CONTENT_TYPE, TEXT_FORMAT)], body) }
        }),
    );
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("infmon-demo-exporter: cannot listen on {addr}: {err}");
            return ExitCode::from(2);
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    println!("{addr}");
    eprintln!(
        "infmon-demo-exporter: demo stand-in for a GPU server ({}) on http://{addr}{path}",
        args[0]
    );
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("infmon-demo-exporter: {err}");
            ExitCode::from(1)
        }
    }
}
