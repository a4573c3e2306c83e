//! One deploy at a time per state directory: an exclusive `flock` on `deploy.lock`, released
//! by the kernel when the process dies, so a crash never leaves it stuck. The holder writes
//! who it is into the file, so a refused process can say who holds it and what to do.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::DeployError;

/// Who holds a state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A command that takes the state for one run: `capstan apply`, `capstan drift`,
    /// `capstan preview up`, named as typed.
    Command(&'static str),
    /// `capstan serve`: for as long as it runs.
    Serve,
}

impl Holder {
    pub fn name(self) -> &'static str {
        match self {
            Holder::Command(name) => name,
            Holder::Serve => "capstan serve",
        }
    }
}

/// Holds the deploy lock of a state directory while alive; with the state in PostgreSQL,
/// also the store's deploy lock, which every machine using that database honours.
pub struct DeployLock {
    _file: File,
    _shared: Option<crate::state::SessionLock>,
    /// The fencing token taken with the lock ([`crate::deploy::take_over`]); 0 before.
    pub fence: i64,
}

impl DeployLock {
    pub fn acquire(
        state_dir: &Path,
        store: &crate::state::Store,
        holder: Holder,
    ) -> Result<DeployLock, DeployError> {
        let file = lock_file(state_dir, holder)?;
        let name = format!(
            "{} pid {} on {}",
            holder.name(),
            std::process::id(),
            host_name()
        );
        let shared = match store.try_lock(crate::state::Lock::Deploy, &name) {
            Ok(shared) => shared,
            Err(crate::state::LockError::State(e)) => return Err(e.into()),
            Err(crate::state::LockError::Busy(by)) => {
                return Err(DeployError::HeldElsewhere {
                    at: store.location().to_string(),
                    holder: if by.is_empty() {
                        "another capstan".into()
                    } else {
                        by
                    },
                    wanted: holder.name(),
                });
            }
        };
        Ok(DeployLock {
            _file: file,
            _shared: shared,
            fence: 0,
        })
    }
}

/// This machine's name, for saying who holds a lock.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".into())
}

/// The state folder's `flock`, with the holder written in.
fn lock_file(state_dir: &Path, holder: Holder) -> Result<File, DeployError> {
    use std::os::fd::AsRawFd;
    let path = state_dir.join("deploy.lock");
    let lock_error = |source| DeployError::Lock {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let mut words = text.trim().splitn(2, ' ');
        let pid = words.next().and_then(|p| p.parse().ok());
        let by = words.next().filter(|w| w.starts_with("capstan "));
        return Err(match (pid, by) {
            (Some(pid), Some(by)) if by == Holder::Serve.name() => DeployError::HeldByDaemon {
                dir: state_dir.to_path_buf(),
                pid,
                wanted: holder.name(),
            },
            (Some(pid), Some(by)) => DeployError::HeldByCommand {
                dir: state_dir.to_path_buf(),
                pid,
                holder: by.to_string(),
            },
            _ => DeployError::Locked {
                dir: state_dir.to_path_buf(),
                lock: path,
            },
        });
    }
    file.set_len(0).map_err(lock_error)?;
    file.rewind().map_err(lock_error)?;
    writeln!(file, "{} {}", std::process::id(), holder.name()).map_err(lock_error)?;
    Ok(file)
}
