//! What is deployed, and the history of how it got there.
//!
//! - `instances`: one row per instance that exists (or may, after a failure): its last
//!   deployed inputs and digest, artifacts, status, commit and time. A destroy that
//!   succeeds deletes the row.
//! - `runs`: one per deploy of a commit; `steps`: one per instance deployed or destroyed
//!   in a run (all of the bundle's steps, with one log file).
//!
//! A step's start and its instance's status change are one transaction, and so are a
//! step's end and its instance's new record: after a crash, a `running` step always has
//! its instance `deploying`/`destroying`, which [`Store::recover`] marks interrupted.

use std::collections::BTreeMap;

use super::db::{Db, DbError, Row, args};
use super::rows::{inputs_from_text, inputs_to_text, to_text};
use super::{StateError, Store};
use crate::core::commit::CommitId;
use crate::core::deployed::{Deployed, Inputs, Status};
use crate::core::drift::{DriftCheck, DriftStatus};
use crate::core::model::InstanceId;
use crate::core::run::{RunStatus, StepResult, StepStatus, Trigger, Verb};
use crate::core::time::Timestamp;

/// What a step is about to do, and what its instance's row needs if it is new.
pub struct NewStep<'a> {
    pub run: i64,
    pub instance: &'a InstanceId,
    pub project: &'a str,
    pub environment: &'a str,
    pub package: &'a str,
    pub action: Verb,
    pub inputs: &'a Inputs,
    pub commit: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
    pub sensitive: &'a [Vec<String>],
    pub log_path: Option<&'a str>,
    /// The fencing token the deploy took the state over with ([`Store::advance_fence`]).
    pub fence: i64,
}

/// What [`Store::deployed_since`] found.
#[derive(Clone, Debug)]
pub struct Changed {
    pub seq: i64,
    /// Instances recorded now.
    pub count: usize,
    pub rows: Vec<Deployed>,
}

/// What [`Store::recover`] found interrupted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub runs: usize,
    pub steps: usize,
    pub instances: Vec<String>,
}

/// The raw text columns of an `instances` row, parsed outside the database lock.
struct RawInstance {
    id: String,
    project: String,
    environment: String,
    package: String,
    status: String,
    inputs: String,
    digest: String,
    artifacts: String,
    commit: CommitId,
    attributes: String,
    sensitive: String,
    updated_at: Timestamp,
    drift_status: Option<String>,
    drift_since: Option<Timestamp>,
    drift_summary: Option<String>,
    drift_checked_at: Option<Timestamp>,
}

const INSTANCE_COLUMNS: &str = "id, project, environment, package, status, inputs, digest, artifacts, commit_sha, attributes, sensitive, updated_at, drift_status, drift_since, drift_summary, drift_checked_at";

impl RawInstance {
    fn from_row(r: &Row) -> Result<RawInstance, DbError> {
        Ok(RawInstance {
            id: r.get(0)?,
            project: r.get(1)?,
            environment: r.get(2)?,
            package: r.get(3)?,
            status: r.get(4)?,
            inputs: r.get(5)?,
            digest: r.get(6)?,
            artifacts: r.get(7)?,
            commit: r.get(8)?,
            attributes: r.get(9)?,
            sensitive: r.get(10)?,
            updated_at: r.get(11)?,
            drift_status: r.get(12)?,
            drift_since: r.get(13)?,
            drift_summary: r.get(14)?,
            drift_checked_at: r.get(15)?,
        })
    }

    fn parse(self) -> Result<Deployed, StateError> {
        let corrupt = |what| StateError::Corrupt {
            what,
            key: self.id.clone(),
        };
        let drift = match self.drift_status.as_deref() {
            None => None,
            Some(text) => Some(DriftCheck {
                status: DriftStatus::parse(text).ok_or_else(|| corrupt("drift status"))?,
                since: self.drift_since.unwrap_or_default(),
                summary: self.drift_summary.clone().unwrap_or_default(),
                checked_at: self.drift_checked_at.unwrap_or_default(),
            }),
        };
        Ok(Deployed {
            drift,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            inputs: inputs_from_text(&self.inputs).ok_or_else(|| corrupt("inputs"))?,
            artifacts: serde_json::from_str(&self.artifacts).map_err(|_| corrupt("artifacts"))?,
            attributes: serde_json::from_str(&self.attributes)
                .map_err(|_| corrupt("attributes"))?,
            sensitive: serde_json::from_str(&self.sensitive).map_err(|_| corrupt("sensitive"))?,
            instance: InstanceId(self.id.into()),
            project: self.project,
            environment: self.environment,
            package: self.package,
            digest: self.digest,
            commit: self.commit,
            updated_at: self.updated_at,
        })
    }
}

/// Fails unless `token` is the current fencing token.
fn check_fence(tx: &mut Db<'_>, token: i64) -> Result<(), DbError> {
    let current: i64 = tx.query_one("SELECT token FROM fence", &[])?.get(0)?;
    if current == token {
        Ok(())
    } else {
        Err(DbError::Fenced { token, current })
    }
}

/// Fails unless step `step` started under the current fencing token (steps recorded
/// before fencing have none, and pass).
fn step_fence_holds(tx: &mut Db<'_>, step: i64) -> Result<(), DbError> {
    let row = tx.query_opt("SELECT fence FROM steps WHERE id = ?1", args![step])?;
    match row.map(|r| r.get::<Option<i64>>(0)).transpose()?.flatten() {
        Some(token) => check_fence(tx, token),
        None => Ok(()),
    }
}

impl Store {
    /// Moves the fencing token on, for whoever takes the state over for deploying (and
    /// holds its deploy lock): from now on, steps started under an older token can write
    /// no result. Returns the new token.
    pub fn advance_fence(&self) -> Result<i64, StateError> {
        self.with(|c| {
            c.query_one(
                "UPDATE fence SET token = token + 1 WHERE id = 1 RETURNING token",
                &[],
            )?
            .get(0)
        })
    }

    /// Every instance recorded, by id.
    pub fn deployed(&self) -> Result<BTreeMap<InstanceId, Deployed>, StateError> {
        let raw = self.with(|c| {
            c.query(
                &format!("SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY id"),
                &[],
            )?
            .iter()
            .map(RawInstance::from_row)
            .collect::<Result<Vec<_>, _>>()
        })?;
        raw.into_iter()
            .map(|r| r.parse().map(|d| (d.instance.clone(), d)))
            .collect()
    }

    /// The instances recorded or changed since `seq` (a value of a previous answer; -1 for
    /// all), with the sequence now and how many instances there are now: a reader that
    /// applies the changes to what it had and holds a different number missed a removal.
    pub fn deployed_since(&self, seq: i64) -> Result<Changed, StateError> {
        let (now, count, raw) = self.with(|c| {
            c.transaction(|tx| {
                let now: i64 = tx
                    .query_one("SELECT seq FROM instance_sequence", &[])?
                    .get(0)?;
                let count: i64 = tx
                    .query_one("SELECT count(*) FROM instances", &[])?
                    .get(0)?;
                let raw = tx
                    .query(
                        &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE changed > ?1"),
                        args![seq],
                    )?
                    .iter()
                    .map(RawInstance::from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((now, count as usize, raw))
            })
        })?;
        Ok(Changed {
            seq: now,
            count,
            rows: raw
                .into_iter()
                .map(RawInstance::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn instance(&self, id: &str) -> Result<Option<Deployed>, StateError> {
        let raw = self.with(|c| {
            c.query_opt(
                &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"),
                args![id],
            )?
            .as_ref()
            .map(RawInstance::from_row)
            .transpose()
        })?;
        raw.map(RawInstance::parse).transpose()
    }

    pub fn begin_run(&self, commit: &str, trigger: Trigger) -> Result<i64, StateError> {
        self.with(|c| {
            c.query_one(
                "INSERT INTO runs (commit_sha, trigger, status, started_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                args![commit, trigger.name(), RunStatus::Running.name(), super::now()],
            )?
            .get(0)
        })
    }

    pub fn finish_run(&self, run: i64, status: RunStatus, summary: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = ?2, summary = ?3, finished_at = ?4 WHERE id = ?1",
                args![run, status.name(), summary, super::now()],
            )
            .map(drop)
        })
    }

    /// Starts a step, and marks its instance `deploying` or `destroying`, in one
    /// transaction. A new instance gets a row at once (with no digest), so a crash during
    /// its first deploy still leaves a record of what may exist.
    pub fn begin_step(&self, step: &NewStep<'_>) -> Result<i64, StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                check_fence(tx, step.fence)?;
                let t = super::now();
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO steps (run_id, instance, action, status, log_path, started_at, fence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         RETURNING id",
                        args![step.run, step.instance.as_str(), step.action.name(), StepStatus::Running.name(), step.log_path, t, step.fence],
                    )?
                    .get(0)?;
                let status = match step.action {
                    Verb::Destroy => Status::Destroying,
                    Verb::Deploy => Status::Deploying,
                };
                tx.execute(
                    "INSERT INTO instances (id, project, environment, package, status, inputs, digest, artifacts, commit_sha, attributes, sensitive, updated_at, step_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', '{}', ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT(id) DO UPDATE SET status = ?5, updated_at = ?10, step_id = ?11",
                    args![
                        step.instance.as_str(),
                        step.project,
                        step.environment,
                        step.package,
                        status.name(),
                        inputs_to_text(step.inputs),
                        step.commit,
                        to_text(step.attributes),
                        to_text(&step.sensitive),
                        t,
                        id
                    ],
                )?;
                Ok(id)
            })
        })
    }

    /// A deploy step succeeded: the instance now is `record` (status `deployed`).
    pub fn finish_deploy(&self, step: i64, record: &Deployed) -> Result<(), StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                step_fence_holds(tx, step)?;
                let t = super::now();
                tx.execute(
                    "UPDATE steps SET status = 'succeeded', finished_at = ?2 WHERE id = ?1",
                    args![step, t],
                )?;
                tx.execute(
                    "INSERT INTO instances (id, project, environment, package, status, inputs, digest, artifacts, commit_sha, attributes, sensitive, updated_at, step_id)
                     VALUES (?1, ?2, ?3, ?4, 'deployed', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(id) DO UPDATE SET project = ?2, environment = ?3, package = ?4, status = 'deployed',
                         inputs = ?5, digest = ?6, artifacts = ?7, commit_sha = ?8, attributes = ?9, sensitive = ?10,
                         updated_at = ?11, step_id = ?12,
                         drift_status = NULL, drift_since = NULL, drift_summary = NULL, drift_checked_at = NULL",
                    args![
                        record.instance.as_str(),
                        &record.project,
                        &record.environment,
                        &record.package,
                        inputs_to_text(&record.inputs),
                        &record.digest,
                        to_text(&record.artifacts),
                        &record.commit,
                        to_text(&record.attributes),
                        to_text(&record.sensitive),
                        t,
                        step
                    ],
                )?;
                Ok(())
            })
        })
    }

    /// Records a drift check of `instance` made at `at`, unless it was redeployed or
    /// destroyed meanwhile (`digest` is the one checked). "Since" is kept while the status
    /// stays the same. Returns the check as recorded, `None` when nothing was.
    pub fn record_check(
        &self,
        instance: &str,
        digest: &str,
        status: DriftStatus,
        summary: &str,
        at: Timestamp,
    ) -> Result<Option<DriftCheck>, StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                let Some(before) = tx.query_opt(
                    "SELECT drift_status, drift_since FROM instances WHERE id = ?1 AND digest = ?2 AND status = 'deployed'",
                    args![instance, digest],
                )?
                else {
                    return Ok(None);
                };
                let old: Option<String> = before.get(0)?;
                let old_since: Option<Timestamp> = before.get(1)?;
                let since = match (old.as_deref(), old_since) {
                    (Some(o), Some(s)) if o == status.name() => s,
                    _ => at,
                };
                tx.execute(
                    "UPDATE instances SET drift_status = ?2, drift_since = ?3, drift_summary = ?4, drift_checked_at = ?5 WHERE id = ?1",
                    args![instance, status.name(), since, summary, at],
                )?;
                Ok(Some(DriftCheck {
                    status,
                    since,
                    summary: summary.to_string(),
                    checked_at: at,
                }))
            })
        })
    }

    /// The drift issue as last posted: its number, whether open, and a digest of its body.
    pub fn drift_issue(&self) -> Result<Option<(u64, bool, String)>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT number, open, digest FROM drift_issue WHERE id = 1",
                &[],
            )?
            .map(|r| Ok((r.get::<i64>(0)? as u64, r.get(1)?, r.get(2)?)))
            .transpose()
        })
    }

    pub fn set_drift_issue(&self, number: u64, open: bool, digest: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO drift_issue (id, number, open, digest) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET number = ?1, open = ?2, digest = ?3",
                args![number as i64, open, digest],
            )
            .map(drop)
        })
    }

    /// A destroy step succeeded: the instance's row goes.
    pub fn finish_destroy(&self, step: i64, instance: &InstanceId) -> Result<(), StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                step_fence_holds(tx, step)?;
                tx.execute(
                    "UPDATE steps SET status = 'succeeded', finished_at = ?2 WHERE id = ?1",
                    args![step, super::now()],
                )?;
                tx.execute(
                    "DELETE FROM instances WHERE id = ?1",
                    args![instance.as_str()],
                )?;
                Ok(())
            })
        })
    }

    /// `capstan state forget`: removes `instance`'s record without destroying anything,
    /// and records that `who` did so as a run of its own, in one transaction. `None` when
    /// there is no such record.
    pub fn forget(&self, instance: &InstanceId, who: &str) -> Result<Option<i64>, StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                let Some(row) = tx.query_opt(
                    "SELECT commit_sha FROM instances WHERE id = ?1",
                    args![instance.as_str()],
                )?
                else {
                    return Ok(None);
                };
                let commit: String = row.get(0)?;
                let run: i64 = tx
                    .query_one(
                        "INSERT INTO runs (commit_sha, trigger, status, summary, started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                         RETURNING id",
                        args![
                            commit,
                            Trigger::Forget.name(),
                            RunStatus::Succeeded.name(),
                            format!("{instance} forgotten by {who}: removed from the state, nothing destroyed"),
                            super::now()
                        ],
                    )?
                    .get(0)?;
                tx.execute(
                    "DELETE FROM instances WHERE id = ?1",
                    args![instance.as_str()],
                )?;
                Ok(Some(run))
            })
        })
    }

    /// A step failed: its instance is `failed` (or `destroy-failed`) and runs again next time.
    pub fn fail_step(&self, step: i64, message: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                step_fence_holds(tx, step)?;
                let t = super::now();
                tx.execute(
                    "UPDATE steps SET status = 'failed', message = ?2, finished_at = ?3 WHERE id = ?1",
                    args![step, message, t],
                )?;
                tx.execute(
                    "UPDATE instances SET status = CASE status WHEN 'destroying' THEN 'destroy-failed' ELSE 'failed' END,
                         updated_at = ?2
                     WHERE step_id = ?1",
                    args![step, t],
                )?;
                Ok(())
            })
        })
    }

    /// A step that did not run (skipped, waiting): recorded for the history only.
    pub fn note_step(
        &self,
        run: i64,
        instance: &InstanceId,
        action: Verb,
        result: &StepResult,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO steps (run_id, instance, action, status, message, started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                args![run, instance.as_str(), action.name(), result.status().name(), result.detail(), super::now()],
            )
            .map(drop)
        })
    }

    /// After a crash: whatever was running is marked interrupted, in one transaction.
    /// Call it only while holding the deploy lock (no other process can be deploying).
    pub fn recover(&self) -> Result<Recovered, StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                let t = super::now();
                let instances = tx
                    .query(
                        "SELECT id FROM instances WHERE status IN ('deploying', 'destroying') ORDER BY id",
                        &[],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect::<Result<Vec<String>, _>>()?;
                tx.execute(
                    "UPDATE instances SET status = 'interrupted', updated_at = ?1 WHERE status IN ('deploying', 'destroying')",
                    args![t],
                )?;
                let steps = tx.execute(
                    "UPDATE steps SET status = 'interrupted', message = 'capstan stopped during this step', finished_at = ?1
                     WHERE status = 'running'",
                    args![t],
                )?;
                let runs = tx.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?1 WHERE status = 'running'",
                    args![t],
                )?;
                Ok(Recovered {
                    runs: runs as usize,
                    steps: steps as usize,
                    instances,
                })
            })
        })
    }

    /// A value that changes whenever what the fleet shows may have: a deploy, a destroy,
    /// a step starting or ending, a drift check, a preview coming or going.
    pub fn fingerprint(&self) -> Result<String, StateError> {
        self.with(|c| {
            c.query_one(
                "SELECT (SELECT seq FROM instance_sequence)
                     || '/' || (SELECT coalesce(max(id), 0) || ':' || count(finished_at) FROM steps)
                     || '/' || (SELECT count(*) || ':' || coalesce(max(pushed_at), 0) FROM previews)",
                &[],
            )?
            .get(0)
        })
    }

    /// Our comment about the deploy of `sha` on pull request `pr`.
    pub fn deploy_comment(
        &self,
        sha: &CommitId,
        pr: u64,
    ) -> Result<Option<super::CommentRecord>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT comment_id, digest FROM deploy_comments WHERE sha = ?1 AND pr = ?2 AND comment_id IS NOT NULL",
                args![sha, pr as i64],
            )?
            .map(|r| {
                Ok(super::CommentRecord {
                    id: r.get::<i64>(0)? as u64,
                    digest: r.get::<Option<String>>(1)?.unwrap_or_default(),
                })
            })
            .transpose()
        })
    }

    /// Records our deploy comment (`None`: it is gone).
    pub fn set_deploy_comment(
        &self,
        sha: &CommitId,
        pr: u64,
        record: Option<&super::CommentRecord>,
    ) -> Result<(), StateError> {
        self.with(|c| match record {
            Some(r) => c
                .execute(
                    "INSERT INTO deploy_comments (sha, pr, comment_id, digest) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(sha, pr) DO UPDATE SET comment_id = ?3, digest = ?4",
                    args![sha, pr as i64, r.id as i64, &r.digest],
                )
                .map(drop),
            None => c
                .execute(
                    "DELETE FROM deploy_comments WHERE sha = ?1 AND pr = ?2",
                    args![sha, pr as i64],
                )
                .map(drop),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deployed::Input;
    use crate::state::test_server::both_stores;

    fn inputs(data: &str) -> Inputs {
        Inputs {
            bundle: "aws-vpc".into(),
            version: "1.0.0".into(),
            bundle_digest: "d".into(),
            params: serde_json::json!({"cidr": data}),
            connections: BTreeMap::from([(
                "credentials".into(),
                Input {
                    source: "import".into(),
                    data: Some(serde_json::json!({"arn": "a"})),
                },
            )]),
        }
    }

    /// Begins a deploy step of `id` (project si, environment staging) in `run`.
    static NO_ATTRIBUTES: BTreeMap<String, String> = BTreeMap::new();

    /// A deploy step of `id` (project si, environment staging) in `run` under `fence`.
    fn new_step<'a>(run: i64, id: &'a InstanceId, inputs: &'a Inputs, fence: i64) -> NewStep<'a> {
        NewStep {
            run,
            instance: id,
            project: "si",
            environment: "staging",
            package: "vpc",
            action: Verb::Deploy,
            inputs,
            commit: "c1",
            attributes: &NO_ATTRIBUTES,
            sensitive: &[],
            log_path: None,
            fence,
        }
    }

    /// Begins a deploy step of `id` in `run`, under the current fencing token.
    fn start(store: &Store, run: i64, id: &InstanceId, inputs: &Inputs) -> i64 {
        let fence = store
            .with(|c| c.query_one("SELECT token FROM fence", &[])?.get(0))
            .unwrap();
        store.begin_step(&new_step(run, id, inputs, fence)).unwrap()
    }

    /// A deploy whose state was taken over meanwhile (it lost its lease, its successor
    /// moved the token on) can neither start a step nor write a step's result.
    #[test]
    fn a_step_of_a_fenced_off_deploy_writes_nothing() {
        for at in both_stores() {
            let store = at.open();
            let old = store.advance_fence().unwrap();
            let run = store.begin_run("c1", Trigger::Apply).unwrap();
            let id = InstanceId("si-staging-vpc".into());
            let step = start(&store, run, &id, &inputs("10.0.0.0/16"));
            // Another replica takes over: the token moves on, the step is interrupted.
            assert!(store.advance_fence().unwrap() > old);
            store.recover().unwrap();
            let mut record = store.instance(id.as_str()).unwrap().unwrap();
            record.status = Status::Deployed;
            let err = store.finish_deploy(step, &record).unwrap_err();
            assert!(format!("{err:?}").contains("Fenced"), "{err:?}");
            assert_eq!(
                store.instance(id.as_str()).unwrap().unwrap().status,
                Status::Interrupted,
                "{}",
                at.location
            );
            assert!(store.fail_step(step, "late").is_err());
            let later = inputs("10.0.0.0/16");
            assert!(store.begin_step(&new_step(run, &id, &later, old)).is_err());
        }
    }

    #[test]
    fn every_write_of_an_instance_is_seen_by_a_reader_of_changes() {
        for at in both_stores() {
            let store = at.open();
            let run = store.begin_run("c1", Trigger::Apply).unwrap();
            let (a, b) = (InstanceId("a".into()), InstanceId("b".into()));
            let first = inputs("10.0.0.0/16");
            let step_a = start(&store, run, &a, &first);
            start(&store, run, &b, &first);
            let all = store.deployed_since(-1).unwrap();
            assert_eq!((all.count, all.rows.len()), (2, 2));
            let none = store.deployed_since(all.seq).unwrap();
            assert_eq!((none.seq, none.rows.len()), (all.seq, 0));
            // A deploy finishing is one change, seen once.
            let mut record = store.instance("a").unwrap().unwrap();
            record.digest = first.digest();
            store.finish_deploy(step_a, &record).unwrap();
            let after = store.deployed_since(all.seq).unwrap();
            let ids: Vec<&str> = after.rows.iter().map(|d| d.instance.as_str()).collect();
            assert_eq!(ids, ["a"]);
            assert_eq!(after.rows[0].status, Status::Deployed);
            assert!(after.seq > all.seq);
            // A removal moves the sequence and shows in the count.
            store.forget(&b, "test").unwrap();
            let gone = store.deployed_since(after.seq).unwrap();
            assert!(gone.seq > after.seq && gone.rows.is_empty());
            assert_eq!(gone.count, 1);
        }
    }

    #[test]
    fn a_deploy_interrupted_and_recovered_keeps_every_row() {
        for at in both_stores() {
            let id = InstanceId("si-staging-vpc".into());
            let new_step = |run, inputs: &Inputs| start(&at.open(), run, &id, inputs);
            let first = inputs("10.0.0.0/16");
            let run = at.open().begin_run("c1", Trigger::Apply).unwrap();
            let step = new_step(run, &first);
            {
                let store = at.open();
                let mut record = store.instance("si-staging-vpc").unwrap().unwrap();
                assert_eq!(record.status, Status::Deploying);
                assert_eq!(record.digest, "");
                record.digest = first.digest();
                record.artifacts =
                    BTreeMap::from([("network".into(), serde_json::json!({"id": "vpc-1"}))]);
                store.finish_deploy(step, &record).unwrap();
                store.finish_run(run, RunStatus::Succeeded, "").unwrap();
            }
            // A second run dies during its step: the old inputs and artifacts stay.
            let second = inputs("10.1.0.0/16");
            let run2 = at.open().begin_run("c2", Trigger::Apply).unwrap();
            new_step(run2, &second);
            let store = at.open();
            let recovered = store.recover().unwrap();
            assert_eq!(
                recovered,
                Recovered {
                    runs: 1,
                    steps: 1,
                    instances: vec!["si-staging-vpc".into()]
                }
            );
            let record = store.instance("si-staging-vpc").unwrap().unwrap();
            assert_eq!(record.status, Status::Interrupted);
            assert_eq!(record.inputs, first);
            assert_eq!(record.artifacts["network"]["id"], "vpc-1");
            assert!(!record.is_current(&first), "interrupted is never current");
            assert_eq!(store.steps_of("si-staging-vpc", 10).unwrap().len(), 2);
            assert_eq!(store.runs(10).unwrap()[0].status, RunStatus::Interrupted);
            assert_eq!(store.recover().unwrap(), Recovered::default());
        }
    }
}
