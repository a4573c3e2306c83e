//! Core values -> text and JSON. Wire types (serde) live only here.

pub mod diagnostics;
pub mod graph;
pub mod markdown;
pub mod plan;
