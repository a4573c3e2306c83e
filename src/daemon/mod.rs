//! `capstan serve`: the long-running process (docs/daemon.md).
//!
//! Two modes. With GitHub (`remote.rs`), everything that can happen becomes one [`Event`]
//! (`events.rs`), and every piece of work one job (`job.rs`) on one of two lanes, both a
//! [`queue::Queue`]: pull requests' plans, reconciled level-triggered by several workers
//! (`pulls.rs`), and the deploy lane, one job at a time (`deploys.rs`). One worker loop with
//! one error policy carries jobs out (`jobs.rs`), and every comment and status goes through
//! the one publisher (`publish.rs`). Without GitHub (`local.rs`), a local checkout is watched: each commit of
//! the branch is deployed and each edit's plan printed to the [`Console`] the command line
//! hands in.
//!
//! Shutdown is injected as a `CancellationToken` in [`Control`], so tests drive it; SIGTERM
//! drains in-flight work within `shutdown_timeout`.

mod branch;
mod comment;
pub mod config;
mod context;
mod deploys;
mod dispatch;
mod drift;
mod durable;
mod error;
mod events;
mod handoff;
mod health;
mod instance_plan;
mod job;
mod jobs;
mod leader;
mod local;
pub mod metrics;
mod owners;
mod policies;
mod preview_section;
mod previews;
mod publish;
mod pulls;
pub mod queue;
mod remote;
mod resource_plans;
mod retry;
mod revisions;
mod server;
mod systemd;
mod ui;
pub mod webhook;
mod workers;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use config::{Config, ConfigError, Source};
pub use error::DaemonError;
pub use events::Event;

/// Reloads the configuration for SIGHUP (same file, flags and environment as at start).
pub type Reloader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// What drives the daemon from outside: the shutdown token (SIGTERM, or a test), reload
/// requests (SIGHUP), and where local mode prints.
pub struct Control {
    pub shutdown: CancellationToken,
    pub reload: mpsc::UnboundedReceiver<()>,
    pub reloader: Reloader,
    pub console: Console,
}

/// Where local mode prints its plans and deploy outcomes, and whether in colour; the
/// command line decides both (it is the one that knows about terminals).
#[derive(Clone)]
pub struct Console {
    pub color: bool,
    pub print: Arc<dyn Fn(&str) + Send + Sync>,
}

/// Runs the daemon until `control.shutdown` is cancelled.
pub async fn run(config: Config, control: Control) -> Result<(), DaemonError> {
    crate::state::state_folder(&config.state_dir).map_err(|source| DaemonError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    match (&config.repository.source, &config.github) {
        (Source::Remote { url, .. }, Some(github)) => {
            let (url, github) = (url.clone(), github.clone());
            remote::run(config, url, github, control).await
        }
        (Source::Local { path }, None) => {
            let path = path.clone();
            local::run(config, path, control).await
        }
        (Source::Remote { .. }, None) => Err(DaemonError::RemoteWithoutGitHub),
        (Source::Local { .. }, Some(_)) => Err(DaemonError::LocalWithGitHub),
    }
}
