//! infmon: complete, verified observability for LLM inference services on Kubernetes.
//!
//! Data flows one way: an [`api::InferenceMonitoring`] is checked ([`validate`]) and resolved
//! against the engine catalog ([`engines`]) and the facts discovered about the cluster into a
//! [`validate::Validated`] value, from which pure builders ([`render`]) produce every child
//! object. Only the controller, the discovery and the health checks do I/O.

pub mod api;
pub mod controller;
pub mod crd;
pub mod dashboards;
pub mod discovery;
pub mod engines;
pub mod health;
pub mod manifests;
pub mod model;
pub mod promql;
pub mod rbac;
pub mod render;
pub mod rules;
pub mod selector;
pub mod validate;
