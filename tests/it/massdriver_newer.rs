//! Massdriver's newer format end to end, through the built binary and a real Terraform: a
//! folder resource type, a `dependencies`/`resources` bundle wired between two classic
//! ones, an immutable param, an application bundle's `app:` envs and policies (one read
//! from a sensitive field), and a params schema that `$ref`s a shared piece in
//! `components/`. The files are the team's own, written in each shape.

use std::process::Output;

use capstan::core::model::InstanceId;

use crate::deploy::{World, text};

/// A resource type of the newer catalogs: its `schema` is the data schema, the token in it
/// is sensitive, and `ui` makes it an environment default of group `messaging`.
const QUEUE_TYPE: &str = "\
name: queue
label: A message queue
icon: https://example.com/queue.svg
version: 1.2.0
ui:
  connectionOrientation: environmentDefault
  environmentDefaultGroup: messaging
  instructions: []
exports: []
schema:
  type: object
  required: [data]
  properties:
    data:
      type: object
      required: [infrastructure, token]
      properties:
        infrastructure:
          type: object
          required: [arn]
          properties:
            arn: {type: string}
        token:
          type: string
          $md.sensitive: true
";

/// A shared schema piece outside any bundle, as real repositories keep them.
const REGION: &str =
    r#"{"type": "string", "enum": ["us-east-1", "eu-west-1"], "default": "us-east-1"}"#;

/// Classic: `artifacts:`; an immutable `name`; `region` from `components/`.
const MAKER: &str = "\
name: queue-maker
description: Makes a queue
params:
  required: [name]
  properties:
    name:
      type: string
      $md.immutable: true
    region:
      $ref: ../../components/aws/region.json
artifacts:
  required: [queue]
  properties:
    queue: {$ref: queue}
steps:
  - path: src
    provisioner: terraform
";

const MAKER_MODULE: &str = r#"
variable "name" { type = string }
variable "region" { type = string }

resource "terraform_data" "queue" {
  input = "${var.region}/${var.name}"
}

output "queue" {
  value = {
    data = {
      infrastructure = { arn = "arn:aws:sqs:${var.region}:111111111111:${var.name}" }
      token          = "tok-${terraform_data.queue.id}"
    }
  }
  sensitive = true
}
"#;

/// Newer: `dependencies:` and `resources:`; an application bundle's `app:`.
const WORKER: &str = "\
name: worker
params:
  properties:
    log_level: {type: string, default: info}
dependencies:
  jobs: {resource_type: queue@~1, required: true}
resources:
  done: {resource_type: queue@^1}
app:
  envs:
    LOG_LEVEL: .params.log_level
    QUEUE_ARN: .connections.jobs.data.infrastructure.arn
    QUEUE_NAME: .connections.jobs.data.infrastructure.arn | split(\":\")[5]
    QUEUE_TOKEN: .connections.jobs.data.token
  policies:
    - '{effect: \"allow\", action: \"sqs:ReceiveMessage\", resource: .connections.jobs.data.infrastructure.arn}'
steps:
  - path: src
    provisioner: terraform
";

const WORKER_MODULE: &str = r#"
variable "jobs" { type = any }

resource "terraform_data" "worker" {
  input = var.jobs.data.infrastructure.arn
  provisioner "local-exec" {
    command = "echo queue $QUEUE_NAME level $LOG_LEVEL token $QUEUE_TOKEN; cp app.json \"$CAPSTAN_STATE_DIR/worker-app.json\""
  }
}

output "done" {
  value = {
    data = {
      infrastructure = { arn = "${var.jobs.data.infrastructure.arn}-done" }
      token          = "done-${terraform_data.worker.id}"
    }
  }
  sensitive = true
}
"#;

/// Classic again: `connections:`, fed by the newer bundle's resource.
const READER: &str = "\
name: reader
params:
  properties: {}
connections:
  required: [input]
  properties:
    input: {$ref: queue}
steps:
  - path: src
    provisioner: terraform
";

const READER_MODULE: &str = r#"
variable "input" { type = any }

resource "terraform_data" "reader" {
  input = var.input.data.infrastructure.arn
}
"#;

const PROJECT: &str = "\
packages:
  queue:
    bundle: queue-maker
    params: {name: jobs, region: us-east-1}
  worker:
    bundle: worker
    connections:
      jobs: queue.queue
  reader:
    bundle: reader
    connections:
      input: worker.done
";

pub fn world() -> World {
    World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/queue/massdriver.yaml", QUEUE_TYPE),
        ("components/aws/region.json", REGION),
        ("bundles/queue-maker/massdriver.yaml", MAKER),
        ("bundles/queue-maker/src/main.tf", MAKER_MODULE),
        ("bundles/worker/massdriver.yaml", WORKER),
        ("bundles/worker/src/main.tf", WORKER_MODULE),
        ("bundles/reader/massdriver.yaml", READER),
        ("bundles/reader/src/main.tf", READER_MODULE),
        ("projects/ops/project.yaml", PROJECT),
        ("projects/ops/environments/dev.yaml", ""),
    ])
}

fn run(w: &World, args: &[&str]) -> Output {
    w.command(args)
        .arg("--repo")
        .arg(&w.repo)
        .env_remove("TF_CLI_CONFIG_FILE")
        .output()
        .expect("capstan runs")
}

fn validate(w: &World) -> Output {
    crate::deploy::capstan(&w.repo)
        .arg("validate")
        .output()
        .expect("capstan runs")
}

#[test]
fn the_newer_format_validates_wires_plans_and_deploys_like_the_older() {
    let w = world();
    let valid = validate(&w);
    assert_eq!(
        String::from_utf8_lossy(&valid.stdout),
        "valid: 0 errors, 0 warnings; 1 project, 1 environment, 3 instances in 3 deploy waves\n",
        "{}",
        text(&valid)
    );

    let out = run(&w, &["apply", "--yes"]);
    assert!(out.status.success(), "{}\n{}", text(&out), w.logs());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 deployed, 0 destroyed; 0 unchanged"),
        "{}",
        text(&out)
    );
    // The newer bundle's dependency got the classic artifact, and its resource reached the
    // classic consumer.
    let state = w.deployed();
    let worker = &state[&InstanceId("ops-dev-worker".into())];
    assert_eq!(
        worker.inputs.connections["jobs"].source,
        "ops-dev-queue.queue"
    );
    assert_eq!(
        worker.artifacts["done"]["data"]["infrastructure"]["arn"],
        "arn:aws:sqs:us-east-1:111111111111:jobs-done"
    );
    let reader = &state[&InstanceId("ops-dev-reader".into())];
    assert_eq!(
        reader.inputs.connections["input"].source,
        "ops-dev-worker.done"
    );

    // app.envs reached the step as environment variables, and app.json beside the inputs.
    let app: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.state.join("worker-app.json"))
            .expect("the step copied app.json"),
    )
    .unwrap();
    let token = worker.inputs.connections["jobs"].data.as_ref().unwrap()["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app,
        serde_json::json!({
            "envs": {
                "LOG_LEVEL": "info",
                "QUEUE_ARN": "arn:aws:sqs:us-east-1:111111111111:jobs",
                "QUEUE_NAME": "jobs",
                "QUEUE_TOKEN": token,
            },
            "policies": [{"effect": "allow", "action": "sqs:ReceiveMessage",
                          "resource": "arn:aws:sqs:us-east-1:111111111111:jobs"}],
        })
    );
    // The value read from the sensitive token is scrubbed from the log.
    let logs = w.logs();
    assert!(logs.contains("queue jobs level info token "), "{logs}");
    assert!(
        !logs.contains(&token),
        "the token leaked into a log:\n{logs}"
    );
}

#[test]
fn an_immutable_param_refuses_the_plan_until_the_package_is_recreated() {
    let w = world();
    assert!(run(&w, &["apply", "--yes"]).status.success());
    w.edit("projects/ops/project.yaml", "{name: jobs,", "{name: tasks,");
    w.commit("rename the queue");

    let plan = run(&w, &["plan"]);
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(
        shown.starts_with(
            "projects/ops/project.yaml:4:20: error[params.immutable]: ops-dev-queue: params.name is immutable ($md.immutable in bundles/queue-maker/massdriver.yaml): it was \"jobs\" when deployed and cannot become \"tasks\"; to change it, remove the package, deploy, and add it back\n"
        ),
        "{shown}"
    );
    let apply = run(&w, &["apply", "--yes"]);
    assert_eq!(apply.status.code(), Some(1), "{}", text(&apply));
    assert!(
        String::from_utf8_lossy(&apply.stderr).contains(
            "capstan: nothing is deployed: the plan changes 1 immutable param of deployed instances"
        ),
        "{}",
        text(&apply)
    );
    assert_eq!(w.store().runs(5).unwrap().len(), 1, "no run started");

    // Remove the package (and what uses it), deploy, add it back: a destroy, then a create.
    std::fs::write(w.repo.join("projects/ops/project.yaml"), "packages: {}\n").unwrap();
    w.commit("drop the queue");
    let gone = run(&w, &["apply", "--yes"]);
    assert!(
        String::from_utf8_lossy(&gone.stdout).contains("0 deployed, 3 destroyed"),
        "{}",
        text(&gone)
    );
    std::fs::write(
        w.repo.join("projects/ops/project.yaml"),
        PROJECT.replace("{name: jobs,", "{name: tasks,"),
    )
    .unwrap();
    w.commit("the queue again, renamed");
    let back = run(&w, &["apply", "--yes"]);
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(
        w.deployed()[&InstanceId("ops-dev-queue".into())]
            .inputs
            .params["name"],
        "tasks"
    );
}

#[test]
fn a_shared_schema_piece_replans_exactly_the_bundles_that_read_it() {
    let w = world();
    assert!(run(&w, &["apply", "--yes"]).status.success());
    std::fs::write(
        w.repo.join("components/aws/region.json"),
        REGION.replace("\"eu-west-1\"", "\"eu-west-1\", \"eu-central-1\""),
    )
    .unwrap();
    let plan = run(&w, &["plan"]);
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(
        shown.starts_with("Plan: 0 to create, 1 to update, 0 to destroy"),
        "{shown}"
    );
    assert!(shown.contains("~ ops-dev-queue"), "{shown}");
    assert!(shown.contains("bundle: files changed"), "{shown}");

    // Out of the repository, absolute, or through a link: errors at the `$ref`.
    for (target, why) in [
        ("../../../outside.json", "leaves the repository"),
        ("/etc/hostname", "is an absolute path"),
        (
            "../../components/link.json",
            "names components/link.json, a symbolic link",
        ),
    ] {
        std::fs::write(
            w.repo.join("bundles/queue-maker/massdriver.yaml"),
            MAKER.replace("../../components/aws/region.json", target),
        )
        .unwrap();
        let _ = std::fs::remove_file(w.repo.join("components/link.json"));
        std::os::unix::fs::symlink("/etc/hostname", w.repo.join("components/link.json")).unwrap();
        let out = validate(&w);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let expected = format!(
            "bundles/queue-maker/massdriver.yaml:10:13: error[bundle.invalid]: $ref {target:?} {why}"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&expected),
            "{expected}\n{}",
            text(&out)
        );
    }
}

#[test]
fn a_jq_expression_that_does_not_compile_is_an_error_at_its_line() {
    let w = world();
    std::fs::write(
        w.repo.join("bundles/worker/massdriver.yaml"),
        WORKER.replace(".params.log_level", ".params.log_level | split("),
    )
    .unwrap();
    let out = validate(&w);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(
            "bundles/worker/massdriver.yaml:11:16: error[bundle.invalid]: app.envs.LOG_LEVEL is not a jq expression capstan can run:"
        ),
        "{shown}"
    );
    // A filter reaching the machine is no filter here.
    std::fs::write(
        w.repo.join("bundles/worker/massdriver.yaml"),
        WORKER.replace(".params.log_level", "env.HOME"),
    )
    .unwrap();
    let out = validate(&w);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "app.envs.LOG_LEVEL is not a jq expression capstan can run: env is not defined"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn a_resource_type_is_an_environment_default_and_a_missing_dependency_is_an_error() {
    let w = world();
    // Another project's worker takes the queue as its environment's default for the type
    // (a default because of the resource type's ui), shared by ops.
    std::fs::write(
        w.repo.join("projects/ops/project.yaml"),
        format!("{PROJECT}shares:\n  - artifacts: [queue.queue]\n    environments: [dev]\n    to: {{team: [apps]}}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(w.repo.join("projects/apps/environments")).unwrap();
    std::fs::write(
        w.repo.join("projects/apps/project.yaml"),
        "attributes: {team: apps}\npackages:\n  worker: {bundle: worker}\n",
    )
    .unwrap();
    std::fs::write(
        w.repo.join("projects/apps/environments/dev.yaml"),
        "defaults:\n  queue: ops-dev-queue.queue\n",
    )
    .unwrap();
    let out = validate(&w);
    assert!(out.status.success(), "{}", text(&out));
    let graph = crate::deploy::capstan(&w.repo)
        .args(["graph", "--format", "json"])
        .output()
        .unwrap();
    let graph = String::from_utf8_lossy(&graph.stdout);
    assert!(graph.contains("apps-dev-worker"), "{graph}");

    // Without the default, the required dependency is unsatisfied where the package is.
    std::fs::write(w.repo.join("projects/apps/environments/dev.yaml"), "").unwrap();
    let out = validate(&w);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("projects/apps/project.yaml:3:3: error[connection.unsatisfied]"),
        "{shown}"
    );
}
