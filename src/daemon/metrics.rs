//! Prometheus metrics of the daemon, served as text at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::core::drift::DriftStatus;
use crate::core::run::RunStatus;

type Labels = Vec<(&'static str, String)>;

/// Label values as enums: the set of values a metric takes is fixed in one place.
macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
    };
}

labels! {
    /// How a deploy pass of the branch ended (`capstan_deploys_total{result}`).
    DeployResult {
        Succeeded => "succeeded",
        Failed => "failed",
        Waiting => "waiting",
        Nothing => "nothing",
        Invalid => "invalid",
        Denied => "denied",
        Error => "error",
    }
}

labels! {
    /// How a piece of preview work ended (`capstan_preview_runs_total{outcome}`).
    PreviewOutcome {
        Succeeded => "succeeded",
        Failed => "failed",
        Waiting => "waiting",
        Nothing => "nothing",
        Destroyed => "destroyed",
        Expired => "expired",
        Refused => "refused",
        Invalid => "invalid",
        Error => "error",
    }
}

labels! {
    /// How a plan of a pull request ended (`capstan_plans_total{outcome}`).
    PlanOutcome {
        Planned => "planned",
        Failed => "failed",
        Superseded => "superseded",
        Closed => "closed",
        OtherBase => "other-base",
        Error => "error",
    }
}

labels! {
    /// What became of a webhook delivery (`capstan_webhooks_total{result}`).
    WebhookResult {
        Accepted => "accepted",
        Ignored => "ignored",
        Invalid => "invalid",
        Unauthorized => "unauthorized",
        Unavailable => "unavailable",
    }
}

impl From<RunStatus> for DeployResult {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Succeeded => DeployResult::Succeeded,
            RunStatus::Waiting => DeployResult::Waiting,
            RunStatus::Failed | RunStatus::Running | RunStatus::Interrupted => DeployResult::Failed,
        }
    }
}

impl From<RunStatus> for PreviewOutcome {
    fn from(status: RunStatus) -> Self {
        match DeployResult::from(status) {
            DeployResult::Succeeded => PreviewOutcome::Succeeded,
            DeployResult::Waiting => PreviewOutcome::Waiting,
            _ => PreviewOutcome::Failed,
        }
    }
}

pub struct Metrics {
    registry: Registry,
    plans: Family<Labels, Counter>,
    plan_seconds: Histogram,
    github: Family<Labels, Counter>,
    webhooks: Family<Labels, Counter>,
    deploys: Family<Labels, Counter>,
    previews: Family<Labels, Gauge>,
    drift_checks: Family<Labels, Counter>,
    pub drifted_instances: Gauge,
    /// Projects the previews gauge has a value for, so a project whose last preview
    /// went reads 0.
    preview_projects: std::sync::Mutex<std::collections::BTreeSet<String>>,
    preview_runs: Family<Labels, Counter>,
    pub queue_depth: Gauge,
    pub running: Gauge,
    /// Estimated bytes of checked revisions the plan cache holds.
    pub plan_cache_bytes: Gauge,
    plan_cache: Family<Labels, Counter>,
    provisioner_plans: Family<Labels, Counter>,
    /// 1 while this process runs the schedules and polling.
    pub leader: Gauge,
    /// 1 for this process's role (`all`, `web`, `worker`).
    role: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("capstan");
        let plans = Family::<Labels, Counter>::default();
        let plan_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let github = Family::<Labels, Counter>::default();
        let webhooks = Family::<Labels, Counter>::default();
        let deploys = Family::<Labels, Counter>::default();
        let previews = Family::<Labels, Gauge>::default();
        let drift_checks = Family::<Labels, Counter>::default();
        let drifted_instances = Gauge::default();
        let preview_runs = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::default();
        let running = Gauge::default();
        let plan_cache_bytes = Gauge::default();
        let plan_cache = Family::<Labels, Counter>::default();
        let provisioner_plans = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
        let role = Family::<Labels, Gauge>::default();
        registry.register(
            "leader",
            "1 while this process runs the schedules and polling (one replica at a time)",
            leader.clone(),
        );
        registry.register(
            "role",
            "This process's role (all, web, worker)",
            role.clone(),
        );
        registry.register(
            "plans",
            "Pull-request plans by outcome (planned, failed, superseded, error)",
            plans.clone(),
        );
        registry.register(
            "plan_duration_seconds",
            "Time from picking a pull request to its comment and statuses",
            plan_seconds.clone(),
        );
        registry.register(
            "github_requests",
            "GitHub API answers by method and HTTP status (0: network failure)",
            github.clone(),
        );
        registry.register(
            "webhooks",
            "Webhook deliveries by event and result",
            webhooks.clone(),
        );
        registry.register(
            "deploys",
            "Deploy runs by result (succeeded, failed, waiting, nothing, invalid, denied, error)",
            deploys.clone(),
        );
        registry.register(
            "drift_checks",
            "Instance drift checks by result (in_sync, drifted, not_checkable, check_failed)",
            drift_checks.clone(),
        );
        registry.register(
            "drifted_instances",
            "Deployed instances whose last check found drift",
            drifted_instances.clone(),
        );
        registry.register("previews", "Live previews by project", previews.clone());
        registry.register(
            "preview_runs",
            "Preview work by outcome (succeeded, failed, waiting, nothing, destroyed, expired, refused, invalid, error)",
            preview_runs.clone(),
        );
        registry.register(
            "queue_depth",
            "Pull requests waiting to be planned",
            queue_depth.clone(),
        );
        registry.register("plans_running", "Plans in progress", running.clone());
        registry.register(
            "plan_cache_bytes",
            "Estimated bytes of checked revisions kept for the next plan",
            plan_cache_bytes.clone(),
        );
        registry.register(
            "plan_cache_projects",
            "Projects per plan, by what was done with them (kept, resolved, loaded)",
            plan_cache.clone(),
        );
        registry.register(
            "provisioner_plans",
            "Provisioner plans of pull requests' instances by result (planned, reused, not_plannable, not_run, failed, cancelled)",
            provisioner_plans.clone(),
        );
        Metrics {
            provisioner_plans,
            registry,
            plans,
            plan_seconds,
            github,
            webhooks,
            deploys,
            previews,
            drift_checks,
            drifted_instances,
            preview_projects: Default::default(),
            preview_runs,
            queue_depth,
            running,
            plan_cache_bytes,
            plan_cache,
            leader,
            role,
        }
    }
}

impl Metrics {
    pub fn set_role(&self, role: &'static str) {
        self.role
            .get_or_create(&vec![("role", role.to_string())])
            .set(1);
    }

    /// What a check of a revision kept from the cache and computed again.
    pub fn plan_cache(&self, reuse: &crate::core::incremental::Reuse) {
        for (what, n) in [
            ("kept", reuse.kept_resolved),
            ("resolved", reuse.resolved),
            ("loaded", reuse.loaded),
        ] {
            self.plan_cache
                .get_or_create(&vec![("projects", what.to_string())])
                .inc_by(n as u64);
        }
    }

    /// One instance's provisioner plan: `result` is an outcome's label, `reused` or
    /// `cancelled`.
    pub fn provisioner_plan(&self, result: &'static str) {
        self.provisioner_plans
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    pub fn plan(&self, outcome: PlanOutcome, seconds: f64) {
        self.plans
            .get_or_create(&vec![("outcome", outcome.label().to_string())])
            .inc();
        self.plan_seconds.observe(seconds);
    }

    pub fn github(&self, method: &str, status: u16) {
        self.github
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    pub fn webhook(&self, event: &str, result: WebhookResult) {
        // Event names come from a header: keep the label set bounded.
        let event = match event {
            "pull_request" | "pull_request_review" | "issue_comment" | "push" | "ping" => event,
            _ => "other",
        };
        self.webhooks
            .get_or_create(&vec![
                ("event", event.to_string()),
                ("result", result.label().to_string()),
            ])
            .inc();
    }

    pub fn deploy(&self, result: impl Into<DeployResult>) {
        self.deploys
            .get_or_create(&vec![("result", result.into().label().to_string())])
            .inc();
    }

    /// Live previews by project now (a project that had some and is not named has none).
    pub fn previews(&self, live: &std::collections::BTreeMap<String, usize>) {
        let mut seen = self
            .preview_projects
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        seen.extend(live.keys().cloned());
        for project in seen.iter() {
            self.previews
                .get_or_create(&vec![("project", project.clone())])
                .set(live.get(project).copied().unwrap_or(0) as i64);
        }
    }

    pub fn drift_check(&self, result: DriftStatus) {
        self.drift_checks
            .get_or_create(&vec![("result", result.name().replace(' ', "_"))])
            .inc();
    }

    pub fn preview_run(&self, outcome: impl Into<PreviewOutcome>) {
        self.preview_runs
            .get_or_create(&vec![("outcome", outcome.into().label().to_string())])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
