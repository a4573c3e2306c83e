//! The fleet (docs/web.md#fleet): every instance the branch declares or the state holds,
//! each with one status a person can act on, filtered and cut into pages. Pure: the
//! handler gives it the branch's model, the deployed state and the plan between them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::core::Checked;
use crate::core::deployed::{Deployed, Status as Recorded};
use crate::core::drift::DriftStatus;
use crate::core::model::InstanceId;
use crate::core::plan::{Action, Plan};
use crate::core::time::Timestamp;

/// Rows on one page of the fleet: enough to scan, few enough to serve at once.
pub const PAGE: usize = 100;

/// An instance's status, in the order the fleet counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Its last deploy or destroy failed or was interrupted.
    Failed,
    /// A deploy or destroy is running.
    Deploying,
    /// Deployed, and the last drift check found the cloud different.
    Drifted,
    /// The branch wants a change the state does not have yet (create, update, destroy).
    Pending,
    /// Deployed in a preview environment of a pull request.
    Preview,
    /// Deployed as the branch declares it.
    Deployed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Failed,
        Status::Deploying,
        Status::Drifted,
        Status::Pending,
        Status::Preview,
        Status::Deployed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Failed => "failed",
            Status::Deploying => "deploying",
            Status::Drifted => "drifted",
            Status::Pending => "pending",
            Status::Preview => "preview",
            Status::Deployed => "deployed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One instance of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub instance: InstanceId,
    pub project: String,
    pub environment: String,
    pub package: String,
    /// `aws-vpc@1.2.0`, from the branch, else from what was deployed.
    pub bundle: String,
    pub status: Status,
    /// Why, in a few words: `update: params.memory changed`, `drift: 1 to change`.
    pub detail: String,
    /// The commit last deployed (or attempted).
    pub commit: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// The fleet of the branch's `checked` model and the `deployed` state, with `plan` (the
/// branch against that state) saying what is pending and `previews` the (project,
/// environment) pairs that are previews.
pub fn rows(
    checked: &Checked,
    deployed: &BTreeMap<InstanceId, Deployed>,
    plan: &Plan,
    previews: &BTreeSet<(String, String)>,
) -> Vec<Row> {
    let pending: HashMap<&InstanceId, (Action, &str)> = plan
        .changes
        .iter()
        .map(|c| {
            let why = c.reasons.first().map(String::as_str).unwrap_or("");
            (&c.instance, (c.action, why))
        })
        .collect();
    let mut out = Vec::with_capacity(checked.resolved.instances.len());
    for (id, inst) in &checked.resolved.instances {
        let state = deployed.get(id);
        let (status, detail) = status(state, pending.get(id).copied(), false);
        out.push(Row {
            instance: id.clone(),
            project: inst.project.to_string(),
            environment: inst.environment.to_string(),
            package: inst.package.to_string(),
            bundle: format!("{}@{}", inst.bundle, inst.bundle_version),
            status,
            detail,
            commit: state.map(|d| d.commit.to_string()),
            updated_at: state.map(|d| d.updated_at),
        });
    }
    for (id, d) in deployed {
        if checked.resolved.instances.contains_key(id) {
            continue;
        }
        let preview = previews.contains(&(d.project.clone(), d.environment.clone()));
        let (status, detail) = status(Some(d), pending.get(id).copied(), preview);
        out.push(Row {
            instance: id.clone(),
            project: d.project.clone(),
            environment: d.environment.clone(),
            package: d.package.clone(),
            bundle: format!("{}@{}", d.inputs.bundle, d.inputs.version),
            status,
            detail,
            commit: Some(d.commit.to_string()),
            updated_at: Some(d.updated_at),
        });
    }
    out.sort_by(|a, b| {
        (&a.project, &a.environment, &a.package).cmp(&(&b.project, &b.environment, &b.package))
    });
    out
}

/// One instance's status: what the state recorded first (a failure or a run outlasts
/// anything else), then drift, then what the branch wants.
fn status(
    state: Option<&Deployed>,
    pending: Option<(Action, &str)>,
    preview: bool,
) -> (Status, String) {
    let wants = |(action, why): (Action, &str)| {
        if why.is_empty() {
            action.name().to_string()
        } else {
            format!("{}: {why}", action.name())
        }
    };
    let Some(d) = state else {
        return (
            Status::Pending,
            pending.map_or_else(|| "not deployed".into(), wants),
        );
    };
    match d.status {
        Recorded::Failed | Recorded::DestroyFailed | Recorded::Interrupted => {
            return (Status::Failed, d.status.name().to_string());
        }
        Recorded::Deploying | Recorded::Destroying => {
            return (Status::Deploying, d.status.name().to_string());
        }
        Recorded::Deployed => {}
    }
    if let Some(check) = d
        .drift
        .as_ref()
        .filter(|c| c.status == DriftStatus::Drifted)
    {
        return (Status::Drifted, format!("drift: {}", check.summary));
    }
    if preview {
        return (Status::Preview, String::new());
    }
    match pending {
        Some(p) => (Status::Pending, wants(p)),
        None => (Status::Deployed, String::new()),
    }
}

/// What a person asked the fleet for (`?project=&environment=&status=&page=`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// 1-based.
    #[serde(default)]
    pub page: Option<usize>,
}

impl Filter {
    fn keeps(&self, row: &Row, status: Option<Status>) -> bool {
        let same = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.is_empty() || w == have)
        };
        same(&self.project, &row.project)
            && same(&self.environment, &row.environment)
            && status.is_none_or(|s| s == row.status)
    }

    /// This filter's query string with another page.
    pub fn query(&self, page: usize) -> String {
        let mut parts = Vec::new();
        for (key, value) in [
            ("project", &self.project),
            ("environment", &self.environment),
            ("status", &self.status),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                parts.push(format!("{key}={}", encode(v)));
            }
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// One page of the fleet and what a person needs around it.
#[derive(Debug)]
pub struct Page<'a> {
    pub rows: Vec<&'a Row>,
    /// Rows that match the filter, on every page.
    pub matching: usize,
    /// 1-based; `pages` is at least 1.
    pub page: usize,
    pub pages: usize,
    /// Of the rows that match the project and environment filters, how many have each
    /// status (so the status links say what they lead to).
    pub counts: BTreeMap<Status, usize>,
    /// Every project and environment, for the filter's choices.
    pub projects: BTreeSet<&'a str>,
    pub environments: BTreeSet<&'a str>,
    /// A status filter that names no status.
    pub unknown_status: bool,
}

/// The page of `rows` that `filter` asks for; a page past the end is the last.
pub fn select<'a>(rows: &'a [Row], filter: &Filter) -> Page<'a> {
    let wanted = filter.status.as_deref().filter(|s| !s.is_empty());
    let status = wanted.and_then(Status::parse);
    let unknown_status = wanted.is_some() && status.is_none();
    let mut counts = BTreeMap::new();
    let mut matching = Vec::new();
    let mut projects = BTreeSet::new();
    let mut environments = BTreeSet::new();
    for row in rows {
        projects.insert(row.project.as_str());
        environments.insert(row.environment.as_str());
        if !filter.keeps(row, None) {
            continue;
        }
        *counts.entry(row.status).or_insert(0) += 1;
        if !unknown_status && filter.keeps(row, status) {
            matching.push(row);
        }
    }
    let pages = matching.len().div_ceil(PAGE).max(1);
    let page = filter.page.unwrap_or(1).clamp(1, pages);
    let total = matching.len();
    let rows = matching
        .into_iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .collect();
    Page {
        rows,
        matching: total,
        page,
        pages,
        counts,
        projects,
        environments,
        unknown_status,
    }
}

/// Percent-encodes a query value or a path segment (all but letters, digits and `-_.~`).
pub fn encode(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(project: &str, env: &str, package: &str, status: Status) -> Row {
        Row {
            instance: InstanceId(format!("{project}-{env}-{package}").into()),
            project: project.into(),
            environment: env.into(),
            package: package.into(),
            bundle: "b@1".into(),
            status,
            detail: String::new(),
            commit: None,
            updated_at: None,
        }
    }

    #[test]
    fn a_filter_counts_statuses_of_its_project_and_pages_the_rest() {
        let mut rows = Vec::new();
        for i in 0..250 {
            let status = if i % 10 == 0 {
                Status::Failed
            } else {
                Status::Deployed
            };
            rows.push(row("ecomm", "prod", &format!("p{i:03}"), status));
        }
        rows.push(row("si", "prod", "vpc", Status::Pending));
        let all = select(&rows, &Filter::default());
        assert_eq!((all.matching, all.pages, all.rows.len()), (251, 3, PAGE));
        let ecomm = Filter {
            project: Some("ecomm".into()),
            page: Some(9),
            ..Filter::default()
        };
        let page = select(&rows, &ecomm);
        assert_eq!((page.page, page.pages, page.rows.len()), (3, 3, 50));
        assert_eq!(page.counts.get(&Status::Failed), Some(&25));
        assert_eq!(page.counts.get(&Status::Pending), None);
        assert_eq!(page.projects.len(), 2, "every project stays a choice");
        let failed = Filter {
            project: Some("ecomm".into()),
            status: Some("failed".into()),
            ..Filter::default()
        };
        assert_eq!(select(&rows, &failed).matching, 25);
        assert_eq!(failed.query(2), "?project=ecomm&status=failed&page=2");
        let nonsense = Filter {
            status: Some("<b>".into()),
            ..Filter::default()
        };
        let none = select(&rows, &nonsense);
        assert!(none.unknown_status && none.rows.is_empty());
        assert_eq!(nonsense.query(1), "?status=%3Cb%3E");
    }

    #[test]
    fn the_state_outranks_drift_and_drift_outranks_the_plan() {
        let base = Deployed {
            instance: InstanceId("a".into()),
            project: "p".into(),
            environment: "e".into(),
            package: "k".into(),
            inputs: crate::core::deployed::Inputs {
                bundle: "b".into(),
                version: "1".into(),
                bundle_digest: String::new(),
                params: serde_json::json!({}),
                connections: BTreeMap::new(),
            },
            digest: "d".into(),
            artifacts: BTreeMap::new(),
            status: Recorded::Deployed,
            commit: crate::core::commit::CommitId::new("c"),
            attributes: BTreeMap::new(),
            sensitive: Vec::new(),
            updated_at: Timestamp::from_secs(1),
            drift: Some(crate::core::drift::DriftCheck {
                status: DriftStatus::Drifted,
                since: Timestamp::from_secs(1),
                summary: "1 to change".into(),
                checked_at: Timestamp::from_secs(2),
            }),
        };
        let update = Some((Action::Update, "params.memory changed"));
        assert_eq!(
            status(Some(&base), update, false),
            (Status::Drifted, "drift: 1 to change".into())
        );
        let failed = Deployed {
            status: Recorded::Interrupted,
            ..base.clone()
        };
        assert_eq!(status(Some(&failed), update, false).0, Status::Failed);
        let in_sync = Deployed {
            drift: None,
            ..base.clone()
        };
        assert_eq!(
            status(Some(&in_sync), update, false),
            (Status::Pending, "update: params.memory changed".into())
        );
        assert_eq!(status(Some(&in_sync), None, false).0, Status::Deployed);
        assert_eq!(status(Some(&in_sync), None, true).0, Status::Preview);
        assert_eq!(
            status(None, None, false),
            (Status::Pending, "not deployed".into())
        );
    }
}
