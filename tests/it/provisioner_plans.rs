//! Provisioner plans (docs/provisioner-plans.md) on real parts: `capstan plan --deep`
//! runs a real Terraform (built-in `terraform_data` only) in plan mode against what
//! `capstan apply` deployed, and an exec bundle's `plan:` command. Nothing is applied:
//! the Terraform state's bytes stay as they were, and no secret reaches the output.

use std::process::Output;

use crate::deploy::{World, text};

const STORE_BUNDLE: &str = "\
version: 1.0.0
params:
  type: object
  required: [size, engine, password]
  properties:
    size: {type: string}
    engine: {type: string}
    password: {type: string, sensitive: true}
    extra: {type: boolean, default: false}
artifacts:
  required: [store]
  properties:
    store: {$ref: store}
steps:
  - path: src
    provisioner: terraform
";

/// A database replaced when its engine changes, a cache updated in place (with a
/// sensitive input), an optional extra resource, and a sensitive output.
const STORE_MODULE: &str = r#"
variable "size" { type = string }
variable "engine" { type = string }
variable "password" {
  type      = string
  sensitive = true
}
variable "extra" {
  type    = bool
  default = false
}

resource "terraform_data" "db" {
  input            = var.size
  triggers_replace = var.engine
}

resource "terraform_data" "cache" {
  input = { size = var.size, password = var.password }
}

resource "terraform_data" "extra" {
  count = var.extra ? 1 : 0
  input = "more"
}

output "store" {
  value     = { id = terraform_data.db.id, token = "s3cr3t-${terraform_data.db.id}" }
  sensitive = true
}
"#;

const STORE_TYPE: &str = "\
schema:
  type: object
  required: [id, token]
  properties:
    id: {type: string}
    token: {type: string, sensitive: true}
";

const PROJECT: &str = "\
packages:
  main:
    bundle: store
    params: {size: small, engine: \"15\", password: hunter2}
  old:
    bundle: store
    params: {size: tiny, engine: \"15\", password: hunter2}
";

fn store_world() -> World {
    World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/store.yaml", STORE_TYPE),
        ("bundles/store/bundle.yaml", STORE_BUNDLE),
        ("bundles/store/src/main.tf", STORE_MODULE),
        ("projects/demo/project.yaml", PROJECT),
        ("projects/demo/environments/dev.yaml", ""),
    ])
}

fn deep(w: &World, format: &str) -> Output {
    w.command(&["plan", "--deep", "--format", format])
        .arg("--repo")
        .arg(&w.repo)
        .env_remove("TF_CLI_CONFIG_FILE")
        .output()
        .expect("capstan runs")
}

#[test]
fn terraform_plans_show_update_create_destroy_and_replace_and_write_no_state() {
    let w = store_world();
    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    let token =
        w.deployed()[&capstan::core::model::InstanceId("demo-dev-main".into())].artifacts["store"]
            ["token"]
            .as_str()
            .expect("a token")
            .to_string();
    let state_file = |i: &str| w.state.join("tfstate").join(i).join("step-1.tfstate");
    let before: Vec<Vec<u8>> = ["demo-dev-main", "demo-dev-old"]
        .iter()
        .map(|i| std::fs::read(state_file(i)).expect("a state file"))
        .collect();

    // The head: main grows (cache in place), changes engine (db replaced), gains the
    // extra resource and a new password; old is gone; new is new.
    std::fs::write(
        w.repo.join("projects/demo/project.yaml"),
        "\
packages:
  main:
    bundle: store
    params: {size: large, engine: \"16\", password: hunter3, extra: true}
  new:
    bundle: store
    params: {size: small, engine: \"15\", password: hunter3}
",
    )
    .unwrap();
    let out = deep(&w, "text");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for expected in [
        "Resources: 3 to add, 1 to change, 2 to destroy, 1 to replace",
        "demo-dev-main: 1 to add, 1 to change, 0 to destroy, 1 to replace",
        "  ⚠ terraform_data.db replace (destroy, then create), forced by triggers_replace; changes ",
        "  + terraform_data.extra[0] create",
        "  ~ terraform_data.cache update; changes input.password, input.size",
        "demo-dev-new: 2 to add, 0 to change, 0 to destroy, 0 to replace",
        "demo-dev-old: 0 to add, 0 to change, 2 to destroy, 0 to replace (planned as a destroy)",
        "  ⚠ terraform_data.db destroy",
    ] {
        assert!(shown.contains(expected), "{expected:?} is not in:\n{shown}");
    }
    let markdown = text(&deep(&w, "markdown"));
    assert!(
        markdown.contains("- ⚠ `terraform_data.db` **replace** (destroy, then create), forced by `triggers_replace`"),
        "{markdown}"
    );
    let json = text(&deep(&w, "json"));
    let logs = std::fs::read_dir(w.state.join("logs/plans/cli"))
        .expect("plan logs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        logs.contains("terraform plan -input=false -lock=false"),
        "{logs}"
    );
    for secret in ["hunter2", "hunter3", token.as_str()] {
        for (what, t) in [
            ("text", &shown),
            ("markdown", &markdown),
            ("json", &json),
            ("logs", &logs),
        ] {
            assert!(!t.contains(secret), "{secret} leaked into the {what}:\n{t}");
        }
    }

    // Nothing was applied or written: the states are byte for byte what the deploy left,
    // and no work folder is left behind.
    for (i, instance) in ["demo-dev-main", "demo-dev-old"].iter().enumerate() {
        assert_eq!(
            std::fs::read(state_file(instance)).unwrap(),
            before[i],
            "{instance}'s state changed"
        );
    }
    let leftover: Vec<_> = std::fs::read_dir(w.state.join("work/plans"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftover.is_empty(), "{leftover:?}");
    // And the deployed records are as they were: main still the small one.
    let out = w
        .command(&["plan", "--detailed-exitcode"])
        .arg("--repo")
        .arg(&w.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_failing_terraform_plan_shows_its_last_lines_and_fails_the_command() {
    let w = store_world();
    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    // A reference to nothing: `terraform plan` fails, saying where.
    w.edit(
        "bundles/store/src/main.tf",
        "input            = var.size\n",
        "input            = var.sizes\n",
    );
    w.edit("projects/demo/project.yaml", "size: small", "size: large");
    let out = deep(&w, "text");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(
            "demo-dev-main: the provisioner plan failed: `terraform plan -input=false -lock=false"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("  | Error: Reference to undeclared input variable"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}
