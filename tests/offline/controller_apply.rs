//! Apply, prune, conflict and cleanup against a scripted API server, with hand-built
//! children (one in the resource's namespace, one in another), asserting every request.

use infmon_devkit::mock_api;

use std::collections::BTreeSet;

use infmon::api::ConditionReason;
use infmon::api::InferenceMonitoring;
use infmon::controller::Error;
use infmon::controller::apply::{self, FIELD_MANAGER, Outcome, Owner, prepare};
use infmon::render::{Child, ChildKind, object_meta, owner_selector};
use infmon::validate::{ClusterFacts, Validated, resolve};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use mock_api::{Exchange, Expect, encode, list, serve};
use serde_json::{Value, json};

fn validated() -> Validated {
    let resource: InferenceMonitoring = serde_json::from_value(json!({
        "apiVersion": "monitoring.inference.dev/v1alpha1",
        "kind": "InferenceMonitoring",
        "metadata": {"name": "llm", "namespace": "ai", "uid": "uid-1", "generation": 1},
        "spec": {"engine": "vllm", "selector": {"matchLabels": {"app": "vllm"}}},
    }))
    .unwrap();
    resolve(&resource, &ClusterFacts::assumed_offline()).unwrap()
}

fn owner() -> Owner {
    Owner {
        namespace: "ai".into(),
        name: "llm".into(),
        reference: Some(OwnerReference {
            api_version: "monitoring.inference.dev/v1alpha1".into(),
            kind: "InferenceMonitoring".into(),
            name: "llm".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }),
    }
}

/// A Secret in the resource's namespace and a ConfigMap in Grafana's.
fn children(secret_value: &str) -> Vec<Child> {
    let v = validated();
    let secret = Child::from_value(
        ChildKind::Secret,
        json!({"metadata": object_meta(&v, "ai", "llm-scrape".into(), "scrape-config"),
               "stringData": {"scrape.yaml": secret_value}}),
    );
    let dashboard = Child::from_value(
        ChildKind::ConfigMap,
        json!({"metadata": object_meta(&v, "grafana", "llm-dashboard".into(), "dashboard"),
               "data": {"llm.json": "{}"}}),
    );
    vec![secret, dashboard]
}

fn served() -> BTreeSet<ChildKind> {
    BTreeSet::from([ChildKind::Secret, ChildKind::ConfigMap])
}

fn list_uri(kind: ChildKind) -> String {
    let base = match kind.group() {
        "" => format!("/api/{}", kind.version()),
        group => format!("/apis/{group}/{}", kind.version()),
    };
    format!(
        "{base}/{}?&labelSelector={}",
        kind.plural(),
        encode(&owner_selector("ai", "llm"))
    )
}

fn object_uri(kind: ChildKind, namespace: &str, name: &str) -> String {
    let base = match kind.group() {
        "" => format!("/api/{}", kind.version()),
        group => format!("/apis/{group}/{}", kind.version()),
    };
    format!("{base}/namespaces/{namespace}/{}/{name}", kind.plural())
}

fn apply_uri(child: &Child) -> String {
    format!(
        "{}?&force=true&fieldManager={FIELD_MANAGER}",
        object_uri(child.kind, &child.namespace, &child.name)
    )
}

/// The live object as the API server returns it after an apply.
fn live(child: &Child, uid: &str) -> Value {
    let mut object = prepare(child, &owner());
    object["metadata"]["uid"] = json!(uid);
    object["metadata"]["resourceVersion"] = json!("7");
    object
}

async fn run(script: Vec<Exchange>, children: &[Child]) -> Outcome {
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let outcome = apply::sync(&client, &[], &owner(), children, &served()).await;
    server.await.unwrap();
    outcome
}

#[tokio::test]
async fn first_apply_creates_every_child_with_owner_reference_and_hash() {
    let children = children("v1");
    let [secret, dashboard] = [&children[0], &children[1]];
    let script = vec![
        Exchange::new("GET", list_uri(ChildKind::Secret), list("Secret", vec![])),
        Exchange::new(
            "GET",
            list_uri(ChildKind::ConfigMap),
            list("ConfigMap", vec![]),
        ),
        Exchange::fail(
            "GET",
            object_uri(ChildKind::Secret, "ai", "llm-scrape"),
            404,
            "NotFound",
        ),
        Exchange::echo(
            "PATCH",
            apply_uri(secret),
            Expect::Body(prepare(secret, &owner())),
        ),
        Exchange::fail(
            "GET",
            object_uri(ChildKind::ConfigMap, "grafana", "llm-dashboard"),
            404,
            "NotFound",
        ),
        Exchange::echo(
            "PATCH",
            apply_uri(dashboard),
            Expect::Body(prepare(dashboard, &owner())),
        ),
    ];
    let outcome = run(script, &children).await;
    assert_eq!(
        outcome.created,
        vec![
            (ChildKind::Secret, "Secret ai/llm-scrape".to_string()),
            (
                ChildKind::ConfigMap,
                "ConfigMap grafana/llm-dashboard".to_string()
            )
        ]
    );
    assert!(outcome.failures.is_empty() && outcome.conflicts.is_empty());
    assert_eq!(outcome.present.len(), 2);
    // Owner reference only where it can work: the same namespace.
    let body = prepare(secret, &owner());
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(body["metadata"]["ownerReferences"][0]["controller"], true);
    assert!(
        prepare(dashboard, &owner())["metadata"]
            .get("ownerReferences")
            .is_none()
    );
}

#[tokio::test]
async fn unchanged_children_cause_zero_writes() {
    let children = children("v1");
    let script = vec![
        Exchange::new(
            "GET",
            list_uri(ChildKind::Secret),
            list("Secret", vec![live(&children[0], "s-1")]),
        ),
        Exchange::new(
            "GET",
            list_uri(ChildKind::ConfigMap),
            list("ConfigMap", vec![live(&children[1], "c-1")]),
        ),
    ];
    let outcome = run(script, &children).await;
    assert_eq!(
        outcome.unchanged,
        ["Secret ai/llm-scrape", "ConfigMap grafana/llm-dashboard"]
    );
    assert!(outcome.created.is_empty() && outcome.updated.is_empty() && outcome.pruned.is_empty());
    assert_eq!(outcome.present.len(), 2);
}

#[tokio::test]
async fn a_spec_change_updates_what_changed_and_prunes_what_is_no_longer_wanted() {
    let old = children("v1");
    let new = vec![children("v2").remove(0)];
    let script = vec![
        Exchange::new(
            "GET",
            list_uri(ChildKind::Secret),
            list("Secret", vec![live(&old[0], "s-1")]),
        ),
        Exchange::new(
            "GET",
            list_uri(ChildKind::ConfigMap),
            list("ConfigMap", vec![live(&old[1], "c-1")]),
        ),
        Exchange::echo(
            "PATCH",
            apply_uri(&new[0]),
            Expect::Body(prepare(&new[0], &owner())),
        ),
        Exchange::new(
            "DELETE",
            format!(
                "{}?",
                object_uri(ChildKind::ConfigMap, "grafana", "llm-dashboard")
            ),
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .expecting(Expect::Body(json!({"preconditions": {"uid": "c-1"}}))),
    ];
    let outcome = run(script, &new).await;
    assert_eq!(
        outcome.updated,
        [(ChildKind::Secret, "Secret ai/llm-scrape".to_string())]
    );
    assert_eq!(
        outcome.pruned,
        [(
            ChildKind::ConfigMap,
            "ConfigMap grafana/llm-dashboard".to_string()
        )]
    );
    assert!(outcome.failures.is_empty());
}

#[tokio::test]
async fn an_object_infmon_does_not_own_is_left_untouched_and_reported() {
    let children = vec![children("v1").remove(0)];
    let users_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "llm-scrape", "namespace": "ai", "uid": "user-1", "labels": {"team": "a"}}});
    let script = vec![
        Exchange::new("GET", list_uri(ChildKind::Secret), list("Secret", vec![])),
        Exchange::new(
            "GET",
            list_uri(ChildKind::ConfigMap),
            list("ConfigMap", vec![]),
        ),
        Exchange::new(
            "GET",
            object_uri(ChildKind::Secret, "ai", "llm-scrape"),
            users_secret,
        ),
    ];
    let outcome = run(script, &children).await;
    assert_eq!(outcome.conflicts, ["Secret ai/llm-scrape"]);
    assert!(
        outcome.created.is_empty() && outcome.present.is_empty() && outcome.failures.is_empty()
    );
}

#[tokio::test]
async fn api_errors_are_collected_per_child_without_stopping_the_others() {
    let children = children("v1");
    for (code, reason, expected) in [
        (409, "Conflict", ConditionReason::Conflict),
        (500, "InternalError", ConditionReason::ApiError),
        (403, "Forbidden", ConditionReason::Forbidden),
    ] {
        let script = vec![
            Exchange::new("GET", list_uri(ChildKind::Secret), list("Secret", vec![])),
            Exchange::new(
                "GET",
                list_uri(ChildKind::ConfigMap),
                list("ConfigMap", vec![]),
            ),
            Exchange::fail(
                "GET",
                object_uri(ChildKind::Secret, "ai", "llm-scrape"),
                404,
                "NotFound",
            ),
            Exchange::fail("PATCH", apply_uri(&children[0]), code, reason),
            Exchange::fail(
                "GET",
                object_uri(ChildKind::ConfigMap, "grafana", "llm-dashboard"),
                404,
                "NotFound",
            ),
            Exchange::echo("PATCH", apply_uri(&children[1]), Expect::Any),
        ];
        let outcome = run(script, &children).await;
        assert_eq!(outcome.failures.len(), 1, "{code}");
        let err: &Error = &outcome.failures[0];
        assert_eq!(err.condition_reason(), expected);
        assert!(err.is_transient());
        assert!(
            err.to_string().starts_with("apply Secret ai/llm-scrape: "),
            "{err}"
        );
        assert_eq!(outcome.created.len(), 1);
    }
}

#[tokio::test]
async fn cleanup_deletes_only_children_outside_the_namespace() {
    let children = children("v1");
    let script = vec![
        Exchange::new(
            "GET",
            list_uri(ChildKind::Secret),
            list("Secret", vec![live(&children[0], "s-1")]),
        ),
        Exchange::new(
            "GET",
            list_uri(ChildKind::ConfigMap),
            list("ConfigMap", vec![live(&children[1], "c-1")]),
        ),
        Exchange::new(
            "DELETE",
            format!(
                "{}?",
                object_uri(ChildKind::ConfigMap, "grafana", "llm-dashboard")
            ),
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .expecting(Expect::Body(json!({"preconditions": {"uid": "c-1"}}))),
    ];
    let (client, handle) = mock_api::client();
    let server = tokio::spawn(serve(handle, script));
    let deleted = apply::cleanup(&client, &[], &owner(), &served())
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(
        deleted,
        [(
            ChildKind::ConfigMap,
            "ConfigMap grafana/llm-dashboard".to_string()
        )]
    );
}

#[tokio::test]
async fn kinds_the_cluster_does_not_serve_are_never_requested() {
    let children = vec![Child::from_value(
        ChildKind::PodMonitor,
        json!({"metadata": object_meta(&validated(), "ai", "llm".into(), "scrape")}),
    )];
    let script = vec![
        Exchange::new("GET", list_uri(ChildKind::Secret), list("Secret", vec![])),
        Exchange::new(
            "GET",
            list_uri(ChildKind::ConfigMap),
            list("ConfigMap", vec![]),
        ),
    ];
    let outcome = run(script, &children).await;
    assert!(outcome.failures.is_empty());
    assert_eq!(outcome.unserved, ["PodMonitor ai/llm"]);
}
