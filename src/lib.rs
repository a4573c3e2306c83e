//! capstan: a GitOps reconciler for shared infrastructure. See README.md and ARCHITECTURE.md.

pub mod cli;
pub mod core;
pub mod daemon;
pub mod deploy;
pub mod error;
pub mod github;
pub mod policy;
pub mod secret;
pub mod source;
pub mod state;
pub mod synth;
pub mod web;
