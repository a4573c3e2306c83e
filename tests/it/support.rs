//! Shared helpers: the example repository in memory, fixture scripts, real git in temp dirs.

use std::path::{Path, PathBuf};
use std::process::Command;

use capstan::core::source::{Content, SourceFile, SourceTree};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the npm packages the tests read (`tests/npm/node_modules/…`), or a message
/// saying how to install them: every test that needs one fails with that message, not only
/// the first (a poisoned lazy value would say nothing).
pub fn npm_file(rel: &str, what: &str) -> Result<PathBuf, String> {
    let path = root().join("tests/npm/node_modules").join(rel);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: {what} comes from npm; run `npm ci --prefix tests/npm` once (.ci/run does)",
            path.display()
        ))
    }
}

pub fn example_repo() -> PathBuf {
    root().join("example-repo")
}

/// `example-repo/` read from disk, as (path, bytes) pairs to edit in memory.
pub fn example_files() -> Vec<SourceFile> {
    capstan::source::read_dir(&example_repo())
        .expect("example-repo reads")
        .files()
        .to_vec()
}

/// Diagnostics as the text renderer prints them, one per line.
pub fn diagnostic_lines(tree: &SourceTree) -> Vec<String> {
    capstan::core::check(tree)
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub fn text(files: &[SourceFile], path: &str) -> String {
    match &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"))
        .content
    {
        Content::Bytes(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
        other => panic!("{path} is {other:?}"),
    }
}

pub fn put(files: &mut Vec<SourceFile>, path: &str, content: Content) {
    files.retain(|f| f.path != path);
    files.push(SourceFile {
        path: path.to_string(),
        executable: false,
        content,
    });
}

/// Runs real git with a hermetic configuration.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "capstan tests")
        .env("GIT_AUTHOR_EMAIL", "tests@capstan.invalid")
        .env("GIT_COMMITTER_NAME", "capstan tests")
        .env("GIT_COMMITTER_EMAIL", "tests@capstan.invalid")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed in {}", dir.display());
}

pub fn git_init(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, &["init", "-q", "-b", "main"]);
}

pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
}

/// Copies a folder recursively (files only; permissions kept).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Writes the files of a tree (bytes only, modes kept) below `dir`.
pub fn write_tree(files: &[SourceFile], dir: &Path) {
    capstan::synth::write_files(dir, files).expect("the tree is written");
}

/// A fixture script applied to the example repository. Sections:
///
/// ```text
/// --- write PATH        the lines that follow are the file's new content
/// --- edit PATH         `-` lines are replaced by `+` lines (first occurrence of the block)
/// --- delete PATH       (also deletes every file below PATH/)
/// --- bytes PATH HEX    raw bytes
/// --- symlink PATH      a link (the reader reports it; never followed)
/// --- large PATH SIZE   a file the reader found too large
/// --- expect            the exact diagnostics, one per line
/// ```
/// Lines before the first section are comments.
pub struct Fixture {
    pub files: Vec<SourceFile>,
    pub expect: Vec<String>,
}

pub fn apply_fixture(script: &str, name: &str) -> Fixture {
    let mut files = example_files();
    let mut expect = Vec::new();
    let mut sections: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for line in script.lines() {
        if let Some(header) = line.strip_prefix("--- ") {
            sections.push((header.split_whitespace().collect(), Vec::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push(line);
        }
    }
    for (header, body) in sections {
        match header.as_slice() {
            ["write", path] => put(
                &mut files,
                path,
                Content::Bytes(format!("{}\n", body.join("\n")).into_bytes().into()),
            ),
            ["edit", path] => {
                let old: Vec<&str> = body.iter().filter_map(|l| l.strip_prefix('-')).collect();
                let new: Vec<&str> = body.iter().filter_map(|l| l.strip_prefix('+')).collect();
                let current = text(&files, path);
                let old = format!("{}\n", old.join("\n"));
                assert!(
                    current.contains(&old),
                    "{name}: {path} does not contain:\n{old}"
                );
                let edited = current.replacen(&old, &format!("{}\n", new.join("\n")), 1);
                let executable = files.iter().any(|f| f.path == *path && f.executable);
                put(&mut files, path, Content::Bytes(edited.into_bytes().into()));
                files
                    .iter_mut()
                    .filter(|f| f.path == *path)
                    .for_each(|f| f.executable = executable);
            }
            ["delete", path] => {
                let before = files.len();
                files.retain(|f| f.path != *path && !f.path.starts_with(&format!("{path}/")));
                assert!(files.len() < before, "{name}: nothing to delete at {path}");
            }
            ["bytes", path, hex] => {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                put(&mut files, path, Content::Bytes(bytes));
            }
            ["symlink", path] => put(&mut files, path, Content::Symlink),
            ["large", path, size] => put(
                &mut files,
                path,
                Content::TooLarge {
                    size: size.parse().expect("size"),
                },
            ),
            ["expect"] => expect.extend(
                body.iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.to_string()),
            ),
            other => panic!("{name}: unknown fixture section {other:?}"),
        }
    }
    Fixture { files, expect }
}
