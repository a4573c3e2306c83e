//! Core values -> text, markdown and JSON. Wire types of the output (serde) live only here.

pub mod comment;
pub mod diagnostics;
pub mod drift;
pub mod graph;
pub mod markdown;
pub mod plan;
pub mod resources;

/// `1 instance`, `2 instances`: a count with its noun, in the number it needs.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}
