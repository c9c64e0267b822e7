//! One module per subcommand. Each returns the process exit code; `anyhow` is used only here,
//! at the binary's edge.

pub mod crd;
pub mod render;
pub mod validate;
