//! One deploy at a time per state directory: an exclusive `flock` on `deploy.lock`, released
//! by the kernel when the process dies, so a crash never leaves it stuck.

use std::fs::File;
use std::path::Path;

use super::DeployError;

/// Holds the deploy lock of a state directory while alive.
pub struct DeployLock {
    _file: File,
}

impl DeployLock {
    pub fn acquire(state_dir: &Path) -> Result<DeployLock, DeployError> {
        use std::os::fd::AsRawFd;
        let path = state_dir.join("deploy.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DeployError::Lock {
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(DeployError::Locked {
                dir: state_dir.to_path_buf(),
                lock: path,
            });
        }
        Ok(DeployLock { _file: file })
    }
}
