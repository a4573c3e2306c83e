//! The drift issue's body (docs/drift.md): what drifted, since when, what changed and
//! whether capstan heals it; or, when all is back in sync, the text it is closed with.

use std::collections::BTreeMap;

use super::comment::{Comment, MAX_COMMENT, cell, table};
use crate::core::deployed::Deployed;
use crate::core::drift::Heal;
use crate::core::model::InstanceId;
use crate::core::time::Timestamp;

/// The drift issue's title.
pub const TITLE: &str = "capstan: drift detected";

/// The hidden first line that finds the drift issue again.
pub const MARKER: &str = "<!-- capstan:drift -->";

/// The issue's body: the `drifted` instances (how each is healed, under `heal`), or the
/// closing text when there are none; `checked_at` is the latest check.
pub fn issue(
    drifted: &BTreeMap<&InstanceId, &Deployed>,
    heal: &Heal,
    checked_at: Option<Timestamp>,
) -> String {
    if drifted.is_empty() {
        return format!(
            "{MARKER}\n**No drift: every checked instance matches what capstan last deployed.**\n\nLast checked {}. capstan reopens this issue when drift returns.\n",
            checked_at.map(Timestamp::to_minute).unwrap_or_default()
        );
    }
    body(drifted, heal, checked_at)
}

/// The issue's body for what drifted.
fn body(
    drifted: &BTreeMap<&InstanceId, &Deployed>,
    heal: &Heal,
    checked_at: Option<Timestamp>,
) -> String {
    let rows: Vec<String> = drifted
        .values()
        .filter_map(|d| {
            let c = d.drifted()?;
            let remedy = if heal.heals(&d.attributes) {
                "redeployed by capstan (`drift.remediate`)"
            } else {
                "reported only: `capstan apply` redeploys it"
            };
            Some(format!(
                "| `{}` | {}-{} | {} | {} | {remedy} |\n",
                d.instance,
                d.project,
                d.environment,
                c.since.to_minute(),
                cell(&c.summary)
            ))
        })
        .collect();
    let head = format!(
        "{MARKER}\n**{} instance{} no longer match{} what capstan last deployed.**\n\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if rows.len() == 1 { "es" } else { "" },
    );
    let foot = format!(
        "\nLast checked {}. capstan edits this issue as drift changes and closes it when every instance is back in sync.\n",
        checked_at.map(Timestamp::to_minute).unwrap_or_default()
    );
    let budget = MAX_COMMENT - head.len() - foot.len() - 400;
    let table = table(
        "| instance | environment | since | what changed | remediation |\n|---|---|---|---|---|\n",
        &rows,
        budget,
        "drifted instances",
    );
    Comment {
        head: format!("{head}{table}{foot}"),
        ..Comment::default()
    }
    .render(MAX_COMMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_drift_the_issue_says_so_and_when_it_was_checked() {
        let text = issue(&BTreeMap::new(), &Heal::None, Some(Timestamp::from_secs(0)));
        assert!(text.starts_with(MARKER));
        assert!(text.contains("**No drift: every checked instance matches"));
        assert!(text.contains("Last checked 1970-01-01 00:00 UTC."));
    }
}
