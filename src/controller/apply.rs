//! Writing children, in two halves: [`plan`] decides from the desired children and the
//! cached ones what to create, update, re-apply after someone else's edit, leave alone,
//! report as a conflict or prune (pure); [`execute`] does it with server-side apply under one
//! field manager and deletes with a UID precondition.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use serde_json::Value;

use super::Error;
use super::cache::{LiveChild, fingerprint};
use crate::api::ChildReference;
use crate::render::{
    Child, ChildKind, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, label_value, owner_selector,
};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "infmon";
pub use super::cache::DESIRED_HASH_ANNOTATION;

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
    /// Children applied again because another writer changed them.
    pub reverted: Vec<(ChildKind, String)>,
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

/// A child's identity: kind, namespace, name.
pub type ChildId = (ChildKind, String, String);

/// Fingerprints of one owner's children as infmon last wrote (or first saw) them, so an
/// edit by another writer shows as a different fingerprint in the cache.
pub type Applied = BTreeMap<ChildId, String>;

fn id(child: &Child) -> ChildId {
    (child.kind, child.namespace.clone(), child.name.clone())
}

impl Owner {
    /// `namespace/name` as the owner labels carry it (long names are shortened).
    pub fn label_key(&self) -> String {
        format!("{}/{}", self.namespace, label_value(&self.name))
    }
}

/// What to do with one desired child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not in the cache: create it (unless an object infmon does not manage holds the name).
    Create,
    /// Its desired hash changed: apply.
    Update,
    /// Someone else changed it since infmon applied it: apply again.
    Revert,
    /// Already as desired; `baseline` is the fingerprint to remember when none was yet.
    Unchanged {
        /// The cached fingerprint, when infmon has none recorded for the child.
        baseline: Option<String>,
    },
    /// Another resource's child holds the name: left alone.
    Conflict,
    /// The cluster does not serve the kind.
    Unserved,
}

/// Everything one sync will do, computed from the desired children and the cached state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// One step per desired child, in the children's order.
    pub steps: Vec<Step>,
    /// Cached children of the owner that are no longer desired.
    pub prune: Vec<LiveChild>,
}

impl Plan {
    /// Whether carrying the plan out sends nothing to the API server.
    pub fn is_quiet(&self) -> bool {
        self.prune.is_empty()
            && self
                .steps
                .iter()
                .all(|s| matches!(s, Step::Unchanged { .. } | Step::Conflict | Step::Unserved))
    }
}

/// Plans a sync: `live` holds the cached children at the desired names and those the owner
/// owns; `applied` the fingerprints recorded for the owner. Pure.
pub fn plan(
    children: &[Child],
    owner: &Owner,
    served: &BTreeSet<ChildKind>,
    live: &[LiveChild],
    applied: &Applied,
) -> Plan {
    let by_id: BTreeMap<ChildId, &LiveChild> = live
        .iter()
        .map(|l| ((l.kind, l.namespace.clone(), l.name.clone()), l))
        .collect();
    let me = owner.label_key();
    let steps = children
        .iter()
        .map(|child| {
            if !served.contains(&child.kind) {
                return Step::Unserved;
            }
            let Some(live) = by_id.get(&id(child)) else {
                return Step::Create;
            };
            if live.owner.as_deref() != Some(me.as_str()) {
                return Step::Conflict;
            }
            let desired = prepare(child, owner);
            let hash = desired["metadata"]["annotations"][DESIRED_HASH_ANNOTATION].as_str();
            if live.desired_hash.as_deref() != hash {
                return Step::Update;
            }
            match applied.get(&id(child)) {
                Some(recorded) if live.fingerprint.as_ref() != Some(recorded) => Step::Revert,
                Some(_) => Step::Unchanged { baseline: None },
                None => Step::Unchanged {
                    baseline: live.fingerprint.clone(),
                },
            }
        })
        .collect();
    let wanted: BTreeSet<ChildId> = children.iter().map(id).collect();
    let prune = live
        .iter()
        .filter(|l| l.owner.as_deref() == Some(me.as_str()))
        .filter(|l| !wanted.contains(&(l.kind, l.namespace.clone(), l.name.clone())))
        .cloned()
        .collect();
    Plan { steps, prune }
}

fn api_for(client: &Client, kind: ChildKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// Carries `plan` out for `children` (the children it was computed from), recording the
/// fingerprint of every object written in `applied`.
pub async fn execute(
    client: &Client,
    owner: &Owner,
    children: &[Child],
    plan: &Plan,
    applied: &mut Applied,
) -> Outcome {
    let mut outcome = Outcome::default();
    for (child, step) in children.iter().zip(&plan.steps) {
        let existed = match step {
            Step::Unserved => {
                outcome.unserved.push(child.display_name());
                continue;
            }
            Step::Conflict => {
                outcome.conflicts.push(child.display_name());
                continue;
            }
            Step::Unchanged { baseline } => {
                if let Some(print) = baseline {
                    applied.insert(id(child), print.clone());
                }
                outcome.unchanged.push(child.display_name());
                outcome.present.push(reference(child));
                continue;
            }
            Step::Create => match find_unlisted(client, owner, child).await {
                Ok(Unlisted::Missing) => false,
                Ok(Unlisted::Mine) => true,
                Ok(Unlisted::Foreign) => {
                    outcome.conflicts.push(child.display_name());
                    continue;
                }
                Err(err) => {
                    outcome.failures.push(err);
                    continue;
                }
            },
            Step::Update | Step::Revert => true,
        };
        let desired = prepare(child, owner);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api_for(client, child.kind, &child.namespace)
            .patch(&child.name, &params, &Patch::Apply(&desired))
            .await
        {
            Ok(stored) => {
                if let Ok(value) = serde_json::to_value(&stored) {
                    applied.insert(id(child), fingerprint(&value));
                }
                let entry = (child.kind, child.display_name());
                match (step, existed) {
                    (Step::Revert, _) => outcome.reverted.push(entry),
                    (_, true) => outcome.updated.push(entry),
                    (_, false) => outcome.created.push(entry),
                }
                outcome.present.push(reference(child));
            }
            Err(err) => outcome
                .failures
                .push(Error::kube(format!("apply {}", child.display_name()), err)),
        }
    }
    for live in &plan.prune {
        match delete(client, live).await {
            Ok(()) => {
                applied.remove(&(live.kind, live.namespace.clone(), live.name.clone()));
                outcome.pruned.push((live.kind, display(live)));
            }
            Err(err) => outcome.failures.push(err),
        }
    }
    outcome
}

enum Unlisted {
    Missing,
    Mine,
    Foreign,
}

/// A desired child absent from the cache: really missing, ours (created moments ago, the
/// watch has not caught up), or an object infmon does not manage.
async fn find_unlisted(client: &Client, owner: &Owner, child: &Child) -> Result<Unlisted, Error> {
    let found = api_for(client, child.kind, &child.namespace)
        .get_metadata_opt(&child.name)
        .await
        .map_err(|e| Error::kube(format!("read {}", child.display_name()), e))?;
    let Some(found) = found else {
        return Ok(Unlisted::Missing);
    };
    let labels = found.metadata.labels.unwrap_or_default();
    let mine = labels.get(OWNER_NAMESPACE_LABEL) == Some(&owner.namespace)
        && labels.get(OWNER_NAME_LABEL) == Some(&label_value(&owner.name));
    Ok(if mine {
        Unlisted::Mine
    } else {
        Unlisted::Foreign
    })
}

fn display(live: &LiveChild) -> String {
    format!("{} {}/{}", live.kind.kind(), live.namespace, live.name)
}

async fn delete(client: &Client, live: &LiveChild) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: live.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api_for(client, live.kind, &live.namespace)
        .delete(&live.name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(err) => Err(Error::kube(format!("delete {}", display(live)), err)),
    }
}

/// [`sync_selected`] for one resource's children, found by its owner labels (listing, not the
/// cache: for one-off syncs outside the controller).
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
        (scope, None),
        (&selector, &whose),
        owner,
        children,
        served,
        None,
    )
    .await
}

/// [`plan`] and [`execute`] for the objects a label selector finds (the cluster-shared
/// objects, with an [`Owner`] without reference; `whose` names them in errors): `cached`, the
/// ones the cache holds (see [`super::cache::Caches::labelled`]), or, when `None`, those
/// found by listing. Every such object counts as the owner's. The kinds only the shared
/// exporter uses ([`ChildKind::exporter_only`]) are listed in `exporter_namespace` only (the
/// operator's rights on them end there), and not at all without one.
pub async fn sync_selected(
    client: &Client,
    (scope, exporter_namespace): (&[String], Option<&str>),
    (selector, whose): (&str, &str),
    owner: &Owner,
    children: &[Child],
    served: &BTreeSet<ChildKind>,
    cached: Option<Vec<LiveChild>>,
) -> Outcome {
    let mut live = Vec::new();
    let mut failures = Vec::new();
    let params = ListParams::default().labels(selector);
    let listed: &[ChildKind] = if cached.is_some() {
        &[]
    } else {
        &ChildKind::ALL
    };
    if let Some(cached) = cached {
        live.extend(cached.into_iter().map(|l| LiveChild {
            owner: Some(owner.label_key()),
            ..l
        }));
    }
    for kind in listed.iter().filter(|k| served.contains(k)) {
        let apis: Vec<Api<DynamicObject>> = match (kind.exporter_only(), exporter_namespace) {
            (true, Some(namespace)) => vec![api_for(client, *kind, namespace)],
            (true, None) => continue,
            (false, _) if scope.is_empty() => {
                vec![Api::all_with(client.clone(), &kind.api_resource())]
            }
            (false, _) => scope.iter().map(|ns| api_for(client, *kind, ns)).collect(),
        };
        for api in apis {
            match api.list_metadata(&params).await {
                Ok(list) => live.extend(list.items.iter().map(|o| LiveChild {
                    owner: Some(owner.label_key()),
                    ..LiveChild::from_meta(*kind, &o.metadata)
                })),
                Err(e) => failures.push(Error::kube(format!("list {} {whose}", kind.plural()), e)),
            }
        }
    }
    let plan = plan(children, owner, served, &live, &Applied::new());
    let mut outcome = execute(client, owner, children, &plan, &mut Applied::new()).await;
    failures.append(&mut outcome.failures);
    outcome.failures = failures;
    outcome
}

/// On deletion of the owner: deletes its cached children outside its namespace (owner
/// references cannot cross namespaces; the garbage collector removes the rest). Returns
/// what was deleted.
pub async fn cleanup(
    client: &Client,
    owner: &Owner,
    owned: &[LiveChild],
) -> Result<Vec<(ChildKind, String)>, Error> {
    let mut deleted = Vec::new();
    for live in owned.iter().filter(|l| l.namespace != owner.namespace) {
        delete(client, live).await?;
        deleted.push((live.kind, display(live)));
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

    fn live(child: &Child, owner: &str, hash: Option<String>, print: &str) -> LiveChild {
        LiveChild {
            kind: child.kind,
            namespace: child.namespace.clone(),
            name: child.name.clone(),
            uid: Some("u".into()),
            owner: Some(owner.into()),
            desired_hash: hash,
            fingerprint: Some(print.into()),
        }
    }

    fn hash_of(child: &Child) -> Option<String> {
        prepare(child, &owner())["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
            .as_str()
            .map(String::from)
    }

    fn all_served() -> BTreeSet<ChildKind> {
        ChildKind::ALL.into_iter().collect()
    }

    #[test]
    fn missing_children_are_created_and_unserved_kinds_skipped() {
        let wanted = [child("ai")];
        let plan = plan(&wanted, &owner(), &all_served(), &[], &Applied::new());
        assert_eq!(plan.steps, [Step::Create]);
        assert!(!plan.is_quiet());
        let none = plan_for(&wanted, &BTreeSet::new(), &[], &Applied::new());
        assert_eq!(none.steps, [Step::Unserved]);
        assert!(none.is_quiet());
    }

    fn plan_for(
        wanted: &[Child],
        served: &BTreeSet<ChildKind>,
        live: &[LiveChild],
        applied: &Applied,
    ) -> Plan {
        plan(wanted, &owner(), served, live, applied)
    }

    #[test]
    fn a_child_as_desired_is_left_alone_and_its_fingerprint_becomes_the_baseline() {
        let wanted = [child("ai")];
        let cached = [live(&wanted[0], "ai/llm", hash_of(&wanted[0]), "f1")];
        let first = plan_for(&wanted, &all_served(), &cached, &Applied::new());
        assert_eq!(
            first.steps,
            [Step::Unchanged {
                baseline: Some("f1".into())
            }]
        );
        assert!(first.is_quiet());
        let recorded = Applied::from([(id(&wanted[0]), "f1".to_string())]);
        let again = plan_for(&wanted, &all_served(), &cached, &recorded);
        assert_eq!(again.steps, [Step::Unchanged { baseline: None }]);
    }

    #[test]
    fn an_edit_by_someone_else_is_reverted_and_a_spec_change_updates() {
        let wanted = [child("ai")];
        let recorded = Applied::from([(id(&wanted[0]), "f1".to_string())]);
        let edited = [live(&wanted[0], "ai/llm", hash_of(&wanted[0]), "f2")];
        assert_eq!(
            plan_for(&wanted, &all_served(), &edited, &recorded).steps,
            [Step::Revert]
        );
        let old = [live(&wanted[0], "ai/llm", Some("0123".into()), "f1")];
        assert_eq!(
            plan_for(&wanted, &all_served(), &old, &recorded).steps,
            [Step::Update]
        );
    }

    #[test]
    fn another_resources_child_is_a_conflict_and_unwanted_own_children_are_pruned() {
        let wanted = [child("ai")];
        let theirs = live(&wanted[0], "ai/other", hash_of(&wanted[0]), "f");
        let stale = LiveChild {
            name: "llm-old".into(),
            ..live(&wanted[0], "ai/llm", None, "f")
        };
        let foreign_stale = LiveChild {
            name: "other-old".into(),
            ..live(&wanted[0], "ai/other", None, "f")
        };
        let plan = plan_for(
            &wanted,
            &all_served(),
            &[theirs, stale.clone(), foreign_stale],
            &Applied::new(),
        );
        assert_eq!(plan.steps, [Step::Conflict]);
        assert_eq!(plan.prune, [stale]);
    }
}
