//! References (docs/repository-format.md, References and resolution): what a reference names (following `remote`
//! packages to their replacement), whether it has the type its slot needs, and whether a
//! share of the producing project grants it to the consuming environment; also the
//! project-level wiring and share declarations, and the artifact types' schemas that
//! validate inline imports.

use super::{Consumer, Ctx, Lookup, Origin};
use crate::core::diag::{Code, Loc};
use crate::core::model::*;
use crate::core::schema;
use crate::core::suggest::did_you_mean;

impl<'a> Ctx<'a> {
    pub(super) fn artifact_types(&mut self) {
        for t in self.repo.artifact_types.values() {
            match schema::compile(&t.schema, t.format) {
                Ok(v) => {
                    self.types.insert(t.name.as_str(), v);
                }
                Err(e) => self.diags.push(
                    Code::ArtifactTypeInvalid,
                    // At the keyword at fault (a `pattern`, a `type`), not at `schema:`.
                    match &t.schema_node {
                        Some(node) => Loc::new(&t.file, node.locate(&e.path).node.pos),
                        None => t.schema_at.clone(),
                    },
                    format!(
                        "schema of artifact type {} is not a valid JSON Schema{}: {e}",
                        t.name,
                        if e.path.is_empty() {
                            String::new()
                        } else {
                            format!(" at {}", schema::describe_path("", &e.path))
                        }
                    ),
                ),
            }
        }
    }

    /// A project's own declarations: each package's bundle exists, its wiring names slots,
    /// packages and artifacts that exist with matching types; its shares name what it has.
    pub(super) fn project(&mut self, project: &'a Project) {
        for package in project.packages.values() {
            if let Some((name, at)) = &package.bundle
                && !self.repo.bundles.contains_key(name.as_str())
            {
                self.diags.push(
                    Code::BundleUnknown,
                    at.clone(),
                    format!(
                        "package {} names bundle {name}, which does not exist under bundles/{}",
                        package.name,
                        did_you_mean(name.as_str(), self.repo.bundles.keys())
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
                    self.diags.push(Code::PackageUnknown, w.at.clone(), format!("wiring of {}.{slot} names package {target_name}, which project {} does not have{}", package.name, project.id, did_you_mean(target_name.as_str(), project.packages.keys())));
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
        self.shares(project);
    }

    /// A project's shares name packages, artifact fields and environments it has.
    fn shares(&mut self, project: &'a Project) {
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
    pub(super) fn lookup(&self, r: &ArtifactRef, depth: usize) -> Lookup<'a> {
        let Some(project) = self.read(&r.project) else {
            return Lookup::Missing(format!(
                "project {} does not exist{}",
                r.project,
                self.suggest_project(r.project.as_str())
            ));
        };
        let Some(env) = project.environments.get(r.environment.as_str()) else {
            return Lookup::Missing(format!(
                "project {} has no environment {}{}",
                r.project,
                r.environment,
                did_you_mean(r.environment.as_str(), project.environments.keys())
            ));
        };
        let Some(package) = project.packages.get(r.package.as_str()) else {
            return Lookup::Missing(format!(
                "project {} has no package {}{}",
                r.project,
                r.package,
                did_you_mean(r.package.as_str(), project.packages.keys())
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
                "bundle {} of package {} has no artifact {}{}",
                bundle.name,
                r.package,
                r.field,
                did_you_mean(&r.field, bundle.artifacts.keys())
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
        if !ep.is_enabled() {
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
    pub(super) fn follow(&self, source: &Source, depth: usize) -> Option<Origin> {
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
    pub(super) fn check_source(
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

    /// A share of the referenced project must cover the artifact, its
    /// environment and the consumer's attributes.
    pub(super) fn check_share(
        &mut self,
        r: &ArtifactRef,
        at: &Loc,
        consumer: &Consumer<'_>,
        what: &str,
    ) {
        let Some(producer) = self.read(&r.project) else {
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
                                consumer.id()
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
}
