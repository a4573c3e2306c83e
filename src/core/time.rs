//! [`Timestamp`]: a moment as capstan records it, to the second. The state stores it as
//! seconds since the Unix epoch; people read it in UTC. The core never reads the clock:
//! `state::now()` does, and the moment is handed in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A moment, to the second (seconds since the Unix epoch, UTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// Whole seconds from `earlier` to this moment (negative when `earlier` is later).
    pub const fn since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `secs` seconds later.
    pub const fn plus(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs))
    }

    /// To the minute, as comments and issues show it: `2026-12-05 14:03 UTC`.
    pub fn to_minute(self) -> String {
        self.format("%Y-%m-%d %H:%M UTC")
    }

    fn format(self, pattern: &str) -> String {
        chrono::DateTime::from_timestamp(self.0, 0)
            .map(|t| t.format(pattern).to_string())
            .unwrap_or_default()
    }
}

/// To the second: `2026-12-05 14:03:27 UTC`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.format("%Y-%m-%d %H:%M:%S UTC"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_reads_in_utc_and_counts_seconds() {
        let t = Timestamp::from_secs(1_796_479_407);
        assert_eq!(t.to_string(), "2026-12-05 14:03:27 UTC");
        assert_eq!(t.to_minute(), "2026-12-05 14:03 UTC");
        assert_eq!(t.plus(60).since(t), 60);
        assert_eq!(t.since(t.plus(5)), -5);
    }
}
