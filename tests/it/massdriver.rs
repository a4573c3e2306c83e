//! What real Massdriver files need, each with a fixture of the team's own (the real files
//! are checked by `.ci/run` against the compatibility corpus): Massdriver artifact
//! definitions as artifact types, dashed field names everywhere a field is named, params
//! schemas with relative `$ref`s and POSIX classes, and provisioners capstan cannot run.

use capstan::core::model::InstanceId;
use capstan::core::source::{Content, SourceTree};

use crate::deploy::{World, text};
use crate::support::{diagnostic_lines, example_files, put};

/// A Massdriver artifact definition, as Massdriver publishes them: draft-07, `$md`
/// metadata, `data` and `specs`, a password marked with the one key `"$md.sensitive"`.
const POSTGRESQL_DEFINITION: &str = r#"{
  "$schema": "http://json-schema.org/draft-07/schema",
  "$md": {
    "name": "postgresql",
    "label": "PostgreSQL",
    "ui": {"environmentDefaultGroup": "databases"}
  },
  "type": "object",
  "required": ["data", "specs"],
  "properties": {
    "data": {
      "type": "object",
      "required": ["authentication"],
      "properties": {
        "authentication": {
          "type": "object",
          "required": ["hostname", "password"],
          "properties": {
            "hostname": {"type": "string"},
            "password": {"type": "string", "$md.sensitive": true}
          }
        }
      }
    },
    "specs": {"type": "object"}
  }
}
"#;

const PG_BUNDLE: &str = "\
version: 1.0.0
artifacts:
  required: [postgresql-authentication]
  properties:
    postgresql-authentication: {$ref: massdriver/postgresql}
steps:
  - path: src
    provisioner: exec
    deploy: ./deploy.sh
";

const PG_DEPLOY: &str = r#"#!/bin/sh
set -eu
printf '{"postgresql-authentication": {"data": {"authentication": {"hostname": "pg-%s.internal", "password": "pw-%s-s3cr3t"}}, "specs": {}}}\n' \
  "$CAPSTAN_INSTANCE" "$CAPSTAN_INSTANCE" > "$CAPSTAN_ARTIFACTS"
"#;

const APP_BUNDLE: &str = "\
version: 1.0.0
connections:
  required: [postgresql-authentication]
  properties:
    postgresql-authentication: {$ref: https://example.com/types/postgresql.json}
steps:
  - path: src
    provisioner: exec
    deploy: ./deploy.sh
";

/// Records which database host the app was given (not the password).
const APP_DEPLOY: &str = r#"#!/bin/sh
set -eu
mkdir -p "$CAPSTAN_STATE_DIR/seen"
grep -o '"hostname": "[^"]*"' connections.json > "$CAPSTAN_STATE_DIR/seen/$CAPSTAN_INSTANCE"
"#;

const DATA_PROJECT: &str = "\
packages:
  pg:
    bundle: postgres
shares:
  - artifacts: [pg.postgresql-authentication]
    environments: [prod]
    to: {tier: [production]}
";

/// Every way a field is named: wiring (`app`), a remote package (`db`, which `app` is
/// wired to), an environment default (`api`), a remote reference for one slot (`worker`).
const WEB_PROJECT: &str = "\
packages:
  db:
    bundle: postgres
  app:
    bundle: app
    connections:
      postgresql-authentication: db.postgresql-authentication
  api:
    bundle: app
  worker:
    bundle: app
";

const WEB_PROD: &str = "\
attributes: {tier: production}
defaults:
  postgresql: data-prod-pg.postgresql-authentication
packages:
  db:
    remote:
      postgresql-authentication: data-prod-pg.postgresql-authentication
  worker:
    connections:
      postgresql-authentication: data-prod-pg.postgresql-authentication
";

fn dashed_world() -> World {
    let w = World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/postgresql.json", POSTGRESQL_DEFINITION),
        ("bundles/postgres/bundle.yaml", PG_BUNDLE),
        ("bundles/postgres/src/deploy.sh", PG_DEPLOY),
        ("bundles/app/bundle.yaml", APP_BUNDLE),
        ("bundles/app/src/deploy.sh", APP_DEPLOY),
        ("projects/data/project.yaml", DATA_PROJECT),
        (
            "projects/data/environments/prod.yaml",
            "attributes: {tier: production}\n",
        ),
        (
            "projects/data/environments/stage.yaml",
            "attributes: {tier: staging}\n",
        ),
        ("projects/web/project.yaml", WEB_PROJECT),
        ("projects/web/environments/prod.yaml", WEB_PROD),
    ]);
    for script in [
        "bundles/postgres/src/deploy.sh",
        "bundles/app/src/deploy.sh",
    ] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.repo.join(script), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    w.commit("executable scripts");
    w
}

#[test]
fn dashed_fields_work_in_wiring_defaults_remote_references_shares_plans_and_deploys() {
    let w = dashed_world();
    let validate = std::process::Command::new(assert_cmd::cargo::cargo_bin("capstan"))
        .args(["validate", "--repo"])
        .arg(&w.repo)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(validate.status.success(), "{}", text(&validate));
    assert!(
        text(&validate).contains("valid: 0 errors, 0 warnings"),
        "{}",
        text(&validate)
    );

    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    for instance in ["web-prod-app", "web-prod-api", "web-prod-worker"] {
        let seen = std::fs::read_to_string(w.state.join("seen").join(instance))
            .unwrap_or_else(|e| panic!("{instance} did not deploy: {e}\n{}", text(&out)));
        assert_eq!(
            seen.trim(),
            "\"hostname\": \"pg-data-prod-pg.internal\"",
            "{instance}"
        );
    }
    let state = w.deployed();
    assert!(
        !state.contains_key(&InstanceId("web-prod-db".into())),
        "remote: not deployed"
    );
    assert!(!w.logs().contains("pw-data-prod-pg-s3cr3t"));
    let show = w
        .command(&["state", "show", "web-prod-api"])
        .output()
        .unwrap();
    assert!(
        text(&show).contains("postgresql-authentication"),
        "{}",
        text(&show)
    );
    assert!(text(&show).contains("(sensitive)"), "{}", text(&show));
    assert!(!text(&show).contains("s3cr3t"), "{}", text(&show));

    // A plan names the dashed field on every path from the producer to its consumers.
    w.edit(
        "bundles/postgres/bundle.yaml",
        "version: 1.0.0",
        "version: 1.1.0",
    );
    w.commit("pg 1.1");
    let plan = |format: &str| {
        let out = w
            .command(&["plan", "--format", format])
            .arg("--repo")
            .arg(&w.repo)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text_plan = plan("text");
    for line in [
        "data-prod-pg ─postgresql-authentication (default)→ web-prod-api",
        "data-prod-pg ─postgresql-authentication (wiring through a remote package)→ web-prod-app",
        "data-prod-pg ─postgresql-authentication (remote reference)→ web-prod-worker",
    ] {
        assert!(text_plan.contains(line), "{line}\n{text_plan}");
    }
    let json_plan: serde_json::Value = serde_json::from_str(&plan("json")).expect("JSON");
    let hops: Vec<(&str, &str, &str)> = json_plan["downstream"]
        .as_array()
        .expect("downstream")
        .iter()
        .map(|d| {
            let hop = &d["path"][0];
            (
                hop["field"].as_str().unwrap_or_default(),
                hop["slot"].as_str().unwrap_or_default(),
                hop["instance"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [
            (
                "postgresql-authentication",
                "postgresql-authentication",
                "web-prod-api"
            ),
            (
                "postgresql-authentication",
                "postgresql-authentication",
                "web-prod-app"
            ),
            (
                "postgresql-authentication",
                "postgresql-authentication",
                "web-prod-worker"
            ),
        ]
    );
}

#[test]
fn a_share_names_a_dashed_field_and_is_checked_like_any_other() {
    let mut files = example_files();
    files
        .retain(|f| !f.path.starts_with("projects/") && f.path != "artifact-types/postgresql.yaml");
    for (path, text) in [
        ("artifact-types/postgresql.json", POSTGRESQL_DEFINITION),
        ("bundles/postgres/bundle.yaml", PG_BUNDLE),
        ("bundles/postgres/src/deploy.sh", PG_DEPLOY),
        ("bundles/app/bundle.yaml", APP_BUNDLE),
        ("bundles/app/src/deploy.sh", APP_DEPLOY),
        ("projects/data/project.yaml", DATA_PROJECT),
        (
            "projects/data/environments/prod.yaml",
            "attributes: {tier: production}\n",
        ),
        (
            "projects/web/project.yaml",
            "packages:\n  api:\n    bundle: app\n",
        ),
        (
            "projects/web/environments/stage.yaml",
            "attributes: {tier: staging}\ndefaults:\n  postgresql: data-prod-pg.postgresql-authentication\n",
        ),
    ] {
        put(
            &mut files,
            path,
            Content::Bytes(text.as_bytes().to_vec().into()),
        );
    }
    let lines = diagnostic_lines(&SourceTree::new(files));
    assert_eq!(
        lines,
        [
            "projects/web/environments/stage.yaml:3:15: error[sharing.not-granted]: default postgresql uses data-prod-pg.postgresql-authentication, but project data shares no artifact pg.postgresql-authentication of data-prod with web-stage (closest share: projects/data/project.yaml:5 is for tier in [production] but web-stage has tier staging)"
        ],
    );
}

/// Params schemas as real Massdriver bundles write them: a `$ref` to a file of the bundle
/// (which itself `$ref`s another, relative to its own folder), POSIX classes in patterns.
#[test]
fn params_schemas_read_relative_refs_and_posix_classes() {
    let bundle = "\
name: network
params:
  required: [cidr, name]
  properties:
    cidr: {$ref: ./schemas/network.json#/$defs/cidr}
    name:
      type: string
      pattern: '^[[:alnum:]-]+$'
steps:
  - path: src
    provisioner: opentofu
";
    let network = r#"{"$defs": {"cidr": {"$ref": "./defs/cidr.yaml"}}}"#;
    let cidr = "type: string\npattern: '^[[:digit:].]+/[[:digit:]]+$'\n";
    let mut files = example_files();
    for (path, text) in [
        ("bundles/network/massdriver.yaml", bundle),
        ("bundles/network/schemas/network.json", network),
        ("bundles/network/schemas/defs/cidr.yaml", cidr),
        ("bundles/network/src/main.tf", "# module\n"),
        ("projects/net/environments/dev.yaml", ""),
    ] {
        put(
            &mut files,
            path,
            Content::Bytes(text.as_bytes().to_vec().into()),
        );
    }
    let with_params = |files: &mut Vec<_>, params: &str| {
        put(
            files,
            "projects/net/project.yaml",
            Content::Bytes(
                format!("packages:\n  vpc:\n    bundle: network\n    params: {params}\n")
                    .into_bytes()
                    .into(),
            ),
        );
        diagnostic_lines(&SourceTree::new(files.clone()))
    };
    assert_eq!(
        with_params(&mut files, "{cidr: 10.0.0.0/16, name: main-net}"),
        Vec::<String>::new()
    );
    let wrong = with_params(&mut files, "{cidr: ten, name: 'two words'}");
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(
        wrong[0].contains("error[params.invalid]: net-dev-vpc: params.cidr"),
        "{wrong:?}"
    );
    assert!(
        wrong[1].contains("error[params.invalid]: net-dev-vpc: params.name"),
        "{wrong:?}"
    );

    // A pattern that is no regular expression is reported at the pattern, not at `params:`.
    put(
        &mut files,
        "bundles/network/massdriver.yaml",
        Content::Bytes(
            bundle
                .replace("'^[[:alnum:]-]+$'", "'^([a-z]+$'")
                .into_bytes()
                .into(),
        ),
    );
    let broken = with_params(&mut files, "{cidr: 10.0.0.0/16, name: main}");
    assert!(
        broken.iter().any(|d| d.starts_with("bundles/network/massdriver.yaml:8:16: error[bundle.invalid]: params of bundle network is not a valid JSON Schema at params.properties.name.pattern")),
        "{broken:?}"
    );

    // A `$ref` to a file the bundle lacks, or out of its folder, is an error at the `$ref`.
    put(
        &mut files,
        "bundles/network/massdriver.yaml",
        Content::Bytes(
            bundle
                .replace("./schemas/network.json", "./schemas/missing.json")
                .replace("type: string\n", "$ref: ../../../secrets.json\n")
                .into_bytes()
                .into(),
        ),
    );
    let missing = with_params(&mut files, "{cidr: 10.0.0.0/16, name: main}");
    assert!(
        missing.iter().any(|d| d.starts_with("bundles/network/massdriver.yaml:5:18: error[bundle.invalid]: $ref \"./schemas/missing.json#/$defs/cidr\" names bundles/network/schemas/missing.json, which is not in the repository")),
        "{missing:?}"
    );
    assert!(
        missing
            .iter()
            .any(|d| d.contains("$ref \"../../../secrets.json\" leaves the repository")),
        "{missing:?}"
    );
}

/// `helm` loads, validates with a warning and plans; at deploy its instance fails with a
/// clear message, what depends on it is skipped, and everything else deploys.
#[test]
fn an_unsupported_provisioner_fails_only_its_own_instance() {
    let chart_bundle = "\
name: pgadmin
params: {properties: {}}
artifacts:
  properties:
    postgresql-authentication: {$ref: postgresql}
steps:
  - path: chart
    provisioner: helm
";
    let w = World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/postgresql.json", POSTGRESQL_DEFINITION),
        ("bundles/pgadmin/massdriver.yaml", chart_bundle),
        ("bundles/pgadmin/chart/Chart.yaml", "name: pgadmin\n"),
        ("bundles/postgres/bundle.yaml", PG_BUNDLE),
        ("bundles/postgres/src/deploy.sh", PG_DEPLOY),
        ("bundles/app/bundle.yaml", APP_BUNDLE),
        ("bundles/app/src/deploy.sh", APP_DEPLOY),
        (
            "projects/tools/project.yaml",
            "packages:\n  admin:\n    bundle: pgadmin\n  behind:\n    bundle: app\n    connections:\n      postgresql-authentication: admin.postgresql-authentication\n  pg:\n    bundle: postgres\n  beside:\n    bundle: app\n    connections:\n      postgresql-authentication: pg.postgresql-authentication\n",
        ),
        ("projects/tools/environments/dev.yaml", ""),
    ]);
    for script in [
        "bundles/postgres/src/deploy.sh",
        "bundles/app/src/deploy.sh",
    ] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.repo.join(script), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    w.commit("executable scripts");
    let out = w.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let steps = w.last_run_steps();
    let status = |instance: &str| {
        steps
            .iter()
            .find(|(i, a, _)| i == instance && a == "deploy")
            .map(|(_, _, s)| s.clone())
            .unwrap_or_else(|| panic!("no step of {instance}: {steps:?}"))
    };
    assert_eq!(status("tools-dev-admin"), "failed");
    assert_eq!(status("tools-dev-behind"), "skipped");
    assert_eq!(status("tools-dev-pg"), "succeeded");
    assert_eq!(status("tools-dev-beside"), "succeeded");
    let admin = &w.store().steps_of("tools-dev-admin", 1).unwrap()[0];
    assert_eq!(
        admin.message,
        "capstan cannot run `helm` steps (it runs exec, opentofu and terraform): this instance is left as it is; deploy it with helm outside capstan, or port the step"
    );
}
