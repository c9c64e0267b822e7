//! Validation: raw documents checked as the API server would ([`document`]), then a spec
//! resolved against the engine catalog and cluster facts into a [`Validated`] resource, the
//! only input of the builders.

mod document;
mod resolve;

pub use document::{FieldError, strict_structural_schema, validate_document};
pub use resolve::*;
