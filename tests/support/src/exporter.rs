//! A fake metrics endpoint on 127.0.0.1 for Prometheus to scrape.
//!
//! Each request to the path gets a fresh body from a closure that receives the scrape count,
//! so counters can advance between scrapes. Every response carries `Connection: close`, and
//! each connection is handled on its own thread, so concurrent scrapes and probes are safe.
//! `stop()` (or drop) closes the listening socket: afterwards connections are refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The Prometheus text exposition format content type.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

type BodyFn = dyn Fn(u64) -> String + Send + Sync;

struct Shared {
    path: String,
    content_type: String,
    delay: Duration,
    not_found: AtomicBool,
    scrapes: AtomicU64,
    stopping: AtomicBool,
    body: Box<BodyFn>,
}

pub struct Exporter {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// Options for [`Exporter`]; start with [`Exporter::builder`].
pub struct ExporterBuilder {
    path: String,
    content_type: String,
    not_found: bool,
    port: u16,
    delay: Duration,
}

impl ExporterBuilder {
    /// The path served (default `/metrics`); any other path answers 404.
    pub fn path(mut self, path: &str) -> Self {
        assert!(path.starts_with('/'), "path must start with '/': {path}");
        self.path = path.to_string();
        self
    }

    /// Answer 404 on the path too, as if the endpoint did not exist (see also
    /// [`Exporter::set_not_found`]).
    pub fn not_found(mut self) -> Self {
        self.not_found = true;
        self
    }

    /// Listen on this loopback port instead of a free one (e.g. to come back on the port of
    /// a stopped exporter). Panics at start if it is taken.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The `Content-Type` of metric responses (default [`TEXT_FORMAT`]).
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = content_type.to_string();
        self
    }

    /// Wait this long before answering each metrics request (to exceed a scrape timeout).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Starts serving. `body(n)` produces the response for the n-th request to the path,
    /// counting from 0.
    pub fn start(self, body: impl Fn(u64) -> String + Send + Sync + 'static) -> Exporter {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|err| panic!("exporter cannot bind 127.0.0.1:{}: {err}", self.port));
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            path: self.path,
            content_type: self.content_type,
            delay: self.delay,
            not_found: AtomicBool::new(self.not_found),
            scrapes: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            body: Box::new(body),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(format!("exporter-{}", addr.port()))
            .spawn(move || {
                for connection in listener.incoming() {
                    if accept_shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = connection else { continue };
                    let shared = Arc::clone(&accept_shared);
                    std::thread::spawn(move || handle(stream, &shared));
                }
                // The listener drops here: the port refuses connections from now on.
            })
            .expect("spawn exporter thread");
        Exporter {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }
}

impl Exporter {
    /// Serves `GET /metrics` with `body(scrape count)` on a free loopback port.
    pub fn start(body: impl Fn(u64) -> String + Send + Sync + 'static) -> Exporter {
        Self::builder().start(body)
    }

    pub fn builder() -> ExporterBuilder {
        ExporterBuilder {
            path: "/metrics".into(),
            content_type: TEXT_FORMAT.into(),
            not_found: false,
            port: 0,
            delay: Duration::ZERO,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`, the form a Prometheus target takes.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The served path, e.g. `/metrics`.
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// `http://127.0.0.1:<port><path>`, as Prometheus reports it as `scrapeUrl`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.path)
    }

    /// How many requests the path has answered with metrics so far.
    pub fn scrapes(&self) -> u64 {
        self.shared.scrapes.load(Ordering::SeqCst)
    }

    /// Switches between answering 404 and serving metrics on the path.
    pub fn set_not_found(&self, not_found: bool) {
        self.shared.not_found.store(not_found, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.acceptor.is_none()
    }

    /// Closes the listening socket; returns once connections to the port are refused.
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            // Wake the blocking accept() so the thread sees the flag and drops the listener.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            acceptor.join().expect("exporter thread panicked");
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&request);
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();

    let (status, content_type, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        )
    } else if path != shared.path || shared.not_found.load(Ordering::SeqCst) {
        (
            "404 Not Found",
            "text/plain",
            "404 page not found\n".to_string(),
        )
    } else {
        if !shared.delay.is_zero() {
            std::thread::sleep(shared.delay);
        }
        let count = shared.scrapes.fetch_add(1, Ordering::SeqCst);
        ("200 OK", shared.content_type.as_str(), (shared.body)(count))
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
