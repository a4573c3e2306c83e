//! What a pull request's previews look like on GitHub, from facts gathered out of the state
//! (`previews.rs` gathers them): the previews section of the one comment ([`section`]) and
//! the `capstan/preview` status ([`verdict`]). Pure, so both are tested on plain values.

use std::fmt::Write as _;

use serde_json::Value;

use crate::core::deployed::{Deployed, Status};
use crate::core::render::comment::cell;
use crate::core::{self, sensitive};
use crate::github::StatusState;
use crate::state::{Note, PreviewRecord, PreviewStatus};

/// Where the preview section of a pull request's comment starts and ends.
const START: &str = "<!-- capstan:preview -->";
const END: &str = "<!-- /capstan:preview -->";

/// One preview of the pull request, as the section and the status show it.
pub(super) struct Shown {
    pub record: PreviewRecord,
    /// A live preview's instances.
    pub rows: Vec<Row>,
    /// Who holds the slots a waiting preview waits for (`#9`, or a preview's name).
    pub held: Vec<String>,
}

/// One instance of a live preview.
pub(super) struct Row {
    pub deployed: Deployed,
    /// Why its last step failed, when it did.
    pub why: String,
}

impl Shown {
    fn env(&self) -> String {
        format!("{}-{}", self.record.project, self.record.name)
    }
}

/// The status `capstan/preview`: failed instances first, then waiting, being destroyed,
/// up, and expired.
pub(super) fn verdict(shown: &[Shown]) -> (StatusState, String) {
    let names = |want: PreviewStatus| -> Vec<String> {
        shown
            .iter()
            .filter(|s| s.record.status == want)
            .map(Shown::env)
            .collect()
    };
    let failed: Vec<String> = shown
        .iter()
        .filter(|s| s.record.status == PreviewStatus::Live)
        .flat_map(|s| &s.rows)
        .filter(|r| r.deployed.status != Status::Deployed)
        .map(|r| r.deployed.instance.to_string())
        .collect();
    let waiting: Vec<String> = shown
        .iter()
        .filter(|s| s.record.status == PreviewStatus::Waiting)
        .map(|s| format!("{} (slots held by {})", s.env(), s.held.join(", ")))
        .collect();
    let (closing, live) = (names(PreviewStatus::Closing), names(PreviewStatus::Live));
    if !failed.is_empty() {
        (
            StatusState::Failure,
            format!("preview instances not deployed: {}", failed.join(", ")),
        )
    } else if !waiting.is_empty() {
        (
            StatusState::Pending,
            format!("waiting for a preview slot: {}", waiting.join("; ")),
        )
    } else if !closing.is_empty() {
        (
            StatusState::Pending,
            format!("destroying: {}", closing.join(", ")),
        )
    } else if !live.is_empty() {
        (
            StatusState::Success,
            format!("preview up: {}", live.join(", ")),
        )
    } else {
        (
            StatusState::Success,
            format!(
                "preview expired: {}; push to bring it back",
                names(PreviewStatus::Expired).join(", ")
            ),
        )
    }
}

/// The preview section of the comment; empty when there is nothing to say.
pub(super) fn section(shown: &[Shown], note: Option<&Note>) -> String {
    if shown.is_empty() && note.is_none() {
        return String::new();
    }
    let mut out = format!("{START}\n**Previews**\n\n");
    for s in shown {
        let (r, env) = (&s.record, s.env());
        match r.status {
            PreviewStatus::Live => {
                let _ = writeln!(
                    out,
                    "- **`{env}`** is up at `{}`; it expires {} unless pushed to again.",
                    r.head.short(),
                    r.expires_at().to_minute()
                );
                if s.rows.is_empty() {
                    out.push_str("  Nothing is deployed yet.\n");
                } else {
                    out.push_str("\n  | instance | outcome | artifacts |\n  |---|---|---|\n");
                    for row in &s.rows {
                        let _ = writeln!(
                            out,
                            "  | `{}` | {} | {} |",
                            row.deployed.instance,
                            outcome(row),
                            cell(&artifact_fields(&row.deployed))
                        );
                    }
                }
            }
            PreviewStatus::Waiting => {
                let _ = writeln!(
                    out,
                    "- **`{env}`** is waiting for a slot: project `{}` has {} live previews ({}), as many as its `max` allows.",
                    r.project,
                    s.held.len(),
                    s.held.join(", ")
                );
            }
            PreviewStatus::Closing => {
                let _ = writeln!(out, "- **`{env}`** is being destroyed.");
            }
            PreviewStatus::Expired => {
                let _ = writeln!(
                    out,
                    "- **`{env}`** was destroyed at {} after {} without a push; push again to bring it back.",
                    r.expires_at().to_minute(),
                    core::duration::format(r.ttl)
                );
            }
        }
    }
    if let Some(note) = note {
        let _ = writeln!(out, "\n{}", note.text());
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// An instance's outcome in the comment: its recorded status, with why for a failure.
fn outcome(row: &Row) -> String {
    let d = &row.deployed;
    match d.status {
        Status::Deployed => "✅ deployed".to_string(),
        Status::Failed | Status::DestroyFailed | Status::Interrupted => {
            format!("❌ {}: {}", d.status.name(), cell(&row.why))
        }
        other => format!("⏳ {}", other.name()),
    }
}

/// An instance's artifact fields that are not sensitive, as `field.key: value`.
fn artifact_fields(d: &Deployed) -> String {
    let mut artifacts = serde_json::to_value(&d.artifacts).unwrap_or_default();
    sensitive::redact("artifacts", &mut artifacts, &d.sensitive);
    let mut leaves = Vec::new();
    flatten(&mut Vec::new(), &artifacts, &mut leaves);
    let shown: Vec<String> = leaves
        .into_iter()
        .filter(|(_, v)| v.as_str() != Some(sensitive::HIDDEN))
        .take(8)
        .map(|(path, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            format!("`{path}`: {}", crate::github::truncate(&v, 80))
        })
        .collect();
    shown.join("; ")
}

fn flatten(path: &mut Vec<String>, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(k.clone());
                flatten(path, child, out);
                path.pop();
            }
        }
        leaf => out.push((path.join("."), leaf.clone())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::core::deployed::Inputs;
    use crate::core::model::InstanceId;
    use crate::core::time::Timestamp;

    fn preview(name: &str, status: PreviewStatus) -> PreviewRecord {
        PreviewRecord {
            project: "ecomm".into(),
            name: name.into(),
            pr: Some(7),
            head: "1a2b3c4d5e6f7a8b9c0d".into(),
            status,
            created_at: Timestamp::from_secs(0),
            pushed_at: Timestamp::from_secs(0),
            ttl: Duration::from_secs(3600),
        }
    }

    fn row(id: &str, status: Status, why: &str) -> Row {
        Row {
            deployed: Deployed {
                instance: InstanceId(id.into()),
                project: "ecomm".into(),
                environment: "pr-7".into(),
                package: "app".into(),
                inputs: Inputs {
                    bundle: "b".into(),
                    version: "1.0.0".into(),
                    bundle_digest: String::new(),
                    params: json!({}),
                    connections: BTreeMap::new(),
                },
                digest: String::new(),
                artifacts: BTreeMap::from([(
                    "cluster".into(),
                    json!({"endpoint": "https://k8s.example", "token": "s3cr3t"}),
                )]),
                status,
                commit: "1a2b3c4d5e".into(),
                attributes: BTreeMap::new(),
                sensitive: vec![vec!["artifacts".into(), "cluster".into(), "token".into()]],
                updated_at: Timestamp::default(),
                drift: None,
            },
            why: why.into(),
        }
    }

    fn shown(record: PreviewRecord, rows: Vec<Row>, held: &[&str]) -> Shown {
        Shown {
            record,
            rows,
            held: held.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn the_status_puts_failures_first_then_waiting_then_what_is_up() {
        let up = || {
            shown(
                preview("pr-7", PreviewStatus::Live),
                vec![row("ecomm-pr-7-app", Status::Deployed, "")],
                &[],
            )
        };
        let waiting = || {
            shown(
                preview("pr-8", PreviewStatus::Waiting),
                vec![],
                &["#3", "#4"],
            )
        };
        assert_eq!(
            verdict(&[up()]),
            (StatusState::Success, "preview up: ecomm-pr-7".into())
        );
        assert_eq!(
            verdict(&[up(), waiting()]),
            (
                StatusState::Pending,
                "waiting for a preview slot: ecomm-pr-8 (slots held by #3, #4)".into()
            )
        );
        let failed = shown(
            preview("pr-7", PreviewStatus::Live),
            vec![row("ecomm-pr-7-app", Status::Failed, "exit 1")],
            &[],
        );
        assert_eq!(
            verdict(&[failed, waiting()]),
            (
                StatusState::Failure,
                "preview instances not deployed: ecomm-pr-7-app".into()
            )
        );
        assert_eq!(
            verdict(&[shown(preview("pr-7", PreviewStatus::Expired), vec![], &[])]).1,
            "preview expired: ecomm-pr-7; push to bring it back"
        );
    }

    #[test]
    fn the_section_shows_outcomes_and_artifacts_but_no_sensitive_value() {
        let text = section(
            &[
                shown(
                    preview("pr-7", PreviewStatus::Live),
                    vec![
                        row("ecomm-pr-7-app", Status::Deployed, ""),
                        row("ecomm-pr-7-db", Status::Failed, "exit | 1"),
                    ],
                    &[],
                ),
                shown(preview("pr-8", PreviewStatus::Waiting), vec![], &["#3"]),
            ],
            None,
        );
        assert!(
            text.starts_with(START) && text.ends_with(&format!("{END}\n")),
            "{text}"
        );
        assert!(
            text.contains(
                "- **`ecomm-pr-7`** is up at `1a2b3c4d5e`; it expires 1970-01-01 01:00 UTC"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| `ecomm-pr-7-app` | ✅ deployed | `cluster.endpoint`: https://k8s.example |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| `ecomm-pr-7-db` | ❌ failed: exit \\| 1 |"),
            "{text}"
        );
        assert!(
            text.contains("project `ecomm` has 1 live previews (#3)"),
            "{text}"
        );
        assert!(
            !text.contains("s3cr3t") && !text.contains("cluster.token"),
            "{text}"
        );
        assert_eq!(section(&[], None), "", "nothing to say, no section");
    }
}
