//! The operator: reconciles InferenceMonitorings from watched caches (dereference → resolve
//! once → render → plan, apply and prune → status), elects a leader, and serves health and
//! metrics.

pub mod apply;
pub mod cache;
mod config;
pub mod context;
pub mod dereference;
mod error;
pub mod health_loop;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod runner;
pub mod secrets;
pub mod server;
pub mod shared;
pub mod status;
mod watches;

pub use context::{Clock, Config, Context, system_clock};
pub use error::Error;
pub use reconcile::{FINALIZER, Watched, error_policy, reconcile};
