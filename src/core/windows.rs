//! Deploy windows (docs/deploying.md): `capstan.yaml` says when deploys may run (`allow`)
//! or must not (`deny`), each as a cron expression for when the window opens and a
//! duration, for environments whose attributes match.
//!
//! An instance may deploy at a moment when no matching deny window is open and, if any
//! allow window matches its environment, one of those is open. Pure: the clock is an
//! argument.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use super::model::DeployWindow;

/// Parses a window's cron expression: five fields, or six with seconds first.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| e.to_string())
}

/// Whether a deploy may run now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Closed by `reason` (naming the window); `opens` is the next moment it is open, when
    /// one is found within a year.
    Closed {
        reason: String,
        opens: Option<DateTime<Utc>>,
    },
}

struct Window<'a> {
    spec: &'a DeployWindow,
}

impl Window<'_> {
    fn name(&self) -> String {
        self.spec
            .name
            .clone()
            .unwrap_or_else(|| format!("{} `{}`", self.kind(), self.spec.cron.pattern))
    }

    fn kind(&self) -> &'static str {
        if self.spec.allow {
            "allow window"
        } else {
            "deny window"
        }
    }

    /// When the occurrence open at `now` closes, if one is.
    fn open_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let since = now - self.spec.length;
        let start = self.spec.cron.find_next_occurrence(&since, false).ok()?;
        (start <= now).then(|| start + self.spec.length)
    }

    fn next_start(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.spec.cron.find_next_occurrence(&now, false).ok()
    }
}

/// The gate for an environment with `attributes` at `now`. Windows were parsed at load; one
/// that did not parse is a validation error, and nothing deploys from a revision with errors.
pub fn gate(
    windows: &[DeployWindow],
    attributes: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Gate {
    let applicable: Vec<Window<'_>> = windows
        .iter()
        .filter(|w| w.environments.matches(attributes))
        .map(|spec| Window { spec })
        .collect();
    let mut at = now;
    let mut first_reason = None;
    // Each step moves to the end of a deny window or the start of an allow window; a
    // handful of steps settles any realistic calendar.
    for _ in 0..64 {
        match closed_by(&applicable, at) {
            None if at == now => return Gate::Open,
            None => {
                return Gate::Closed {
                    reason: first_reason.unwrap_or_default(),
                    opens: Some(at),
                };
            }
            Some((reason, next)) => {
                first_reason.get_or_insert(reason);
                match next {
                    Some(next) if next > at && next - now < chrono::Duration::days(366) => {
                        at = next
                    }
                    _ => break,
                }
            }
        }
    }
    Gate::Closed {
        reason: first_reason.unwrap_or_default(),
        opens: None,
    }
}

/// Why deploys are closed at `at`, and the next moment worth checking.
fn closed_by(windows: &[Window<'_>], at: DateTime<Utc>) -> Option<(String, Option<DateTime<Utc>>)> {
    for w in windows.iter().filter(|w| !w.spec.allow) {
        if let Some(until) = w.open_until(at) {
            return Some((
                format!("{} is in force until {until}", w.name()),
                Some(until),
            ));
        }
    }
    let allows: Vec<&Window<'_>> = windows.iter().filter(|w| w.spec.allow).collect();
    if allows.is_empty() || allows.iter().any(|w| w.open_until(at).is_some()) {
        return None;
    }
    let next = allows.iter().filter_map(|w| w.next_start(at)).min();
    let names: Vec<String> = allows.iter().map(|w| w.name()).collect();
    Some((format!("outside {}", names.join(", ")), next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diag::Loc;
    use crate::core::model::Audience;

    fn window(allow: bool, cron: &str, duration: &str, tier: Option<&str>) -> DeployWindow {
        DeployWindow {
            name: None,
            allow,
            cron: parse_cron(cron).expect("valid cron"),
            length: chrono::TimeDelta::from_std(crate::core::duration::parse(duration).unwrap())
                .unwrap(),
            environments: match tier {
                None => Audience::Anyone,
                Some(t) => Audience::Matching(BTreeMap::from([("tier".into(), vec![t.into()])])),
            },
            at: Loc::new(&"capstan.yaml".into(), crate::core::yaml::Pos::START),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn attrs(tier: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("tier".into(), tier.into())])
    }

    #[test]
    fn a_weekend_freeze_closes_production_only() {
        // Friday 18:00 for 62 hours: until Monday 08:00.
        let w = [window(false, "0 0 18 * * Fri", "62h", Some("production"))];
        let saturday = at("2026-11-21T12:00:00Z");
        match gate(&w, &attrs("production"), saturday) {
            Gate::Closed { reason, opens } => {
                assert!(reason.contains("deny window"), "{reason}");
                assert_eq!(opens, Some(at("2026-11-23T08:00:00Z")));
            }
            Gate::Open => panic!("the freeze is in force"),
        }
        assert_eq!(gate(&w, &attrs("staging"), saturday), Gate::Open);
        assert_eq!(
            gate(&w, &attrs("production"), at("2026-11-23T08:00:01Z")),
            Gate::Open
        );
        assert_eq!(
            gate(&w, &attrs("production"), at("2026-11-20T17:59:59Z")),
            Gate::Open
        );
    }

    #[test]
    fn allow_windows_open_only_during_themselves() {
        // Weekdays 09:00-17:00.
        let w = [window(true, "0 9 * * Mon-Fri", "8h", None)];
        assert_eq!(
            gate(&w, &attrs("x"), at("2026-11-19T10:00:00Z")),
            Gate::Open
        );
        match gate(&w, &attrs("x"), at("2026-11-21T10:00:00Z")) {
            Gate::Closed { opens, .. } => assert_eq!(opens, Some(at("2026-11-23T09:00:00Z"))),
            Gate::Open => panic!("saturday is outside"),
        }
    }

    #[test]
    fn a_deny_inside_an_allow_wins_and_the_next_opening_skips_both() {
        let w = [
            window(true, "0 9 * * *", "8h", None),
            window(false, "0 9 * * *", "2h", None),
        ];
        match gate(&w, &attrs("x"), at("2026-11-19T09:30:00Z")) {
            Gate::Closed { opens, .. } => assert_eq!(opens, Some(at("2026-11-19T11:00:00Z"))),
            Gate::Open => panic!("denied"),
        }
    }

    #[test]
    fn a_broken_cron_is_refused_when_parsed() {
        assert!(parse_cron("not cron").is_err());
    }
}
