//! Mutated repositories never panic the core, and every diagnostic they produce points at a
//! real file and a real position.

use capstan::core::source::{Content, SourceFile, SourceTree};
use proptest::prelude::*;

use crate::support::example_files;

const SNIPPETS: &[&str] = &[
    "&a [*a]",
    "*nope",
    "{",
    "]",
    "- - -",
    "? [a]: b",
    "!!binary aGk=",
    "'",
    "\"\\u0000\"",
    "~",
    ".nan",
    "0x",
    "<<: *x",
    "packages: {x: {remote: {}}}",
    "si-staging-vpc.network",
    "{data: {}}",
    "\t",
    "---",
    "...",
    "%YAML 1.2",
    "1e999",
    "-9223372036854775809",
    "\u{feff}",
    "é",
    "defaults: {aws-vpc: ecomm-staging-db.database}",
    "enabled: false",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte {
        file: usize,
        at: usize,
        bit: u8,
    },
    Truncate {
        file: usize,
        at: usize,
    },
    DeleteLine {
        file: usize,
        line: usize,
    },
    DuplicateLine {
        file: usize,
        line: usize,
    },
    Insert {
        file: usize,
        line: usize,
        snippet: usize,
        indent: usize,
    },
    Swap {
        a: usize,
        b: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(file, at, bit)| Mutation::FlipByte {
            file,
            at,
            bit
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(file, at)| Mutation::Truncate { file, at }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(file, line)| Mutation::DeleteLine { file, line }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(file, line)| Mutation::DuplicateLine { file, line }),
        (any::<usize>(), any::<usize>(), any::<usize>(), 0usize..8).prop_map(
            |(file, line, snippet, indent)| Mutation::Insert {
                file,
                line,
                snippet,
                indent
            }
        ),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
    ]
}

fn apply(files: &mut [SourceFile], m: &Mutation) {
    let yaml: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.path.ends_with(".yaml"))
        .map(|(i, _)| i)
        .collect();
    let pick = |i: usize| yaml[i % yaml.len()];
    let with_lines = |f: &mut SourceFile, edit: &dyn Fn(&mut Vec<String>)| {
        if let Content::Bytes(b) = &mut f.content {
            let mut lines: Vec<String> = String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect();
            edit(&mut lines);
            *b = format!("{}\n", lines.join("\n")).into_bytes().into();
        }
    };
    match *m {
        Mutation::FlipByte { file, at, bit } => {
            if let Content::Bytes(b) = &mut files[pick(file)].content
                && !b.is_empty()
            {
                let i = at % b.len();
                let mut flipped = b.to_vec();
                flipped[i] ^= 1 << bit;
                *b = flipped.into();
            }
        }
        Mutation::Truncate { file, at } => {
            if let Content::Bytes(b) = &mut files[pick(file)].content {
                let n = if b.is_empty() { 0 } else { at % b.len() };
                *b = b[..n].into();
            }
        }
        Mutation::DeleteLine { file, line } => with_lines(&mut files[pick(file)], &|l| {
            if !l.is_empty() {
                let i = line % l.len();
                l.remove(i);
            }
        }),
        Mutation::DuplicateLine { file, line } => with_lines(&mut files[pick(file)], &|l| {
            if !l.is_empty() {
                let i = line % l.len();
                let copy = l[i].clone();
                l.insert(i, copy);
            }
        }),
        Mutation::Insert {
            file,
            line,
            snippet,
            indent,
        } => with_lines(&mut files[pick(file)], &|l| {
            let i = if l.is_empty() {
                0
            } else {
                line % (l.len() + 1)
            };
            l.insert(
                i,
                format!(
                    "{}{}",
                    " ".repeat(indent),
                    SNIPPETS[snippet % SNIPPETS.len()]
                ),
            );
        }),
        Mutation::Swap { a, b } => {
            let (a, b) = (pick(a), pick(b));
            let ca = files[a].content.clone();
            files[a].content = files[b].content.clone();
            files[b].content = ca;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_repositories_never_panic(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut files = example_files();
        for m in &mutations {
            apply(&mut files, m);
        }
        let tree = SourceTree::new(files);
        let checked = capstan::core::check(&tree);
        for d in &checked.diagnostics {
            let file_known = tree.get(&d.loc.file).is_some();
            prop_assert!(file_known, "{d} names a file that is not in the tree");
            prop_assert!(d.loc.pos.line >= 1 && d.loc.pos.col >= 1, "{d}");
        }
    }
}
