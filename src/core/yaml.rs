//! Span-aware YAML: text -> a tree of [`Node`]s that remember their line and column.
//!
//! Built directly on `saphyr-parser`'s event stream so that every value keeps its position,
//! duplicate and non-string keys are caught, and aliases are expanded under a budget
//! (an "alias bomb" is reported, never expanded without bound). Scalars are typed by the
//! YAML 1.2 core schema: `yes`/`no` are strings, `1.4` is a number, quoted values are strings.
//!
//! Merge keys (`<<: *anchor`, `<<: [*a, *b]`) are honoured as YAML 1.1 defines them, since
//! real files (Massdriver's among them) use them: the merged mappings' keys are added where
//! the mapping does not set them itself, earlier mappings of a list winning over later ones,
//! each merged entry keeping the position where it is written. A merge key whose value is
//! not a mapping (or a list of them) is an error, never dropped.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

/// Most nodes one document may expand to, counting what aliases copy.
pub const MAX_NODES: usize = 100_000;
/// Deepest nesting of sequences and mappings in one document.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column (the column counts characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping with its value; keys are always strings.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// Why a document could not be read as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    Syntax { pos: Pos, message: String },
    DuplicateKey { pos: Pos, key: String, first: Pos },
    KeyNotString { pos: Pos, key: String },
    TooComplex { pos: Pos, message: String },
}

/// Parses one YAML document. A syntax error or exceeded limit gives no tree; duplicate or
/// non-string keys are reported and the tree is still built (the first occurrence wins).
/// An empty document is an empty mapping, so nearly empty files are fine.
pub fn parse(text: &str) -> (Option<Node>, Vec<Problem>) {
    let mut builder = Builder::default();
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(ok) => ok,
            Err(e) => {
                let m = e.marker();
                builder.problems.push(Problem::Syntax {
                    pos: pos_of(m.line(), m.col()),
                    message: e.info().to_string(),
                });
                return (None, builder.problems);
            }
        };
        let pos = pos_of(span.start.line(), span.start.col());
        let step = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    Err(Problem::Syntax {
                        pos,
                        message:
                            "more than one YAML document in this file; capstan reads exactly one"
                                .into(),
                    })
                } else {
                    Ok(())
                }
            }
            Event::Scalar(value, style, anchor, tag)
                if value == "<<"
                    && style == ScalarStyle::Plain
                    && tag.is_none()
                    && anchor == 0
                    && builder.expects_key() =>
            {
                builder.merge_key(pos)
            }
            Event::Scalar(value, style, anchor, tag) => scalar(&value, style, tag.as_deref(), pos)
                .and_then(|kind| builder.push(Node { pos, kind }, anchor)),
            Event::SequenceStart(anchor, tag) => check_collection_tag(tag.as_deref(), "seq", pos)
                .and_then(|()| builder.open(pos, anchor, Frame::Seq(Vec::new()))),
            Event::MappingStart(anchor, tag) => check_collection_tag(tag.as_deref(), "map", pos)
                .and_then(|()| builder.open(pos, anchor, Frame::Map(Vec::new(), None, Vec::new()))),
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            Event::Alias(id) => builder.alias(id, pos),
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
        };
        if let Err(problem) = step {
            builder.problems.push(problem);
            return (None, builder.problems);
        }
    }
    let root = builder.root.take().unwrap_or(Node {
        pos: Pos::START,
        kind: Kind::Map(Vec::new()),
    });
    let root = if root.kind == Kind::Null {
        Node {
            pos: root.pos,
            kind: Kind::Map(Vec::new()),
        }
    } else {
        root
    };
    (Some(root), builder.problems)
}

fn pos_of(line: usize, col0: usize) -> Pos {
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(col0 + 1).unwrap_or(u32::MAX),
    }
}

enum Frame {
    Seq(Vec<Node>),
    /// Entries so far, the key waiting for its value, and the mappings merge keys name.
    Map(Vec<Entry>, Option<PendingKey>, Vec<Node>),
}

enum PendingKey {
    Key(String, Pos),
    /// A key that is reported already; its value is read and dropped.
    Skip,
    /// A merge key: its value is the mapping, or list of mappings, to merge in.
    Merge(Pos),
}

/// Adds the entries of `merges` (in order: earlier ones win) that `entries` does not set.
fn apply_merges(entries: &mut Vec<Entry>, merges: Vec<Node>) {
    for source in merges {
        if let Kind::Map(merged) = source.kind {
            for entry in merged {
                if !entries.iter().any(|e| e.key == entry.key) {
                    entries.push(entry);
                }
            }
        }
    }
}

struct Open {
    pos: Pos,
    anchor: usize,
    frame: Frame,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    problems: Vec<Problem>,
}

impl Builder {
    fn count(&mut self, n: usize, pos: Pos) -> Result<(), Problem> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(Problem::TooComplex {
                pos,
                message: format!(
                    "the document expands to more than {MAX_NODES} nodes (aliases included)"
                ),
            });
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos, anchor: usize, frame: Frame) -> Result<(), Problem> {
        self.count(1, pos)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(Problem::TooComplex {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.stack.push(Open { pos, anchor, frame });
        Ok(())
    }

    fn close(&mut self) -> Result<(), Problem> {
        let Some(open) = self.stack.pop() else {
            return Ok(());
        };
        let kind = match open.frame {
            Frame::Seq(items) => Kind::Seq(items),
            Frame::Map(mut entries, _, merges) => {
                apply_merges(&mut entries, merges);
                Kind::Map(entries)
            }
        };
        self.finish(
            Node {
                pos: open.pos,
                kind,
            },
            open.anchor,
        )
    }

    /// Whether the next node is a key of the innermost mapping.
    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Open {
                frame: Frame::Map(_, None, _),
                ..
            })
        )
    }

    fn merge_key(&mut self, pos: Pos) -> Result<(), Problem> {
        self.count(1, pos)?;
        if let Some(Open {
            frame: Frame::Map(_, pending, _),
            ..
        }) = self.stack.last_mut()
        {
            *pending = Some(PendingKey::Merge(pos));
        }
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Problem> {
        self.count(1, node.pos)?;
        self.finish(node, anchor)
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), Problem> {
        let Some(target) = self.anchors.get(&id) else {
            return Err(Problem::Syntax {
                pos,
                message: "alias to an unknown anchor".into(),
            });
        };
        let mut node = target.clone();
        self.count(node_count(&node), pos)?;
        node.pos = pos;
        self.finish(node, 0)
    }

    /// A complete node goes to its parent: a sequence item, a mapping key, or a mapping value.
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Problem> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut top.frame {
            Frame::Seq(items) => items.push(node),
            Frame::Map(entries, pending, merges) => match pending.take() {
                None => {
                    *pending = Some(match node.kind {
                        Kind::Str(key) => match entries.iter().find(|e| e.key == key) {
                            Some(first) => {
                                self.problems.push(Problem::DuplicateKey {
                                    pos: node.pos,
                                    key,
                                    first: first.key_pos,
                                });
                                PendingKey::Skip
                            }
                            None => PendingKey::Key(key, node.pos),
                        },
                        other => {
                            self.problems.push(Problem::KeyNotString {
                                pos: node.pos,
                                key: describe(&other),
                            });
                            PendingKey::Skip
                        }
                    });
                }
                Some(PendingKey::Key(key, key_pos)) => entries.push(Entry {
                    key,
                    key_pos,
                    value: node,
                }),
                Some(PendingKey::Skip) => {}
                Some(PendingKey::Merge(at)) => match node.kind {
                    Kind::Map(_) => merges.push(node),
                    Kind::Seq(items) if items.iter().all(Node::is_map) => merges.extend(items),
                    _ => {
                        return Err(Problem::Syntax {
                            pos: at,
                            message: "a merge key `<<` takes a mapping, or a list of mappings, to merge in".into(),
                        });
                    }
                },
            },
        }
        Ok(())
    }
}

fn node_count(node: &Node) -> usize {
    match &node.kind {
        Kind::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|e| 1 + node_count(&e.value))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Null => "null".into(),
        Kind::Bool(b) => b.to_string(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => f.to_string(),
        Kind::Str(s) => s.clone(),
        Kind::Seq(_) => "a sequence".into(),
        Kind::Map(_) => "a mapping".into(),
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, pos: Pos) -> Result<(), Problem> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => Err(unsupported_tag(t, pos)),
    }
}

fn unsupported_tag(tag: &Tag, pos: Pos) -> Problem {
    Problem::Syntax {
        pos,
        message: format!("unsupported tag {tag}; capstan reads plain YAML 1.2 core schema values"),
    }
}

fn scalar(value: &str, style: ScalarStyle, tag: Option<&Tag>, pos: Pos) -> Result<Kind, Problem> {
    let invalid = |what: &str| Problem::Syntax {
        pos,
        message: format!("{value:?} is not a valid {what}"),
    };
    if let Some(tag) = tag {
        if !tag.is_yaml_core_schema() {
            return Err(unsupported_tag(tag, pos));
        }
        return match tag.suffix.as_str() {
            "str" => Ok(Kind::Str(value.to_string())),
            "null" => resolve_null(value).ok_or_else(|| invalid("null")),
            "bool" => resolve_bool(value).ok_or_else(|| invalid("boolean")),
            "int" => resolve_int(value).ok_or_else(|| invalid("integer")),
            "float" => match resolve_int(value) {
                Some(Kind::Int(i)) => Ok(Kind::Float(i as f64)),
                _ => resolve_float(value, pos)?.ok_or_else(|| invalid("float")),
            },
            _ => Err(unsupported_tag(tag, pos)),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Kind::Str(value.to_string()));
    }
    if let Some(kind) = resolve_null(value)
        .or_else(|| resolve_bool(value))
        .or_else(|| resolve_int(value))
    {
        return Ok(kind);
    }
    Ok(resolve_float(value, pos)?.unwrap_or_else(|| Kind::Str(value.to_string())))
}

fn resolve_null(v: &str) -> Option<Kind> {
    matches!(v, "" | "~" | "null" | "Null" | "NULL").then_some(Kind::Null)
}

fn resolve_bool(v: &str) -> Option<Kind> {
    match v {
        "true" | "True" | "TRUE" => Some(Kind::Bool(true)),
        "false" | "False" | "FALSE" => Some(Kind::Bool(false)),
        _ => None,
    }
}

fn resolve_int(v: &str) -> Option<Kind> {
    let (digits, radix) = if let Some(hex) = v.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = v.strip_prefix("0o") {
        (oct, 8)
    } else {
        (v, 10)
    };
    let body = if radix == 10 {
        digits.strip_prefix(['-', '+']).unwrap_or(digits)
    } else {
        digits
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Integers beyond i64 are kept exact as text would lose nothing, but JSON has one number type:
    // fall back to a float, as YAML parsers in other languages do.
    match i64::from_str_radix(digits, radix) {
        Ok(i) => Some(Kind::Int(i)),
        Err(_) => digits.parse::<f64>().ok().map(Kind::Float),
    }
}

fn resolve_float(v: &str, pos: Pos) -> Result<Option<Kind>, Problem> {
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(v, ".nan" | ".NaN" | ".NAN") {
        return Err(Problem::Syntax {
            pos,
            message: format!("{v} is not a finite number, which JSON cannot hold"),
        });
    }
    let looks_numeric = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && unsigned.chars().any(|c| c.is_ascii_digit());
    if !looks_numeric {
        return Ok(None);
    }
    Ok(v.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Kind::Float))
}

impl Node {
    pub fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries().iter().find(|e| e.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            Kind::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.kind, Kind::Map(_))
    }

    /// Follows a JSON pointer's segments as far as they go. Returns the deepest node reached,
    /// the position of the key that leads to it (if it is a mapping value), and whether the
    /// whole path was found.
    pub fn locate<'a, S: AsRef<str>>(&'a self, segments: &[S]) -> Located<'a> {
        let mut node = self;
        let mut key_pos = None;
        for (i, seg) in segments.iter().enumerate() {
            let seg = seg.as_ref();
            let next = match &node.kind {
                Kind::Map(entries) => entries
                    .iter()
                    .find(|e| e.key == seg)
                    .map(|e| (&e.value, Some(e.key_pos))),
                Kind::Seq(items) => seg
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|n| (n, None)),
                _ => None,
            };
            match next {
                Some((n, k)) => {
                    node = n;
                    key_pos = k;
                }
                None => {
                    return Located {
                        node,
                        key_pos,
                        depth: i,
                        complete: false,
                    };
                }
            }
        }
        Located {
            node,
            key_pos,
            depth: segments.len(),
            complete: true,
        }
    }

    /// The value as JSON (mapping order kept, as serde_json's map is ordered by key anyway).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Where [`Node::locate`] ended.
pub struct Located<'a> {
    pub node: &'a Node,
    pub key_pos: Option<Pos>,
    /// How many segments were followed.
    pub depth: usize,
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Node {
        let (node, problems) = parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        node.expect("parsed")
    }

    #[test]
    fn types_follow_the_core_schema() {
        let n = ok("a: yes\nb: 1.4\nc: '16'\nd: 0x1F\ne: ~\nf: true\ng: 1.4.0\nh: -3\n");
        assert_eq!(n.get("a").and_then(Node::as_str), Some("yes"));
        assert_eq!(n.get("b").map(|n| &n.kind), Some(&Kind::Float(1.4)));
        assert_eq!(n.get("c").and_then(Node::as_str), Some("16"));
        assert_eq!(n.get("d").map(|n| &n.kind), Some(&Kind::Int(31)));
        assert_eq!(n.get("e").map(|n| &n.kind), Some(&Kind::Null));
        assert_eq!(n.get("f").and_then(Node::as_bool), Some(true));
        assert_eq!(n.get("g").and_then(Node::as_str), Some("1.4.0"));
        assert_eq!(n.get("h").map(|n| &n.kind), Some(&Kind::Int(-3)));
    }

    #[test]
    fn positions_point_at_values_and_keys() {
        let n = ok("top:\n  inner: {x: 12}\n");
        let e = n.get("top").and_then(|t| t.entry("inner")).expect("inner");
        assert_eq!(e.key_pos, Pos { line: 2, col: 3 });
        let x = e.value.get("x").expect("x");
        assert_eq!(x.pos, Pos { line: 2, col: 14 });
    }

    #[test]
    fn duplicate_and_non_string_keys_are_reported() {
        let (node, problems) = parse("a: 1\na: 2\n3: x\n");
        assert!(node.is_some());
        assert_eq!(
            problems,
            vec![
                Problem::DuplicateKey {
                    pos: Pos { line: 2, col: 1 },
                    key: "a".into(),
                    first: Pos { line: 1, col: 1 }
                },
                Problem::KeyNotString {
                    pos: Pos { line: 3, col: 1 },
                    key: "3".into()
                },
            ]
        );
    }

    #[test]
    fn alias_bombs_stop_at_the_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let (node, problems) = parse(&text);
        assert!(node.is_none());
        assert!(
            matches!(problems.as_slice(), [Problem::TooComplex { .. }]),
            "{problems:?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let (node, problems) = parse(&text);
        assert!(node.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn merge_keys_are_honoured_with_their_positions() {
        let n = ok(
            "m: &m {type: integer, minimum: 3}\nn: &n {minimum: 9, title: N}\na: {<<: *m}\nb:\n  <<: [*n, *m]\n  title: B\nc: {'<<': 1}\n",
        );
        assert_eq!(
            n.get("a").map(Node::to_json),
            Some(serde_json::json!({"type": "integer", "minimum": 3}))
        );
        // Explicit keys win, then earlier mappings of the list.
        assert_eq!(
            n.get("b").map(Node::to_json),
            Some(serde_json::json!({"type": "integer", "minimum": 9, "title": "B"}))
        );
        // A merged entry keeps the place it is written at.
        let minimum = n.get("a").and_then(|a| a.entry("minimum")).expect("merged");
        assert_eq!(minimum.value.pos, Pos { line: 1, col: 32 });
        // A quoted `<<` is an ordinary key.
        assert_eq!(
            n.get("c").map(Node::to_json),
            Some(serde_json::json!({"<<": 1}))
        );
    }

    #[test]
    fn a_merge_key_that_merges_nothing_is_an_error() {
        for text in ["a: {<<: 5}\n", "a: {<<: [x]}\n", "a: {<<: null}\n"] {
            let (node, problems) = parse(text);
            assert!(node.is_none(), "{text}");
            assert!(
                matches!(problems.as_slice(), [Problem::Syntax { message, .. }] if message.contains("merge key")),
                "{text}: {problems:?}"
            );
        }
    }

    #[test]
    fn merged_aliases_still_count_toward_the_budget() {
        let mut text = String::from(
            "a0: &a0 {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x, k9: x}\n",
        );
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        text.push_str("z: {<<: *a0}\n");
        let (node, problems) = parse(&text);
        assert!(node.is_none());
        assert!(matches!(problems.as_slice(), [Problem::TooComplex { .. }]));
    }

    #[test]
    fn custom_tags_and_multiple_documents_are_errors() {
        assert!(matches!(
            parse("a: !Ref x\n").1.as_slice(),
            [Problem::Syntax { .. }]
        ));
        assert!(matches!(
            parse("a: 1\n---\nb: 2\n").1.as_slice(),
            [Problem::Syntax { .. }]
        ));
        assert_eq!(ok("").kind, Kind::Map(vec![]));
        assert_eq!(
            ok("a: !!str 12\n").get("a").and_then(Node::as_str),
            Some("12")
        );
    }
}
