//! The one integration-test binary (one link, one place to look).

mod browser;
mod cli;
mod conventions;
mod deploy;
mod diagnostics;
mod drift;
mod fuzz;
mod git;
mod github;
mod incremental;
mod massdriver;
mod massdriver_newer;
mod merge_keys;
mod operator;
mod plan;
mod policies;
mod postgres;
mod preview;
mod provisioner_plans;
mod schemas;
mod serve;
mod support;
mod terraform;
mod web;
