//! `/graph`: the instances and their connections, drawn as SVG in deploy waves (no
//! script needed) and listed as a table for readers without pictures. Filters: a project
//! (`?project=si`), a pull request's blast radius (`?pull=7`), or what one instance reaches
//! (`?instance=si-prod-vpc`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use maud::{Markup, html};

use crate::core::model::InstanceId;
use crate::web::graph::{self, Focus, Graph, NODE_HEIGHT, NODE_WIDTH};
use crate::web::layout;
use crate::web::{Admitted, View, WebError, render};

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Asked {
    project: Option<String>,
    pull: Option<u64>,
    instance: Option<String>,
}

pub(super) async fn page(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
    Query(asked): Query<Asked>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let Some(branch) = view.branch() else {
            return Ok(layout::page(ctx, "Graph", "Graph", layout::empty("capstan has not read the deploy branch yet.")));
        };
        let (focus, what) = if let Some(n) = asked.pull {
            let changed: BTreeSet<InstanceId> = view
                .store
                .changes(n)?
                .into_iter()
                .map(|i| InstanceId(i.into()))
                .collect();
            (Focus::Radius(changed), format!("what pull request #{n} changes, and everything that takes their artifacts"))
        } else if let Some(i) = asked.instance.as_deref().filter(|i| !i.is_empty()) {
            (Focus::Radius([InstanceId(i.into())].into()), format!("{i} and everything that takes its artifacts"))
        } else if let Some(p) = asked.project.as_deref().filter(|p| !p.is_empty()) {
            (Focus::Project(p.to_string()), format!("project {p}'s instances and those of other projects they connect to"))
        } else {
            (Focus::All, "every instance of the deploy branch".to_string())
        };
        let g = graph::graph(&branch.checked, &focus);
        let projects: BTreeSet<&str> = branch.checked.repository.projects.keys().map(|p| p.as_str()).collect();
        let body = html! {
            form class="filter" method="get" action="/graph" {
                label { "Project"
                    select name="project" {
                        option value="" { "all" }
                        @for p in &projects {
                            option value=(p) selected[asked.project.as_deref() == Some(*p)] { (p) }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            p { "Showing " (what) ", at " (ctx.commit(branch.commit.as_str())) ". Producers are left of their consumers; a dashed edge crosses from one project to another." }
            @if let Some(n) = g.too_many {
                p class="empty" { (n) " instances are too many to draw; choose a project." }
            } @else if g.nodes.is_empty() {
                (layout::empty("No instance matches."))
            } @else {
                (svg(&g))
                h2 { "Connections" }
                @if g.edges.is_empty() {
                    (layout::empty("These instances have no connections between them."))
                } @else {
                    table {
                        thead { tr { th { "Producer" } th { "Consumer" } th { "Slot" } th { "Across projects" } } }
                        tbody {
                            @for e in &g.edges {
                                tr {
                                    td { (layout::instance(e.from.as_str())) }
                                    td { (layout::instance(e.to.as_str())) }
                                    td { code { (e.slot) } }
                                    td { (if e.cross_project { "yes" } else { "" }) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::page(ctx, "Graph", "Graph", body))
    })
    .await
}

fn svg(g: &Graph) -> Markup {
    html! {
        div class="graph" {
            svg xmlns="http://www.w3.org/2000/svg" width=(g.width) height=(g.height)
                viewBox=(format!("0 0 {} {}", g.width, g.height)) role="img"
                aria-label="The instances and their connections" {
                @for e in &g.edges {
                    @if let (Some(from), Some(to)) = (g.node(&e.from), g.node(&e.to)) {
                        path class=(if e.cross_project { "cross" } else { "edge" }) d=(graph::path(from, to)) {
                            title { (e.from) " → " (e.to) " (" (e.slot) ")" }
                        }
                    }
                }
                @for n in &g.nodes {
                    a href=(format!("/instances/{}", layout::path_part(n.id.as_str()))) class=(if n.changed { "node changed" } else { "node" }) {
                        rect x=(n.x) y=(n.y) width=(NODE_WIDTH) height=(NODE_HEIGHT) {}
                        text x=(n.x + 8) y=(n.y + 14) { (n.id) }
                        text class="sub" x=(n.x + 8) y=(n.y + 28) { (n.project) " · " (n.environment) }
                    }
                }
            }
        }
    }
}
