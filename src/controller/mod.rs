//! The operator: reconciles InferenceMonitorings (discover → resolve → render → apply →
//! prune → status), elects a leader, and serves health and metrics.

pub mod apply;
pub mod context;
mod error;
pub mod health_loop;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod runner;
pub mod server;
pub mod shared;
pub mod status;
mod watches;

pub use context::{Clock, Config, Context, system_clock};
pub use error::Error;
pub use reconcile::{FINALIZER, error_policy, reconcile};
