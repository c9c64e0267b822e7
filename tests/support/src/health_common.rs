//! Helpers shared by the health and `infmon check` tests: resources from YAML, a
//! prometheus.yml rendered from them by infmon itself, metric pages, and a loopback proxy in
//! front of Prometheus that counts requests and may demand credentials, a header, a path
//! prefix or (over TLS) a client certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use infmon::health::HealthTarget;
use infmon::render::scrape::{prometheus_scrape_configs, prometheus_yml};
use infmon::validate::{ClusterFacts, Validated, resolve, validate_document};

use crate::http;

/// A static-targets resource scraped every second.
pub fn resource_yaml(name: &str, engine: &str, addresses: &[String]) -> String {
    let targets: Vec<String> = addresses.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "apiVersion: monitoring.inference.dev/v1alpha1\n\
         kind: InferenceMonitoring\n\
         metadata: {{name: {name}, namespace: demo}}\n\
         spec:\n  engine: {engine}\n  staticTargets: [{}]\n  endpoint: {{interval: 1s, scrapeTimeout: 1s}}\n",
        targets.join(", ")
    )
}

/// Resolves a resource the way `infmon check` does.
pub fn validated(yaml: &str) -> Validated {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("YAML");
    let resource = validate_document(&value).expect("valid resource");
    resolve(&resource, &ClusterFacts::assumed_offline()).expect("resolves")
}

/// The health check's view of a resource.
pub fn health_target(yaml: &str) -> HealthTarget {
    HealthTarget::from_validated(&validated(yaml), None)
}

/// The prometheus.yml `infmon render --format prometheus` produces for these resources,
/// with a 1 s global interval so the test Prometheus reacts quickly.
pub fn prometheus_config(resources: &[&str]) -> String {
    let jobs = resources
        .iter()
        .flat_map(|yaml| prometheus_scrape_configs(&validated(yaml)).expect("renders"))
        .collect();
    let mut config = prometheus_yml(jobs);
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    serde_yaml::to_string(&config).expect("YAML")
}

/// A vLLM page (the core metric `vllm:num_requests_running` included).
pub fn vllm_page(tick: u64) -> String {
    format!(
        "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} 3\n\
         # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} 1\n\
         # HELP vllm:generation_tokens_total Number of generation tokens processed.\n\
         # TYPE vllm:generation_tokens_total counter\n\
         vllm:generation_tokens_total{{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {}\n",
        100 * (tick + 1)
    )
}

/// A TGI page (core metric `tgi_request_count`).
pub fn tgi_page(tick: u64) -> String {
    format!(
        "# HELP tgi_request_count Total number of requests.\n\
         # TYPE tgi_request_count counter\n\
         tgi_request_count {}\n\
         # HELP tgi_queue_size Current queue size.\n\
         # TYPE tgi_queue_size gauge\n\
         tgi_queue_size 2\n",
        10 * (tick + 1)
    )
}

/// A loopback HTTP proxy in front of a Prometheus.
pub struct Proxy {
    addr: SocketAddr,
    prefix: String,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    /// Forwards `GET <prefix><path>` to `upstream<path>`; with `authorization` (e.g.
    /// `Bearer <token>`), answers 401 to requests without exactly that header.
    pub fn start(upstream: &str, prefix: &str, authorization: Option<&str>) -> Proxy {
        Self::requiring(
            upstream,
            prefix,
            authorization.map(|value| ("authorization", value)),
        )
    }

    /// Forwards like [`Proxy::start`]; with `header` (name, value), answers 401 to requests
    /// without exactly that header, as Grafana Mimir does without `X-Scope-OrgID`.
    pub fn requiring(upstream: &str, prefix: &str, header: Option<(&str, &str)>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let upstream = upstream.to_string();
        let prefix_owned = prefix.to_string();
        let token = header.map(|(name, value)| (name.to_string(), value.to_string()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let (upstream, prefix, token) =
                    (upstream.clone(), prefix_owned.clone(), token.clone());
                std::thread::spawn(move || serve(stream, &upstream, &prefix, token.as_ref()));
            }
        });
        Proxy {
            addr,
            prefix: prefix.to_string(),
            requests,
        }
    }

    /// The base URL to give infmon (with the prefix).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    /// Requests received so far (each arrives on its own connection: responses close it).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// PEM certificates and keys for a mutual-TLS test: a CA made for the test, a server
/// certificate for `127.0.0.1` and a client certificate, both signed by it.
pub struct TestPki {
    /// The CA certificate.
    pub ca_pem: String,
    /// The client certificate.
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

impl TestPki {
    /// A fresh CA and certificates (nothing is read from or written to disk).
    pub fn generate() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "infmon test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).expect("signed certificate");
            (cert, key)
        };
        let (server, server_key) = leaf("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = leaf("infmon", ExtendedKeyUsagePurpose::ClientAuth);
        TestPki {
            ca_pem: ca.pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            server_cert: server.der().clone(),
            server_key: server_key.serialize_der(),
            ca_der: ca.der().clone(),
        }
    }
}

/// A loopback HTTPS proxy in front of a Prometheus that completes the TLS handshake only
/// with a client certificate signed by the test CA.
pub struct MutualTlsProxy {
    addr: SocketAddr,
}

impl MutualTlsProxy {
    /// Serves the certificate of `pki` and forwards every request to `upstream`.
    pub fn start(upstream: &str, pki: &TestPki) -> MutualTlsProxy {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use rustls::server::WebPkiClientVerifier;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pki.ca_der.clone())
            .expect("CA into the trust store");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![pki.server_cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
            )
            .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS proxy");
        let addr = listener.local_addr().expect("TLS proxy address");
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, upstream) = (Arc::clone(&config), upstream.clone());
                std::thread::spawn(move || {
                    let Ok(connection) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    // A handshake without a valid client certificate fails inside `serve`'s
                    // first read; the client sees the TLS alert.
                    serve(
                        rustls::StreamOwned::new(connection, stream),
                        &upstream,
                        "",
                        None,
                    );
                });
            }
        });
        MutualTlsProxy { addr }
    }

    /// The base URL to give infmon.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn serve(
    mut stream: impl Read + Write,
    upstream: &str,
    prefix: &str,
    required: Option<&(String, String)>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let header = |wanted: &str| {
        head.lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.trim().to_string())
    };
    let rejected = required.is_some_and(|(name, value)| header(name).as_deref() != Some(value));
    let (status, content_type, body) = if rejected {
        (401, "text/plain".to_string(), "unauthorized\n".to_string())
    } else if let Some(path) = target.strip_prefix(prefix).filter(|p| p.starts_with('/')) {
        match http::get(&format!("{upstream}{path}")) {
            Ok(response) => (
                response.status,
                response
                    .header("content-type")
                    .unwrap_or("text/plain")
                    .to_string(),
                response.body,
            ),
            Err(err) => (
                502,
                "text/plain".to_string(),
                format!("bad gateway: {err}\n"),
            ),
        }
    } else {
        (
            404,
            "text/plain".to_string(),
            "404 page not found\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}
