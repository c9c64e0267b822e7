//! The operator's policy: what a resource may ask for beyond its own namespace. It comes from
//! the operator's configuration (`infmon run` flags, Helm values), never from a resource, and
//! [`super::resolve`] rejects a resource that asks for more, naming the field and the setting
//! that forbids it. Offline (`infmon validate`, `render`, `check`) everything is allowed unless
//! flags say otherwise.

use std::collections::BTreeSet;

/// Values a policy setting allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Allowed {
    /// Any value (the offline default).
    #[default]
    Any,
    /// Only these values.
    Only(BTreeSet<String>),
}

impl Allowed {
    /// A list from flags or Helm values: `*` anywhere allows everything, otherwise only the
    /// listed values (empty entries are ignored, so an empty list allows nothing).
    pub fn from_list<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut only = BTreeSet::new();
        for item in items {
            let item = item.as_ref().trim();
            if item == "*" {
                return Allowed::Any;
            }
            if !item.is_empty() {
                only.insert(item.to_string());
            }
        }
        Allowed::Only(only)
    }

    /// Whether `value` is allowed.
    pub fn allows(&self, value: &str) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Only(values) => values.contains(value),
        }
    }

    /// The allowed values for a message: `any` or a comma-separated list (`none` when empty).
    pub fn describe(&self) -> String {
        match self {
            Allowed::Any => "any".into(),
            Allowed::Only(values) if values.is_empty() => "none".into(),
            Allowed::Only(values) => values.iter().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

/// The Prometheus URL form compared against the allowlist: without trailing slashes, so
/// `http://p:9090/` and `http://p:9090` are the same address.
pub fn normalize_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// What the operator's configuration allows resources to ask for. `Default` is the permissive
/// offline policy; the operator builds its own from flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Query URLs that `spec.prometheus.url` may name (compared without trailing slashes). The
    /// operator's own `--prometheus-url` is always allowed; credentials from
    /// `spec.prometheus.auth` are only ever sent to an allowed URL. Flag:
    /// `--allowed-prometheus-urls`.
    pub prometheus_urls: Allowed,
    /// Namespaces that `spec.dashboards.namespace` may name. The resource's own namespace is
    /// always allowed. Flag: `--dashboard-namespaces`.
    pub dashboard_namespaces: Allowed,
    /// The operator runs without access to Secrets (least privilege when nothing needs them):
    /// `spec.prometheus.output: rawScrapeConfig` (a Secret) and `spec.prometheus.auth` (read
    /// from Secrets) are refused. Flag: `--without-secrets`; Helm: `rbac.secrets: false`.
    pub without_secrets: bool,
}

impl Policy {
    /// Whether `spec.prometheus.url` may be `url`, given the operator's own URL.
    pub fn allows_prometheus_url(&self, url: &str, own: Option<&str>) -> bool {
        let url = normalize_url(url);
        own.is_some_and(|own| normalize_url(own) == url)
            || match &self.prometheus_urls {
                Allowed::Any => true,
                Allowed::Only(urls) => urls.iter().any(|allowed| normalize_url(allowed) == url),
            }
    }

    /// Whether dashboards of a resource in `own` may be written to `namespace`.
    pub fn allows_dashboard_namespace(&self, namespace: &str, own: &str) -> bool {
        namespace == own || self.dashboard_namespaces.allows(namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_allows_everything_and_an_empty_list_nothing() {
        assert_eq!(Allowed::from_list(["a", "*"]), Allowed::Any);
        let none = Allowed::from_list(Vec::<String>::new());
        assert!(!none.allows("a"));
        assert_eq!(none.describe(), "none");
        let some = Allowed::from_list([" b ", "", "a"]);
        assert!(some.allows("a") && some.allows("b") && !some.allows("c"));
        assert_eq!(some.describe(), "a, b");
    }

    #[test]
    fn the_operators_own_url_is_always_allowed_and_slashes_do_not_matter() {
        let policy = Policy {
            prometheus_urls: Allowed::from_list(["http://thanos:9090/"]),
            ..Policy::default()
        };
        assert!(policy.allows_prometheus_url("http://thanos:9090", None));
        assert!(policy.allows_prometheus_url("http://own:9090/", Some("http://own:9090")));
        assert!(!policy.allows_prometheus_url("http://169.254.169.254", Some("http://own:9090")));
        assert!(Policy::default().allows_prometheus_url("http://anything", None));
    }

    #[test]
    fn dashboards_may_always_stay_in_their_own_namespace() {
        let policy = Policy {
            dashboard_namespaces: Allowed::from_list(["monitoring"]),
            ..Policy::default()
        };
        assert!(policy.allows_dashboard_namespace("team-a", "team-a"));
        assert!(policy.allows_dashboard_namespace("monitoring", "team-a"));
        assert!(!policy.allows_dashboard_namespace("kube-system", "team-a"));
    }
}
