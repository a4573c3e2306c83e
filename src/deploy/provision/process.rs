//! Spawning a step's command: its own process group, a timeout, stdout and stderr to the
//! log line by line, and how it ended.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::log::Log;
use super::workdir::FORK_GUARD;
use super::{Env, StepError};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Runs one command in the step's folder, its output into the log (or, with `capture`,
/// its stdout returned and kept out of the log: `output -json` holds secrets). Fails on a
/// non-zero exit, a signal or the timeout, which kills the whole process group.
/// How a command ended: its exit status, and its stdout when captured.
pub(in crate::deploy) struct Ended {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    /// The command as shown in the log and in messages.
    pub shown: String,
}

/// Runs one command in the step's folder, its output into the log (or, with `capture`,
/// its stdout returned and kept out of the log: `output -json` holds secrets), and says
/// how it ended. Fails only when it cannot start or times out (which kills the whole
/// process group); a non-zero exit is the caller's to judge.
pub(in crate::deploy) async fn spawn_and_wait(
    log: &Log,
    env: &Env,
    program: &str,
    args: &[&str],
    capture: bool,
) -> Result<Ended, StepError> {
    let shown = if program == "sh" {
        args.last().copied().unwrap_or_default().to_string()
    } else {
        format!("{program} {}", args.join(" "))
    };
    log.line(&format!("$ {shown}"));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&env.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if env.clear {
        cmd.env_clear();
    }
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let spawned = {
        let _forking = FORK_GUARD.write().unwrap_or_else(|p| p.into_inner());
        cmd.spawn()
    };
    let mut child = spawned.map_err(|source| StepError::Start {
        program: program.to_string(),
        source,
    })?;
    let pid = child.id();
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, log.clone())));
    let stdout = child.stdout.take();
    // Captured stdout is read beside the wait, so a cancel or timeout is seen while the
    // command still prints.
    let captured = stdout.map(|mut s| {
        if capture {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.map(|_| buf)
            })
        } else {
            let log = log.clone();
            tokio::spawn(async move {
                pump(s, log).await;
                Ok(Vec::new())
            })
        }
    });
    let cancelled = async {
        match &env.cancel {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let waited = tokio::select! {
        waited = tokio::time::timeout(env.timeout, child.wait()) => waited.ok(),
        () = cancelled => None,
    };
    let status = match waited {
        Some(status) => status.map_err(|source| StepError::Wait {
            command: shown.clone(),
            source,
        })?,
        None => {
            if let Some(pid) = pid {
                // SAFETY: killpg only sends a signal; the group is the child's own.
                unsafe {
                    libc::killpg(pid as libc::pid_t, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            let e = if env.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
                StepError::Cancelled { command: shown }
            } else {
                StepError::Timeout {
                    command: shown,
                    after: crate::core::duration::format(env.timeout),
                }
            };
            log.line(&e.to_string());
            return Err(e);
        }
    };
    if let Some(stderr) = stderr {
        // The pipes close when the process (group) ends; a grandchild holding them open
        // must not hold up the deploy.
        let _ = tokio::time::timeout(Duration::from_secs(5), stderr).await;
    }
    let stdout = match captured {
        Some(reader) => match tokio::time::timeout(Duration::from_secs(5), reader).await {
            Ok(Ok(read)) => read.map_err(|source| StepError::Wait {
                command: shown.clone(),
                source,
            })?,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    Ok(Ended {
        status,
        stdout,
        shown,
    })
}

/// Like [`spawn_and_wait`], failing on a non-zero exit or a signal.
pub(in crate::deploy) async fn command(
    log: &Log,
    env: &Env,
    program: &str,
    args: &[&str],
    capture: bool,
) -> Result<Vec<u8>, StepError> {
    let ended = spawn_and_wait(log, env, program, args, capture).await?;
    if ended.status.success() {
        return Ok(ended.stdout);
    }
    let e = failure(log, env, program, &ended);
    log.line(&e.to_string());
    Err(e)
}

/// Why a command that ended badly failed.
pub(in crate::deploy) fn failure(log: &Log, env: &Env, program: &str, ended: &Ended) -> StepError {
    let shown = ended.shown.clone();
    match ended.status.code() {
        Some(_) if program != "sh" && log.lock_held.load(Ordering::SeqCst) => {
            StepError::StateLocked {
                command: shown,
                instance: env.instance.clone(),
                program: program.to_string(),
            }
        }
        Some(code) => StepError::Exit {
            command: shown,
            code,
        },
        None => StepError::Killed { command: shown },
    }
}

pub(super) async fn pump(stream: impl AsyncRead + Unpin, log: Log) {
    let mut lines = BufReader::new(stream).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        log.line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
    }
}
