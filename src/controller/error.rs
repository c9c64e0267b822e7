//! Why a reconcile failed. Each variant maps to a condition reason, an Event reason, a
//! metric label and a retry policy, so every failure is visible the same three ways.

use crate::api::ConditionReason;
use crate::render::RenderError;
use crate::validate::ResolveError;

/// A reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, e.g. `apply PodMonitor ai/vllm`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The spec cannot be resolved into objects; only a spec change helps.
    #[error(transparent)]
    InvalidSpec(#[from] ResolveError),
    /// The builders failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A label selector in the spec cannot be sent to the API server.
    #[error("spec.selector: {0}")]
    Selector(String),
    /// The finalizer helper failed (adding/removing the finalizer, or the wrapped reconcile).
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Wraps a client error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// The innermost error (through the finalizer wrapper).
    pub fn root(&self) -> &Error {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.root(),
                _ => self,
            },
            other => other,
        }
    }

    fn api_code(&self) -> Option<u16> {
        use kube::runtime::finalizer::Error as F;
        match self.root() {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            Error::Finalizer(inner) => match inner.as_ref() {
                F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)) => {
                    Some(s.code)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The condition reason this failure shows as.
    pub fn condition_reason(&self) -> ConditionReason {
        match (self.root(), self.api_code()) {
            (Error::InvalidSpec(ResolveError::EngineUndetermined { .. }), _) => {
                ConditionReason::EngineUndetermined
            }
            (Error::InvalidSpec(ResolveError::ApiUnavailable { .. }), _) => {
                ConditionReason::ApiUnavailable
            }
            (Error::InvalidSpec(_) | Error::Selector(_) | Error::Render(_), _) => {
                ConditionReason::InvalidSpec
            }
            (_, Some(403)) => ConditionReason::Forbidden,
            (_, Some(409)) => ConditionReason::Conflict,
            _ => ConditionReason::ApiError,
        }
    }

    /// The reason of the Warning Event published for it.
    pub fn event_reason(&self) -> &'static str {
        self.condition_reason().as_str()
    }

    /// The `error` label of the failure counter.
    pub fn metric_label(&self) -> &'static str {
        match (self.root(), self.api_code()) {
            (Error::InvalidSpec(_), _) => "invalid_spec",
            (Error::Selector(_), _) => "invalid_selector",
            (Error::Render(_), _) => "render",
            (_, Some(403)) => "forbidden",
            (_, Some(404)) => "not_found",
            (_, Some(409)) => "conflict",
            (_, Some(_)) => "api_error",
            _ => "client",
        }
    }

    /// Whether retrying can help without a spec change (API hiccups, conflicts, RBAC being
    /// fixed) as opposed to a spec that will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self.root(),
            Error::InvalidSpec(_) | Error::Selector(_) | Error::Render(_)
        )
    }

    /// What the user should do, appended to condition messages.
    pub fn hint(&self) -> &'static str {
        match self.condition_reason() {
            ConditionReason::Forbidden => {
                "the operator's ServiceAccount lacks RBAC for this request; install the chart's ClusterRole or compare it with `infmon` src/rbac.rs"
            }
            ConditionReason::Conflict => {
                "another writer changed the object at the same time; infmon retries automatically"
            }
            ConditionReason::ApiError => {
                "the API server failed the request; infmon retries with backoff, check the API server if this persists"
            }
            _ => "fix the spec; infmon retries when it changes",
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(err: kube::runtime::finalizer::Error<Error>) -> Self {
        Error::Finalizer(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::kube(
            "apply",
            kube::Error::Api(
                kube::core::Status::failure("boom", "Reason")
                    .with_code(code)
                    .boxed(),
            ),
        )
    }

    #[test]
    fn api_errors_map_to_reasons_labels_and_retries() {
        assert_eq!(api(403).condition_reason(), ConditionReason::Forbidden);
        assert_eq!(api(403).metric_label(), "forbidden");
        assert_eq!(api(409).condition_reason(), ConditionReason::Conflict);
        assert_eq!(api(500).condition_reason(), ConditionReason::ApiError);
        assert_eq!(api(500).metric_label(), "api_error");
        assert!(api(500).is_transient());
        let wrapped: Error = kube::runtime::finalizer::Error::ApplyFailed(api(403)).into();
        assert_eq!(wrapped.metric_label(), "forbidden");
    }

    #[test]
    fn invalid_specs_are_permanent() {
        let err = Error::from(ResolveError::EngineUndetermined {
            reason: "no pods".into(),
        });
        assert!(!err.is_transient());
        assert_eq!(err.condition_reason(), ConditionReason::EngineUndetermined);
        assert_eq!(err.metric_label(), "invalid_spec");
    }
}
