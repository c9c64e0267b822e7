//! Lease-based leader election against a scripted API server: every round's requests and
//! bodies are asserted.

use infmon_devkit::mock_api;

use std::time::Duration;

use infmon::controller::leader::{LeaseLock, LeaseSettings};
use k8s_openapi::jiff::Timestamp;
use mock_api::{Exchange, Expect, serve};
use serde_json::{Value, json};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/infmon/leases/infmon-leader";

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: "infmon".into(),
        name: "infmon-leader".into(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn lease(holder: Option<&str>, renewed: &str, transitions: i32) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "infmon-leader", "namespace": "infmon", "resourceVersion": "42"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": "2023-11-14T22:00:00.000000Z", "renewTime": renewed, "leaseTransitions": transitions}})
}

async fn round(identity: &str, now: i64, script: Vec<Exchange>) -> bool {
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let lock = LeaseLock::new(client, &settings(identity));
    let leads = lock.try_acquire_or_renew(at(now)).await.unwrap();
    server.await.unwrap();
    leads
}

#[tokio::test]
async fn the_first_candidate_creates_the_lease() {
    let script = vec![
        Exchange::fail("GET", LEASE, 404, "NotFound"),
        Exchange::echo(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/infmon/leases?",
            Expect::Body(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "infmon-leader"},
                "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                         "acquireTime": "2023-11-14T22:13:20.000000Z", "renewTime": "2023-11-14T22:13:20.000000Z"},
            })),
        ),
    ];
    assert!(round("a", 1_700_000_000, script).await);
}

#[tokio::test]
async fn a_valid_lease_held_by_another_replica_is_left_alone() {
    // Renewed 5 s ago with a 15 s duration: still valid, so no write at all.
    let script = vec![Exchange::new(
        "GET",
        LEASE,
        lease(Some("b"), "2023-11-14T22:13:15.000000Z", 3),
    )];
    assert!(!round("a", 1_700_000_000, script).await);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_its_resource_version() {
    let script = vec![
        Exchange::new(
            "GET",
            LEASE,
            lease(Some("b"), "2023-11-14T22:13:00.000000Z", 3),
        ),
        Exchange::echo(
            "PUT",
            format!("{LEASE}?"),
            Expect::Check(Box::new(|body| {
                assert_eq!(body["metadata"]["resourceVersion"], "42");
                assert_eq!(body["spec"]["holderIdentity"], "a");
                assert_eq!(body["spec"]["leaseTransitions"], 4);
                assert_eq!(body["spec"]["acquireTime"], "2023-11-14T22:13:20.000000Z");
            })),
        ),
    ];
    assert!(round("a", 1_700_000_000, script).await);
}

#[tokio::test]
async fn the_holder_renews_without_a_transition() {
    let script = vec![
        Exchange::new(
            "GET",
            LEASE,
            lease(Some("a"), "2023-11-14T22:13:15.000000Z", 3),
        ),
        Exchange::echo(
            "PUT",
            format!("{LEASE}?"),
            Expect::Check(Box::new(|body| {
                assert_eq!(body["spec"]["leaseTransitions"], 3);
                assert_eq!(body["spec"]["acquireTime"], "2023-11-14T22:00:00.000000Z");
                assert_eq!(body["spec"]["renewTime"], "2023-11-14T22:13:20.000000Z");
            })),
        ),
    ];
    assert!(round("a", 1_700_000_000, script).await);
}

#[tokio::test]
async fn losing_the_write_race_means_not_leading() {
    let script = vec![
        Exchange::new("GET", LEASE, lease(None, "2023-11-14T22:13:00.000000Z", 3)),
        Exchange::fail("PUT", format!("{LEASE}?"), 409, "Conflict"),
    ];
    assert!(!round("a", 1_700_000_000, script).await);
}

#[tokio::test]
async fn release_clears_the_holder() {
    let script = vec![
        Exchange::new(
            "GET",
            LEASE,
            lease(Some("a"), "2023-11-14T22:13:15.000000Z", 3),
        ),
        Exchange::echo(
            "PUT",
            format!("{LEASE}?"),
            Expect::Check(Box::new(|body| {
                assert!(body["spec"].get("holderIdentity").is_none(), "{body}");
                assert_eq!(body["metadata"]["resourceVersion"], "42");
            })),
        ),
    ];
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    LeaseLock::new(client, &settings("a"))
        .release()
        .await
        .unwrap();
    server.await.unwrap();
}
