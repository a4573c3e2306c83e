//! `capstan drift`: check what is deployed now, print per instance, record the outcomes.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::deploy::{Settings, block_on};
use super::{Format, out};
use crate::core::drift::DriftStatus;
use crate::core::model::InstanceId;
use crate::deploy::drift::{Checker, InstanceCheck};
use crate::source::Checkout;

/// Checks the deployed instances (or `only` those) and prints what each check found.
/// Exit codes: 1 when a check failed; with `detailed`, 0 all in sync (or not checkable),
/// 2 drift found, 1 a check failed.
pub fn run(
    only: &[String],
    format: Format,
    detailed: bool,
    settings: &Settings,
) -> anyhow::Result<i32> {
    if !settings.state.exists() {
        anyhow::bail!(
            "no state database at {} (nothing was deployed with it yet; pass --state)",
            settings.state
        );
    }
    let (store, dir, _lock) = settings.take_over("capstan drift")?;
    let checker = Checker {
        store,
        state_dir: dir,
        revisions: Arc::new(Checkout {
            path: settings.repo.clone(),
        }),
        parallel: settings.parallel,
        timeouts: settings.timeouts,
    };
    let only: Vec<InstanceId> = only.iter().map(|i| InstanceId(i.clone().into())).collect();
    let started = Instant::now();
    let checked = block_on(checker.check(&only))??;
    let took = started.elapsed();
    let count = |s: DriftStatus| checked.iter().filter(|c| c.check.status == s).count();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = checked.iter().map(row).collect();
            out(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
        }
        Format::Text => {
            let mut text = String::new();
            for c in &checked {
                text.push_str(&line(c));
            }
            text.push_str(&format!(
                "{} checked in {:.2}s: {} in sync, {} drifted, {} not checkable, {} check failed\n",
                crate::core::render::plural(checked.len(), "instance"),
                took.as_secs_f64(),
                count(DriftStatus::InSync),
                count(DriftStatus::Drifted),
                count(DriftStatus::NotCheckable),
                count(DriftStatus::CheckFailed)
            ));
            if count(DriftStatus::Drifted) > 0 {
                text.push_str("`capstan apply` redeploys the drifted instances.\n");
            }
            out(&text)?;
        }
    }
    Ok(if count(DriftStatus::CheckFailed) > 0 {
        1
    } else if detailed && count(DriftStatus::Drifted) > 0 {
        2
    } else {
        0
    })
}

fn line(c: &InstanceCheck) -> String {
    let (mark, what) = match c.check.status {
        DriftStatus::InSync => ("✓", "in sync".to_string()),
        DriftStatus::Drifted => ("~", format!("drifted since {}", c.check.since)),
        DriftStatus::NotCheckable => ("?", "not checkable".to_string()),
        DriftStatus::CheckFailed => ("✗", "check failed".to_string()),
    };
    let mut s = format!("{mark} {:<28} {what}", c.instance.as_str());
    if !c.check.summary.is_empty() {
        s.push_str(&format!(": {}", c.check.summary));
    }
    if c.check.status == DriftStatus::CheckFailed {
        s.push_str(&format!(" (log: {})", c.log.display()));
    }
    s.push('\n');
    s
}

fn row(c: &InstanceCheck) -> serde_json::Value {
    json!({
        "instance": c.instance.as_str(),
        "project": c.project,
        "environment": c.environment,
        "status": c.check.status.name(),
        "since": c.check.since.to_string(),
        "summary": c.check.summary,
        "checked_at": c.check.checked_at.to_string(),
        "log": c.log.display().to_string(),
    })
}
