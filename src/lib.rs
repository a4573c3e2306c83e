//! capstan: a GitOps reconciler for shared infrastructure. See README.md and ARCHITECTURE.md.

pub mod cli;
pub mod core;
pub mod source;
pub mod synth;
