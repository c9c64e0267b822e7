//! Names and labels of children: deterministic, within Kubernetes' limits, and carrying the
//! owner so the controller can find and prune what a resource no longer wants.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::validate::Validated;

/// Label with the owning resource's namespace (label values cannot hold `/`).
pub const OWNER_NAMESPACE_LABEL: &str = "monitoring.inference.dev/owner-namespace";
/// Label with the owning resource's name.
pub const OWNER_NAME_LABEL: &str = "monitoring.inference.dev/owner-name";
/// Value of `app.kubernetes.io/managed-by` and `app.kubernetes.io/name` on every child.
pub const MANAGER: &str = "infmon";

const MAX_NAME: usize = 63;

/// The first `bytes` bytes of the SHA-256 of `text`, in hex: stable short identifiers and
/// change-detection hashes.
pub fn hex_sha256(text: &str, bytes: usize) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An 8-hex-digit hash, for name and uid suffixes.
pub fn short_hash(text: &str) -> String {
    hex_sha256(text, 4)
}

/// `<owner>-<suffix>`, shortened to 63 characters with a stable hash when needed. Every child
/// name is a DNS-1035 label (what Services need, and valid for every other kind): an owner name
/// that is not one (`1vllm`, `a.b`) gets its invalid characters replaced, an `x` in front when
/// it starts with a digit, and a hash of the original so two owners never share a name.
pub fn child_name(owner: &str, suffix: &str) -> String {
    let full = if suffix.is_empty() {
        owner.to_string()
    } else {
        format!("{owner}-{suffix}")
    };
    if is_dns_1035_label(&full) {
        return full;
    }
    let mut clean: String = full
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
        clean.insert(0, 'x');
    }
    let hash = short_hash(&full);
    let keep = MAX_NAME - hash.len() - 1;
    let head: String = clean.chars().take(keep).collect();
    format!("{}-{hash}", head.trim_end_matches('-'))
}

fn is_dns_1035_label(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `text` within 63 bytes: kept when it fits, else its head (cut on a character boundary) and
/// a stable hash.
fn fit(text: &str) -> String {
    if text.len() <= MAX_NAME {
        return text.to_string();
    }
    let hash = short_hash(text);
    let mut keep = MAX_NAME - hash.len() - 1;
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let head = text[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// A label value: at most 63 characters, shortened with a stable hash when needed.
pub fn label_value(text: &str) -> String {
    fit(text)
}

/// The standard `app.kubernetes.io/*` labels plus the owner labels.
pub fn standard_labels(resource: &Validated, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), MANAGER.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            label_value(&resource.name),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
        (
            OWNER_NAMESPACE_LABEL.to_string(),
            resource.namespace.clone(),
        ),
        (OWNER_NAME_LABEL.to_string(), label_value(&resource.name)),
    ])
}

/// The label selector that finds every child of a resource (for pruning).
pub fn owner_selector(namespace: &str, name: &str) -> String {
    format!(
        "app.kubernetes.io/managed-by={MANAGER},{OWNER_NAMESPACE_LABEL}={namespace},{OWNER_NAME_LABEL}={}",
        label_value(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(child_name("vllm", "podmonitor"), "vllm-podmonitor");
        assert_eq!(child_name("vllm", ""), "vllm");
    }

    #[test]
    fn long_names_are_shortened_deterministically_and_stay_distinct() {
        let owner = "a".repeat(60);
        let a = child_name(&owner, "dashboard-vllm");
        let b = child_name(&owner, "dashboard-overview");
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert_eq!(a, child_name(&owner, "dashboard-vllm"));
        assert!(!a.contains("--"));
    }

    #[test]
    fn every_owner_name_gives_a_service_name() {
        for owner in [
            "1vllm",
            "a.b",
            "x".repeat(253).as_str(),
            "a.b.c-".repeat(40).as_str(),
        ] {
            let name = child_name(owner, "dcgm-exporter");
            assert!(is_dns_1035_label(&name), "{owner}: {name}");
        }
        assert_ne!(child_name("a.b", ""), child_name("a-b", ""));
        assert_eq!(child_name("a-b", ""), "a-b");
    }

    #[test]
    fn long_non_ascii_text_is_cut_on_a_character_boundary() {
        let value = label_value(&"é".repeat(40));
        assert!(value.len() <= 63, "{value}");
    }

    #[test]
    fn selector_matches_the_labels() {
        assert_eq!(
            owner_selector("llm", "vllm"),
            "app.kubernetes.io/managed-by=infmon,monitoring.inference.dev/owner-namespace=llm,monitoring.inference.dev/owner-name=vllm"
        );
    }
}
