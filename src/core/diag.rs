//! Diagnostics as values: a stable [`Code`], a severity, the file and position of the
//! offending YAML node, and a message naming the things involved.
//!
//! Every code lives in one table below, with its summary and the text `capstan explain`
//! prints, so a code cannot exist without its explanation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::yaml::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident => $code:literal, $severity:ident, $summary:literal, $explain:literal;)*) => {
        /// A stable diagnostic code; `docs/repository-format.md` lists them all.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity),* }
            }

            /// One line: when the code is given.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary),* }
            }

            /// What `capstan explain` prints: when, why, and a small example.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explain),* }
            }

            pub fn from_name(name: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str() == name)
            }

            /// Whether plans find it (a change to a deployed instance), not validation.
            pub fn found_by_plans(self) -> bool {
                matches!(self, Code::ParamsImmutable)
            }

            /// Whether the code says a file cannot be read as written (its YAML, its schema,
            /// the file itself): problems that others follow from, reported first.
            pub fn is_structural(self) -> bool {
                let name = self.as_str();
                name.starts_with("yaml.") || name.starts_with("schema.") || name.starts_with("file.")
            }
        }
    };
}

codes! {
    YamlSyntax => "yaml.syntax", Error, "a file is not valid YAML (or holds a tag, a non-finite number or several documents)",
"The file cannot be parsed as one YAML 1.2 document. capstan reads plain YAML: no custom
tags (`!Ref`), no `.inf`/`.nan` (JSON cannot hold them), exactly one document per file.

    packages:
      db: {bundle: aws-aurora-postgresql     # error: the flow mapping is never closed
";
    YamlDuplicateKey => "yaml.duplicate-key", Error, "a mapping has the same key twice",
"YAML forbids a key twice in one mapping, and most parsers silently keep the last one.
capstan reports it and keeps the first, so a later copy can never silently win.

    params:
      memory: 512
      memory: 1024      # error: duplicate key memory (first at line 2)
";
    YamlKeyNotString => "yaml.key-not-string", Error, "a mapping key is not a string",
"Every key in capstan's files is a name, so it must be a string. Unquoted `1`, `true` or
`null` are a number, a boolean and null in YAML 1.2: quote them.

    attributes:
      1: staging        # error: key 1 is not a string; write \"1\": staging
";
    YamlTooComplex => "yaml.too-complex", Error, "a document nests too deeply or its aliases expand too far",
"A document may nest at most 64 levels and expand to at most 100,000 nodes, counting what
aliases copy. This stops 'billion laughs' alias bombs and stack-eating nesting.

    a: &a [x, x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    # ... ten more levels: error, the document expands beyond the budget
";
    FileUnexpected => "file.unexpected", Error, "a file or folder where the layout allows none",
"The repository layout (docs/repository-format.md, Layout) has a place for each file. Anything else is
reported rather than ignored, because a misplaced file is usually a typo that would
otherwise be silently skipped. Markdown files and hidden files (`.gitkeep`) are allowed
everywhere; anything goes inside a bundle's folder.

    projects/ecomm/envs/staging.yaml     # error: environments live in projects/ecomm/environments/
    artifact-types/aws-vpc.yml           # error: artifact types are .yaml files
";
    FileUnreadable => "file.unreadable", Error, "a file is too large, binary, not UTF-8, or could not be read",
"capstan reads YAML files of at most 1 MiB and bundle files of at most 64 MiB; YAML files
must be UTF-8 text. A file that breaks these limits is reported and skipped, never
half-read.

    projects/ecomm/project.yaml is 3 MiB     # error: over the 1 MiB limit for YAML files
    artifact-types/aws-vpc.yaml holds a NUL byte (binary)
";
    FileSymlink => "file.symlink", Error, "a symbolic link in the repository",
"Links are never followed: a link could point outside the repository, and the directory
and a git revision would then disagree about the content. Copy the file instead.

    bundles/shared-lib -> ../../lib      # error: symbolic link (not followed)
";
    IdInvalid => "id.invalid", Error, "a folder or file name is not a valid identifier",
"Identifiers come from paths. Projects, environments and packages match `^[a-z0-9]{1,20}$`
(no dashes, so `<project>-<environment>-<package>` splits unambiguously); artifact types
and bundles match `^[a-z][a-z0-9-]{1,51}[a-z0-9]$`.

    projects/e-comm/project.yaml         # error: project e-comm: dashes are not allowed
";
    SchemaInvalid => "schema.invalid", Error, "a file does not match its JSON Schema",
"Each file kind has a JSON Schema (`capstan schema KIND` prints it). Unknown keys are
errors, never silently dropped; so are wrong types and missing fields.

    packages:
      db:
        bundel: aws-aurora-postgresql    # error: unknown key bundel
";
    ArtifactTypeUnknown => "artifact-type.unknown", Error, "a bundle's `$ref` or a default's key names no artifact type",
"Artifact types are the files in `artifact-types/`. A bundle's connection or artifact
`$ref`, and the key of an environment default, must name one of them.

    connections:
      properties:
        network: {$ref: aws-vcp}         # error: no artifact type aws-vcp
";
    ArtifactTypeInvalid => "artifact-type.invalid", Error, "an artifact type's `schema` is not a valid JSON Schema",
"The `schema` of an artifact type validates artifact data (imports, deploy outputs), so it
must itself be valid JSON Schema (draft 2020-12).

    schema:
      type: obejct                       # error: not a JSON Schema type
";
    BundleUnknown => "bundle.unknown", Error, "a package names no bundle",
"A package's `bundle` must be a folder under `bundles/` holding a `bundle.yaml` or a
Massdriver `massdriver.yaml`.

    packages:
      db: {bundle: aws-aurora-postgres}  # error: no bundle aws-aurora-postgres
";
    BundleInvalid => "bundle.invalid", Error, "a bundle's own schemas are not valid JSON Schema, or a step is malformed",
"A bundle's `params` must be valid JSON Schema; each step needs an existing folder
(`path`) inside the bundle, and `exec` steps need a `deploy` command while `opentofu` and
`terraform` steps take none. A folder under `bundles/` needs a `bundle.yaml`.

    steps:
      - path: src
        provisioner: exec                # error: exec step without deploy
";
    BundleUnresolvedRef => "bundle.unresolved-ref", Warning, "a params schema `$ref` points at a URL, which is never fetched",
"Validating and planning make no network calls. A `$ref` to a URL (common in Massdriver
bundles) is not fetched: that part of the params schema accepts any value.

    params:
      properties:
        region: {$ref: https://example.com/types/aws-region.json}   # warning
";
    BundleDeprecatedKey => "bundle.deprecated-key", Warning, "a Massdriver bundle uses a key (or a default) Massdriver deprecated",
"capstan reads Massdriver's `massdriver.yaml`. `type` and `access` are accepted and
ignored, like `schema`, `ui`, `app` and `source_url`, but Massdriver itself has deprecated
them: remove them when convenient. A bundle without `steps` gets Massdriver's deprecated
default, one `terraform` step at `src`, with this warning too.

    type: infrastructure                 # warning: deprecated, ignored
";
    BundleIgnoredKey => "bundle.ignored-key", Warning, "a Massdriver bundle holds a key capstan ignores",
"Massdriver ignores top-level keys of `massdriver.yaml` it does not know, and real files
use them to hold YAML anchors for `params`. capstan reads such a file as Massdriver does,
and says which keys it ignored rather than dropping them silently. The same goes for
constraints written beside a connection's or artifact's `$ref`, which capstan does not
enforce. (In capstan's own files, unknown keys stay errors.)

    NodeGroup: &node_group                  # warning: ignored (its anchor is used below)
      properties: {min_size: {type: integer}}
    params:
      properties:
        node_groups: {items: *node_group}
";
    BundleProvisionerUnsupported => "bundle.provisioner-unsupported", Warning, "a Massdriver step uses a provisioner capstan cannot run",
"capstan runs `exec`, `opentofu` and `terraform` steps. A Massdriver bundle whose step uses
another provisioner (`helm`, `bicep`) still loads, validates and plans, so the rest of the
repository can use it; deploying one of its instances fails that instance with a message
saying why, its dependants are skipped, and everything else deploys.

    steps:
      - path: chart
        provisioner: helm                   # warning: capstan cannot run helm steps
";
    BundleTypeVersion => "bundle.type-version", Error, "a `resource_type` asks for a version of an artifact type that the type's `version` does not satisfy",
"Massdriver's newer bundles name the type of each dependency and resource with a version
constraint: `resource_type: <type>@<constraint>`. The constraint (`0.0.0`, `~1`, `^1.2`,
`>=1 <2`, read as semver requirements: a bare version is `^` that version) is checked against
the artifact type's `version`; a type without a version is the warning
`bundle.type-unversioned`.

    # artifact-types/virtual-network/massdriver.yaml: version: 2.1.0
    dependencies:
      network: {resource_type: virtual-network@~1, required: true}   # error: 2.1.0 is not ~1
";
    BundleTypeUnversioned => "bundle.type-unversioned", Warning, "a `resource_type` constraint names an artifact type that has no version to check",
"A `resource_type: <type>@<constraint>` can only be checked against a type that says its
`version` (a folder resource type's `version:`). Without one, the constraint is not checked,
and capstan says so.

    dependencies:
      network: {resource_type: aws-vpc@~1}     # warning: artifact type aws-vpc has no version
";
    PackageUnknown => "package.unknown", Error, "an environment, wiring or share names a package the project lacks",
"Packages are the keys of `packages:` in `project.yaml`. An environment can only configure
those, and wiring and shares can only name those.

    # projects/ecomm/environments/staging.yaml
    packages:
      databse: {params: {size: 2}}       # error: project ecomm has no package databse
";
    ConnectionUnknown => "connection.unknown", Error, "wiring or a remote reference names a slot the bundle does not have",
"Connection slots are the `connections.properties` of the package's bundle.

    packages:
      app:
        connections:
          db: si-staging-vpc.network     # error: bundle container-app has no connection db
";
    ArtifactUnknown => "artifact.unknown", Error, "a wiring, share or `remote` names an artifact field the bundle does not have",
"Artifact fields are the `artifacts.properties` of a bundle. Wiring (`<package>.<field>`),
shares and `remote` mappings can only name those.

    shares:
      - artifacts: [vpc.netwrok]         # error: bundle aws-vpc has no artifact netwrok
";
    ReferenceInvalid => "reference.invalid", Error, "a reference is not of the form `<project>-<env>-<package>.<field>`",
"A reference names an artifact of an instance: `si-staging-vpc.network`. Project,
environment and package are `[a-z0-9]{1,20}` joined by dashes; the field follows a dot.
Wiring inside a project is `<package>.<field>` instead.

    defaults:
      aws-vpc: si/staging/vpc.network    # error: not a reference
";
    ReferenceUnresolved => "reference.unresolved", Error, "a reference names something that does not exist, or a package disabled there",
"Every part of a reference must exist: the project, its environment, the package, and the
artifact field of the package's bundle; the package must be enabled there. Removing
something still used elsewhere shows up as this error in the consumer.

    defaults:
      aws-vpc: si-stagign-vpc.network    # error: project si has no environment stagign
";
    ConnectionTypeMismatch => "connection.type-mismatch", Error, "a slot of type T is filled by an artifact of another type",
"A connection slot (or a `remote` field) has an artifact type; whatever fills it must have
exactly that type.

    connections:
      network: si-staging-eks.cluster    # error: slot network is aws-vpc, the artifact is kubernetes-cluster
";
    ConnectionUnsatisfied => "connection.unsatisfied", Error, "a required slot has no source",
"A required connection is filled by, in order: the environment's remote reference, the
project's wiring, the environment default of its type. If none applies, nothing can be
deployed.

    # bundle container-app requires connection cluster (kubernetes-cluster)
    # projects/api/environments/staging.yaml has no default for kubernetes-cluster: error
";
    DefaultsTypeNotAllowed => "defaults.type-not-allowed", Error, "a default for a type without `environment_default`",
"Only artifact types that declare `environment_default: <group>` may be environment
defaults; the platform team decides which shared things are fit to be implicit.

    defaults:
      postgresql: si-staging-db.database # error: postgresql has no environment_default
";
    DefaultsTypeMismatch => "defaults.type-mismatch", Error, "a default whose value has another type than its key",
"The key of a default is the artifact type it provides; the artifact it names must have
that type.

    defaults:
      aws-vpc: si-staging-eks.cluster    # error: kubernetes-cluster given for aws-vpc
";
    SharingNotGranted => "sharing.not-granted", Error, "a cross-project reference that no share covers",
"Using another project's artifact needs a share (grant) in that project whose `artifacts`
lists it (or `*`), whose `environments` includes the referenced environment (or is
omitted), and whose `to` matches the consuming environment's attributes. The message
names the closest share and what it does not cover.

    # projects/si/project.yaml
    shares:
      - {artifacts: [vpc.network], environments: [produs], to: {tier: [production]}}
    # projects/ecomm/environments/staging.yaml (tier: staging)
    defaults:
      aws-vpc: si-staging-vpc.network    # error: no share covers si-staging for ecomm-staging
";
    ParamsInvalid => "params.invalid", Error, "merged params do not match the bundle's params schema",
"An instance's params are the project's params, deep-merged with the environment's, with
schema defaults filled in. The result must match the bundle's params schema; the
diagnostic points at the node that set the wrong value.

    # bundle: memory {type: integer, minimum: 128}
    packages:
      app: {params: {memory: 64}}        # error: params.memory: 64 is less than the minimum of 128
";
    ParamsImmutable => "params.immutable", Error, "a plan changes a param its bundle marks `$md.immutable` on an instance that is deployed",
"A Massdriver params schema marks some params `$md.immutable: true` (a network's CIDR, a
cluster's zone balancing): they are set when an instance is created and never changed after.
A plan that changes one on an instance already deployed (or, on a pull request, deployed at
the merge base) is this error, at the line that sets the new value, naming the deployed one;
`capstan apply` and the daemon deploy nothing while it stands. To change the value, remove
the package, deploy (it is destroyed), and add it back with the new value (it is created).

    # bundle: cidr: {type: string, $md.immutable: true}; deployed with 10.0.0.0/16
    packages:
      vpc: {params: {cidr: 10.1.0.0/16}}     # error: params.cidr is immutable: it was 10.0.0.0/16
";
    ImportInvalid => "import.invalid", Error, "inline import data does not match the artifact type's schema",
"An inline import (`{data: {...}}`) stands for an existing resource; its data must match
the schema of the slot's artifact type.

    defaults:
      aws-iam-role: {data: {role: deployer}}   # error: missing required property arn
";
    ImportLiteralSensitive => "import.literal-sensitive", Warning, "a sensitive field given literally in git",
"The artifact type marks this field `sensitive: true`; writing its value in the repository
puts a secret in git history. Prefer a reference to an instance that produces it.

    db:
      remote:
        database: {data: {hostname: legacy, port: 5432, username: app, password: hunter2}}  # warning
";
    GraphCycle => "graph.cycle", Error, "the instance graph has a cycle",
"Instances are deployed in the order of their connections, so they must form a directed
acyclic graph across all projects. All members of the cycle are named.

    # a-dev-x uses b-dev-y.out and b-dev-y uses a-dev-x.out: error, cycle a-dev-x -> b-dev-y -> a-dev-x
";
    RemoteIncomplete => "remote.incomplete", Error, "a `remote` package does not map every required artifact field",
"A `remote` package is not deployed in this environment: its artifacts come from elsewhere.
Every artifact field its bundle requires must be mapped to a reference or an import.

    cluster:
      remote: {}                         # error: bundle aws-eks-cluster requires artifact cluster
";
    PolicyInvalid => "policy.invalid", Error, "a policy in policies/ is not valid Rego",
"Policies are Rego (Open Policy Agent's language, v1 syntax: `deny contains msg if { ... }`),
evaluated by an embedded interpreter. A file that does not parse is reported where the
parser stopped; until it parses, every plan's policy check fails rather than allowing
anything.

    package capstan
    deny contains msg if {
      some change in input.plan.changes
      change.action == \"destroy\"     # fine
      msg := sprintf(\"%s is destroyed\", [change.instance]
    }                                  # error: expecting `)` while parsing call expr
";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place in the repository: a file (relative to the repository root) and a position in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub file: Arc<str>,
    pub pos: Pos,
}

impl Loc {
    pub fn new(file: &Arc<str>, pos: Pos) -> Loc {
        Loc {
            file: Arc::clone(file),
            pos,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.pos.line, self.pos.col)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub loc: Loc,
    pub code: Code,
    pub message: String,
}

impl Diagnostic {
    pub fn new(code: Code, loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            loc,
            code,
            message: message.into(),
        }
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}[{}]: {}",
            self.loc,
            self.severity().as_str(),
            self.code,
            self.message
        )
    }
}

/// Where diagnostics are collected during one run.
#[derive(Clone, Default, Debug)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, code: Code, loc: Loc, message: impl Into<String>) {
        self.list.push(Diagnostic::new(code, loc, message));
    }

    pub fn at(&mut self, code: Code, file: &Arc<str>, pos: Pos, message: impl Into<String>) {
        self.push(code, Loc::new(file, pos), message);
    }

    /// Takes over everything `other` found.
    pub fn extend(&mut self, other: Diagnostics) {
        self.list.extend(other.list);
    }

    /// Takes over what `other` found that is not here already.
    pub fn extend_new(&mut self, other: Diagnostics) {
        let known: std::collections::HashSet<Diagnostic> = self.list.iter().cloned().collect();
        self.list
            .extend(other.list.into_iter().filter(|d| !known.contains(d)));
    }

    /// Sorted by file, position and code, exact duplicates removed, causes first (see
    /// [`causes_first`]): the same input always gives the same list in the same order.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.list.sort();
        self.list.dedup();
        causes_first(self.list)
    }
}

/// A file that cannot be read as written (YAML, schema, unreadable) takes its content out of
/// the repository, and what refers to that content then fails too: a misspelt `packages:`
/// makes every environment's package unknown. So these errors come first, and an error in a
/// project folder says that it may follow from one in its own file or in its project's
/// `project.yaml`, which everything in the folder builds on.
fn causes_first(list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let (causes, rest): (Vec<Diagnostic>, Vec<Diagnostic>) =
        list.into_iter().partition(|d| d.code.is_structural());
    let mut in_file: BTreeMap<&str, &Loc> = BTreeMap::new();
    for d in causes.iter().filter(|d| d.severity() == Severity::Error) {
        in_file.entry(&d.loc.file).or_insert(&d.loc);
    }
    let rest: Vec<Diagnostic> = rest
        .into_iter()
        .map(|mut d| {
            let cause = project_folder(&d.loc.file).and_then(|folder| {
                in_file
                    .get(&*d.loc.file)
                    .or_else(|| in_file.get(format!("{folder}project.yaml").as_str()))
            });
            if d.severity() == Severity::Error
                && let Some(at) = cause
            {
                d.message
                    .push_str(&format!(" (this may follow from the error at {at})"));
            }
            d
        })
        .collect();
    causes.into_iter().chain(rest).collect()
}

/// `projects/<project>/` of a file inside a project folder.
fn project_folder(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("projects/")?;
    let end = rest.find('/')?;
    Some(&file[.."projects/".len() + end + 1])
}
