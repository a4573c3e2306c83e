//! GitHub mode: the HTTP server, the first fetch, the workers, polling, cron schedules,
//! the deploy worker, SIGHUP reloads and the drain. Events from all of them are dispatched
//! here; the work itself is done by `pulls.rs` and `deploys.rs`, level-triggered.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{Config, GitHubConfig, Job as Scheduled};
use super::context::Shared;
use super::deploys::Deploys;
use super::dispatch::{dispatch, send_or_log, sync};
use super::durable::{self, Durable};
use super::error::DaemonError;
use super::events::Event;
use super::health::Health;
use super::job::Job;
use super::metrics::Metrics;
use super::queue::Queue;
use super::revisions::RevisionCache;
use super::{Control, Reloader, jobs, leader, server, systemd, ui, workers};
use crate::core::run::Trigger;
use crate::error::chain;
use crate::github::Client;
use crate::source::mirror::Mirror;
use crate::state::Store;

fn observer(metrics: &Arc<Metrics>) -> crate::github::Observer {
    let m = metrics.clone();
    Arc::new(move |method: &http::Method, status: u16| m.github(method.as_str(), status))
}

/// Serves GitHub until `control.shutdown` is cancelled.
pub(super) async fn run(
    config: Config,
    url: String,
    github: GitHubConfig,
    mut control: Control,
) -> Result<(), DaemonError> {
    let metrics = Arc::new(Metrics::default());
    let client = Client::new(&github.api, Some(observer(&metrics)))?;
    let mirror = Mirror::open(
        &config.state_dir.join("mirror.git"),
        &url,
        &config.repository.root,
    )?;
    let mirror = Arc::new(mirror);
    let store = Arc::new(Store::open_at(&config.state)?);
    // Replicas share their work through the database; one machine keeps it in memory.
    let durable = store
        .location()
        .is_postgres()
        .then(|| Durable::new(store.clone()));
    let deploys = Arc::new(Deploys::open(
        store.clone(),
        config.state_dir.clone(),
        mirror.clone(),
        durable.is_some(),
    )?);
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let (listener, local_addr) = server::bind(config.listen).await?;
    let revisions = RevisionCache::new(config.plan_cache_bytes);
    let config_parallel = config.provisioner_plans.parallel;
    // Work folders of provisioner plans a killed daemon left hold the inputs' secrets.
    crate::deploy::deep::clear_stale(&config.state_dir);
    let shared = Arc::new(Shared {
        revisions,
        config: RwLock::new(Arc::new(config)),
        github: RwLock::new(client),
        mirror,
        store,
        deploys,
        plans: Queue::new(true),
        metrics,
        events: events_tx,
        health: Arc::new(Health::new("fetching the repository")),
        branch_tip: Mutex::new(None),
        reloaded: tokio::sync::Notify::new(),
        resources: Queue::new(true),
        plan_slots: Arc::new(tokio::sync::Semaphore::new(config_parallel.max(1))),
        handoff: Default::default(),
        durable,
    });
    let role = shared.config().role;
    shared.health.set_role(role.name());
    shared.metrics.set_role(role.name());
    if shared.durable.is_some() {
        // The queue's tables exist before the first webhook is taken.
        workers::prepare(&shared).await?;
    }
    tracing::info!(addr = %local_addr, "listening");
    let tracker = TaskTracker::new();
    let stop = control.shutdown.clone();
    let view = ui::start(
        shared.config().ui.as_ref(),
        shared.store.clone(),
        shared.deploys.branch_model(),
        Some(crate::web::github_web_url(
            &github.api.api_url,
            &format!("{}/{}", github.api.owner, github.api.name),
        )),
        stop.clone(),
    )
    .await?;
    if let Some((addr, task)) = view {
        (control.console.print)(&format!("── the web view is on http://{addr}/\n"));
        tracker.spawn(async move {
            let _ = task.await;
        });
    }

    let server = tokio::spawn(server::serve(
        listener,
        server::github(shared.clone()),
        stop.clone(),
    ));

    // The first fetch decides readiness; until it works, /readyz says 503 and we retry.
    let mut wait = Duration::from_secs(1);
    loop {
        match shared.fetch(vec![shared.branch_refs()]).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %chain(&e), "fetching the repository failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => {
                        return finish(shared, tracker, server).await;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
    *shared.branch_tip.lock().unwrap_or_else(|p| p.into_inner()) = Some(shared.branch_tip()?);
    shared.health.set_ready();
    systemd::ready();
    tracker.spawn(systemd::watchdog(stop.clone()));

    if role.works() {
        start_work(&shared, &tracker, &stop);
    }

    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(()) = control.reload.recv() => reload(&shared, &control.reloader),
            Some(event) = events_rx.recv() => {
                let shared = shared.clone();
                tracker.spawn(async move { dispatch(&shared, event).await });
            }
        }
        shared.metrics.queue_depth.set(shared.plans.depth() as i64);
    }
    finish(shared, tracker, server).await
}

/// Starts this replica's share of the work: the jobs (from the durable queue, or from
/// this process's lanes), provisioner plans, and the run for leadership, whose terms run
/// the schedules, polling and sweeps and begin with a catch-up.
fn start_work(shared: &Arc<Shared>, tracker: &TaskTracker, stop: &CancellationToken) {
    let config = shared.config();
    match &shared.durable {
        Some(_) => {
            let (shared, stop) = (shared.clone(), stop.clone());
            // The instance plans' workers, and one for the deploy lane.
            let concurrency = config.workers + 1;
            let lease = durable::Lease(config.lease);
            tracker.spawn(async move {
                if let Err(e) = workers::work(shared, concurrency, lease, stop.clone()).await {
                    tracing::error!(error = %chain(&e), "the durable job worker stopped");
                    stop.cancel();
                }
            });
        }
        None => {
            for _ in 0..config.workers {
                let shared = shared.clone();
                tracker.spawn(async move { jobs::work(shared.clone(), &shared.plans).await });
            }
            let lane = shared.clone();
            tracker.spawn(async move { jobs::work(lane.clone(), lane.deploys.lane()).await });
        }
    }
    // Provisioner plans have their own lane: instance plans and deploys never wait for them.
    for _ in 0..shared.plan_slots.available_permits() {
        let shared = shared.clone();
        tracker.spawn(async move { jobs::work(shared.clone(), &shared.resources).await });
    }
    let (lead, term_tracker) = (shared.clone(), tracker.clone());
    let duties: leader::Duties = Arc::new(move |term: CancellationToken| {
        term_tracker.spawn(poller(lead.clone(), term.clone()));
        term_tracker.spawn(scheduler(lead.clone(), term.clone()));
        term_tracker.spawn(preview_sweeper(lead.clone(), term));
        // Catch up on whatever happened while no one led.
        for event in [Event::Sync { force: false }, Event::Deploy(Trigger::Start)] {
            send_or_log(&lead, event);
        }
        lead.push(Job::Sweep);
    });
    tracker.spawn(leader::lead(shared.clone(), duties, stop.clone()));
}

async fn finish(
    shared: Arc<Shared>,
    tracker: TaskTracker,
    server: tokio::task::JoinHandle<()>,
) -> Result<(), DaemonError> {
    systemd::stopping();
    shared.health.set_draining();
    shared.plans.close();
    shared.resources.close();
    shared.deploys.lane().close();
    tracker.close();
    let timeout = shared.config().shutdown_timeout;
    tracing::info!(running = shared.plans.running(), ?timeout, "draining");
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!("in-flight work did not finish within the shutdown timeout; cancelling it");
        shared.plans.cancel_running();
        shared.resources.cancel_running();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    }
    // A client holding a connection open must not hold up the exit.
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        tracing::warn!("the HTTP server did not close its connections in time");
    }
    tracing::info!("stopped");
    Ok(())
}

fn reload(shared: &Arc<Shared>, reloader: &Reloader) {
    match reloader() {
        Ok(new) => {
            let old = shared.config();
            if new.listen != old.listen || new.state_dir != old.state_dir {
                tracing::warn!("listen and state_dir changes take effect on restart");
            }
            match &new.github {
                Some(gh) => match Client::new(&gh.api, Some(observer(&shared.metrics))) {
                    Ok(client) => {
                        *shared.github.write().unwrap_or_else(|p| p.into_inner()) = client
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reloading: keeping the old configuration");
                        return;
                    }
                },
                None => {
                    tracing::error!(
                        "reloading: github was removed; that needs a restart, keeping the old configuration"
                    );
                    return;
                }
            }
            *shared.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
            shared.reloaded.notify_waiters();
            tracing::info!("configuration reloaded");
        }
        Err(e) => tracing::error!(error = %chain(&e), "reloading: keeping the old configuration"),
    }
}

/// Asks for a sweep of the previews every `previews.sweep_interval`.
async fn preview_sweeper(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let every = shared.config().previews.sweep_interval;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.reloaded.notified() => continue,
            _ = tokio::time::sleep(every) => shared.push(Job::Sweep),
        }
    }
}

/// Polls the branch and open pull requests, for set-ups without inbound webhooks.
async fn poller(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let interval = shared
            .config()
            .github
            .as_ref()
            .and_then(|g| g.poll_interval);
        let sleep = async {
            match interval {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.reloaded.notified() => continue,
            _ = sleep => {}
        }
        if let Err(e) = shared.fetch(vec![shared.branch_refs()]).await {
            tracing::error!(error = %chain(&e), "polling the deploy branch");
            continue;
        }
        sync(&shared, false).await;
    }
}

/// Runs the configured cron schedules.
async fn scheduler(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let config = shared.config();
        let now = chrono::Utc::now();
        let next = config
            .schedules
            .iter()
            .filter_map(|s| {
                s.cron
                    .find_next_occurrence(&now, false)
                    .ok()
                    .map(|at| (at, s))
            })
            .min_by_key(|(at, _)| *at);
        let (wait, schedule) = match next {
            Some((at, s)) => (
                (at - now).to_std().unwrap_or(Duration::ZERO),
                Some((s.name.clone(), s.job)),
            ),
            None => (Duration::MAX, None),
        };
        let sleep = async {
            if schedule.is_some() {
                tokio::time::sleep(wait).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.reloaded.notified() => continue,
            _ = sleep => {}
        }
        if let Some((name, job)) = schedule {
            tracing::info!(schedule = name, ?job, "schedule fired");
            match job {
                Scheduled::Replan => send_or_log(&shared, Event::Sync { force: true }),
                Scheduled::Reconcile => send_or_log(&shared, Event::Deploy(Trigger::Schedule)),
                Scheduled::Drift => send_or_log(&shared, Event::Drift),
            }
        }
    }
}
