//! Semantic checks and resolution (docs/repository-format.md, References and resolution): every reference, wiring, default,
//! remote package and share is checked where it is written, and each realised instance
//! gets fully determined params and connections. The instances form a graph that must be
//! acyclic; its topological order, grouped in waves, is the deploy order.
//!
//! Each written reference is checked once, at its node. Following a `remote` package to
//! what replaces it is quiet: problems there are reported where they were written.

mod graph;
mod instances;
mod params;
mod references;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

use super::diag::{Code, Diagnostics, Loc};
use super::model::*;
use super::preview;
pub use params::{apply_defaults, merge};

/// The resolved desired state of one revision.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub instances: BTreeMap<InstanceId, Arc<Instance>>,
    /// Deploy order: each wave depends only on earlier waves. Instances in a cycle are in none.
    pub waves: Vec<Vec<InstanceId>>,
    /// Who takes artifacts from whom, built when first asked (a plan's blast radius), and
    /// shared with a revision whose instance graph is the same.
    consumers: OnceLock<Arc<Consumers>>,
}

impl Resolved {
    pub fn new(
        instances: BTreeMap<InstanceId, Arc<Instance>>,
        waves: Vec<Vec<InstanceId>>,
    ) -> Resolved {
        Resolved {
            instances,
            waves,
            consumers: OnceLock::new(),
        }
    }

    /// For each producing instance, the instances and slots its artifacts fill.
    pub fn consumers(&self) -> &Arc<Consumers> {
        self.consumers
            .get_or_init(|| Arc::new(Consumers::of(&self.instances)))
    }

    /// The same graph as `other`'s: its consumers are `other`'s.
    pub fn share_consumers(&self, other: &Resolved) {
        let _ = self.consumers.set(other.consumers().clone());
    }
}

/// The instance graph read backwards: producer -> (consumer, slot), in consumer order.
#[derive(Debug, Default)]
pub struct Consumers(HashMap<InstanceId, Vec<(InstanceId, String)>>);

impl Consumers {
    fn of(instances: &BTreeMap<InstanceId, Arc<Instance>>) -> Consumers {
        let mut map: HashMap<InstanceId, Vec<(InstanceId, String)>> = HashMap::new();
        for inst in instances.values() {
            for (slot, c) in &inst.connections {
                if let Origin::Instance { instance, .. } = &c.origin {
                    map.entry(instance.clone())
                        .or_default()
                        .push((inst.id.clone(), slot.clone()));
                }
            }
        }
        Consumers(map)
    }

    /// The (consumer, slot) pairs `producer`'s artifacts fill.
    pub fn of_producer(&self, producer: &InstanceId) -> &[(InstanceId, String)] {
        self.0.get(producer).map(Vec::as_slice).unwrap_or_default()
    }
}

/// `<project>-<environment>-<package>`: a package realised in an environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: InstanceId,
    pub project: ProjectId,
    pub environment: EnvId,
    pub package: PackageName,
    pub bundle: BundleName,
    pub bundle_version: Arc<str>,
    pub bundle_digest: Arc<str>,
    /// Project params deep-merged with environment params, schema defaults filled in.
    pub params: Arc<Value>,
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

/// Which rule of resolution filled a slot, and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub enum Via {
    /// The environment's `packages.<p>.connections.<slot>`.
    Environment(Loc),
    /// The project's wiring `<package>.<field>`.
    Wiring(Loc),
    /// The environment's default for the slot's type.
    Default(Loc),
}

/// How a connection between two instances is made, in the words plans and graphs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The project's wiring, within one environment.
    Wiring,
    /// Wiring to a package that is `remote` here, so the artifact comes from another project.
    WiringThroughRemote,
    /// The environment's default for the slot's type.
    Default,
    /// The environment's remote reference for the slot.
    RemoteReference,
}

impl Link {
    /// How `via` connects a consumer to a producer, which is in another project or not.
    pub fn of(via: &Via, crosses_project: bool) -> Link {
        match via {
            Via::Environment(_) => Link::RemoteReference,
            Via::Wiring(_) if crosses_project => Link::WiringThroughRemote,
            Via::Wiring(_) => Link::Wiring,
            Via::Default(_) => Link::Default,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Link::Wiring => "wiring",
            Link::WiringThroughRemote => "wiring through a remote package",
            Link::Default => "default",
            Link::RemoteReference => "remote reference",
        }
    }
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
    /// A preview's environment (named so in messages).
    preview: bool,
}

impl Consumer<'_> {
    /// `ecomm-staging`.
    fn id(&self) -> String {
        format!("{}-{}", self.project, self.env)
    }

    /// `ecomm-staging`, or `ecomm-pr<N> (the preview of ecomm)`.
    fn name(&self) -> String {
        if self.preview {
            format!("{} (the preview of {})", self.id(), self.project)
        } else {
            self.id()
        }
    }
}

struct Ctx<'a> {
    repo: &'a Repository,
    types: HashMap<&'a str, Validator>,
    params: HashMap<&'a str, (Value, Validator)>,
    shared: params::SharedParams<'a>,
    diags: Diagnostics,
    /// The projects looked up while resolving the current project, present or not.
    reads: RefCell<BTreeSet<ProjectId>>,
}

pub fn resolve(repo: &Repository, diags: &mut Diagnostics) -> Resolved {
    let previews: Vec<Option<Environment>> =
        repo.projects.values().map(|p| preview_check(p)).collect();
    let mut resolver = Resolver::new(repo, diags);
    let units: Vec<Unit> = repo
        .projects
        .values()
        .zip(&previews)
        .map(|(p, preview)| resolver.project(p, preview.as_ref()))
        .collect();
    for unit in &units {
        diags.extend(unit.diagnostics.clone());
    }
    assemble(units.iter(), diags)
}

/// A project's `preview:` block realised as `pr<N>`, for checking only: its instances are
/// not part of the desired state (`preview::check` realises a named one for that).
pub fn preview_check(project: &Project) -> Option<Environment> {
    preview::environment(project, &EnvId(preview::ANY.into()))
}

/// One project's part of a revision's resolution: its instances, what is wrong with what
/// it writes, and the other projects it looked at. It depends on nothing else but the
/// files outside project folders, so it can be kept while those and the projects it read
/// stay the same.
#[derive(Debug, Default)]
pub struct Unit {
    pub instances: Vec<Arc<Instance>>,
    pub diagnostics: Diagnostics,
    /// Other projects looked up (the producers of its references, and those a `remote`
    /// package leads to), whether they exist or not.
    pub reads: BTreeSet<ProjectId>,
}

/// What a unit records in [`Unit::reads`] when its result depends on which projects exist
/// (not a project name: names are `[a-z0-9]+`).
pub const ALL_PROJECTS: &str = "*";

/// A revision resolved one project at a time: artifact types and bundles are checked
/// once, then each project is resolved into a [`Unit`].
pub struct Resolver<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Resolver<'a> {
    /// Checks artifact types and bundles (reported to `diags`) and compiles their schemas.
    pub fn new(repo: &'a Repository, diags: &mut Diagnostics) -> Resolver<'a> {
        let mut ctx = Ctx {
            repo,
            types: HashMap::new(),
            params: HashMap::new(),
            shared: params::SharedParams::default(),
            diags: Diagnostics::default(),
            reads: RefCell::default(),
        };
        ctx.artifact_types();
        ctx.bundles();
        diags.extend(std::mem::take(&mut ctx.diags));
        Resolver { ctx }
    }

    /// Resolves `project`: its shares and references, each environment's instances, and its
    /// preview block, realised by [`preview_check`].
    pub fn project(&mut self, project: &'a Project, preview: Option<&'a Environment>) -> Unit {
        let ctx = &mut self.ctx;
        ctx.reads.borrow_mut().clear();
        ctx.project(project);
        let mut instances = Vec::new();
        for env in project.environments.values() {
            ctx.environment(project, env, &mut instances);
        }
        ctx.preview(project, preview);
        let mut reads = ctx.reads.take();
        reads.remove(&project.id);
        Unit {
            instances,
            diagnostics: std::mem::take(&mut ctx.diags),
            reads,
        }
    }
}

/// The desired state made of every project's unit: all instances, and the deploy order
/// (a cycle is reported to `diags`; the units' own diagnostics are the caller's).
pub fn assemble<'u>(units: impl Iterator<Item = &'u Unit>, diags: &mut Diagnostics) -> Resolved {
    // Sorted and built in bulk, not inserted one by one.
    let instances: BTreeMap<InstanceId, Arc<Instance>> = units
        .flat_map(|u| u.instances.iter().map(|i| (i.id.clone(), i.clone())))
        .collect();
    let waves = order(&instances, diags);
    Resolved::new(instances, waves)
}

/// The deploy order of `instances`, in waves; a cycle is reported to `diags`.
pub fn order(
    instances: &BTreeMap<InstanceId, Arc<Instance>>,
    diags: &mut Diagnostics,
) -> Vec<Vec<InstanceId>> {
    graph::waves(instances, diags)
}

/// A connection as the instance graph sees it: the slot, the producer, where it is written.
pub type Edge<'a> = (&'a String, &'a InstanceId, &'a Loc);

impl Unit {
    /// What the instance graph sees of this unit: each instance, and the instances its
    /// connections take artifacts from with where each connection is written. Two units
    /// with the same edges leave the deploy order and its cycle check as they were.
    pub fn edges(&self) -> Vec<(&InstanceId, Vec<Edge<'_>>)> {
        self.instances
            .iter()
            .map(|i| {
                let deps = i
                    .connections
                    .iter()
                    .filter_map(|(slot, c)| match (&c.origin, &c.via) {
                        (
                            Origin::Instance { instance, .. },
                            Via::Environment(at) | Via::Wiring(at) | Via::Default(at),
                        ) => Some((slot, instance, at)),
                        (Origin::Import { .. }, _) => None,
                    })
                    .collect();
                (&i.id, deps)
            })
            .collect()
    }
}

/// Attributes of an environment for share matching (the project's, overlaid by the environment's, plus `project` and `environment`).
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
    /// A `preview:` block, checked by realising it as environment `pr<N>`: what it (or
    /// the environment it forks) gets wrong for a preview is reported where it is written,
    /// naming the preview; what is wrong for the forked environment too is not repeated.
    fn preview(&mut self, project: &'a Project, realised: Option<&'a Environment>) {
        if let Some(block) = &project.preview
            && let Some((from, at)) = &block.from
            && !project.environments.contains_key(from.as_str())
        {
            self.diags.push(
                Code::ReferenceUnresolved,
                at.clone(),
                format!(
                    "the preview forks environment {from}, which project {} does not have",
                    project.id
                ),
            );
        }
        if let Some(env) = realised {
            let mut instances = Vec::new();
            self.environment(project, env, &mut instances);
            let instances = instances.into_iter().map(|i| (i.id.clone(), i)).collect();
            graph::waves(&instances, &mut self.diags);
        }
    }

    /// A project by id, noted as read by the project being resolved.
    fn read(&self, id: &ProjectId) -> Option<&'a Project> {
        self.reads.borrow_mut().insert(id.clone());
        self.repo.projects.get(id.as_str()).map(|p| &**p)
    }

    /// ` (did you mean `x`?)` for a project that does not exist: the answer depends on every
    /// project's name, so it is recorded as a read of the list of projects
    /// ([`ALL_PROJECTS`]), which a project added or removed changes.
    fn suggest_project(&self, name: &str) -> String {
        self.reads
            .borrow_mut()
            .insert(ProjectId(ALL_PROJECTS.into()));
        crate::core::suggest::did_you_mean(name, self.repo.projects.keys())
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
}
