//! Core values -> text, markdown and JSON. Wire types of the output (serde) live only here.

pub mod comment;
pub mod diagnostics;
pub mod graph;
pub mod markdown;
pub mod plan;
