//! A step's log, as the deployer writes it (already scrubbed of secrets): read for the
//! page, and followed live over server-sent events while the step runs
//! (`/steps/{id}/events?from=<byte offset>`; a reconnecting browser resumes from its
//! `Last-Event-ID`, the offset after the last event it had).

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::View;

/// The most of a log a page shows; a longer log shows its end and says what was cut.
pub const SHOWN: u64 = 1 << 20;
/// The most one event carries.
const CHUNK: usize = 64 << 10;
const POLL: Duration = Duration::from_millis(250);

/// A log read for the page: its text from `start`, up to `end` (the last whole line).
pub struct Shown {
    pub text: String,
    /// Bytes left out before `text` (a long log shows its end).
    pub start: u64,
    /// Where following it goes on from.
    pub end: u64,
}

/// Reads what the page shows of the log at `path`: whole lines only, so a live follow
/// starts at a line.
pub fn read(path: &Path, running: bool) -> std::io::Result<Shown> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(SHOWN);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(SHOWN).read_to_end(&mut bytes)?;
    let (text, used) = lines(&bytes, !running);
    Ok(Shown {
        text,
        start,
        end: start + used as u64,
    })
}

/// The text of the whole lines at the front of `bytes` and how many bytes they are; with
/// `all`, a last line without its newline too. Invalid UTF-8 is shown replaced, never
/// dropped.
pub fn lines(bytes: &[u8], all: bool) -> (String, usize) {
    let used = if all {
        bytes.len()
    } else {
        bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    };
    (String::from_utf8_lossy(&bytes[..used]).into_owned(), used)
}

/// What the follower does next, decided from what it read and the step's state.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send these lines; go on from `offset`.
    Append { text: String, offset: u64 },
    /// Nothing new yet: wait and look again.
    Wait,
    /// The step finished and everything was sent.
    End,
}

/// Decides the follower's next move: new whole lines are sent; once the step finished,
/// the rest (even without a final newline), then the end.
pub fn next(new: &[u8], offset: u64, finished: bool) -> Next {
    let (text, used) = lines(new, finished);
    if used > 0 {
        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
        return Next::Append {
            text,
            offset: offset + used as u64,
        };
    }
    if finished { Next::End } else { Next::Wait }
}

struct Follow {
    view: Arc<View>,
    step: i64,
    path: PathBuf,
    offset: u64,
    done: bool,
}

/// The event stream of step `step`'s log from `offset`.
pub fn follow(
    view: Arc<View>,
    step: i64,
    path: PathBuf,
    offset: u64,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = Follow {
        view,
        step,
        path,
        offset,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            let (view, step, path, offset) = (f.view.clone(), f.step, f.path.clone(), f.offset);
            let polled = tokio::task::spawn_blocking(move || poll(&view, step, &path, offset))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match polled {
                Ok((Next::Append { text, offset }, _)) => {
                    f.offset = offset;
                    let event = Event::default()
                        .event("append")
                        .id(offset.to_string())
                        .data(text);
                    return Some((Ok(event), f));
                }
                Ok((Next::Wait, _)) => tokio::time::sleep(POLL).await,
                Ok((Next::End, status)) => {
                    f.done = true;
                    return Some((Ok(Event::default().event("end").data(status)), f));
                }
                Err(why) => {
                    tracing::warn!(step = f.step, error = why, "following a step log failed");
                    f.done = true;
                    let event = Event::default()
                        .event("end")
                        .data("the log could not be read");
                    return Some((Ok(event), f));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Reads what is new after `offset` and whether the step finished (asked first, so
/// nothing written before it finished is missed).
fn poll(view: &View, step: i64, path: &Path, offset: u64) -> Result<(Next, String), String> {
    let record = view
        .store
        .step(step)
        .map_err(|e| crate::error::chain(&e))?
        .ok_or("the step is gone")?;
    let finished = record.finished_at.is_some();
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut file) => {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            file.take(CHUNK as u64)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())?;
        }
        // Not written yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !finished => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    // A full chunk is not the end even if the step finished: send it, read on.
    let last = finished && bytes.len() < CHUNK;
    Ok((next(&bytes, offset, last), record.status.name().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_lines_are_sent_until_the_step_ends() {
        assert_eq!(
            next(b"one\ntwo\nthr", 10, false),
            Next::Append {
                text: "one\ntwo".into(),
                offset: 18
            }
        );
        assert_eq!(next(b"thr", 18, false), Next::Wait);
        assert_eq!(
            next(b"thr", 18, true),
            Next::Append {
                text: "thr".into(),
                offset: 21
            }
        );
        assert_eq!(next(b"", 21, true), Next::End);
        assert_eq!(lines(b"\xffok\n", false), ("\u{fffd}ok\n".into(), 4));
    }
}
