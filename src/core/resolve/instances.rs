//! Instances (docs/repository-format.md, References and resolution): each enabled, non-`remote` package of an environment
//! realised as an instance whose every connection slot is filled by the first rule that
//! applies: the environment's remote reference, the project's wiring, the environment's
//! default for the slot's type.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Connection, Consumer, Ctx, Instance, Origin, Slots, Via, environment_attributes};
use crate::core::diag::{Code, Loc};
use crate::core::model::*;

/// Sources written in an environment, by what they fill: where each is written, and what
/// it resolves to (`None`: it does not resolve, already reported).
type Filled<'a, K> = HashMap<K, (Loc, Option<Origin>)>;

impl<'a> Ctx<'a> {
    /// Realises one environment of a project: its defaults and per-package settings are
    /// checked where written, then each of its instances is built.
    pub(super) fn environment(
        &mut self,
        project: &'a Project,
        env: &'a Environment,
        instances: &mut Vec<Arc<Instance>>,
    ) {
        let consumer = Consumer {
            project: &project.id,
            env: &env.id,
            attributes: environment_attributes(project, env),
            preview: env.preview_of.is_some(),
        };
        let defaults = self.defaults(env, &consumer);
        let connections = self.packages(project, env, &consumer);
        for package in project.packages.values() {
            if let Some(instance) = self.instance(project, env, package, &defaults, &connections) {
                instances.push(Arc::new(instance));
            }
        }
    }

    /// The environment's defaults, by artifact type, each checked where written.
    fn defaults(&mut self, env: &'a Environment, consumer: &Consumer<'_>) -> Filled<'a, &'a str> {
        let mut defaults = Filled::new();
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
                self.check_source(&d.source, key, consumer, &what, Code::DefaultsTypeMismatch);
            defaults.insert(d.type_name.as_str(), (d.key_at.clone(), origin));
        }
        defaults
    }

    /// The environment's per-package settings checked where written: `remote` packages
    /// (every field, and every required field mapped) and remote references for single
    /// slots, which are returned by (package, slot).
    fn packages(
        &mut self,
        project: &'a Project,
        env: &'a Environment,
        consumer: &Consumer<'_>,
    ) -> Filled<'a, (&'a str, &'a str)> {
        let mut env_connections = Filled::new();
        for (name, ep) in &env.packages {
            if !project.packages.contains_key(name.as_str()) {
                self.diags.push(
                    Code::PackageUnknown,
                    ep.at.clone(),
                    format!(
                        "environment {} configures package {name}, which project {} does not have{}",
                        env.id,
                        project.id,
                        crate::core::suggest::did_you_mean(name.as_str(), project.packages.keys())
                    ),
                );
                continue;
            }
            let bundle = self.bundle_of(project, name.as_str());
            if let Some(remote) = &ep.remote {
                self.remote(name, remote, bundle, consumer);
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
                    consumer,
                    &what,
                    Code::ConnectionTypeMismatch,
                );
                env_connections.insert((name.as_str(), slot.as_str()), (at.clone(), origin));
            }
        }
        env_connections
    }

    /// A package that is `remote` here: every field it maps is checked like a reference,
    /// and every artifact its bundle requires must be mapped.
    fn remote(
        &mut self,
        name: &PackageName,
        remote: &Remote,
        bundle: Option<&Bundle>,
        consumer: &Consumer<'_>,
    ) {
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
                consumer,
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
    }

    /// The instance of `package` in `env`, unless the package is disabled, `remote` there,
    /// or names no bundle.
    fn instance(
        &mut self,
        project: &'a Project,
        env: &'a Environment,
        package: &'a Package,
        defaults: &Filled<'a, &'a str>,
        env_connections: &Filled<'a, (&'a str, &'a str)>,
    ) -> Option<Instance> {
        let ep = env.packages.get(package.name.as_str());
        if ep.is_some_and(|ep| ep.remote.is_some() || !ep.is_enabled()) {
            return None;
        }
        let bundle = self.bundle_of(project, package.name.as_str())?;
        let id = InstanceId::of(&project.id, &env.id, &package.name);
        let at = ep.map_or_else(|| package.at.clone(), |ep| ep.at.clone());
        let params = self.params(
            &id,
            bundle,
            package,
            project,
            ep.map(|e| e.params.as_slice()).unwrap_or_default(),
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
        Some(Instance {
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
        })
    }

    /// Wiring means package `<q>` of the same environment, or its `remote` replacement.
    pub(super) fn wired(
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
            Some(ep) if !ep.is_enabled() => {
                self.diags.push(Code::ReferenceUnresolved, w.at.clone(), format!("{consumer} is wired to {package}.{field}, but package {package} is disabled in {} ({})", env.id, ep.at));
                None
            }
            _ => Some(Origin::Instance {
                instance: InstanceId::of(&project.id, &env.id, package),
                field: field.clone(),
            }),
        }
    }
}
