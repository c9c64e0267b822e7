//! The real [`MetricsBackend`]: a Prometheus-compatible HTTP API (Prometheus, Thanos Query,
//! Mimir, VictoriaMetrics), reached at a base URL that may carry a path prefix, with optional
//! bearer-token or basic authentication, extra headers (a tenant's `X-Scope-OrgID`), a custom
//! CA and a client certificate.
//!
//! Errors never carry what the server sent (its error messages, pages or bodies): a status
//! code, an error type and our own words only, so an address chosen in a resource cannot be
//! read through the operator's status, Events or logs.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_http_query::reqwest::{self, StatusCode, header};
use prometheus_http_query::{Client, Error as PromError};
use serde::Deserialize;

use super::backend::{BackendError, MetricsBackend, Sample, ScrapeHealth, Target};

/// How long one request may take before the check reports the backend unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A secret value (token, password). Its `Debug` output never shows the value, so it cannot
/// leak into logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value; surrounding whitespace (a trailing newline in a file or Secret
    /// key) is removed.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().trim().to_string())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Basic-auth credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
}

/// Credentials for the query API, already read from Secrets or files by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Sent as `Authorization: Basic ...` (ignored when a bearer token is set).
    pub basic_auth: Option<BasicCredentials>,
    /// PEM-encoded CA certificate(s) trusted in addition to the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A PEM client certificate (with its chain) and its private key, for mutual TLS.
    pub client_cert: Option<ClientCertificate>,
    /// Extra headers sent with every request (name, value), e.g. `X-Scope-OrgID`.
    pub headers: Vec<(String, Secret)>,
}

/// A client certificate for mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// PEM certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM private key of the leaf certificate.
    pub key_pem: Secret,
}

/// A Prometheus-compatible query API.
#[derive(Clone)]
pub struct PrometheusBackend {
    client: Client,
    url: String,
}

impl fmt::Debug for PrometheusBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusBackend")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PrometheusBackend {
    /// A backend for the API at `url` (e.g. `http://prometheus:9090`,
    /// `http://mimir/prometheus`). Proxy environment variables are ignored: the API is
    /// asked directly.
    pub fn new(
        url: &str,
        credentials: &Credentials,
        timeout: Duration,
    ) -> Result<Self, BackendError> {
        let url = url.trim_end_matches('/').to_string();
        let mut headers = header::HeaderMap::new();
        let authorization = match (&credentials.bearer_token, &credentials.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose())),
            (None, Some(basic)) => Some(format!(
                "Basic {}",
                base64(format!("{}:{}", basic.username, basic.password.expose()).as_bytes())
            )),
            (None, None) => None,
        };
        if let Some(value) = authorization {
            let mut value = header::HeaderValue::from_str(&value).map_err(|_| {
                BackendError::Config(
                    "the credentials contain characters not allowed in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        for (name, value) in &credentials.headers {
            let header_name = header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                BackendError::Config(format!("{name:?} is not an HTTP header name"))
            })?;
            // The value may be a credential: never repeated in the error.
            let mut value = header::HeaderValue::from_str(value.expose()).map_err(|_| {
                BackendError::Config(format!(
                    "the value of header {name} contains characters not allowed in an HTTP header"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header_name, value);
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .default_headers(headers);
        if let Some(pem) = &credentials.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|err| BackendError::Config(format!("invalid CA certificate: {err}")))?;
            builder = builder.tls_certs_merge(certificates);
        }
        if let Some(client) = &credentials.client_cert {
            let pem = format!("{}\n{}\n", client.cert_pem, client.key_pem.expose());
            // The parser's message is not repeated: it could quote the key.
            let identity = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
                BackendError::Config(
                    "invalid client certificate or key (expected PEM certificate and PEM private key)"
                        .into(),
                )
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|err| BackendError::Config(format!("cannot build the HTTP client: {err}")))?;
        let client = Client::from(http, &url)
            .map_err(|err| BackendError::Config(format!("invalid URL {url:?}: {err}")))?;
        Ok(Self { client, url })
    }

    /// The base URL asked.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn run_query(&self, promql: &str) -> Result<Vec<Sample>, BackendError> {
        let result = self
            .client
            .query(promql)
            .get()
            .await
            .map_err(|err| self.map_error(promql, err))?;
        let vector = result.data().as_vector().ok_or_else(|| BackendError::Api {
            url: self.url.clone(),
            what: format!("query {promql:?}"),
            reason: "the result is not an instant vector".into(),
        })?;
        Ok(vector
            .iter()
            .map(|item| Sample {
                labels: item
                    .metric()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                value: item.sample().value(),
            })
            .collect())
    }

    async fn fetch_targets(&self) -> Result<Option<Vec<Target>>, BackendError> {
        // Read leniently: Prometheus-compatible APIs omit fields the typed client requires
        // (`globalUrl`, `scrapeInterval`, ...), and some have no targets API at all.
        let response = self
            .client
            .inner()
            .get(format!("{}/api/v1/targets", self.url))
            .query(&[("state", "active")])
            .send()
            .await
            .map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            return Ok(None);
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.http_status(status));
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?;
        let Ok(envelope) = serde_json::from_slice::<TargetsEnvelope>(&body) else {
            // A web UI or a proxy page instead of the API: no targets API here.
            return Ok(None);
        };
        match (envelope.status.as_str(), envelope.data) {
            ("success", Some(data)) => Ok(Some(
                data.active_targets
                    .into_iter()
                    .map(|t| Target {
                        labels: t.labels,
                        scrape_url: t.scrape_url,
                        health: match t.health.as_str() {
                            "up" => ScrapeHealth::Up,
                            "down" => ScrapeHealth::Down,
                            _ => ScrapeHealth::Unknown,
                        },
                        last_error: one_short_line(&t.last_error),
                    })
                    .collect(),
            )),
            _ => Err(BackendError::Api {
                url: self.url.clone(),
                what: "the targets request".into(),
                reason: format!("HTTP {status} without a target list"),
            }),
        }
    }

    fn map_error(&self, promql: &str, err: PromError) -> BackendError {
        match err {
            // Only the error type, a fixed word: the message is the server's text.
            PromError::Prometheus(err) => BackendError::Api {
                url: self.url.clone(),
                what: format!("query {promql:?}"),
                reason: format!("error type {}", err.error_type()),
            },
            PromError::Client(err) => match err.inner() {
                Some(inner) => self.unreachable(inner),
                // The client's own fixed words (e.g. an unexpected media type).
                None => BackendError::Unreachable {
                    url: self.url.clone(),
                    reason: err.to_string(),
                },
            },
            other => BackendError::Unreachable {
                url: self.url.clone(),
                reason: other.to_string(),
            },
        }
    }

    fn unreachable(&self, err: &reqwest::Error) -> BackendError {
        if let Some(status) = err.status() {
            return self.http_status(status);
        }
        if err.is_decode() || err.is_body() {
            // A decoder's message can quote the body; the body is never repeated.
            return BackendError::Unreachable {
                url: self.url.clone(),
                reason: "the answer is not the Prometheus query API's JSON".into(),
            };
        }
        let mut reason = describe(err);
        if reason.to_ascii_lowercase().contains("certificate") {
            reason.push_str(
                " (check the CA and, where the API requires one, the client certificate and key)",
            );
        }
        BackendError::Unreachable {
            url: self.url.clone(),
            reason,
        }
    }

    fn http_status(&self, status: StatusCode) -> BackendError {
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                " (the API requires credentials, or rejected the ones given: check the bearer token, basic auth, headers such as a tenant's X-Scope-OrgID, and the client certificate)"
            }
            _ => "",
        };
        BackendError::Unreachable {
            url: self.url.clone(),
            reason: format!("HTTP {status}{hint}"),
        }
    }
}

/// What went wrong with a request, without the request URL (it carries the query): the
/// innermost cause, e.g. `Connection refused (os error 111)` or a TLS error.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "the request timed out".into();
    }
    let mut innermost = None;
    let mut cause = err.source();
    while let Some(current) = cause {
        innermost = Some(current);
        cause = current.source();
    }
    match (innermost, err.url()) {
        (Some(cause), _) => cause.to_string(),
        (None, Some(url)) => err.to_string().replace(&format!(" ({url})"), ""),
        (None, None) => err.to_string(),
    }
}

impl MetricsBackend for PrometheusBackend {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, BackendError>> {
        Box::pin(self.run_query(promql))
    }

    fn targets(&self) -> BoxFuture<'_, Result<Option<Vec<Target>>, BackendError>> {
        Box::pin(self.fetch_targets())
    }
}

#[derive(Deserialize)]
struct TargetsEnvelope {
    #[serde(default)]
    status: String,
    data: Option<TargetsData>,
}

#[derive(Deserialize)]
struct TargetsData {
    #[serde(default, rename = "activeTargets")]
    active_targets: Vec<RawTarget>,
}

#[derive(Deserialize)]
struct RawTarget {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "scrapeUrl")]
    scrape_url: String,
    #[serde(default)]
    health: String,
    #[serde(default, rename = "lastError")]
    last_error: String,
}

/// The longest scrape error kept from a targets answer.
const MAX_TARGET_ERROR: usize = 256;

/// A scrape error as status can carry it: its first line, at most [`MAX_TARGET_ERROR`] bytes.
fn one_short_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut end = line.len().min(MAX_TARGET_ERROR);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let credentials = Credentials {
            bearer_token: Some(Secret::new("tok-123\n")),
            basic_auth: Some(BasicCredentials {
                username: "admin".into(),
                password: Secret::new("hunter2"),
            }),
            ca_pem: None,
            client_cert: Some(ClientCertificate {
                cert_pem: "not a certificate".into(),
                key_pem: Secret::new("private-key-bytes"),
            }),
            headers: vec![("X-Api-Key".into(), Secret::new("key-456"))],
        };
        let debug = format!("{credentials:?}");
        for secret in ["tok-123", "hunter2", "private-key-bytes", "key-456"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("X-Api-Key"), "{debug}");
        assert!(debug.contains("admin"), "{debug}");
        let credentials = Credentials {
            client_cert: None,
            ..credentials
        };
        let backend =
            PrometheusBackend::new("http://127.0.0.1:9/prefix/", &credentials, DEFAULT_TIMEOUT)
                .unwrap();
        assert_eq!(backend.url(), "http://127.0.0.1:9/prefix");
        let debug = format!("{backend:?}");
        assert!(!debug.contains("tok-123"), "{debug}");
    }

    #[test]
    fn a_malformed_ca_is_a_configuration_error() {
        let credentials = Credentials {
            ca_pem: Some(
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
            ),
            ..Credentials::default()
        };
        let err = PrometheusBackend::new("http://127.0.0.1:9", &credentials, DEFAULT_TIMEOUT)
            .unwrap_err();
        assert!(matches!(err, BackendError::Config(_)), "{err}");
    }

    #[test]
    fn a_bad_header_or_client_key_is_a_configuration_error_without_the_value() {
        let credentials = Credentials {
            headers: vec![("X-Scope-OrgID".into(), Secret::new("team\u{7f}secret"))],
            ..Credentials::default()
        };
        let err = PrometheusBackend::new("http://127.0.0.1:9", &credentials, DEFAULT_TIMEOUT)
            .unwrap_err();
        assert!(matches!(err, BackendError::Config(_)), "{err}");
        assert!(err.to_string().contains("X-Scope-OrgID"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");

        let credentials = Credentials {
            client_cert: Some(ClientCertificate {
                cert_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".into(),
                key_pem: Secret::new(
                    "-----BEGIN PRIVATE KEY-----\nkey-material\n-----END PRIVATE KEY-----",
                ),
            }),
            ..Credentials::default()
        };
        let err = PrometheusBackend::new("https://127.0.0.1:9", &credentials, DEFAULT_TIMEOUT)
            .unwrap_err();
        assert!(matches!(err, BackendError::Config(_)), "{err}");
        assert!(!err.to_string().contains("key-material"), "{err}");
    }
}
