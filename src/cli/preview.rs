//! `capstan preview up|down|list`: previews without GitHub. The same realisation, deployer,
//! lock and state as the daemon's pull-request previews (docs/previews.md).

use std::sync::Arc;

use serde_json::{Value, json};

use super::StateAt;
use super::deploy::{Settings, block_on};
use super::{Format, color_on_stdout, out};
use crate::core::deployed::Deployed;
use crate::core::drift::Heal;
use crate::core::model::{EnvId, InstanceId, ProjectId};
use crate::core::run::{RunStatus, Scope, Trigger};
use crate::core::{duration, plan, preview, render};
use crate::deploy::Target;
use crate::state::{PreviewRecord, PreviewStatus, Store};

/// Realises preview `name` of `project` at `rev` and deploys it against what it has.
pub fn up(name: &str, project: &str, rev: &str, settings: &Settings) -> anyhow::Result<i32> {
    let (commit, tree) = settings.read(rev)?;
    let (project_id, env) = (ProjectId(project.into()), EnvId(name.into()));
    let checked = preview::check(&tree, &project_id, &env)?;
    if checked.has_errors() {
        out(&render::diagnostics::text(&checked))?;
        eprintln!("capstan: {commit} has validation errors; no preview is deployed");
        return Ok(1);
    }
    let block = checked
        .repository
        .projects
        .get(project)
        .and_then(|p| p.preview.clone())
        .ok_or_else(|| preview::PreviewError::NoPreview(project.into()))?;
    let (store, dir, lock) = settings.take_over("capstan preview up")?;
    let others: Vec<String> = store
        .previews()?
        .into_iter()
        .filter(|p| p.project == project && p.name != name && p.status == PreviewStatus::Live)
        .map(|p| p.name)
        .collect();
    if others.len() >= block.max {
        anyhow::bail!(
            "project {project} has {} live previews ({}), as many as its preview max allows; take one down first (capstan preview down NAME --project {project})",
            others.len(),
            others.join(", ")
        );
    }
    let scope = Scope::Preview {
        project: project.into(),
        name: name.into(),
    };
    let plan = plan::against_deployed(&store.deployed()?, &checked, &scope, &Heal::All);
    out(&render::plan::text(&plan, color_on_stdout()))?;
    if super::deploy::refused(&plan) {
        return Ok(1);
    }
    if !plan.is_empty() && !settings.confirmed("Deploy this preview?")? {
        eprintln!("capstan: nothing deployed");
        return Ok(1);
    }
    // The row comes first: from here on, the preview's instances are the preview's.
    let at = crate::state::now();
    let existing = store.preview(project, name)?;
    let record = PreviewRecord {
        project: project.into(),
        name: name.into(),
        pr: existing.as_ref().and_then(|p| p.pr),
        head: commit.clone().into(),
        status: PreviewStatus::Live,
        created_at: existing.as_ref().map_or(at, |p| p.created_at),
        pushed_at: at,
        ttl: block.ttl,
    };
    store.save_preview(&record)?;
    let mut status = RunStatus::Succeeded;
    if !plan.is_empty() {
        let target = Target {
            commit: commit.into(),
            tree: Arc::new(tree),
            checked: Arc::new(checked),
            trigger: Trigger::Preview,
            scope: scope.clone(),
            heal: Heal::All,
            only: None,
        };
        let report = block_on(settings.deployer(store.clone(), dir, &lock).deploy(&target))??;
        out(&format!("{}\n", report.summary()))?;
        status = report.status();
    }
    let instances = owned(&store, &scope)?;
    out(&format!(
        "Preview {name} of {project}: {}; expires {} unless brought up again.\n",
        if instances.is_empty() {
            "no instances".to_string()
        } else {
            instances
                .iter()
                .map(|d| d.instance.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        record.expires_at()
    ))?;
    Ok(i32::from(status != RunStatus::Succeeded))
}

/// Destroys preview `name` (of `project`, if several have one), dependants first, and
/// forgets it once nothing of it is left.
pub fn down(name: &str, project: Option<&str>, settings: &Settings) -> anyhow::Result<i32> {
    let (store, dir, lock) = settings.take_over("capstan preview down")?;
    let recorded: Vec<PreviewRecord> = store
        .previews()?
        .into_iter()
        .filter(|p| p.name == name && project.is_none_or(|want| p.project == want))
        .collect();
    let record = match recorded.as_slice() {
        [one] => one.clone(),
        [] => anyhow::bail!(
            "no preview named {name}{} in {} (`capstan preview list` shows them)",
            project
                .map(|p| format!(" of project {p}"))
                .unwrap_or_default(),
            settings.state
        ),
        several => anyhow::bail!(
            "projects {} each have a preview named {name}: pass --project",
            several
                .iter()
                .map(|p| p.project.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let scope = record.scope();
    let instances = owned(&store, &scope)?;
    if instances.is_empty() {
        out(&format!(
            "Preview {name} of {} has no instances left.\n",
            record.project
        ))?;
    } else {
        out(&format!(
            "Preview {name} of {}: destroy {}\n",
            record.project,
            instances
                .iter()
                .map(|d| d.instance.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        if !settings.confirmed("Destroy this preview?")? {
            eprintln!("capstan: nothing destroyed");
            return Ok(1);
        }
    }
    store.save_preview(&PreviewRecord {
        status: PreviewStatus::Closing,
        ..record.clone()
    })?;
    let label = format!("preview {name} of {}", record.project);
    let report = block_on(
        settings
            .deployer(store.clone(), dir, &lock)
            .teardown(&scope, &label),
    )??;
    out(&format!("{}\n", report.summary()))?;
    if owned(&store, &scope)?.is_empty() {
        store.remove_preview(&record.project, name)?;
        out(&format!("Preview {name} of {} is gone.\n", record.project))?;
        Ok(0)
    } else {
        eprintln!(
            "capstan: preview {name} of {} is not fully destroyed; run `capstan preview down {name} --project {}` again",
            record.project, record.project
        );
        Ok(1)
    }
}

/// The recorded instances `scope` owns.
fn owned(store: &Store, scope: &Scope) -> anyhow::Result<Vec<Deployed>> {
    Ok(store
        .deployed()?
        .into_values()
        .filter(|d| scope.owns(&d.project, &d.environment))
        .collect())
}

/// Every recorded preview with its instances.
pub fn list(db: &StateAt, format: Format) -> anyhow::Result<i32> {
    let store = db.open_existing()?;
    let now = crate::state::now();
    let rows: Vec<(PreviewRecord, Vec<InstanceId>)> = store
        .previews()?
        .into_iter()
        .map(|p| {
            let instances = owned(&store, &p.scope())?
                .into_iter()
                .map(|d| d.instance)
                .collect();
            Ok((p, instances))
        })
        .collect::<anyhow::Result<_>>()?;
    match format {
        Format::Json => {
            let values: Vec<Value> = rows
                .iter()
                .map(|(p, instances)| {
                    json!({
                        "project": p.project,
                        "name": p.name,
                        "pull_request": p.pr,
                        "status": p.status.name(),
                        "head": p.head,
                        "created_at": p.created_at.to_string(),
                        "pushed_at": p.pushed_at.to_string(),
                        "expires_at": p.expires_at().to_string(),
                        "instances": instances.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            out(&format!("{}\n", serde_json::to_string_pretty(&values)?))?;
        }
        Format::Text => {
            if rows.is_empty() {
                out("No previews.\n")?;
                return Ok(0);
            }
            let mut text = format!(
                "{:<8} {:<12} {:<6} {:<8} {:<11} {:<9} {:<12} {}\n",
                "PREVIEW", "PROJECT", "PR", "STATUS", "HEAD", "AGE", "EXPIRES IN", "INSTANCES"
            );
            let ago =
                |secs: i64| duration::format(std::time::Duration::from_secs(secs.max(0) as u64));
            for (p, instances) in &rows {
                text.push_str(&format!(
                    "{:<8} {:<12} {:<6} {:<8} {:<11} {:<9} {:<12} {}\n",
                    p.name,
                    p.project,
                    p.pr.map_or_else(|| "-".to_string(), |n| format!("#{n}")),
                    p.status.name(),
                    crate::core::commit::short(&p.head),
                    ago(now.since(p.created_at)),
                    if p.status == PreviewStatus::Live {
                        ago(p.expires_at().since(now))
                    } else {
                        "-".to_string()
                    },
                    instances
                        .iter()
                        .map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            out(&text)?;
        }
    }
    Ok(0)
}
