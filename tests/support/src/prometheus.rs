//! A real Prometheus server (Debian 2.42) on 127.0.0.1 for the duration of a test.
//!
//! Each instance gets a free loopback port and its own temp directory holding
//! `prometheus.yml`, the TSDB (`data/`), the server log (`prometheus.log`) and any file
//! written with [`write_file`](Prometheus::write_file) (file_sd target lists, rule files).
//! The process is killed on drop.
//!
//! Prometheus 2.42 takes ~5.5 s before a new target is first scraped and shows as `up`
//! (a target-sync throttle without a flag): poll with [`Prometheus::wait_until`] or
//! [`Prometheus::wait_for_target`], never sleep and assert.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;
use super::tools::{Tool, require};

/// How long to wait for `/-/ready` after start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A generous bound for a new target to be scraped (~5.5 s in practice) or for a target to
/// change health: use it with [`Prometheus::wait_until`].
pub const TARGET_TIMEOUT: Duration = Duration::from_secs(20);
/// A polling period for [`Prometheus::wait_until`].
pub const POLL: Duration = Duration::from_millis(250);

pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// The temp directory of a Prometheus that is not started yet: write the files its config
/// refers to, then [`start`](PrometheusBuilder::start) it.
pub struct PrometheusBuilder {
    dir: tempfile::TempDir,
}

impl PrometheusBuilder {
    /// The directory the server will run in; files written here can be referenced from the
    /// config by absolute path.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `dir()/name` (creating subdirectories) and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        write_into(self.dir.path(), name, contents)
    }

    /// Writes `config_yaml` as `prometheus.yml` and starts the server; returns once it is
    /// ready. Panics with the server log if it exits or is not ready within
    /// [`READY_TIMEOUT`].
    pub fn start(self, config_yaml: &str) -> Prometheus {
        let config = write_into(self.dir.path(), "prometheus.yml", config_yaml);
        let binary = require(Tool::Prometheus);
        let mut prometheus = Prometheus {
            child: None,
            port: 0,
            dir: self.dir,
        };
        for attempt in 1.. {
            prometheus.port = free_port();
            let log = File::create(prometheus.dir().join("prometheus.log"))
                .expect("create prometheus.log");
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    prometheus.dir().join("data").display()
                ))
                .arg(format!(
                    "--web.listen-address=127.0.0.1:{}",
                    prometheus.port
                ))
                .arg("--web.enable-lifecycle")
                .current_dir(prometheus.dir())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
            prometheus.child = Some(child);
            if let Err(reason) = prometheus.wait_ready() {
                prometheus.stop();
                let log = prometheus.log();
                // Another process may take the port between probing it and binding it.
                if attempt < 3 && log.contains("address already in use") {
                    continue;
                }
                panic!(
                    "Prometheus did not become ready: {reason}\nconfig:\n{config_yaml}\nlog:\n{log}"
                );
            }
            break;
        }
        prometheus
    }
}

impl Prometheus {
    /// A temp directory for a server to be started with [`PrometheusBuilder::start`].
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder {
            dir: tempfile::Builder::new()
                .prefix("infmon-prometheus-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// Starts a server with this config.
    pub fn start(config_yaml: &str) -> Prometheus {
        Self::builder().start(config_yaml)
    }

    /// Starts a server whose config is built from its (already created) directory, e.g. to
    /// point `file_sd_configs` at `dir.join("targets.json")`. Files the config needs at
    /// start-up can be written into `dir` by the closure.
    pub fn start_with(config: impl FnOnce(&Path) -> String) -> Prometheus {
        let builder = Self::builder();
        let config_yaml = config(builder.dir());
        builder.start(&config_yaml)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (config, data, log, written files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `dir()/name` (creating subdirectories) and returns its path.
    /// file_sd files are re-read on change; rule files need [`reload`](Self::reload).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        write_into(self.dir.path(), name, contents)
    }

    /// The server's stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Replaces `prometheus.yml` and reloads it. Panics if the reload is rejected.
    pub fn set_config(&self, config_yaml: &str) {
        self.write_file("prometheus.yml", config_yaml);
        self.reload();
    }

    /// `POST /-/reload`. Panics if the server rejects its config.
    pub fn reload(&self) {
        let response = http::post(&format!("{}/-/reload", self.url()), "")
            .unwrap_or_else(|err| panic!("reload request failed: {err}"));
        assert_eq!(
            response.status,
            200,
            "Prometheus rejected the reload: {}\nlog:\n{}",
            response.body,
            self.log()
        );
    }

    /// `GET /api/v1/<path>` (path may include a query string); returns `data`. Panics on a
    /// transport error or a non-success API status.
    pub fn api(&self, path_and_query: &str) -> Value {
        let url = format!("{}/api/v1/{}", self.url(), path_and_query);
        let response = http::get(&url).unwrap_or_else(|err| panic!("GET {url} failed: {err}"));
        let json = response.json();
        assert_eq!(
            json["status"], "success",
            "GET {url} returned HTTP {}: {json}",
            response.status
        );
        json["data"].clone()
    }

    /// An instant query; returns `data.result` (for vector results, an array of
    /// `{metric: {...}, value: [time, "value"]}`).
    pub fn query(&self, promql: &str) -> Value {
        self.api(&format!("query?query={}", http::encode(promql)))["result"].clone()
    }

    /// The numeric values of an instant vector query, each with its labels.
    pub fn query_values(&self, promql: &str) -> Vec<(Value, f64)> {
        self.query(promql)
            .as_array()
            .map(|samples| {
                samples
                    .iter()
                    .map(|s| {
                        let value = s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN);
                        (s["metric"].clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `/api/v1/targets` `data`: `{activeTargets: [...], droppedTargets: [...]}`.
    pub fn targets(&self) -> Value {
        self.api("targets")
    }

    /// The active targets (each with `scrapeUrl`, `health`, `lastError`, `labels`, ...).
    pub fn active_targets(&self) -> Vec<Value> {
        self.targets()["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The active target with this `scrapeUrl`, if any.
    pub fn target(&self, scrape_url: &str) -> Option<Value> {
        self.active_targets()
            .into_iter()
            .find(|t| t["scrapeUrl"] == scrape_url)
    }

    /// Waits until the target with this `scrapeUrl` has `health` (`"up"`, `"down"` or
    /// `"unknown"`) and returns it. Panics with all targets after [`TARGET_TIMEOUT`].
    pub fn wait_for_target(&self, scrape_url: &str, health: &str) -> Value {
        let mut found = None;
        let ok = self.wait_until(TARGET_TIMEOUT, POLL, |p| {
            found = p.target(scrape_url).filter(|t| t["health"] == health);
            found.is_some()
        });
        assert!(
            ok,
            "target {scrape_url} not {health} within {TARGET_TIMEOUT:?}; targets: {:#}",
            self.targets()
        );
        found.expect("found when ok")
    }

    /// `/api/v1/rules` `data`.
    pub fn rules(&self) -> Value {
        self.api("rules")
    }

    /// `/api/v1/alerts` `data.alerts`.
    pub fn alerts(&self) -> Value {
        self.api("alerts")["alerts"].clone()
    }

    /// Calls `condition` every `poll` until it returns true or `timeout` passes; returns
    /// whether it did. Assert on the result.
    pub fn wait_until(
        &self,
        timeout: Duration,
        poll: Duration,
        mut condition: impl FnMut(&Prometheus) -> bool,
    ) -> bool {
        super::wait_until(timeout, poll, || condition(self))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the server (its port then refuses connections). The directory stays until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("the process exited with {status}"));
            }
            if let Ok(response) = http::get(&url)
                && response.status == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("no 200 from {url} within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn write_into(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dirs");
    }
    // Write then rename, so a file_sd watcher never sees a half-written file.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).unwrap_or_else(|err| panic!("write {}: {err}", tmp.display()));
    std::fs::rename(&tmp, &path).expect("rename into place");
    path
}
