//! The record of what ran, read back: runs and their steps, newest first, for
//! `capstan state`, the daemon's comments and the web view. The deployer writes them
//! (`deploys.rs`); nothing here changes a row.

use super::db::{DbError, Row, args};
use super::{StateError, Store};
use crate::core::run::{RunStatus, StepStatus, Trigger, Verb};
use crate::core::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    /// The commit deployed; for a teardown, what was torn down (`preview ecomm/pr-7`).
    pub commit: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub summary: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    pub id: i64,
    pub run: i64,
    pub instance: String,
    pub action: Verb,
    pub status: StepStatus,
    pub message: String,
    pub log_path: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A column holding an enum by its name; an unknown name is an error, never a default.
fn named<T>(
    r: &Row,
    i: usize,
    parse: fn(&str) -> Option<T>,
    what: &'static str,
) -> Result<T, DbError> {
    let text: String = r.get(i)?;
    parse(&text).ok_or(DbError::Unknown { what, text })
}

/// Triggers by name, and the one name an earlier capstan stored differently.
fn trigger(text: &str) -> Option<Trigger> {
    Trigger::parse(text).or((text == "deploy window opened").then_some(Trigger::WindowOpened))
}

fn step_from_row(r: &Row) -> Result<StepRecord, DbError> {
    Ok(StepRecord {
        id: r.get(0)?,
        run: r.get(1)?,
        instance: r.get(2)?,
        action: named(r, 3, Verb::parse, "step action")?,
        status: named(r, 4, StepStatus::parse, "step status")?,
        message: r.get(5)?,
        log_path: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

const RUN_COLUMNS: &str = "id, commit_sha, trigger, status, summary, started_at, finished_at";

fn run_from_row(r: &Row) -> Result<RunRecord, DbError> {
    Ok(RunRecord {
        id: r.get(0)?,
        commit: r.get(1)?,
        trigger: named(r, 2, trigger, "run trigger")?,
        status: named(r, 3, RunStatus::parse, "run status")?,
        summary: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
    })
}

const STEP_COLUMNS: &str =
    "id, run_id, instance, action, status, message, log_path, started_at, finished_at";

impl Store {
    /// The latest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        self.with(|c| {
            c.query(
                &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"),
                args![limit as i64],
            )?
            .iter()
            .map(run_from_row)
            .collect()
        })
    }

    /// One run.
    pub fn run(&self, id: i64) -> Result<Option<RunRecord>, StateError> {
        self.with(|c| {
            c.query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                args![id],
            )?
            .as_ref()
            .map(run_from_row)
            .transpose()
        })
    }

    /// One step.
    pub fn step(&self, id: i64) -> Result<Option<StepRecord>, StateError> {
        self.with(|c| {
            c.query_opt(
                &format!("SELECT {STEP_COLUMNS} FROM steps WHERE id = ?1"),
                args![id],
            )?
            .as_ref()
            .map(step_from_row)
            .transpose()
        })
    }

    /// The latest `limit` steps of an instance, newest first.
    pub fn steps_of(&self, instance: &str, limit: usize) -> Result<Vec<StepRecord>, StateError> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT {STEP_COLUMNS} FROM steps WHERE instance = ?1 ORDER BY id DESC LIMIT ?2"
                ),
                args![instance, limit as i64],
            )?
            .iter()
            .map(step_from_row)
            .collect()
        })
    }

    /// Every step of a run, in order.
    pub fn steps_in(&self, run: i64) -> Result<Vec<StepRecord>, StateError> {
        self.with(|c| {
            c.query(
                &format!("SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ?1 ORDER BY id"),
                args![run],
            )?
            .iter()
            .map(step_from_row)
            .collect()
        })
    }
}
