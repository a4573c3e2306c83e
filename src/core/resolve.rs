//! Semantic checks and resolution (DESIGN section 5): every reference, wiring, default,
//! remote package and share is checked where it is written, and each realised instance
//! gets fully determined params and connections. The instances form a graph that must be
//! acyclic; its topological order, grouped in waves, is the deploy order.
//!
//! Each written reference is checked once, at its node. Following a `remote` package to
//! what replaces it is quiet: problems there are reported where they were written.

use std::collections::{BTreeMap, HashMap};

use jsonschema::{Draft, Validator};
use serde_json::Value;

use super::diag::{Code, Diagnostics, Loc};
use super::model::*;
use super::schema;
use super::yaml::Node;

/// The resolved desired state of one revision.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub instances: BTreeMap<InstanceId, Instance>,
    /// Deploy order: each wave depends only on earlier waves. Instances in a cycle are in none.
    pub waves: Vec<Vec<InstanceId>>,
}

/// `<project>-<environment>-<package>`: a package realised in an environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: InstanceId,
    pub project: ProjectId,
    pub environment: EnvId,
    pub package: PackageName,
    pub bundle: BundleName,
    pub bundle_version: String,
    pub bundle_digest: String,
    /// Project params deep-merged with environment params, schema defaults filled in.
    pub params: Value,
    pub connections: Slots,
    /// Where the instance is configured: the environment's `packages.<p>` if any, else the project's.
    pub at: Loc,
}

/// An instance's filled slots, sorted by name. A vector, not a `BTreeMap`: instances have a
/// handful of slots, and a B-tree leaf reserves room for eleven, which at tens of thousands
/// of instances was most of a plan's memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slots(Vec<(String, Connection)>);

impl Slots {
    pub fn get(&self, slot: &str) -> Option<&Connection> {
        self.0
            .binary_search_by(|(s, _)| s.as_str().cmp(slot))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn insert(&mut self, slot: String, connection: Connection) {
        match self.0.binary_search_by(|(s, _)| s.cmp(&slot)) {
            Ok(i) => self.0[i].1 = connection,
            Err(i) => self.0.insert(i, (slot, connection)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Connection)> {
        self.0.iter().map(|(s, c)| (s, c))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(s, _)| s)
    }

    pub fn values(&self) -> impl Iterator<Item = &Connection> {
        self.0.iter().map(|(_, c)| c)
    }
}

impl<'a> IntoIterator for &'a Slots {
    type Item = (&'a String, &'a Connection);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Connection)>,
        fn(&'a (String, Connection)) -> (&'a String, &'a Connection),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(s, c)| (s, c))
    }
}

/// A filled connection slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub type_name: TypeName,
    pub via: Via,
    pub origin: Origin,
}

/// Which rule of DESIGN 5.2 filled a slot, and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub enum Via {
    /// The environment's `packages.<p>.connections.<slot>`.
    Environment(Loc),
    /// The project's wiring `<package>.<field>`.
    Wiring(Loc),
    /// The environment's default for the slot's type.
    Default(Loc),
}

/// Where an artifact comes from in the end.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    Instance { instance: InstanceId, field: String },
    Import { data: Value },
}

/// Everything a consuming environment needs for share matching and messages.
struct Consumer<'a> {
    project: &'a ProjectId,
    env: &'a EnvId,
    attributes: BTreeMap<String, String>,
}

impl Consumer<'_> {
    fn name(&self) -> String {
        format!("{}-{}", self.project, self.env)
    }
}

struct Ctx<'a> {
    repo: &'a Repository,
    types: HashMap<&'a str, Validator>,
    params: HashMap<&'a str, (Value, Validator)>,
    diags: &'a mut Diagnostics,
}

pub fn resolve(repo: &Repository, diags: &mut Diagnostics) -> Resolved {
    let mut ctx = Ctx {
        repo,
        types: HashMap::new(),
        params: HashMap::new(),
        diags,
    };
    ctx.artifact_types();
    ctx.bundles();
    for project in repo.projects.values() {
        ctx.project(project);
    }
    let mut instances = BTreeMap::new();
    for project in repo.projects.values() {
        for env in project.environments.values() {
            ctx.environment(project, env, &mut instances);
        }
    }
    let waves = graph(&instances, ctx.diags);
    Resolved { instances, waves }
}

/// Attributes of an environment for share matching (DESIGN 4.5).
pub fn environment_attributes(project: &Project, env: &Environment) -> BTreeMap<String, String> {
    let mut attributes = project.attributes.clone();
    attributes.extend(env.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
    attributes.insert("project".into(), project.id.to_string());
    attributes.insert("environment".into(), env.id.to_string());
    attributes
}

/// What a reference names: its declared type and where the artifact comes from in the end, or
/// why it does not resolve. `type_name` is `None` when the package's bundle or the artifact's
/// type is unknown (reported where declared), so no type check follows; `origin` is `None`
/// when a `remote` replacement does not resolve (reported where it is written).
enum Lookup<'a> {
    Found {
        type_name: Option<&'a TypeName>,
        origin: Option<Origin>,
    },
    Missing(String),
}

impl<'a> Ctx<'a> {
    fn artifact_types(&mut self) {
        for t in self.repo.artifact_types.values() {
            match schema::compile(&t.schema, Draft::Draft202012) {
                Ok(v) => {
                    self.types.insert(t.name.as_str(), v);
                }
                Err(e) => self.diags.push(
                    Code::ArtifactTypeInvalid,
                    t.schema_at.clone(),
                    format!(
                        "schema of artifact type {} is not a valid JSON Schema: {e}",
                        t.name
                    ),
                ),
            }
        }
    }

    fn bundles(&mut self) {
        for b in self.repo.bundles.values() {
            for (kind, slots) in [("connection", &b.connections), ("artifact", &b.artifacts)] {
                for (name, slot) in slots {
                    if !self
                        .repo
                        .artifact_types
                        .contains_key(slot.type_name.as_str())
                    {
                        self.diags.push(Code::ArtifactTypeUnknown, slot.at.clone(), format!("{kind} {name} of bundle {} names artifact type {}, which does not exist", b.name, slot.type_name));
                    }
                }
            }
            let Some(node) = &b.params else {
                let any = serde_json::json!({"type": "object"});
                let v =
                    schema::compile(&any, Draft::Draft202012).expect("the object schema compiles");
                self.params.insert(b.name.as_str(), (any, v));
                continue;
            };
            let mut json = node.to_json();
            let mut urls = Vec::new();
            strip_external_refs(&mut json, &mut Vec::new(), &mut urls);
            for (path, url) in urls {
                let mut at = path.clone();
                at.push("$ref".into());
                let located = node.locate(&at);
                let pos = if located.complete {
                    located.node.pos
                } else {
                    node.pos
                };
                self.diags.at(Code::BundleUnresolvedRef, &b.file, pos, format!("params schema of bundle {} refers to {url}, which is never fetched; that part accepts any value", b.name));
            }
            let draft = match b.format {
                BundleFormat::Massdriver => Draft::Draft7,
                BundleFormat::Capstan => Draft::Draft202012,
            };
            match schema::compile(&json, draft) {
                Ok(v) => {
                    self.params.insert(b.name.as_str(), (json, v));
                }
                Err(e) => self.diags.at(
                    Code::BundleInvalid,
                    &b.file,
                    node.pos,
                    format!(
                        "params of bundle {} is not a valid JSON Schema: {e}",
                        b.name
                    ),
                ),
            }
        }
    }

    /// The type, if it exists: a slot of an unknown type is reported once, where it is declared.
    fn known_type<'t>(&self, t: &'t TypeName) -> Option<&'t TypeName> {
        self.repo
            .artifact_types
            .contains_key(t.as_str())
            .then_some(t)
    }

    fn bundle_of(&self, project: &'a Project, package: &str) -> Option<&'a Bundle> {
        let (name, _) = project.packages.get(package)?.bundle.as_ref()?;
        self.repo.bundles.get(name.as_str())
    }

    fn project(&mut self, project: &'a Project) {
        for package in project.packages.values() {
            if let Some((name, at)) = &package.bundle
                && !self.repo.bundles.contains_key(name.as_str())
            {
                self.diags.push(
                    Code::BundleUnknown,
                    at.clone(),
                    format!(
                        "package {} names bundle {name}, which does not exist under bundles/",
                        package.name
                    ),
                );
            }
            let bundle = self.bundle_of(project, package.name.as_str());
            for (slot, w) in &package.wiring {
                let slot_type = match bundle {
                    Some(b) => match b.connections.get(slot) {
                        Some(s) => self.known_type(&s.type_name),
                        None => {
                            self.diags.push(
                                Code::ConnectionUnknown,
                                w.slot_at.clone(),
                                format!(
                                    "bundle {} of package {} has no connection {slot}",
                                    b.name, package.name
                                ),
                            );
                            None
                        }
                    },
                    None => None,
                };
                let Some((target_name, field)) = &w.target else {
                    continue;
                };
                let Some(target) = project.packages.get(target_name.as_str()) else {
                    self.diags.push(Code::PackageUnknown, w.at.clone(), format!("wiring of {}.{slot} names package {target_name}, which project {} does not have", package.name, project.id));
                    continue;
                };
                let Some(target_bundle) = self.bundle_of(project, target.name.as_str()) else {
                    continue;
                };
                match target_bundle.artifacts.get(field) {
                    None => self.diags.push(
                        Code::ArtifactUnknown,
                        w.at.clone(),
                        format!(
                            "bundle {} of package {target_name} has no artifact {field}",
                            target_bundle.name
                        ),
                    ),
                    Some(a) => {
                        if let Some(t) = slot_type
                            && self
                                .known_type(&a.type_name)
                                .is_some_and(|actual| actual != t)
                        {
                            self.diags.push(Code::ConnectionTypeMismatch, w.at.clone(), format!("connection {slot} of package {} is {t}, but {target_name}.{field} is {}", package.name, a.type_name));
                        }
                    }
                }
            }
        }
        for share in &project.shares {
            for item in &share.artifacts {
                if let ShareItem::Artifact { package, field, at } = item {
                    if !project.packages.contains_key(package.as_str()) {
                        self.diags.push(
                            Code::PackageUnknown,
                            at.clone(),
                            format!(
                                "share names package {package}, which project {} does not have",
                                project.id
                            ),
                        );
                    } else if let Some(b) = self.bundle_of(project, package.as_str())
                        && !b.artifacts.contains_key(field)
                    {
                        self.diags.push(Code::ArtifactUnknown, at.clone(), format!("share names {package}.{field}, but bundle {} has no artifact {field}", b.name));
                    }
                }
            }
            for (env, at) in share.environments.iter().flatten() {
                if !project.environments.contains_key(env.as_str()) {
                    self.diags.push(
                        Code::ReferenceUnresolved,
                        at.clone(),
                        format!(
                            "share names environment {env}, which project {} does not have",
                            project.id
                        ),
                    );
                }
            }
        }
    }

    /// Finds what `r` names, following `remote` packages to their replacement.
    fn lookup(&self, r: &ArtifactRef, depth: usize) -> Lookup<'a> {
        let Some(project) = self.repo.projects.get(r.project.as_str()) else {
            return Lookup::Missing(format!("project {} does not exist", r.project));
        };
        let Some(env) = project.environments.get(r.environment.as_str()) else {
            return Lookup::Missing(format!(
                "project {} has no environment {}",
                r.project, r.environment
            ));
        };
        let Some(package) = project.packages.get(r.package.as_str()) else {
            return Lookup::Missing(format!(
                "project {} has no package {}",
                r.project, r.package
            ));
        };
        let Some(bundle) = package
            .bundle
            .as_ref()
            .and_then(|(b, _)| self.repo.bundles.get(b.as_str()))
        else {
            return Lookup::Found {
                type_name: None,
                origin: None,
            };
        };
        let Some(slot) = bundle.artifacts.get(&r.field) else {
            return Lookup::Missing(format!(
                "bundle {} of package {} has no artifact {}",
                bundle.name, r.package, r.field
            ));
        };
        let type_name = self.known_type(&slot.type_name);
        let Some(ep) = env.packages.get(r.package.as_str()) else {
            return Lookup::Found {
                type_name,
                origin: Some(Origin::Instance {
                    instance: r.instance(),
                    field: r.field.clone(),
                }),
            };
        };
        if let Some(remote) = &ep.remote {
            return match remote.fields.get(&r.field) {
                None => Lookup::Missing(format!(
                    "{} is remote in {}-{} and its remote maps no field {}",
                    r.package, r.project, r.environment, r.field
                )),
                Some((_, source)) => Lookup::Found {
                    type_name,
                    origin: self.follow(source, depth),
                },
            };
        }
        if !ep.enabled {
            return Lookup::Missing(format!(
                "package {} is disabled in {}-{}",
                r.package, r.project, r.environment
            ));
        }
        Lookup::Found {
            type_name,
            origin: Some(Origin::Instance {
                instance: r.instance(),
                field: r.field.clone(),
            }),
        }
    }

    /// Quietly resolves a source written elsewhere (its problems are reported there).
    fn follow(&self, source: &Source, depth: usize) -> Option<Origin> {
        match source {
            Source::Import(data, _) => Some(Origin::Import {
                data: data.to_json(),
            }),
            Source::Reference(r, _) if depth < 16 => match self.lookup(r, depth + 1) {
                Lookup::Found { origin, .. } => origin,
                Lookup::Missing(_) => None,
            },
            Source::Reference(..) | Source::Invalid => None,
        }
    }

    /// Checks a source written in `consumer`'s environment against the type it must have;
    /// reports every problem at its node. `what` names the place in messages.
    fn check_source(
        &mut self,
        source: &Source,
        expected: Option<&TypeName>,
        consumer: &Consumer<'_>,
        what: &str,
        mismatch: Code,
    ) -> Option<Origin> {
        match source {
            Source::Invalid => None,
            Source::Import(data, at) => {
                if let Some(t) = expected {
                    if let Some(v) = self.types.get(t.as_str()) {
                        for e in schema::errors(v, &data.to_json()) {
                            self.diags.at(
                                Code::ImportInvalid,
                                &at.file,
                                e.pos_in(data),
                                format!("{what}: {}", e.message("import data")),
                            );
                        }
                    }
                    if let Some(ty) = self.repo.artifact_types.get(t.as_str()) {
                        for path in &ty.sensitive {
                            let located = data.locate(path);
                            if located.complete {
                                self.diags.at(Code::ImportLiteralSensitive, &at.file, located.node.pos, format!("{what}: {} is sensitive in artifact type {t} but given literally in git", schema::describe_path("data", path)));
                            }
                        }
                    }
                }
                Some(Origin::Import {
                    data: data.to_json(),
                })
            }
            Source::Reference(r, at) => {
                let (type_name, origin) = match self.lookup(r, 0) {
                    Lookup::Missing(why) => {
                        self.diags.push(
                            Code::ReferenceUnresolved,
                            at.clone(),
                            format!("{what} uses {r}, but {why}"),
                        );
                        return None;
                    }
                    Lookup::Found { type_name, origin } => (type_name, origin),
                };
                if r.project != *consumer.project {
                    self.check_share(r, at, consumer, what);
                }
                if let (Some(expected), Some(actual)) = (expected, type_name)
                    && expected != actual
                {
                    self.diags.push(
                        mismatch,
                        at.clone(),
                        format!("{what} is {expected}, but {r} is {actual}"),
                    );
                    // A mismatched artifact fills nothing, so no edge (and no cycle) follows from it.
                    return None;
                }
                origin
            }
        }
    }

    /// DESIGN 5.4: a share of the referenced project must cover the artifact, its
    /// environment and the consumer's attributes.
    fn check_share(&mut self, r: &ArtifactRef, at: &Loc, consumer: &Consumer<'_>, what: &str) {
        let Some(producer) = self.repo.projects.get(r.project.as_str()) else {
            return;
        };
        let mut closest: Option<(usize, &Share, [bool; 3])> = None;
        for share in &producer.shares {
            let covers = [
                share.artifacts.iter().any(|i| match i {
                    ShareItem::All => true,
                    ShareItem::Artifact { package, field, .. } => {
                        *package == r.package && *field == r.field
                    }
                }),
                share
                    .environments
                    .as_ref()
                    .is_none_or(|envs| envs.iter().any(|(e, _)| *e == r.environment)),
                share.to.matches(&consumer.attributes),
            ];
            let score = covers.iter().filter(|c| **c).count();
            if score == 3 {
                return;
            }
            if closest.as_ref().is_none_or(|(best, ..)| score > *best) {
                closest = Some((score, share, covers));
            }
        }
        let hint = match closest {
            None => format!("project {} has no shares", producer.id),
            Some((_, share, covers)) => {
                let mut reasons = Vec::new();
                if !covers[0] {
                    let items: Vec<String> = share
                        .artifacts
                        .iter()
                        .map(|i| match i {
                            ShareItem::All => "*".to_string(),
                            ShareItem::Artifact { package, field, .. } => {
                                format!("{package}.{field}")
                            }
                        })
                        .collect();
                    reasons.push(format!("covers artifacts [{}]", items.join(", ")));
                }
                if !covers[1] {
                    let envs: Vec<&str> = share
                        .environments
                        .iter()
                        .flatten()
                        .map(|(e, _)| e.as_str())
                        .collect();
                    reasons.push(format!("covers environments [{}]", envs.join(", ")));
                }
                if !covers[2]
                    && let Audience::Matching(conditions) = &share.to
                {
                    for (key, values) in conditions {
                        let actual = consumer.attributes.get(key);
                        if actual.is_none_or(|v| !values.contains(v)) {
                            let has = actual
                                .map_or_else(|| format!("no {key}"), |v| format!("{key} {v}"));
                            reasons.push(format!(
                                "is for {key} in [{}] but {} has {has}",
                                values.join(", "),
                                consumer.name()
                            ));
                        }
                    }
                }
                format!(
                    "closest share: {}:{} {}",
                    share.at.file,
                    share.at.pos.line,
                    reasons.join(" and ")
                )
            }
        };
        self.diags.push(
            Code::SharingNotGranted,
            at.clone(),
            format!("{what} uses {r}, but project {} shares no artifact {}.{} of {}-{} with {} ({hint})", producer.id, r.package, r.field, r.project, r.environment, consumer.name()),
        );
    }

    fn environment(
        &mut self,
        project: &'a Project,
        env: &'a Environment,
        instances: &mut BTreeMap<InstanceId, Instance>,
    ) {
        let consumer = Consumer {
            project: &project.id,
            env: &env.id,
            attributes: environment_attributes(project, env),
        };

        let mut defaults: HashMap<&str, (Loc, Option<Origin>)> = HashMap::new();
        for d in &env.defaults {
            let what = format!("default {}", d.type_name);
            let key = match self.repo.artifact_types.get(d.type_name.as_str()) {
                None => {
                    self.diags.push(
                        Code::ArtifactTypeUnknown,
                        d.key_at.clone(),
                        format!(
                            "default names artifact type {}, which does not exist",
                            d.type_name
                        ),
                    );
                    None
                }
                Some(t) if t.environment_default.is_none() => {
                    self.diags.push(Code::DefaultsTypeNotAllowed, d.key_at.clone(), format!("artifact type {} may not be an environment default (it sets no environment_default)", d.type_name));
                    Some(&t.name)
                }
                Some(t) => Some(&t.name),
            };
            let origin =
                self.check_source(&d.source, key, &consumer, &what, Code::DefaultsTypeMismatch);
            defaults.insert(d.type_name.as_str(), (d.key_at.clone(), origin));
        }

        let mut env_connections: HashMap<(&str, &str), (Loc, Option<Origin>)> = HashMap::new();
        for (name, ep) in &env.packages {
            if !project.packages.contains_key(name.as_str()) {
                self.diags.push(
                    Code::PackageUnknown,
                    ep.at.clone(),
                    format!(
                        "environment {} configures package {name}, which project {} does not have",
                        env.id, project.id
                    ),
                );
                continue;
            }
            let bundle = self.bundle_of(project, name.as_str());
            if let Some(remote) = &ep.remote {
                for (field, (at, source)) in &remote.fields {
                    let declared = match bundle.map(|b| (b, b.artifacts.get(field))) {
                        Some((b, None)) => {
                            self.diags.push(
                                Code::ArtifactUnknown,
                                at.clone(),
                                format!(
                                    "remote package {name}: bundle {} has no artifact {field}",
                                    b.name
                                ),
                            );
                            continue;
                        }
                        Some((_, Some(slot))) => self.known_type(&slot.type_name),
                        None => None,
                    };
                    let what = format!("remote field {field} of package {name}");
                    self.check_source(
                        source,
                        declared,
                        &consumer,
                        &what,
                        Code::ConnectionTypeMismatch,
                    );
                }
                if let Some(b) = bundle {
                    let missing: Vec<&str> = b
                        .artifacts
                        .iter()
                        .filter(|(f, s)| s.required && !remote.fields.contains_key(*f))
                        .map(|(f, _)| f.as_str())
                        .collect();
                    if !missing.is_empty() {
                        self.diags.push(
                            Code::RemoteIncomplete,
                            remote.at.clone(),
                            format!(
                                "remote package {name} maps no {} required by bundle {}",
                                missing.join(", "),
                                b.name
                            ),
                        );
                    }
                }
                continue;
            }
            for (slot, (at, source)) in &ep.connections {
                let declared = match bundle.map(|b| (b, b.connections.get(slot))) {
                    Some((b, None)) => {
                        self.diags.push(
                            Code::ConnectionUnknown,
                            at.clone(),
                            format!(
                                "bundle {} of package {name} has no connection {slot}",
                                b.name
                            ),
                        );
                        continue;
                    }
                    Some((_, Some(s))) => self.known_type(&s.type_name),
                    None => None,
                };
                let what = format!("connection {slot} of package {name}");
                let origin = self.check_source(
                    source,
                    declared,
                    &consumer,
                    &what,
                    Code::ConnectionTypeMismatch,
                );
                env_connections.insert((name.as_str(), slot.as_str()), (at.clone(), origin));
            }
        }

        for package in project.packages.values() {
            let ep = env.packages.get(package.name.as_str());
            if ep.is_some_and(|ep| ep.remote.is_some() || !ep.enabled) {
                continue;
            }
            let Some(bundle) = self.bundle_of(project, package.name.as_str()) else {
                continue;
            };
            let id = InstanceId::of(&project.id, &env.id, &package.name);
            let at = ep.map_or_else(|| package.at.clone(), |ep| ep.at.clone());
            let params = self.params(
                &id,
                bundle,
                package,
                project,
                ep.and_then(|e| e.params.as_ref()),
                env,
                &at,
            );
            let mut connections = Slots::default();
            for (slot, def) in &bundle.connections {
                let filled = if let Some((at, origin)) =
                    env_connections.get(&(package.name.as_str(), slot.as_str()))
                {
                    Some((Via::Environment(at.clone()), origin.clone()))
                } else if let Some(w) = package.wiring.get(slot) {
                    Some((
                        Via::Wiring(w.at.clone()),
                        self.wired(project, env, w, &def.type_name, &id),
                    ))
                } else {
                    defaults
                        .get(def.type_name.as_str())
                        .map(|(at, origin)| (Via::Default(at.clone()), origin.clone()))
                };
                match filled {
                    Some((via, Some(origin))) => {
                        connections.insert(
                            slot.clone(),
                            Connection {
                                type_name: def.type_name.clone(),
                                via,
                                origin,
                            },
                        );
                    }
                    Some((_, None)) => {}
                    None if def.required => {
                        self.diags.push(Code::ConnectionUnsatisfied, at.clone(), format!("{id}: required connection {slot} ({}) has no source: no connection in {}, no wiring in {}, no default for {} in {}", def.type_name, env.file, project.file, def.type_name, env.id));
                    }
                    None => {}
                }
            }
            instances.insert(
                id.clone(),
                Instance {
                    id,
                    project: project.id.clone(),
                    environment: env.id.clone(),
                    package: package.name.clone(),
                    bundle: bundle.name.clone(),
                    bundle_version: bundle.version.clone(),
                    bundle_digest: bundle.digest.clone(),
                    params,
                    connections,
                    at,
                },
            );
        }
    }

    /// DESIGN 5.2.2: wiring means package `<q>` of the same environment, or its `remote` replacement.
    fn wired(
        &mut self,
        project: &'a Project,
        env: &Environment,
        w: &Wiring,
        slot_type: &TypeName,
        consumer: &InstanceId,
    ) -> Option<Origin> {
        let (package, field) = w.target.as_ref()?;
        let produced = self
            .bundle_of(project, package.as_str())?
            .artifacts
            .get(field)?;
        if produced.type_name != *slot_type {
            return None;
        }
        match env.packages.get(package.as_str()) {
            Some(ep) if ep.remote.is_some() => {
                let remote = ep.remote.as_ref().expect("checked just above");
                match remote.fields.get(field) {
                    Some((_, source)) => self.follow(source, 0),
                    None => {
                        self.diags.push(Code::ReferenceUnresolved, w.at.clone(), format!("{consumer} is wired to {package}.{field}, but {package} is remote in {} ({}) and maps no {field}", env.id, remote.at));
                        None
                    }
                }
            }
            Some(ep) if !ep.enabled => {
                self.diags.push(Code::ReferenceUnresolved, w.at.clone(), format!("{consumer} is wired to {package}.{field}, but package {package} is disabled in {} ({})", env.id, ep.at));
                None
            }
            _ => Some(Origin::Instance {
                instance: InstanceId::of(&project.id, &env.id, package),
                field: field.clone(),
            }),
        }
    }

    /// DESIGN 5.1: merge, fill defaults, validate; errors point at the node that set the value.
    #[allow(clippy::too_many_arguments)]
    fn params(
        &mut self,
        id: &InstanceId,
        bundle: &Bundle,
        package: &Package,
        project: &Project,
        env_params: Option<&Node>,
        env: &Environment,
        at: &Loc,
    ) -> Value {
        let mut merged = package
            .params
            .as_ref()
            .map_or_else(|| Value::Object(Default::default()), Node::to_json);
        if let Some(over) = env_params {
            merge(&mut merged, &over.to_json());
        }
        let Some((schema_json, validator)) = self.params.get(bundle.name.as_str()) else {
            return merged;
        };
        apply_defaults(schema_json, &mut merged);
        for e in schema::errors(validator, &merged) {
            let located = [
                (env_params, &env.file),
                (package.params.as_ref(), &project.file),
            ]
            .into_iter()
            .filter_map(|(node, file)| {
                let l = node?.locate(&e.path);
                // A value set at a prefix that is not a mapping (a scalar or list) replaced everything below it.
                let owns = l.complete || !l.node.is_map();
                Some((owns, l.depth, file, e.pos_in(node?)))
            })
            .max_by_key(|(owns, depth, ..)| (*owns, *depth));
            let loc = located.map_or_else(|| at.clone(), |(_, _, file, pos)| Loc::new(file, pos));
            self.diags.push(
                Code::ParamsInvalid,
                loc,
                format!("{id}: {}", e.message("params")),
            );
        }
        merged
    }
}

/// Maps merge, everything else (lists included) is replaced.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Fills `default`s of `properties`, recursing into objects that are present.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    let (Some(props), Value::Object(obj)) =
        (schema.get("properties").and_then(Value::as_object), value)
    else {
        return;
    };
    for (key, sub) in props {
        if !obj.contains_key(key)
            && let Some(default) = sub.get("default")
        {
            obj.insert(key.clone(), default.clone());
        }
        if let Some(v) = obj.get_mut(key) {
            apply_defaults(sub, v);
        }
    }
}

/// Replaces every subschema whose `$ref` is not local (`#...`) by an accept-anything
/// schema, recording the path and URL: capstan never fetches.
fn strip_external_refs(
    value: &mut Value,
    path: &mut Vec<String>,
    found: &mut Vec<(Vec<String>, String)>,
) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && !r.starts_with('#')
            {
                found.push((path.clone(), r.clone()));
                map.remove("$ref");
            }
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                strip_external_refs(v, path, found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                strip_external_refs(v, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Cycle detection (Tarjan, iterative) and waves (longest path from a source).
fn graph(
    instances: &BTreeMap<InstanceId, Instance>,
    diags: &mut Diagnostics,
) -> Vec<Vec<InstanceId>> {
    let ids: Vec<&InstanceId> = instances.keys().collect();
    let index: HashMap<&InstanceId, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // deps[i]: the instances i takes artifacts from, with the place the edge is written.
    let deps: Vec<Vec<(usize, &Loc)>> = instances
        .values()
        .map(|inst| {
            let mut d: Vec<(usize, &Loc)> = inst
                .connections
                .values()
                .filter_map(|c| match &c.origin {
                    Origin::Instance { instance, .. } => {
                        let at = match &c.via {
                            Via::Environment(at) | Via::Wiring(at) | Via::Default(at) => at,
                        };
                        index.get(instance).map(|&j| (j, at))
                    }
                    Origin::Import { .. } => None,
                })
                .collect();
            d.sort_by_key(|(j, _)| *j);
            d.dedup_by_key(|(j, _)| *j);
            d
        })
        .collect();

    let sccs = tarjan(&deps);
    let mut in_cycle = vec![false; ids.len()];
    for scc in &sccs {
        let cyclic = scc.len() > 1 || deps[scc[0]].iter().any(|(j, _)| *j == scc[0]);
        if !cyclic {
            continue;
        }
        let mut members: Vec<usize> = scc.clone();
        members.sort_unstable();
        for &m in &members {
            in_cycle[m] = true;
        }
        let at = members
            .iter()
            .flat_map(|&m| {
                deps[m]
                    .iter()
                    .filter(|(j, _)| members.contains(j))
                    .map(|(_, at)| *at)
            })
            .min()
            .cloned()
            .expect("a cycle has an edge between two of its members (or a self-loop)");
        let names: Vec<&str> = members.iter().map(|&m| ids[m].as_str()).collect();
        diags.push(
            Code::GraphCycle,
            at,
            format!(
                "instances depend on each other in a cycle: {}",
                names.join(", ")
            ),
        );
    }

    // Tarjan yields SCCs with dependencies first: a valid order for computing levels.
    let mut level: Vec<Option<usize>> = vec![None; ids.len()];
    for scc in &sccs {
        for &n in scc {
            if in_cycle[n]
                || deps[n]
                    .iter()
                    .any(|(j, _)| in_cycle[*j] || level[*j].is_none())
            {
                continue;
            }
            level[n] = Some(
                deps[n]
                    .iter()
                    .filter_map(|(j, _)| level[*j])
                    .map(|l| l + 1)
                    .max()
                    .unwrap_or(0),
            );
        }
    }
    let mut waves: Vec<Vec<InstanceId>> = Vec::new();
    for (n, l) in level.iter().enumerate() {
        if let Some(l) = *l {
            if waves.len() <= l {
                waves.resize_with(l + 1, Vec::new);
            }
            waves[l].push(ids[n].clone());
        }
    }
    waves
}

/// Strongly connected components, dependencies before dependants; no recursion, so tens
/// of thousands of instances in a chain cannot overflow the stack.
fn tarjan(deps: &[Vec<(usize, &Loc)>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut sccs = Vec::new();
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if let Some(&(w, _)) = deps[v].get(*edge) {
                *edge += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                sccs.push(scc);
            }
        }
    }
    sccs
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::yaml::Pos;
    use serde_json::json;

    #[test]
    fn maps_merge_and_lists_replace() {
        let mut base = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        merge(&mut base, &json!({"a": {"y": [3]}, "c": 2}));
        assert_eq!(base, json!({"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}));
    }

    #[test]
    fn defaults_fill_missing_keys_only() {
        let schema = json!({"properties": {"cpu": {"default": 256}, "memory": {"default": 512}, "net": {"properties": {"auto": {"default": true}}}}});
        let mut v = json!({"memory": 1024, "net": {}});
        apply_defaults(&schema, &mut v);
        assert_eq!(
            v,
            json!({"cpu": 256, "memory": 1024, "net": {"auto": true}})
        );
    }

    #[test]
    fn tarjan_orders_dependencies_first_and_finds_cycles() {
        let at = Loc {
            file: Arc::from("f"),
            pos: Pos::START,
        };
        // 0 -> 1 -> 2, 3 <-> 4
        let deps = vec![
            vec![(1, &at)],
            vec![(2, &at)],
            vec![],
            vec![(4, &at)],
            vec![(3, &at)],
        ];
        let sccs = tarjan(&deps);
        let pos = |n: usize| sccs.iter().position(|s| s.contains(&n)).expect("present");
        assert!(pos(2) < pos(1) && pos(1) < pos(0));
        assert!(sccs.iter().any(|s| s.len() == 2));
    }
}
