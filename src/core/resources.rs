//! What a provisioner plan says the cloud will do: the resource changes of one instance,
//! read from `terraform show -json` (or `tofu show -json`) of a saved plan, or from an exec
//! step's `plan:` command, which prints the same `resource_changes` shape: `address`,
//! `previous_address`, `action_reason`, and `change` with `actions`, `before`, `after`,
//! `after_unknown`, `replace_paths` and `importing`.
//!
//! Read by the documented format: `format_version` must be of major version 1 (a newer
//! major is refused rather than misread); unknown keys are ignored. Values never leave this
//! module: a [`ResourceChange`] holds addresses, actions and attribute *paths*, so whatever
//! `show -json` prints in clear (it prints sensitive values) stays in the work folder.

use serde::Deserialize;
use serde_json::Value;

/// The most attribute paths kept per resource; the rest are counted.
const MOST_PATHS: usize = 20;

/// What happens to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Destroyed and created again: an outage for anything stateful.
    Replace,
    Delete,
    Create,
    Update,
    /// Moved to a new address and otherwise unchanged (`previous_address`).
    Move,
    /// Imported into the state and otherwise unchanged.
    Import,
    /// Removed from the state, left in the cloud (`forget`).
    Forget,
    /// A data source read.
    Read,
    NoOp,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Delete => "destroy",
            Action::Create => "create",
            Action::Update => "update",
            Action::Move => "move",
            Action::Import => "import",
            Action::Forget => "forget",
            Action::Read => "read",
            Action::NoOp => "no-op",
        }
    }

    /// Replacements and destroys: what a reviewer must not miss.
    pub fn is_dangerous(self) -> bool {
        matches!(self, Action::Replace | Action::Delete)
    }
}

/// One resource's planned change, without values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceChange {
    pub address: String,
    /// Where a moved resource was.
    pub previous_address: Option<String>,
    pub action: Action,
    /// For a replacement: whether the new one is created before the old is destroyed.
    pub create_first: bool,
    /// Terraform's `action_reason`, e.g. `replace_because_cannot_update`.
    pub reason: Option<String>,
    /// Attribute paths whose value changes (`input.size`), at most [`MOST_PATHS`].
    pub changed: Vec<String>,
    /// How many more changed paths there are than `changed` lists.
    pub more_changed: usize,
    /// Attribute paths that force the replacement (`replace_paths`).
    pub forces: Vec<String>,
}

/// Every resource change of one instance's provisioner plan, dangerous ones first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePlan {
    pub changes: Vec<ResourceChange>,
}

/// Counts for the summary line: `3 to add, 1 to change, 0 to destroy, 1 to replace`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub replace: usize,
    pub moved: usize,
    pub import: usize,
    pub forget: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.add += o.add;
        self.change += o.change;
        self.destroy += o.destroy;
        self.replace += o.replace;
        self.moved += o.moved;
        self.import += o.import;
        self.forget += o.forget;
    }
}

/// What OpenTofu and Terraform count when they are done: `Apply complete! Resources: 1
/// added, 2 changed, 0 destroyed.` A replacement is one added and one destroyed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: usize,
    pub changed: usize,
    pub destroyed: usize,
}

impl std::ops::Add for Applied {
    type Output = Applied;

    fn add(self, o: Applied) -> Applied {
        Applied {
            added: self.added + o.added,
            changed: self.changed + o.changed,
            destroyed: self.destroyed + o.destroyed,
        }
    }
}

impl Applied {
    /// Reads Terraform's and OpenTofu's last line of an apply or destroy.
    pub fn read(line: &str) -> Option<Applied> {
        let rest = line
            .strip_prefix("Apply complete! Resources: ")
            .or_else(|| line.strip_prefix("Destroy complete! Resources: "))?;
        let mut out = Applied::default();
        for part in rest.trim_end_matches('.').split(", ") {
            let (n, what) = part.split_once(' ')?;
            let n: usize = n.parse().ok()?;
            match what {
                "added" | "imported" => out.added += n,
                "changed" => out.changed += n,
                "destroyed" => out.destroyed += n,
                _ => {}
            }
        }
        Some(out)
    }
}

impl Counts {
    /// As OpenTofu and Terraform count an apply.
    pub fn applied(&self) -> Applied {
        Applied {
            added: self.add + self.replace,
            changed: self.change,
            destroyed: self.destroy + self.replace,
        }
    }
}

impl ResourcePlan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for change in &self.changes {
            match change.action {
                Action::Create => c.add += 1,
                Action::Update => c.change += 1,
                Action::Delete => c.destroy += 1,
                Action::Replace => c.replace += 1,
                Action::Move => c.moved += 1,
                Action::Import => c.import += 1,
                Action::Forget => c.forget += 1,
                Action::Read | Action::NoOp => {}
            }
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Another step's changes added, the order kept: dangerous first.
    pub fn merge(&mut self, other: ResourcePlan) {
        self.changes.extend(other.changes);
        sort(&mut self.changes);
    }
}

/// Dangerous first, then by action, then by address: a stable order for comments.
fn sort(changes: &mut [ResourceChange]) {
    changes.sort_by(|a, b| {
        (!a.action.is_dangerous(), a.action, &a.address).cmp(&(
            !b.action.is_dangerous(),
            b.action,
            &b.address,
        ))
    });
}

/// Why a provisioner plan's JSON could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourcePlanError {
    #[error("the plan is not JSON of the documented shape: {0}")]
    Shape(String),
    #[error(
        "the plan's format_version is {0}; capstan reads format 1.x (a newer Terraform or OpenTofu changed the format: upgrade capstan)"
    )]
    Version(String),
    #[error("the plan names an unknown action {0:?} for {1}")]
    UnknownAction(String, String),
}

#[derive(Deserialize)]
struct Document {
    format_version: Option<String>,
    #[serde(default)]
    resource_changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    address: String,
    previous_address: Option<String>,
    action_reason: Option<String>,
    change: RawInner,
}

#[derive(Deserialize)]
struct RawInner {
    actions: Vec<String>,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    after: Value,
    #[serde(default)]
    after_unknown: Value,
    #[serde(default)]
    replace_paths: Vec<Vec<Value>>,
    importing: Option<Value>,
}

/// Reads `show -json` of a saved plan (`format_version` required) or an exec step's
/// `plan:` output (`format_version` optional).
pub fn parse(json: &[u8], version_required: bool) -> Result<ResourcePlan, ResourcePlanError> {
    let doc: Document =
        // serde's message may quote a value, and plans hold secrets: the place only.
        serde_json::from_slice(json).map_err(|e| {
            ResourcePlanError::Shape(format!("line {} column {}", e.line(), e.column()))
        })?;
    match doc.format_version.as_deref() {
        Some(v) if v.split('.').next() != Some("1") => {
            return Err(ResourcePlanError::Version(v.to_string()));
        }
        None if version_required => {
            return Err(ResourcePlanError::Shape("no format_version".into()));
        }
        _ => {}
    }
    let mut changes = Vec::new();
    for raw in doc.resource_changes {
        let change = read(raw)?;
        if change.action != Action::NoOp && change.action != Action::Read {
            changes.push(change);
        }
    }
    sort(&mut changes);
    Ok(ResourcePlan { changes })
}

fn read(raw: RawChange) -> Result<ResourceChange, ResourcePlanError> {
    let actions: Vec<&str> = raw.change.actions.iter().map(String::as_str).collect();
    let moved = raw
        .previous_address
        .as_ref()
        .is_some_and(|p| *p != raw.address);
    let importing = raw.change.importing.is_some();
    let (action, create_first) = match actions.as_slice() {
        ["create"] => (Action::Create, false),
        ["update"] => (Action::Update, false),
        ["delete"] => (Action::Delete, false),
        ["delete", "create"] => (Action::Replace, false),
        ["create", "delete"] => (Action::Replace, true),
        ["read"] => (Action::Read, false),
        ["forget"] => (Action::Forget, false),
        ["no-op"] if moved => (Action::Move, false),
        ["no-op"] if importing => (Action::Import, false),
        ["no-op"] => (Action::NoOp, false),
        _ => {
            return Err(ResourcePlanError::UnknownAction(
                actions.join(","),
                raw.address,
            ));
        }
    };
    let mut changed = Vec::new();
    if matches!(action, Action::Update | Action::Replace) {
        diff(
            &mut String::new(),
            &raw.change.before,
            &raw.change.after,
            &raw.change.after_unknown,
            &mut changed,
        );
    }
    let more_changed = changed.len().saturating_sub(MOST_PATHS);
    changed.truncate(MOST_PATHS);
    let forces = raw
        .change
        .replace_paths
        .iter()
        .map(|p| path_text(p))
        .collect();
    Ok(ResourceChange {
        address: raw.address,
        previous_address: raw.previous_address.filter(|_| moved),
        action,
        create_first,
        reason: raw.action_reason,
        changed,
        more_changed,
        forces,
    })
}

/// Appends to `out` the paths under `path` where `before` and `after` differ, or where
/// the new value is only known after apply.
fn diff(path: &mut String, before: &Value, after: &Value, unknown: &Value, out: &mut Vec<String>) {
    if unknown == &Value::Bool(true) {
        if !path.is_empty() {
            out.push(format!("{path} (known after apply)"));
        }
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                diff(
                    path,
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    unknown.get(key).unwrap_or(&Value::Null),
                    out,
                );
                path.truncate(len);
            }
        }
        (b, a) if b != a && !path.is_empty() => out.push(path.clone()),
        _ => {}
    }
}

/// `["tags", "Name"]` as `tags.Name`; `["rule", 0, "port"]` as `rule[0].port`.
fn path_text(steps: &[Value]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Value::Number(n) => {
                out.push('[');
                out.push_str(&n.to_string());
                out.push(']');
            }
            Value::String(s) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(s);
            }
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `terraform show -json` of a real plan (Terraform 1.11, built-in `terraform_data`):
    /// one resource updated (with a sensitive input), one replaced, one created, one
    /// destroyed, one moved.
    const SHOW: &str = include_str!("../../tests/fixtures/provisioner-plans/terraform-show.json");

    #[test]
    fn terraform_show_json_is_read_dangerous_first_without_values() {
        let plan = parse(SHOW.as_bytes(), true).unwrap();
        let summary: Vec<(&str, Action)> = plan
            .changes
            .iter()
            .map(|c| (c.address.as_str(), c.action))
            .collect();
        assert_eq!(
            summary,
            [
                ("terraform_data.db", Action::Replace),
                ("terraform_data.old", Action::Delete),
                ("terraform_data.new", Action::Create),
                ("terraform_data.cache", Action::Update),
                ("terraform_data.renamed_to", Action::Move),
            ]
        );
        let db = &plan.changes[0];
        assert_eq!(db.forces, ["triggers_replace"]);
        assert_eq!(db.reason.as_deref(), Some("replace_because_cannot_update"));
        assert!(!db.create_first);
        let cache = &plan.changes[3];
        assert_eq!(
            cache.changed,
            ["input.password", "input.size", "output (known after apply)"]
        );
        let moved = &plan.changes[4];
        assert_eq!(
            moved.previous_address.as_deref(),
            Some("terraform_data.renamed_from")
        );
        assert_eq!(
            plan.counts(),
            Counts {
                add: 1,
                change: 1,
                destroy: 1,
                replace: 1,
                moved: 1,
                ..Counts::default()
            }
        );
        let all = format!("{plan:?}");
        assert!(
            SHOW.contains("hunter3"),
            "the fixture holds the secret in clear"
        );
        assert!(!all.contains("hunter"), "no value is kept: {all}");
    }

    #[test]
    fn an_unknown_major_format_or_action_is_refused_and_exec_output_needs_no_version() {
        assert!(matches!(
            parse(br#"{"format_version": "2.0", "resource_changes": []}"#, true),
            Err(ResourcePlanError::Version(v)) if v == "2.0"
        ));
        assert!(parse(br#"{"resource_changes": []}"#, true).is_err());
        let exec = br#"{"resource_changes": [
            {"address": "queue.jobs", "change": {"actions": ["create", "delete"], "replace_paths": [["name"]]}, "extra": 1}
        ], "unknown": true}"#;
        let plan = parse(exec, false).unwrap();
        assert_eq!(plan.changes[0].action, Action::Replace);
        assert!(plan.changes[0].create_first);
        assert_eq!(plan.changes[0].forces, ["name"]);
        assert!(matches!(
            parse(br#"{"resource_changes": [{"address": "a", "change": {"actions": ["explode"]}}]}"#, false),
            Err(ResourcePlanError::UnknownAction(a, r)) if a == "explode" && r == "a"
        ));
        assert!(matches!(
            parse(b"not json", false),
            Err(ResourcePlanError::Shape(_))
        ));
    }

    #[test]
    fn terraforms_last_words_are_counted_as_a_plan_would_be() {
        assert_eq!(
            Applied::read("Apply complete! Resources: 1 added, 2 changed, 1 destroyed."),
            Some(Applied {
                added: 1,
                changed: 2,
                destroyed: 1
            })
        );
        assert_eq!(
            Applied::read("Destroy complete! Resources: 3 destroyed."),
            Some(Applied {
                destroyed: 3,
                ..Applied::default()
            })
        );
        assert_eq!(Applied::read("Plan: 1 to add"), None);
        let plan = parse(SHOW.as_bytes(), true).unwrap();
        assert_eq!(
            plan.counts().applied(),
            Applied {
                added: 2,
                changed: 1,
                destroyed: 2
            }
        );
    }

    #[test]
    fn paths_read_as_people_write_them_and_long_lists_are_counted() {
        assert_eq!(
            path_text(&[Value::from("rule"), Value::from(0), Value::from("port")]),
            "rule[0].port"
        );
        let before: Value = serde_json::json!({ "tags": (0..30).map(|i| (format!("k{i:02}"), Value::from(i))).collect::<serde_json::Map<_, _>>() });
        let after: Value = serde_json::json!({ "tags": (0..30).map(|i| (format!("k{i:02}"), Value::from(i + 1))).collect::<serde_json::Map<_, _>>() });
        let raw = RawChange {
            address: "x.y".into(),
            previous_address: None,
            action_reason: None,
            change: RawInner {
                actions: vec!["update".into()],
                before,
                after,
                after_unknown: Value::Null,
                replace_paths: Vec::new(),
                importing: None,
            },
        };
        let change = read(raw).unwrap();
        assert_eq!(change.changed.len(), MOST_PATHS);
        assert_eq!(change.changed[0], "tags.k00");
        assert_eq!(change.more_changed, 10);
    }
}
