//! `/instances/{id}`: one instance: what it is, where its connections come from (links to
//! the producers), who takes its artifacts (links to the consumers), its params and
//! artifacts with sensitive values redacted, its run history and its last drift check.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use maud::{Markup, html};
use serde_json::Value;

use crate::core::deployed::Deployed;
use crate::core::model::InstanceId;
use crate::core::resolve::Origin;
use crate::core::sensitive;
use crate::state::StepRecord;
use crate::web::layout;
use crate::web::{Admitted, View, WebError, render};

/// Steps shown in an instance's history.
const HISTORY: usize = 20;

pub(super) async fn page(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
    Path(id): Path<String>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let deployed = view.store.instance(&id)?;
        let steps = view.store.steps_of(&id, HISTORY)?;
        let fleet = super::fleet::rows(view)?;
        let row = fleet
            .as_ref()
            .and_then(|(_, rows)| rows.iter().find(|r| r.instance.as_str() == id).cloned());
        let branch = view.branch();
        let declared = branch
            .as_ref()
            .and_then(|b| b.checked.resolved.instances.get(&InstanceId(id.clone().into())).cloned());
        if deployed.is_none() && declared.is_none() {
            return Err(WebError::NotFound(format!(
                "No instance {id} is declared on the deploy branch or recorded in the state."
            )));
        }
        let mut body = Vec::new();
        body.push(html! {
            dl class="facts" {
                @if let Some(row) = &row {
                    dt { "Status" } dd { (layout::status(row.status.name())) " " (row.detail) }
                    dt { "Project" } dd { a href=(format!("/?project={}", layout::path_part(&row.project))) { (row.project) } }
                    dt { "Environment" } dd { (row.environment) }
                    dt { "Package" } dd { (row.package) }
                    dt { "Bundle" } dd { code { (row.bundle) } }
                }
                @if let Some(d) = &deployed {
                    dt { "Deployed commit" } dd { (ctx.commit(d.commit.as_str())) }
                    dt { "Recorded" } dd { (d.status.name()) ", " (layout::time(d.updated_at)) }
                } @else {
                    dt { "Deployed" } dd { "never" }
                }
                dt { "Graph" } dd { a href=(format!("/graph?instance={}", layout::path_part(&id))) { "what this instance reaches" } }
            }
        });
        if let (Some(inst), Some(branch)) = (&declared, &branch) {
            let checked = &branch.checked;
            let mut params = Value::clone(&inst.params);
            if let Some(bundle) = checked.repository.bundles.get(inst.bundle.as_str()) {
                sensitive::redact("params", &mut params, &bundle.sensitive);
            }
            let consumers = checked.resolved.consumers().of_producer(&inst.id).to_vec();
            body.push(html! {
                h2 { "Connections" }
                @if inst.connections.iter().next().is_none() {
                    (layout::empty("It takes no artifacts."))
                } @else {
                    table {
                        thead { tr { th { "Slot" } th { "From" } } }
                        tbody {
                            @for (slot, c) in inst.connections.iter() {
                                tr {
                                    td { code { (slot) } }
                                    td {
                                        @match &c.origin {
                                            Origin::Instance { instance, field } => {
                                                (layout::instance(instance.as_str())) " · " code { (field) }
                                            }
                                            Origin::Import { .. } => { "an inline import (its data is not shown)" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { "Consumers" }
                @if consumers.is_empty() {
                    (layout::empty("No instance takes its artifacts."))
                } @else {
                    table {
                        thead { tr { th { "Instance" } th { "Slot" } } }
                        tbody {
                            @for (consumer, slot) in &consumers {
                                tr { td { (layout::instance(consumer.as_str())) } td { code { (slot) } } }
                            }
                        }
                    }
                }
                h2 { "Params on the branch" }
                p class="muted" { "Configured at " code { (inst.at) } "; sensitive values are never shown." }
                (json(&params))
            });
        }
        if let Some(d) = &deployed {
            body.push(deployed_section(d));
        }
        body.push(history(&steps));
        Ok(layout::page(ctx, "Fleet", &id, html! { @for part in &body { (part) } }))
    })
    .await
}

/// What the state recorded: the deployed params and artifacts (redacted) and drift.
fn deployed_section(d: &Deployed) -> Markup {
    let shown = d.shown();
    html! {
        h2 { "Deployed params" }
        (json(&shown["params"]))
        h2 { "Artifacts" }
        @if d.artifacts.is_empty() {
            (layout::empty("It has recorded no artifacts."))
        } @else {
            (json(&shown["artifacts"]))
        }
        h2 { "Last drift check" }
        @match &d.drift {
            None => { (layout::empty("Not checked since its last deploy.")) }
            Some(c) => {
                p {
                    (layout::status(c.status.name())) " " (c.summary)
                    " — checked " (layout::time(c.checked_at)) ", so since " (layout::time(c.since)) "."
                }
            }
        }
    }
}

fn history(steps: &[StepRecord]) -> Markup {
    html! {
        h2 { "Runs" }
        @if steps.is_empty() {
            (layout::empty("No run has touched it."))
        } @else {
            table {
                thead { tr { th { "Step" } th { "Run" } th { "Action" } th { "Status" } th { "Started" } th { "Finished" } th { "Message" } } }
                tbody {
                    @for s in steps {
                        tr {
                            td { a href=(format!("/steps/{}", s.id)) { "step " (s.id) } }
                            td { a href=(format!("/runs/{}", s.run)) { "run " (s.run) } }
                            td { (s.action.name()) }
                            td { (layout::status(s.status.name())) }
                            td { (layout::time(s.started_at)) }
                            td { (layout::maybe_time(s.finished_at)) }
                            td { (s.message) }
                        }
                    }
                }
            }
        }
    }
}

/// A JSON value as indented text.
fn json(value: &Value) -> Markup {
    html! { pre { code { (serde_json::to_string_pretty(value).unwrap_or_default()) } } }
}
