//! A deploy run's vocabulary and its pure decisions (docs/deploying.md).
//!
//! What starts a run ([`Trigger`]), what a run does to an instance ([`Verb`]), how a step
//! ends ([`StepResult`]) and how steps and runs are recorded ([`StepStatus`],
//! [`RunStatus`]) are enums; they become text only where they are stored or printed.
//! Whether one instance runs now ([`decide_deploy`], [`decide_destroy`]) is decided here,
//! without I/O: the deployer only carries the decision out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::deployed::{self, Deployed, Inputs};
use super::drift::Heal;
use super::model::{DeployWindow, Environment, InstanceId};
use super::windows::{self, Gate};

macro_rules! named {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// As stored and printed.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.name() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named! {
    /// What a run does to an instance.
    Verb {
        Deploy => "deploy",
        Destroy => "destroy",
    }
}

named! {
    /// Why a run happens; kept with the run.
    Trigger {
        /// `capstan apply`.
        Apply => "apply",
        /// The daemon started.
        Start => "start",
        /// The deploy branch moved on the remote (webhook or polling).
        Push => "push",
        /// A new commit on the branch of a watched local checkout.
        Commit => "commit",
        /// The `reconcile` schedule.
        Schedule => "schedule",
        /// A deploy window that held instances back opened.
        WindowOpened => "window-opened",
        /// A preview was brought up or updated (`capstan preview up`, a pull request).
        Preview => "preview",
        /// A preview was torn down (`capstan preview down`, a closed pull request, its TTL).
        Teardown => "teardown",
        /// A drift check found drifted instances where `drift.remediate` heals them.
        Drift => "drift",
        /// `capstan state forget`: an instance left the state, nothing was destroyed.
        Forget => "forget",
    }
}

/// Which recorded instances a run owns: what it may deploy, and what it destroys when the
/// revision no longer wants it. The branch's runs own every instance that is not a
/// preview's; a preview's run owns only that preview's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The deploy branch. `previews` are the live previews as recorded (project,
    /// name): their instances are never the branch's, whatever their names.
    Branch {
        previews: BTreeSet<(String, String)>,
    },
    /// One preview (environment `name` of `project`).
    Preview { project: String, name: String },
}

impl Scope {
    /// Whether an instance of `environment` of `project` is this run's.
    pub fn owns(&self, project: &str, environment: &str) -> bool {
        match self {
            Scope::Branch { previews } => {
                !Environment::is_preview_name(environment)
                    && !previews.contains(&(project.to_string(), environment.to_string()))
            }
            Scope::Preview { project: p, name } => p == project && name == environment,
        }
    }
}

named! {
    /// How a step is recorded.
    StepStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Not run: something it depends on (or that still uses it) did not succeed.
        Skipped => "skipped",
        /// Not run: a deploy window is closed.
        Waiting => "waiting",
        /// capstan stopped while it ran.
        Interrupted => "interrupted",
    }
}

named! {
    /// How a run is recorded.
    RunStatus {
        Running => "running",
        /// Everything is as desired.
        Succeeded => "succeeded",
        /// Something failed or was skipped.
        Failed => "failed",
        /// Only deploy windows hold something back.
        Waiting => "waiting",
        /// capstan stopped during the run.
        Interrupted => "interrupted",
    }
}

/// How one instance's step in a run ended, or why it did not run.
#[derive(Clone, Debug, PartialEq)]
pub enum StepResult {
    Succeeded,
    Failed(String),
    /// Not run because something it depends on (or that still uses it) did not succeed.
    Skipped(String),
    /// Not run because a deploy window is closed; `opens` is when it opens.
    Waiting {
        reason: String,
        opens: Option<DateTime<Utc>>,
    },
}

impl StepResult {
    pub fn status(&self) -> StepStatus {
        match self {
            StepResult::Succeeded => StepStatus::Succeeded,
            StepResult::Failed(_) => StepStatus::Failed,
            StepResult::Skipped(_) => StepStatus::Skipped,
            StepResult::Waiting { .. } => StepStatus::Waiting,
        }
    }

    /// Why it did not succeed, in words (empty when it did): the step's message.
    pub fn detail(&self) -> String {
        match self {
            StepResult::Succeeded => String::new(),
            StepResult::Failed(m) | StepResult::Skipped(m) => m.clone(),
            StepResult::Waiting { reason, opens } => match opens {
                Some(at) => format!("{reason}; waits until {at}"),
                None => reason.clone(),
            },
        }
    }
}

/// The status of a run whose steps ended with `results`.
pub fn run_status<'a>(results: impl IntoIterator<Item = &'a StepResult>) -> RunStatus {
    let mut waiting = false;
    for r in results {
        match r {
            StepResult::Failed(_) | StepResult::Skipped(_) => return RunStatus::Failed,
            StepResult::Waiting { .. } => waiting = true,
            StepResult::Succeeded => {}
        }
    }
    if waiting {
        RunStatus::Waiting
    } else {
        RunStatus::Succeeded
    }
}

/// What to do with one instance now.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Its record already is what is desired: nothing to do.
    Current,
    /// Not run, for the reason given (recorded as a skipped or waiting step).
    Hold(StepResult),
    Run,
}

/// The deploy windows and the moment a run decides against.
#[derive(Clone, Copy)]
pub struct Moment<'a> {
    pub windows: &'a [DeployWindow],
    pub now: DateTime<Utc>,
}

impl Moment<'_> {
    fn gate(&self, attributes: &BTreeMap<String, String>) -> Option<StepResult> {
        match windows::gate(self.windows, attributes, self.now) {
            Gate::Open => None,
            Gate::Closed { reason, opens } => Some(StepResult::Waiting { reason, opens }),
        }
    }
}

/// Whether a desired instance deploys now: not when its record is current; not when an
/// instance it takes artifacts from was held back or failed earlier in this run (`held`),
/// or is not deployed at all (a preview on a shared producer the branch has not deployed
/// yet); not while a deploy window for its environment is closed.
pub fn decide_deploy(
    inputs: &Inputs,
    state: &BTreeMap<InstanceId, Deployed>,
    id: &InstanceId,
    held: &HashMap<InstanceId, StepResult>,
    attributes: &BTreeMap<String, String>,
    moment: Moment<'_>,
    heal: &Heal,
) -> Decision {
    if state
        .get(id)
        .is_some_and(|d| d.is_current(inputs) && (d.drifted().is_none() || !heal.heals(attributes)))
    {
        return Decision::Current;
    }
    if let Some((producer, result)) = inputs
        .producers()
        .into_iter()
        .find_map(|p| held.get(&p).map(|r| (p, r)))
    {
        let what = match result {
            StepResult::Waiting { .. } => "is waiting for a deploy window",
            StepResult::Skipped(_) => "was skipped",
            StepResult::Failed(_) | StepResult::Succeeded => "failed",
        };
        let why = format!("it takes artifacts from {producer}, which {what}");
        return Decision::Hold(match result {
            StepResult::Waiting { opens, .. } => StepResult::Waiting {
                reason: why,
                opens: *opens,
            },
            _ => StepResult::Skipped(why),
        });
    }
    if let Some(missing) = inputs
        .producers()
        .into_iter()
        .find(|p| !state.contains_key(p))
    {
        return Decision::Hold(StepResult::Skipped(format!(
            "it takes artifacts from {missing}, which is not deployed"
        )));
    }
    match moment.gate(attributes) {
        Some(waiting) => Decision::Hold(waiting),
        None => Decision::Run,
    }
}

/// Whether a recorded instance that is no longer desired is destroyed now: not while a
/// recorded instance still takes its artifacts; not while a deploy window for its
/// environment is closed.
pub fn decide_destroy(
    record: &Deployed,
    state: &BTreeMap<InstanceId, Deployed>,
    moment: Moment<'_>,
) -> Decision {
    let users = deployed::users_of(state, &record.instance);
    if !users.is_empty() {
        let names: Vec<&str> = users.iter().map(InstanceId::as_str).collect();
        return Decision::Hold(StepResult::Skipped(format!(
            "{} still use{} its artifacts",
            names.join(", "),
            if names.len() == 1 { "s" } else { "" }
        )));
    }
    match moment.gate(&record.attributes) {
        Some(waiting) => Decision::Hold(waiting),
        None => Decision::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deployed::{Input, Status};
    use crate::core::diag::Loc;
    use crate::core::model::Audience;
    use crate::core::time::Timestamp;
    use serde_json::json;

    fn inputs(producer: Option<&str>) -> Inputs {
        Inputs {
            bundle: "b".into(),
            version: "1".into(),
            bundle_digest: "d".into(),
            params: json!({}),
            connections: producer
                .map(|p| {
                    BTreeMap::from([(
                        "network".to_string(),
                        Input {
                            source: format!("{p}.network"),
                            data: Some(json!({"id": "vpc-1"})),
                        },
                    )])
                })
                .unwrap_or_default(),
        }
    }

    fn record(id: &str, inputs: &Inputs, status: Status) -> Deployed {
        Deployed {
            instance: InstanceId(id.into()),
            project: "p".into(),
            environment: "e".into(),
            package: "k".into(),
            digest: inputs.digest(),
            inputs: inputs.clone(),
            artifacts: BTreeMap::new(),
            status,
            commit: "c".into(),
            attributes: BTreeMap::from([("tier".into(), "production".into())]),
            sensitive: Vec::new(),
            updated_at: Timestamp::default(),
            drift: None,
        }
    }

    fn freeze() -> Vec<DeployWindow> {
        vec![DeployWindow {
            name: Some("freeze".into()),
            allow: false,
            cron: windows::parse_cron("0 0 * * *").expect("cron"),
            length: chrono::TimeDelta::hours(24),
            environments: Audience::Matching(BTreeMap::from([(
                "tier".into(),
                vec!["production".into()],
            )])),
            at: Loc::new(&"capstan.yaml".into(), crate::core::yaml::Pos::START),
        }]
    }

    fn now() -> DateTime<Utc> {
        "2026-11-19T10:00:00Z".parse().expect("time")
    }

    #[test]
    fn a_current_record_is_left_alone_and_a_failed_one_runs_again() {
        let i = inputs(None);
        let moment = Moment {
            windows: &[],
            now: now(),
        };
        let attrs = BTreeMap::new();
        let held = HashMap::new();
        let id = InstanceId("a-b-c".into());
        let ok = BTreeMap::from([(id.clone(), record("a-b-c", &i, Status::Deployed))]);
        assert_eq!(
            decide_deploy(&i, &ok, &id, &held, &attrs, moment, &Heal::None),
            Decision::Current
        );
        let failed = BTreeMap::from([(id.clone(), record("a-b-c", &i, Status::Failed))]);
        assert_eq!(
            decide_deploy(&i, &failed, &id, &held, &attrs, moment, &Heal::None),
            Decision::Run
        );
        assert_eq!(
            decide_deploy(
                &i,
                &BTreeMap::new(),
                &id,
                &held,
                &attrs,
                moment,
                &Heal::None
            ),
            Decision::Run
        );
    }

    #[test]
    fn a_held_producer_holds_its_consumers_the_same_way() {
        let i = inputs(Some("si-staging-vpc"));
        let moment = Moment {
            windows: &[],
            now: now(),
        };
        let attrs = BTreeMap::new();
        let id = InstanceId("ecomm-staging-db".into());
        let vpc = InstanceId("si-staging-vpc".into());
        let failed = HashMap::from([(vpc.clone(), StepResult::Failed("boom".into()))]);
        assert_eq!(
            decide_deploy(
                &i,
                &BTreeMap::new(),
                &id,
                &failed,
                &attrs,
                moment,
                &Heal::None
            ),
            Decision::Hold(StepResult::Skipped(
                "it takes artifacts from si-staging-vpc, which failed".into()
            ))
        );
        let opens = Some(now() + chrono::TimeDelta::hours(3));
        let waiting = HashMap::from([(
            vpc,
            StepResult::Waiting {
                reason: "freeze".into(),
                opens,
            },
        )]);
        assert_eq!(
            decide_deploy(
                &i,
                &BTreeMap::new(),
                &id,
                &waiting,
                &attrs,
                moment,
                &Heal::None
            ),
            Decision::Hold(StepResult::Waiting {
                reason:
                    "it takes artifacts from si-staging-vpc, which is waiting for a deploy window"
                        .into(),
                opens
            })
        );
    }

    #[test]
    fn a_producer_that_is_not_deployed_holds_its_consumers() {
        let i = inputs(Some("si-staging-vpc"));
        let moment = Moment {
            windows: &[],
            now: now(),
        };
        let id = InstanceId("ecomm-pr1-db".into());
        assert_eq!(
            decide_deploy(
                &i,
                &BTreeMap::new(),
                &id,
                &HashMap::new(),
                &BTreeMap::new(),
                moment,
                &Heal::None
            ),
            Decision::Hold(StepResult::Skipped(
                "it takes artifacts from si-staging-vpc, which is not deployed".into()
            ))
        );
        let vpc = InstanceId("si-staging-vpc".into());
        let state = BTreeMap::from([(
            vpc,
            record("si-staging-vpc", &inputs(None), Status::Deployed),
        )]);
        assert_eq!(
            decide_deploy(
                &i,
                &state,
                &id,
                &HashMap::new(),
                &BTreeMap::new(),
                moment,
                &Heal::None
            ),
            Decision::Run
        );
    }

    #[test]
    fn a_drifted_record_runs_again_where_the_policy_heals() {
        let i = inputs(None);
        let moment = Moment {
            windows: &[],
            now: now(),
        };
        let id = InstanceId("a-b-c".into());
        let mut drifted = record("a-b-c", &i, Status::Deployed);
        drifted.drift = Some(crate::core::drift::DriftCheck {
            status: crate::core::drift::DriftStatus::Drifted,
            since: Timestamp::default(),
            summary: "gone".into(),
            checked_at: Timestamp::default(),
        });
        let state = BTreeMap::from([(id.clone(), drifted)]);
        let attrs = BTreeMap::from([("tier".to_string(), "staging".to_string())]);
        let decide =
            |heal: &Heal| decide_deploy(&i, &state, &id, &HashMap::new(), &attrs, moment, heal);
        assert_eq!(decide(&Heal::All), Decision::Run);
        assert_eq!(decide(&Heal::None), Decision::Current, "reported only");
    }

    #[test]
    fn scopes_split_the_branch_from_each_preview() {
        let branch = Scope::Branch {
            previews: BTreeSet::from([("ecomm".to_string(), "demo".to_string())]),
        };
        assert!(branch.owns("ecomm", "staging"));
        assert!(
            !branch.owns("ecomm", "pr12"),
            "pr<digits> is never the branch's"
        );
        assert!(
            !branch.owns("ecomm", "demo"),
            "a recorded preview is not the branch's"
        );
        assert!(branch.owns("api", "demo"));
        let preview = Scope::Preview {
            project: "ecomm".into(),
            name: "pr12".into(),
        };
        assert!(preview.owns("ecomm", "pr12"));
        assert!(!preview.owns("ecomm", "staging"));
        assert!(!preview.owns("api", "pr12"));
    }

    #[test]
    fn a_closed_window_makes_deploys_and_destroys_wait() {
        let windows = freeze();
        let moment = Moment {
            windows: &windows,
            now: now(),
        };
        let i = inputs(None);
        let production = BTreeMap::from([("tier".into(), "production".into())]);
        let staging = BTreeMap::from([("tier".into(), "staging".into())]);
        let held = HashMap::new();
        let id = InstanceId("a-prod-c".into());
        assert!(matches!(
            decide_deploy(
                &i,
                &BTreeMap::new(),
                &id,
                &held,
                &production,
                moment,
                &Heal::None
            ),
            Decision::Hold(StepResult::Waiting { .. })
        ));
        assert_eq!(
            decide_deploy(
                &i,
                &BTreeMap::new(),
                &id,
                &held,
                &staging,
                moment,
                &Heal::None
            ),
            Decision::Run
        );
        let gone = record("a-prod-c", &i, Status::Deployed);
        assert!(matches!(
            decide_destroy(&gone, &BTreeMap::new(), moment),
            Decision::Hold(StepResult::Waiting { .. })
        ));
    }

    #[test]
    fn a_producer_still_used_is_not_destroyed() {
        let moment = Moment {
            windows: &[],
            now: now(),
        };
        let vpc = record("si-staging-vpc", &inputs(None), Status::Deployed);
        let app = record(
            "api-staging-app",
            &inputs(Some("si-staging-vpc")),
            Status::Deployed,
        );
        let state = BTreeMap::from([
            (vpc.instance.clone(), vpc.clone()),
            (app.instance.clone(), app),
        ]);
        assert_eq!(
            decide_destroy(&vpc, &state, moment),
            Decision::Hold(StepResult::Skipped(
                "api-staging-app still uses its artifacts".into()
            ))
        );
        let alone = BTreeMap::from([(vpc.instance.clone(), vpc.clone())]);
        assert_eq!(decide_destroy(&vpc, &alone, moment), Decision::Run);
    }

    #[test]
    fn names_read_back() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.name()), Some(*t));
        }
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.name()), Some(*s));
        }
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.name()), Some(*s));
        }
        assert_eq!(
            run_status(&[
                StepResult::Succeeded,
                StepResult::Waiting {
                    reason: String::new(),
                    opens: None
                }
            ]),
            RunStatus::Waiting
        );
    }
}
