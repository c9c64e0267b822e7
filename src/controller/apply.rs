//! Writing children: server-side apply under one field manager, skipped when the live object
//! already carries the hash of the desired one; objects of the same name that infmon does not
//! own are left alone and reported; children a resource no longer wants are pruned.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use serde_json::Value;

use super::Error;
use crate::api::ChildReference;
use crate::render::{Child, ChildKind, owner_selector};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "infmon";
/// Annotation holding the hash of the desired object, compared before applying.
pub const DESIRED_HASH_ANNOTATION: &str = "monitoring.inference.dev/desired-hash";

/// The resource children belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    /// Namespace of the InferenceMonitoring.
    pub namespace: String,
    /// Name of the InferenceMonitoring.
    pub name: String,
    /// Controller owner reference for same-namespace children (`None` without a UID).
    pub reference: Option<OwnerReference>,
}

/// The manifest to apply: the child with the owner reference (same namespace only; the
/// finalizer deletes the others) and the hash annotation.
pub fn prepare(child: &Child, owner: &Owner) -> Value {
    let mut object = child.object.clone();
    if child.namespace == owner.namespace
        && let Some(reference) = &owner.reference
    {
        object["metadata"]["ownerReferences"] =
            serde_json::to_value([reference]).expect("an OwnerReference serializes");
    }
    let hash = desired_hash(&object);
    object["metadata"]["annotations"][DESIRED_HASH_ANNOTATION] = Value::String(hash);
    object
}

/// SHA-256 (first 16 hex digits) of the object's canonical JSON (keys sorted).
pub fn desired_hash(object: &Value) -> String {
    let text = serde_json::to_string(object).expect("a JSON value serializes");
    crate::render::hex_sha256(&text, 8)
}

/// A reference to a child, as `status.children` lists it.
pub fn reference(child: &Child) -> ChildReference {
    ChildReference {
        api_version: child.kind.api_version().to_string(),
        kind: child.kind.kind().to_string(),
        namespace: Some(child.namespace.clone()),
        name: child.name.clone(),
    }
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Children created.
    pub created: Vec<(ChildKind, String)>,
    /// Children updated (their hash differed).
    pub updated: Vec<(ChildKind, String)>,
    /// Children already as desired.
    pub unchanged: Vec<String>,
    /// Children deleted because no longer wanted.
    pub pruned: Vec<(ChildKind, String)>,
    /// Desired children whose name is taken by an object infmon does not own.
    pub conflicts: Vec<String>,
    /// Desired children whose API (CRD) the cluster does not serve.
    pub unserved: Vec<String>,
    /// Children that exist as desired (for `status.children`).
    pub present: Vec<ChildReference>,
    /// Requests that failed.
    pub failures: Vec<Error>,
}

type Key = (String, String);

fn key_of(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The objects of one kind that `selector` finds (a resource's owner labels, or the shared
/// label), in every namespace of `scope` (empty: the whole cluster). `whose` names them in
/// errors, e.g. `owned by llm/vllm`.
async fn list_owned(
    client: &Client,
    scope: &[String],
    (selector, whose): (&str, &str),
    kind: ChildKind,
) -> Result<BTreeMap<Key, ObjectMeta>, Error> {
    let params = ListParams::default().labels(selector);
    let apis: Vec<Api<DynamicObject>> = if scope.is_empty() {
        vec![Api::all_with(client.clone(), &kind.api_resource())]
    } else {
        scope.iter().map(|ns| api_for(client, kind, ns)).collect()
    };
    let mut owned = BTreeMap::new();
    for api in apis {
        // Metadata only: the labels, hash annotation and UID are all that is compared.
        let list = api
            .list_metadata(&params)
            .await
            .map_err(|e| Error::kube(format!("list {} {whose}", kind.plural()), e))?;
        owned.extend(
            list.items
                .into_iter()
                .map(|o| (key_of(&o.metadata), o.metadata)),
        );
    }
    Ok(owned)
}

fn api_for(client: &Client, kind: ChildKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// Applies `children` (already sorted) and prunes what `owner` owns beyond them, looking in
/// the namespaces of `scope` (empty: the whole cluster). Kinds the cluster does not serve
/// are neither listed nor written.
pub async fn sync(
    client: &Client,
    scope: &[String],
    owner: &Owner,
    children: &[Child],
    served: &BTreeSet<ChildKind>,
) -> Outcome {
    let selector = owner_selector(&owner.namespace, &owner.name);
    let whose = format!("owned by {}/{}", owner.namespace, owner.name);
    sync_selected(
        client,
        scope,
        None,
        (&selector, &whose),
        owner,
        children,
        served,
    )
    .await
}

/// [`sync`] for the objects a label selector finds (named `whose` in errors): a resource's
/// children (its owner labels) or the cluster-shared objects (the shared label, with an
/// [`Owner`] without reference). The kinds only the shared exporter uses
/// ([`ChildKind::exporter_only`]) are listed in `exporter_namespace` only, and not at all
/// without one (no resource owns them).
pub async fn sync_selected(
    client: &Client,
    scope: &[String],
    exporter_namespace: Option<&str>,
    selector: (&str, &str),
    owner: &Owner,
    children: &[Child],
    served: &BTreeSet<ChildKind>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut owned: BTreeMap<ChildKind, BTreeMap<Key, ObjectMeta>> = BTreeMap::new();
    for kind in ChildKind::ALL.into_iter().filter(|k| served.contains(k)) {
        let scope = match (kind.exporter_only(), exporter_namespace) {
            (false, _) => scope.to_vec(),
            (true, Some(namespace)) => vec![namespace.to_string()],
            (true, None) => continue,
        };
        match list_owned(client, &scope, selector, kind).await {
            Ok(objects) => {
                owned.insert(kind, objects);
            }
            Err(err) => outcome.failures.push(err),
        }
    }
    for child in children {
        if !served.contains(&child.kind) {
            outcome.unserved.push(child.display_name());
            continue;
        }
        let Some(live) = owned.get(&child.kind) else {
            // Listing this kind failed (recorded above), or it is the exporter's and this is
            // no shared sync: its children cannot be checked.
            continue;
        };
        let desired = prepare(child, owner);
        let hash = &desired["metadata"]["annotations"][DESIRED_HASH_ANNOTATION];
        let api = api_for(client, child.kind, &child.namespace);
        let existing = live.get(&(child.namespace.clone(), child.name.clone()));
        match existing {
            Some(meta)
                if meta
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
                    .map(String::as_str)
                    == hash.as_str() =>
            {
                outcome.unchanged.push(child.display_name());
                outcome.present.push(reference(child));
                continue;
            }
            Some(_) => {}
            None => match api.get_metadata_opt(&child.name).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    outcome.conflicts.push(child.display_name());
                    continue;
                }
                Err(err) => {
                    outcome
                        .failures
                        .push(Error::kube(format!("read {}", child.display_name()), err));
                    continue;
                }
            },
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch(&child.name, &params, &Patch::Apply(&desired))
            .await
        {
            Ok(_) => {
                let entry = (child.kind, child.display_name());
                if existing.is_some() {
                    outcome.updated.push(entry);
                } else {
                    outcome.created.push(entry);
                }
                outcome.present.push(reference(child));
            }
            Err(err) => outcome
                .failures
                .push(Error::kube(format!("apply {}", child.display_name()), err)),
        }
    }
    let wanted: BTreeSet<(ChildKind, Key)> = children
        .iter()
        .map(|c| (c.kind, (c.namespace.clone(), c.name.clone())))
        .collect();
    for (kind, objects) in &owned {
        for (key, object) in objects {
            if wanted.contains(&(*kind, key.clone())) {
                continue;
            }
            let display = format!("{} {}/{}", kind.kind(), key.0, key.1);
            match delete(client, *kind, object).await {
                Ok(()) => outcome.pruned.push((*kind, display)),
                Err(err) => outcome.failures.push(err),
            }
        }
    }
    outcome
}

async fn delete(client: &Client, kind: ChildKind, meta: &ObjectMeta) -> Result<(), Error> {
    let (namespace, name) = key_of(meta);
    let params = DeleteParams {
        preconditions: meta.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api_for(client, kind, &namespace)
        .delete(&name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(err) => Err(Error::kube(
            format!("delete {} {namespace}/{name}", kind.kind()),
            err,
        )),
    }
}

/// On deletion of the owner: deletes its children outside its namespace (owner references
/// cannot cross namespaces; the garbage collector removes the rest). Returns what was deleted.
pub async fn cleanup(
    client: &Client,
    scope: &[String],
    owner: &Owner,
    served: &BTreeSet<ChildKind>,
) -> Result<Vec<(ChildKind, String)>, Error> {
    let mut deleted = Vec::new();
    // No resource owns the exporter's DaemonSet or Service.
    for kind in ChildKind::ALL
        .into_iter()
        .filter(|k| served.contains(k) && !k.exporter_only())
    {
        let selector = owner_selector(&owner.namespace, &owner.name);
        let whose = format!("owned by {}/{}", owner.namespace, owner.name);
        for ((namespace, name), object) in
            list_owned(client, scope, (&selector, &whose), kind).await?
        {
            if namespace == owner.namespace {
                continue;
            }
            delete(client, kind, &object).await?;
            deleted.push((kind, format!("{} {namespace}/{name}", kind.kind())));
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            namespace: "ai".into(),
            name: "llm".into(),
            reference: Some(OwnerReference {
                api_version: "monitoring.inference.dev/v1alpha1".into(),
                kind: "InferenceMonitoring".into(),
                name: "llm".into(),
                uid: "u-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }),
        }
    }

    fn child(namespace: &str) -> Child {
        Child::from_value(
            ChildKind::ConfigMap,
            json!({"metadata": {"name": "llm-dash", "namespace": namespace}, "data": {"a": "b"}}),
        )
    }

    #[test]
    fn same_namespace_children_get_the_owner_reference_and_a_stable_hash() {
        let prepared = prepare(&child("ai"), &owner());
        assert_eq!(prepared["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let hash = prepared["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(hash.len(), 16);
        assert_eq!(prepare(&child("ai"), &owner()), prepared);
        let other = prepare(&child("grafana"), &owner());
        assert!(other["metadata"].get("ownerReferences").is_none());
        assert_ne!(
            other["metadata"]["annotations"][DESIRED_HASH_ANNOTATION],
            hash
        );
    }
}
