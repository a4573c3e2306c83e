//! Errors as one line for people: the error and its causes, each said once.

use std::error::Error;

/// `reading the secret file x (GitHub token): No such file or directory`. A cause whose text
/// an earlier message already contains (an error that prints its source) is not repeated.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(cause) = next {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        next = cause.source();
    }
    parts.join(": ")
}
