//! Everything that may call for work in GitHub mode, as one enum. Webhooks, polling, cron
//! schedules, start-up and opening deploy windows all become an [`Event`]; events only
//! choose what to look at, the work itself is level-triggered.

use crate::core::run::Trigger;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A pull request opened, pushed to, reviewed, or asked to re-plan.
    Pull(u64),
    PullClosed(u64),
    /// The deploy branch moved: fetch it; open pull requests are planned again and the
    /// branch is deployed.
    BranchMoved,
    /// A schedule or a start-up: plan every open pull request whose plan is stale, and
    /// forget closed ones. `force` plans even those that look current.
    Sync {
        force: bool,
    },
    /// Deploy the branch as it is (start-up, the `reconcile` schedule, a window opening).
    Deploy(Trigger),
    /// The `drift` schedule: check every deployed instance.
    Drift,
    /// `capstan plan --deep` commented on a pull request: the bundles its head changes are
    /// planned too, if `by` may push.
    DeepAsked {
        pr: u64,
        by: String,
    },
    /// `capstan preview` commented on a pull request: previews run if `by` may push.
    PreviewAsked {
        pr: u64,
        by: String,
    },
}
