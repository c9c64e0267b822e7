//! A scripted Kubernetes API server for controller tests: each expected request is checked
//! (method, path with query, body) in order and answered; an unexpected extra request fails
//! the scenario, a missing one times out.

use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

/// How a request body is checked.
pub enum Expect {
    /// No body check (GET, LIST).
    Any,
    /// The body must equal this JSON.
    Body(Value),
    /// The body is passed to this closure, which asserts on it.
    Check(Box<dyn Fn(&Value) + Send>),
}

/// One request/response pair.
pub struct Exchange {
    /// `GET`, `PATCH`, …
    pub method: &'static str,
    /// Path and query, exactly as the client sends them.
    pub uri: String,
    /// Body expectation.
    pub expect: Expect,
    /// Response status code.
    pub status: u16,
    /// Response body; `None` echoes the request body.
    pub reply: Option<Value>,
}

impl Exchange {
    /// A request answered with 200 and `reply`.
    pub fn new(method: &'static str, uri: impl Into<String>, reply: Value) -> Self {
        Self {
            method,
            uri: uri.into(),
            expect: Expect::Any,
            status: 200,
            reply: Some(reply),
        }
    }
    /// A write answered by echoing its body.
    pub fn echo(method: &'static str, uri: impl Into<String>, expect: Expect) -> Self {
        Self {
            method,
            uri: uri.into(),
            expect,
            status: 200,
            reply: None,
        }
    }
    /// Sets the expected body.
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
    /// A request answered with an API error.
    pub fn fail(method: &'static str, uri: impl Into<String>, code: u16, reason: &str) -> Self {
        Self {
            method,
            uri: uri.into(),
            expect: Expect::Any,
            status: code,
            reply: Some(status(code, reason)),
        }
    }
}

/// A `metav1.Status` failure body.
pub fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{reason} (from the mock API server)"), "reason": reason, "code": code})
}

/// A list response.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

/// A client talking to a fresh mock server.
pub fn client() -> (Client, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Percent-encodes a query value the way the client does (`form_urlencoded`).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes a percent-encoded query value (`+` is a space); an invalid escape stays as it is.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as it was received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
}

/// Answers `script` in order, then fails on any further request for a short while. Returns
/// every request seen.
pub async fn serve(
    mut handle: Handle<Request<Body>, Response<Body>>,
    script: Vec<Exchange>,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    for (i, exchange) in script.into_iter().enumerate() {
        let Ok(Some((request, send))) =
            tokio::time::timeout(Duration::from_secs(2), handle.next_request()).await
        else {
            panic!(
                "request #{i} never came: expected {} {}; seen so far: {seen:#?}",
                exchange.method, exchange.uri
            );
        };
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        seen.push(Seen {
            method: method.clone(),
            uri: uri.clone(),
        });
        assert_eq!(
            (method.as_str(), uri.as_str()),
            (exchange.method, exchange.uri.as_str()),
            "request #{i} differs; seen so far: {seen:#?}"
        );
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        match &exchange.expect {
            Expect::Any => {}
            Expect::Body(expected) => {
                pretty_assertions::assert_eq!(&body, expected, "body of request #{i} {uri}")
            }
            Expect::Check(check) => check(&body),
        }
        let reply = exchange.reply.unwrap_or(body);
        send.send_response(
            Response::builder()
                .status(exchange.status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
    }
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await
    {
        panic!(
            "unexpected request {} {} after the script; seen: {seen:#?}",
            request.method(),
            request.uri()
        );
    }
    seen
}

/// What a rule-driven API server ([`answer_by_rule`]) sends back.
pub enum Reply {
    /// A status code and a JSON body.
    Json(u16, Value),
    /// Watch events (one JSON object per line), then the end of the stream.
    Events(Vec<Value>),
    /// Nothing yet: the request stays open (an idle watch).
    Hold,
    /// The request stays open until this resolves, then is answered with its reply (a
    /// watch that delivers an event later).
    Later(std::pin::Pin<Box<dyn Future<Output = Reply> + Send>>),
}

/// The status and body of a reply; `None` for one that is never answered.
async fn resolve_reply(mut reply: Reply) -> Option<(u16, Vec<u8>)> {
    loop {
        return match reply {
            Reply::Json(code, value) => Some((code, serde_json::to_vec(&value).unwrap())),
            Reply::Events(events) => Some((
                200,
                events
                    .iter()
                    .map(|e| format!("{e}\n"))
                    .collect::<String>()
                    .into_bytes(),
            )),
            Reply::Hold => None,
            Reply::Later(later) => {
                reply = later.await;
                continue;
            }
        };
    }
}

/// A request as it was received, with its body.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

/// Every request a rule-driven server received, in order.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>;

/// Answers every request with `rule` (for scenarios with many resources and concurrent
/// watches, where a fixed order does not exist) and records it; the scenario asserts on the
/// log. Runs until the client is dropped.
pub fn answer_by_rule(
    mut handle: Handle<Request<Body>, Response<Body>>,
    rule: impl Fn(&Recorded) -> Reply + Send + 'static,
) -> Log {
    let log = Log::default();
    let keep = log.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let recorded = Recorded { method, uri, body };
            let reply = rule(&recorded);
            keep.lock().unwrap().push(recorded);
            if let Reply::Later(later) = reply {
                tokio::spawn(async move {
                    match resolve_reply(Reply::Later(later)).await {
                        Some((code, bytes)) => send.send_response(
                            Response::builder()
                                .status(code)
                                .body(Body::from(bytes))
                                .unwrap(),
                        ),
                        None => std::future::pending().await,
                    }
                });
                continue;
            }
            match resolve_reply(reply).await {
                Some((code, bytes)) => send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(bytes))
                        .unwrap(),
                ),
                None => held.push(send),
            }
        }
    });
    log
}
