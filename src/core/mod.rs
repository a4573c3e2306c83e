//! The pure core: bytes in, model, diagnostics and resolved instances out.
//!
//! No I/O, no clocks, no environment: everything here can be handed a [`SourceTree`] from
//! a directory, a git tree or a test string and gives the same answer (a test enforces
//! that no I/O crate is imported below this folder).

pub mod app;
pub mod commit;
pub mod deep;
pub mod deployed;
pub mod diag;
pub mod drift;
pub mod duration;
pub mod incremental;
pub mod jq;
pub mod load;
pub mod model;
pub mod ownership;
pub mod patterns;
pub mod plan;
pub mod preview;
pub mod render;
pub mod resolve;
pub mod resources;
pub mod run;
pub mod schema;
pub mod sensitive;
pub mod source;
pub mod suggest;
pub mod time;
pub mod windows;
pub mod yaml;

use diag::{Diagnostic, Diagnostics, Severity};
use model::Repository;
use resolve::Resolved;
use source::SourceTree;

/// The result of checking one revision of a repository.
#[derive(Debug)]
pub struct Checked {
    pub repository: Repository,
    pub resolved: Resolved,
    /// Sorted by file and position; never just the first problem.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity() == Severity::Error)
    }
}

/// Loads, validates and resolves a repository.
pub fn check(tree: &SourceTree) -> Checked {
    let mut diags = Diagnostics::default();
    let repository = load::load(tree, &mut diags);
    let resolved = resolve::resolve(&repository, &mut diags);
    Checked {
        repository,
        resolved,
        diagnostics: diags.finish(),
    }
}
