//! The typed repository model: what the files say, with the place each thing was said.
//!
//! Built by `load` from parsed YAML; read by `resolve`. Identifiers are newtypes so a
//! project id cannot be passed where an environment id is meant.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::diag::Loc;
use super::sensitive::FieldPath;
use super::yaml::{Node, Pos};

macro_rules! id {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Arc<str>);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    )*};
}

id! {
    /// A folder under `projects/`.
    ProjectId;
    /// A file stem under `projects/<p>/environments/`.
    EnvId;
    /// A key of a project's `packages`.
    PackageName;
    /// A file stem under `artifact-types/`.
    TypeName;
    /// A folder under `bundles/`.
    BundleName;
    /// `<project>-<environment>-<package>`.
    InstanceId;
}

impl InstanceId {
    pub fn of(project: &ProjectId, env: &EnvId, package: &PackageName) -> InstanceId {
        InstanceId(format!("{project}-{env}-{package}").into())
    }
}

/// `<project>-<environment>-<package>.<field>`: an artifact of an instance.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactRef {
    pub project: ProjectId,
    pub environment: EnvId,
    pub package: PackageName,
    pub field: String,
}

impl ArtifactRef {
    pub fn instance(&self) -> InstanceId {
        InstanceId::of(&self.project, &self.environment, &self.package)
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}.{}",
            self.project, self.environment, self.package, self.field
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct Repository {
    pub config: Config,
    pub artifact_types: BTreeMap<TypeName, ArtifactType>,
    pub bundles: BTreeMap<BundleName, Bundle>,
    pub projects: BTreeMap<ProjectId, Arc<Project>>,
    /// `policies/*.rego`, sorted by path, those that parse (docs/policies.md).
    pub policies: Vec<PolicyFile>,
}

/// One Rego file of `policies/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub path: Arc<str>,
    pub text: Arc<str>,
    /// `*_test.rego`: run by `capstan policy test`, never when judging a plan.
    pub test: bool,
    /// Where each decision rule (`deny`, `warn`, `require_approval` of package `capstan`)
    /// is defined: its kind and the position of its head.
    pub decisions: Vec<(DecisionKind, Pos)>,
}

/// What a policy decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DecisionKind {
    Deny,
    Warn,
    RequireApproval,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 3] = [
        DecisionKind::Deny,
        DecisionKind::Warn,
        DecisionKind::RequireApproval,
    ];

    /// The rule's name in Rego.
    pub fn rule(self) -> &'static str {
        match self {
            DecisionKind::Deny => "deny",
            DecisionKind::Warn => "warn",
            DecisionKind::RequireApproval => "require_approval",
        }
    }
}

/// `capstan.yaml`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Owners of everything outside `projects/` (docs/daemon.md, On GitHub).
    pub owners: Vec<String>,
    pub deploy_windows: Vec<DeployWindow>,
    /// `drift.remediate`: the environments whose drifted instances the daemon redeploys.
    pub remediate: Vec<Audience>,
}

/// A deploy window (docs/deploying.md), parsed once at load; enforced by the deployer
/// (`windows::gate`). A window whose cron or duration does not parse is reported and left
/// out, and the revision then has errors, so nothing deploys from it.
#[derive(Clone, Debug)]
pub struct DeployWindow {
    pub name: Option<String>,
    pub allow: bool,
    /// When the window opens.
    pub cron: croner::Cron,
    /// How long it stays open.
    pub length: chrono::TimeDelta,
    pub environments: Audience,
    pub at: Loc,
}

#[derive(Clone, Debug)]
pub struct ArtifactType {
    pub name: TypeName,
    pub file: Arc<str>,
    /// `artifact-types/<type>.yaml` (capstan's, JSON Schema 2020-12) or `<type>.json`
    /// (a Massdriver artifact definition, draft-07).
    pub format: Format,
    pub label: Option<String>,
    /// The group name; `None` means the type can never be an environment default.
    pub environment_default: Option<String>,
    pub schema: serde_json::Value,
    pub schema_at: Loc,
    /// The schema as written, so a problem inside it (a `pattern`) is reported where it is.
    pub schema_node: Option<crate::core::yaml::Node>,
    /// Paths (object keys from the root) of fields marked sensitive.
    pub sensitive: Vec<Vec<String>>,
    /// The type's version (a folder resource type's `version:`), against which a
    /// `resource_type: <type>@<constraint>` is checked; `None`: unversioned.
    pub version: Option<String>,
}

/// Whose format a file is in; it decides the JSON Schema draft of the schemas it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// capstan's own files: JSON Schema 2020-12.
    Capstan,
    /// Massdriver's `massdriver.yaml` and artifact definitions: draft-07.
    Massdriver,
}

#[derive(Clone, Debug)]
pub struct Bundle {
    pub name: BundleName,
    pub file: Arc<str>,
    pub format: Format,
    pub description: Option<String>,
    pub version: Arc<str>,
    /// The params schema as written (URL `$ref`s are handled by `resolve`); `None`: any object.
    pub params: Option<Node>,
    pub connections: BTreeMap<String, Slot>,
    pub artifacts: BTreeMap<String, Slot>,
    pub steps: Vec<Step>,
    /// SHA-256 over every file of the bundle's folder: a content change is an update.
    pub digest: Arc<str>,
    /// Every sensitive path of its instances (`params/...`, `connections/<slot>/data/...`,
    /// `artifacts/<field>/...`), computed once at load (`sensitive::of_bundle`).
    pub sensitive: Vec<FieldPath>,
    /// A Massdriver application bundle's `app:` (envs and policies), if it has one.
    pub app: Option<App>,
    /// Params its schema marks `$md.immutable` (paths below `params`): a deployed
    /// instance's value never changes (`params.immutable`).
    pub immutable: Vec<FieldPath>,
    /// The JSON or YAML files its params schema `$ref`s, directly or not: its own
    /// (`./schemas/x.json`) and shared pieces elsewhere in the repository
    /// (`../../components/aws/region.json`), by their path in the repository.
    pub documents: BTreeMap<String, serde_json::Value>,
}

/// A Massdriver application bundle's `app:` block (`core::app` evaluates it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct App {
    /// Environment variable name to jq expression, in the order written.
    pub envs: Vec<(String, String)>,
    /// jq expressions whose values are the instance's policies.
    pub policies: Vec<String>,
}

impl Bundle {
    /// `bundles/<name>/`: where its files are, and what relative `$ref`s start from.
    pub fn folder(&self) -> String {
        format!("bundles/{}/", self.name)
    }
}

/// A connection or artifact field of a bundle.
#[derive(Clone, Debug)]
pub struct Slot {
    pub type_name: TypeName,
    pub required: bool,
    pub at: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provisioner {
    Exec,
    /// `opentofu`, or `opentofu:1.10`: the installed `tofu` must be that version.
    OpenTofu {
        version: Option<String>,
    },
    /// `terraform`, or `terraform:1.5`.
    Terraform {
        version: Option<String>,
    },
    /// A provisioner Massdriver defines and capstan cannot run (`helm`, `bicep`, ...): the
    /// bundle loads and plans; deploying its instances fails them, and only them.
    Unsupported(String),
}

impl Provisioner {
    /// As written: `exec`, `opentofu:1.10`, `helm`.
    pub fn name(&self) -> String {
        match self {
            Provisioner::Exec => "exec".into(),
            Provisioner::OpenTofu { version: None } => "opentofu".into(),
            Provisioner::OpenTofu { version: Some(v) } => format!("opentofu:{v}"),
            Provisioner::Terraform { version: None } => "terraform".into(),
            Provisioner::Terraform { version: Some(v) } => format!("terraform:{v}"),
            Provisioner::Unsupported(name) => name.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    pub path: String,
    pub provisioner: Provisioner,
    pub deploy: Option<String>,
    pub destroy: Option<String>,
    /// exec only: a command that tells whether the deployed resource drifted.
    pub check: Option<String>,
    /// exec only: a command that prints the resource changes a deploy or destroy would
    /// make (`core::resources`), for provisioner plans on pull requests.
    pub plan: Option<String>,
    /// Massdriver's `skip_on_delete`: a destroy leaves this step's resources alone (a
    /// KMS key kept so backups stay readable).
    pub skip_on_destroy: bool,
}

#[derive(Clone, Debug)]
pub struct Project {
    pub id: ProjectId,
    pub file: Arc<str>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub owners: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub packages: BTreeMap<PackageName, Package>,
    pub shares: Vec<Share>,
    pub environments: BTreeMap<EnvId, Environment>,
    /// `preview:`: how the project's pull requests are previewed, if they are.
    pub preview: Option<Preview>,
}

/// A project's `preview:` block: a preview is environment `pr<N>` (or any name given to
/// `capstan preview up`) realised from the environment it forks with these settings
/// merged over that environment's (`preview::realise`).
#[derive(Clone, Debug)]
pub struct Preview {
    /// The `preview` key.
    pub at: Loc,
    /// The environment forked; `None` when not written (already a schema error).
    pub from: Option<(EnvId, Loc)>,
    /// Merged over the forked environment's.
    pub attributes: BTreeMap<String, String>,
    /// Merged over the forked environment's, by artifact type.
    pub defaults: Vec<EnvDefault>,
    /// Merged over the forked environment's, package by package.
    pub packages: BTreeMap<PackageName, EnvPackage>,
    /// Destroyed when not pushed to for this long.
    pub ttl: std::time::Duration,
    /// At most this many live previews of the project at once.
    pub max: usize,
    pub trigger: PreviewTrigger,
}

impl Preview {
    pub const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(72 * 3600);
    pub const DEFAULT_MAX: usize = 5;
}

/// Which pull requests get a preview.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewTrigger {
    /// Those that change `projects/<project>/**` or a bundle the project's packages use.
    Touched,
    /// Those that carry the label `capstan:preview`.
    Label,
}

impl PreviewTrigger {
    pub const LABEL: &'static str = "capstan:preview";

    pub fn name(self) -> &'static str {
        match self {
            PreviewTrigger::Touched => "touched",
            PreviewTrigger::Label => "label",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Package {
    pub name: PackageName,
    pub at: Loc,
    /// `None` when the file does not say (already a schema error).
    pub bundle: Option<(BundleName, Loc)>,
    pub params: Option<Node>,
    pub wiring: BTreeMap<String, Wiring>,
}

/// `connections.<slot>: <package>.<field>` in `project.yaml`.
#[derive(Clone, Debug)]
pub struct Wiring {
    pub slot_at: Loc,
    /// `None` when the text is not `<package>.<field>` (already reported): the slot still
    /// counts as wired, so it is not reported again as unsatisfied.
    pub target: Option<(PackageName, String)>,
    pub at: Loc,
}

#[derive(Clone, Debug)]
pub struct Share {
    pub at: Loc,
    pub artifacts: Vec<ShareItem>,
    pub environments: Option<Vec<(EnvId, Loc)>>,
    pub to: Audience,
}

#[derive(Clone, Debug)]
pub enum ShareItem {
    All,
    Artifact {
        package: PackageName,
        field: String,
        at: Loc,
    },
}

/// Who a share or a window applies to: everyone, or attribute conditions (keys ANDed,
/// a key matches when the attribute's value is in the list).
#[derive(Clone, Debug)]
pub enum Audience {
    Anyone,
    Matching(BTreeMap<String, Vec<String>>),
}

impl Audience {
    pub fn matches(&self, attributes: &BTreeMap<String, String>) -> bool {
        match self {
            Audience::Anyone => true,
            Audience::Matching(conditions) => conditions
                .iter()
                .all(|(key, values)| attributes.get(key).is_some_and(|v| values.contains(v))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub id: EnvId,
    pub file: Arc<str>,
    pub name: Option<String>,
    /// As written in the file; see `resolve` for the attributes used in share matching.
    pub attributes: BTreeMap<String, String>,
    pub defaults: Vec<EnvDefault>,
    pub packages: BTreeMap<PackageName, EnvPackage>,
    /// For a realised preview: the environment it forks. `None` for environment files.
    pub preview_of: Option<EnvId>,
}

impl Environment {
    /// Whether `id` is a preview's name (`pr<digits>`), which no environment file may use.
    pub fn is_preview_name(id: &str) -> bool {
        id.strip_prefix("pr")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    }
}

#[derive(Clone, Debug)]
pub struct EnvDefault {
    pub type_name: TypeName,
    pub key_at: Loc,
    pub source: Source,
}

#[derive(Clone, Debug)]
pub struct EnvPackage {
    pub at: Loc,
    /// `enabled:` as written; not written means enabled.
    pub enabled: Option<bool>,
    /// Params deep-merged over the project's, in order (an environment file has at most
    /// one layer; a preview adds its own over the forked environment's).
    pub params: Vec<ParamsLayer>,
    pub connections: BTreeMap<String, (Loc, Source)>,
    pub remote: Option<Remote>,
}

impl EnvPackage {
    pub fn is_enabled(&self) -> bool {
        self.enabled != Some(false)
    }
}

/// Params written in one file, with that file (errors point into it).
#[derive(Clone, Debug)]
pub struct ParamsLayer {
    pub file: Arc<str>,
    pub node: Node,
}

#[derive(Clone, Debug)]
pub struct Remote {
    pub at: Loc,
    pub fields: BTreeMap<String, (Loc, Source)>,
}

/// What may stand where an artifact is expected.
#[derive(Clone, Debug)]
pub enum Source {
    Reference(ArtifactRef, Loc),
    /// Inline import: the `data` node.
    Import(Node, Loc),
    /// Not a valid reference; already reported.
    Invalid,
}
