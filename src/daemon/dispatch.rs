//! What an event calls for (GitHub mode): the one dispatch of an [`Event`] into jobs, the
//! same whether the event came in this process or out of the durable queue, and the
//! level-triggered catch-up (`sync`) that looks at every open pull request.

use std::sync::Arc;

use super::context::Shared;
use super::events::Event;
use super::job::Job;
use super::{previews, resource_plans};
use crate::core::run::Trigger;
use crate::error::chain;
use crate::state::StateError;

pub(super) async fn dispatch(shared: &Arc<Shared>, event: Event) {
    match event {
        Event::Pull(n) => shared.push(Job::Plan(n)),
        Event::PullClosed(n) => {
            shared.unqueue(&Job::Plan(n));
            // Its provisioner plans stop: the running job is cancelled, the next finds
            // nothing handed over.
            shared.handoff.take(n);
            shared.resources.push(Job::Resources(n));
            // Its previews go (the reconcile sees it closed).
            shared.push(Job::Preview(n));
            // Pull requests that named this one must stop naming it.
            let closed = || -> Result<Vec<u64>, StateError> {
                let changed = shared.store.changes(n)?;
                shared.store.close(n)?;
                Ok(shared.store.overlaps(n, &changed)?.into_keys().collect())
            };
            match closed() {
                Ok(others) => others.into_iter().for_each(|o| shared.push(Job::Plan(o))),
                Err(e) => {
                    tracing::error!(pr = n, error = %chain(&e), "recording a closed pull request")
                }
            }
        }
        Event::BranchMoved => {
            if let Err(e) = shared.fetch(vec![shared.branch_refs()]).await {
                tracing::error!(error = %chain(&e), "fetching the deploy branch");
                return;
            }
            sync(shared, false).await;
        }
        Event::Sync { force } => sync(shared, force).await,
        Event::Deploy(trigger) => shared.push(Job::Deploy(trigger)),
        Event::Drift => shared.push(Job::Drift),
        Event::PreviewAsked { pr, by } => {
            if let Err(e) = previews::asked(shared, pr, &by).await {
                tracing::error!(pr, error = %chain(&e), "handling a preview request");
            }
        }
        Event::DeepAsked { pr, by } => {
            if let Err(e) = resource_plans::asked(shared, pr, &by).await {
                tracing::error!(pr, error = %chain(&e), "handling capstan plan --deep");
            }
        }
    }
}

/// Level-triggered catch-up: every open pull request whose recorded plan is not of its
/// current head and of the current deploy-branch commit is queued; pull requests the
/// database thinks open but GitHub does not are closed.
pub(super) async fn sync(shared: &Arc<Shared>, force: bool) {
    let gh = shared.github();
    let branch = shared.config().repository.branch.clone();
    let tip = match shared.branch_tip() {
        Ok(tip) => Some(tip),
        Err(e) => {
            tracing::error!(error = %chain(&e), "reading the deploy branch");
            return;
        }
    };
    let moved = {
        let mut last = shared.branch_tip.lock().unwrap_or_else(|p| p.into_inner());
        let moved = *last != tip;
        last.clone_from(&tip);
        moved
    };
    if moved {
        shared.push(Job::Deploy(Trigger::Push));
    }
    let open = match gh.open_pulls(&branch).await {
        Ok(open) => open,
        Err(e) => {
            tracing::error!(error = %chain(&e), "listing open pull requests");
            return;
        }
    };
    let known = shared.store.open_pulls().unwrap_or_default();
    for n in known.keys() {
        if !open.iter().any(|p| p.number == *n) {
            send_or_log(shared, Event::PullClosed(*n));
        }
    }
    for pr in open {
        let current = match shared.store.planned(pr.number) {
            Ok(Some((head, base))) => head == pr.head_sha && tip.as_deref() == Some(base.as_str()),
            _ => false,
        };
        if force || moved || !current {
            shared.push(Job::Plan(pr.number));
        }
    }
}

/// Hands over an event raised here (a schedule, a poll); a failure is logged, and the next
/// schedule or poll raises it again.
pub(super) fn send_or_log(shared: &Shared, event: Event) {
    if let Err(e) = shared.send(event.clone()) {
        tracing::error!(?event, error = %chain(&e), "queueing an event");
    }
}
