//! Drift (docs/drift.md): reality no longer matching what capstan last deployed. The
//! vocabulary of a check's outcome, how steps' outcomes make an instance's, and which
//! drifted instances a deploy heals. Checks themselves run outside the core
//! (`deploy::drift`); their outcomes are recorded with the instance (`Deployed::drift`).

use std::collections::BTreeMap;

use super::model::Audience;
use super::time::Timestamp;

/// What the last check of an instance found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DriftStatus {
    /// Every checkable step is in sync.
    InSync,
    /// A step reported a difference.
    Drifted,
    /// No step can be checked (an exec step without `check:`, a provisioner capstan does
    /// not run). Never drift.
    NotCheckable,
    /// A check could not tell (it failed, timed out, or said something else).
    CheckFailed,
}

impl DriftStatus {
    pub const ALL: [DriftStatus; 4] = [
        DriftStatus::InSync,
        DriftStatus::Drifted,
        DriftStatus::NotCheckable,
        DriftStatus::CheckFailed,
    ];

    /// As stored and printed.
    pub fn name(self) -> &'static str {
        match self {
            DriftStatus::InSync => "in sync",
            DriftStatus::Drifted => "drifted",
            DriftStatus::NotCheckable => "not checkable",
            DriftStatus::CheckFailed => "check failed",
        }
    }

    pub fn parse(text: &str) -> Option<DriftStatus> {
        DriftStatus::ALL.into_iter().find(|s| s.name() == text)
    }
}

impl std::fmt::Display for DriftStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step's outcome: its status, and what it says (resource addresses and actions, or
/// a check's first lines, already redacted; why it could not tell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepCheck {
    pub status: DriftStatus,
    pub summary: String,
}

/// The instance's outcome from its steps' in order: a failed check wins (nothing can be
/// said), then drift, then in sync; not checkable only when no step is. The summary joins
/// what the deciding steps said.
pub fn combine(steps: &[StepCheck]) -> StepCheck {
    let worst = [
        DriftStatus::CheckFailed,
        DriftStatus::Drifted,
        DriftStatus::InSync,
        DriftStatus::NotCheckable,
    ]
    .into_iter()
    .find(|s| steps.iter().any(|c| c.status == *s))
    .unwrap_or(DriftStatus::NotCheckable);
    let summary = steps
        .iter()
        .filter(|c| c.status == worst && !c.summary.is_empty())
        .map(|c| c.summary.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    StepCheck {
        status: worst,
        summary,
    }
}

/// An instance's last check, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftCheck {
    pub status: DriftStatus,
    /// Unix seconds since the instance has had this status (the first check that found it).
    pub since: Timestamp,
    pub summary: String,
    /// Unix seconds of the last check.
    pub checked_at: Timestamp,
}

/// Which drifted instances a deploy redeploys: `capstan apply` heals every drifted
/// instance it is run on; the daemon only those of the environments `capstan.yaml`'s
/// `drift.remediate` names.
#[derive(Clone, Debug, Default)]
pub enum Heal {
    All,
    #[default]
    None,
    Environments(Vec<Audience>),
}

impl Heal {
    /// Whether a drifted instance of an environment with these attributes is redeployed.
    pub fn heals(&self, attributes: &BTreeMap<String, String>) -> bool {
        match self {
            Heal::All => true,
            Heal::None => false,
            Heal::Environments(audiences) => audiences.iter().any(|a| a.matches(attributes)),
        }
    }
}

/// The first non-empty lines of what a check printed, at most `lines` of them, each cut
/// at 200 characters: a drifted exec check's summary.
pub fn first_lines(text: &str, lines: usize) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(lines)
        .map(|l| {
            if l.chars().count() > 200 {
                format!("{}…", l.chars().take(199).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: DriftStatus, summary: &str) -> StepCheck {
        StepCheck {
            status,
            summary: summary.into(),
        }
    }

    #[test]
    fn an_instance_is_as_its_worst_step_and_not_checkable_only_when_none_is() {
        use DriftStatus::*;
        assert_eq!(combine(&[]).status, NotCheckable);
        assert_eq!(
            combine(&[step(NotCheckable, "no check"), step(InSync, "")]).status,
            InSync
        );
        let drifted = combine(&[step(InSync, ""), step(Drifted, "~ aws_vpc.main (update)")]);
        assert_eq!(drifted, step(Drifted, "~ aws_vpc.main (update)"));
        assert_eq!(
            combine(&[step(Drifted, "x"), step(CheckFailed, "timed out")]),
            step(CheckFailed, "timed out")
        );
        for s in DriftStatus::ALL {
            assert_eq!(DriftStatus::parse(s.name()), Some(s));
        }
    }

    #[test]
    fn healing_follows_the_policy() {
        let staging = BTreeMap::from([("tier".to_string(), "staging".to_string())]);
        let production = BTreeMap::from([("tier".to_string(), "production".to_string())]);
        let only = Heal::Environments(vec![Audience::Matching(BTreeMap::from([(
            "tier".to_string(),
            vec!["staging".to_string()],
        )]))]);
        assert!(only.heals(&staging));
        assert!(!only.heals(&production));
        assert!(Heal::All.heals(&production));
        assert!(!Heal::None.heals(&staging));
    }

    #[test]
    fn summaries_are_the_first_lines_cut_short() {
        assert_eq!(
            first_lines("\nfirst\n\n second \nthird\nfourth\n", 3),
            "first / second / third"
        );
        assert_eq!(first_lines(&"x".repeat(300), 1).chars().count(), 200);
    }
}
