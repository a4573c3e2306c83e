//! Durations as capstan's files and flags write them: `500ms`, `30s`, `5m`, `1h30m`, `2d`.
//!
//! One grammar for everything that takes a duration (deploy windows, the daemon's
//! configuration, `capstan apply --timeout`, preview TTLs), so a value that works in one
//! place works in all of them. The JSON Schemas use the same pattern ([`PATTERN`]).

use std::fmt;
use std::time::Duration;

/// The grammar as a regular expression, as the schemas in `schemas/` write it.
pub const PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";

/// Why a text is not a duration; names the text and what would work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    text: String,
    /// The text is in the grammar, but the duration does not fit (more than ~584 million years).
    too_long: bool,
}

impl DurationError {
    /// Names `text` as not being a duration (what the schemas' [`PATTERN`] rejects).
    pub fn malformed(text: &str) -> DurationError {
        DurationError {
            text: text.to_string(),
            too_long: false,
        }
    }

    /// Whether the text is written right and only too long to hold: the one problem the
    /// schemas' pattern cannot see.
    pub fn is_too_long(&self) -> bool {
        self.too_long
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.too_long {
            write!(f, "`{}` is too long for a duration", self.text)
        } else {
            write!(
                f,
                "`{}` is not a duration: write numbers with units ms, s, m, h or d, e.g. 30s, 5m, 1h30m, 2d",
                self.text
            )
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `1h30m`-style text: one or more `<digits><unit>` with units `ms`, `s`, `m`, `h`, `d`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError::malformed(text);
    let too_long = || DurationError {
        text: text.to_string(),
        too_long: true,
    };
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(error());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(error());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let (unit, millis) = if let Some(r) = rest.strip_prefix("ms") {
            (r, 1)
        } else if let Some(r) = rest.strip_prefix('s') {
            (r, 1_000)
        } else if let Some(r) = rest.strip_prefix('m') {
            (r, 60_000)
        } else if let Some(r) = rest.strip_prefix('h') {
            (r, 3_600_000)
        } else if let Some(r) = rest.strip_prefix('d') {
            (r, 86_400_000)
        } else {
            return Err(error());
        };
        rest = unit;
        let part = number.checked_mul(millis).ok_or_else(too_long)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(too_long)?;
    }
    Ok(total)
}

/// The shortest text [`parse`] reads back as `d` (to the millisecond): `1h30m`, `500ms`, `0s`.
pub fn format(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_grammar() {
        let s = Duration::from_secs;
        assert_eq!(parse("1h30m"), Ok(s(5400)));
        assert_eq!(parse("2d"), Ok(s(172_800)));
        assert_eq!(parse("62h"), Ok(s(223_200)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m30s"), Ok(s(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        for bad in ["", "5", "3w", "1h 30m", "h", "-1s", "banana", "1.5h"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
            assert!(e.to_string().contains("e.g. 30s"), "{e}");
        }
        assert!(parse(&format!("{}d", u64::MAX)).is_err(), "overflow");
    }

    #[test]
    fn formatting_reads_back() {
        for text in ["1h30m", "500ms", "2d", "30s", "1d2h3m4s5ms"] {
            assert_eq!(format(parse(text).expect(text)), text);
        }
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn the_schemas_use_the_same_pattern() {
        let re = regex::Regex::new(PATTERN).expect("valid");
        for ok in ["1h30m", "500ms", "2d"] {
            assert!(re.is_match(ok) && parse(ok).is_ok(), "{ok}");
        }
        for bad in ["5", "1h 30m", ""] {
            assert!(!re.is_match(bad) && parse(bad).is_err(), "{bad}");
        }
    }
}
