//! Every piece of daemon work as a value: a [`Job`] has a kind, a key (two jobs with one key
//! are the same work) and a rank in its lane (the branch's deploy goes first). `jobs.rs`
//! carries jobs out; `queue.rs` holds them.

use super::queue::Keyed;
use crate::core::run::Trigger;

/// A piece of daemon work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Job {
    /// Plan pull request N's head and post its comment and statuses.
    Plan(u64),
    /// Run pull request N's provisioner plans that its plan job decided on.
    Resources(u64),
    /// Deploy the branch.
    Deploy(Trigger),
    /// Check everything deployed for drift.
    Drift,
    /// Make pull request N's previews what it asks for.
    Preview(u64),
    /// Check every preview: TTLs, closed pull requests, free slots, shared producers.
    Sweep,
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Plan(_) => "plan",
            Job::Resources(_) => "resources",
            Job::Deploy(_) => "deploy",
            Job::Drift => "drift",
            Job::Preview(_) => "preview",
            Job::Sweep => "sweep",
        }
    }

    /// What makes two jobs the same work (a pull request's number, or the kind alone).
    pub fn key(&self) -> String {
        match self {
            Job::Plan(n) | Job::Resources(n) | Job::Preview(n) => format!("{}/{n}", self.kind()),
            _ => self.kind().to_string(),
        }
    }

    pub fn span(&self) -> tracing::Span {
        match self {
            Job::Plan(n) => tracing::info_span!("plan", pr = n),
            Job::Resources(n) => tracing::info_span!("resources", pr = n),
            Job::Deploy(why) => tracing::info_span!("deploy", trigger = why.name()),
            Job::Drift => tracing::info_span!("drift"),
            Job::Preview(n) => tracing::info_span!("preview", pr = n),
            Job::Sweep => tracing::info_span!("sweep"),
        }
    }
}

impl Keyed for Job {
    type Key = String;

    fn key(&self) -> String {
        Job::key(self)
    }

    /// The deploy lane's order: the branch, then drift checks, previews, and sweeps.
    fn rank(&self) -> u8 {
        match self {
            Job::Plan(_) | Job::Resources(_) | Job::Deploy(_) => 0,
            Job::Drift => 1,
            Job::Preview(_) => 2,
            Job::Sweep => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_keyed_by_its_pull_request_or_its_kind() {
        assert_eq!(Job::Plan(7).key(), "plan/7");
        assert_eq!(Job::Preview(7).key(), "preview/7");
        assert_eq!(Job::Resources(7).key(), "resources/7");
        assert_eq!(Job::Deploy(Trigger::Push).key(), "deploy");
        assert_eq!(
            Job::Deploy(Trigger::Schedule).key(),
            Job::Deploy(Trigger::Push).key()
        );
    }
}
