//! engine catalog
