//! Why the daemon, or one unit of its work, failed. Each edge's own error is kept whole
//! (`#[from]`), so the log shows the whole chain.

use std::path::PathBuf;

use crate::deploy::DeployError;
use crate::github::GitHubError;
use crate::source::SourceError;
use crate::source::mirror::MirrorError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("creating the state directory {path}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("listening on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("watching {path}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("a background task of the daemon failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("GitHub answered pull request {got} when asked for {asked}; nothing is posted")]
    Renumbered { asked: u64, got: u64 },
    #[error(transparent)]
    Preview(#[from] crate::core::preview::PreviewError),
    #[error("{reference} was not fetched into the mirror")]
    NotFetched { reference: String },
    #[error(
        "a remote repository without github configured has nothing to plan: configure github, or point repository.path at a local checkout"
    )]
    RemoteWithoutGitHub,
    #[error("the durable job queue: {0}")]
    Queue(String),
    #[error("github needs repository.url: capstan fetches pull-request heads from the remote")]
    LocalWithGitHub,
}
