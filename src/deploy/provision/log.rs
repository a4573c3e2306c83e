//! A step's log: lines written as they come, every known secret replaced by `[redacted]`,
//! and the scrub of a finished log once the secrets a step printed are known.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::StepError;
use crate::state::{private_dir, private_file};

/// Scrubs secrets from text written to logs.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than four characters are not scrubbed: replacing every `1` or `on`
    /// in a log would hide everything and protect nothing.
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        secrets.retain(|s| s.len() >= 4);
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// Appends lines to a step's log; shared by the stdout and stderr readers.
#[derive(Clone)]
pub(in crate::deploy) struct Log {
    file: Arc<Mutex<std::fs::File>>,
    redactor: Redactor,
    /// Set when OpenTofu or Terraform says another process holds the state lock.
    pub(in crate::deploy) lock_held: Arc<AtomicBool>,
    /// The latest lines, redacted (what a drift check printed becomes its summary).
    recent: Arc<Mutex<Vec<String>>>,
}

/// What OpenTofu and Terraform print when another process holds the state lock.
pub(super) const LOCK_HELD: &str = "Error acquiring the state lock";

impl Log {
    pub(in crate::deploy) fn line(&self, text: &str) {
        use std::io::Write;
        if text.contains(LOCK_HELD) {
            self.lock_held.store(true, Ordering::SeqCst);
        }
        let line = self.redactor.apply(text);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= 64 {
                recent.remove(0);
            }
            recent.push(line.clone());
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A log that cannot be written must not fail the deploy; the step's result is
        // still recorded in the database.
        let _ = writeln!(f, "{line}");
    }

    /// The lines written since the last call, redacted; forgets them.
    pub(in crate::deploy) fn take_recent(&self) -> Vec<String> {
        std::mem::take(&mut *self.recent.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Opens (creating, owner-only) the log at `path`.
    pub(in crate::deploy) fn open(path: &Path, secrets: &[String]) -> Result<Log, StepError> {
        let log_error = |source| StepError::Log {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            private_dir(parent).map_err(log_error)?;
        }
        let file = private_file(path).map_err(log_error)?;
        Ok(Log {
            file: Arc::new(Mutex::new(file)),
            redactor: Redactor::new(secrets.to_vec()),
            lock_held: Arc::default(),
            recent: Arc::default(),
        })
    }
}

/// Re-scrubs a finished log with secrets learnt during the step (new artifacts).
pub fn scrub_log(path: &Path, redactor: &Redactor) -> std::io::Result<()> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let clean = redactor.apply(&text);
    if clean != text {
        use std::io::Write;
        let tmp = path.with_extension("log.tmp");
        let _ = std::fs::remove_file(&tmp);
        private_file(&tmp)?.write_all(clean.as_bytes())?;
        std::fs::rename(tmp, path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_longest_first_and_ignores_tiny_values() {
        let r = Redactor::new(vec!["hunter2".into(), "hunter2-extra".into(), "1".into()]);
        assert_eq!(
            r.apply("pw=hunter2-extra old=hunter2 n=1"),
            "pw=[redacted] old=[redacted] n=1"
        );
    }
}
