//! Policies (docs/policies.md) through the built binary on the example: its policies'
//! tests pass, a saved plan is judged with each decision naming its rule, and a deploy a
//! policy denies, or that the policies cannot decide, never starts.

use crate::deploy::{World, capstan, text};
use crate::support::example_repo;

#[test]
fn the_examples_policy_tests_pass_and_a_failing_one_fails_the_command() {
    let out = capstan(&example_repo())
        .args(["policy", "test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PASS data.capstan_test.test_a_database_replacement_is_denied (policies/databases_test.rego:"), "{}", text(&out));
    assert!(text(&out).contains("7 passed, 0 failed"), "{}", text(&out));

    let w = World::example();
    std::fs::write(
        w.repo.join("policies/wrong_test.rego"),
        "package wrong_test\n\nimport data.capstan\n\ntest_nothing_is_ever_denied if {\n\tcount(capstan.deny) == 0 with input as {\"plan\": {\"changes\": [{\"instance\": \"ecomm-staging-db\", \"action\": \"update\", \"diffs\": [{\"kind\": \"param\", \"path\": [\"engine_version\"], \"old\": \"16\", \"new\": \"15\"}]}]}, \"resources\": [], \"repository\": {\"instances\": {\"ecomm-staging-db\": {\"bundle\": \"aws-aurora-postgresql\", \"environment_attributes\": {\"tier\": \"staging\"}}}}}\n}\n",
    )
    .unwrap();
    let out = capstan(&w.repo).args(["policy", "test"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL data.wrong_test.test_nothing_is_ever_denied (policies/wrong_test.rego:5:1): got undefined"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_denied_deploy_never_starts_and_a_saved_plan_is_judged_rule_by_rule() {
    let w = World::example();
    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    let runs = w.store().runs(100).unwrap().len();
    let cloud = w
        .cloud("ecomm-staging-db.json")
        .expect("the database is up");

    // An engine downgrade: denied by policies/databases.rego.
    w.edit(
        "projects/ecomm/project.yaml",
        "engine_version: \"16\"",
        "engine_version: \"15\"",
    );
    w.commit("engine 15");
    let out = w
        .command(&["plan", "--deep", "--format", "json"])
        .arg("--repo")
        .arg(&w.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan = w.scratch("plans").join("plan.json");
    std::fs::write(&plan, &out.stdout).unwrap();
    let out = capstan(&w.repo)
        .args(["policy", "eval", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for expected in [
        "Policies: 3 denied, 0 warned, 1 approval required",
        "  ✗ deny: ecomm-staging-db (projects/ecomm/project.yaml:9): ecomm-staging-db would go from engine 16 back to 15; restore a dump into a new database instead [policies/databases.rego:31:1]",
        "  ✗ deny: ecomm-staging-db (projects/ecomm/project.yaml:9): ecomm-staging-db would replace aws_rds_cluster.main, losing its data; change it in place or migrate [policies/databases.rego:19:1]",
        "  ⏳ needs @acme/dba: ecomm-staging-db (projects/ecomm/project.yaml:9): ecomm-staging-db is a database; the data team reviews its changes [policies/databases.rego:6:1]",
    ] {
        assert!(shown.contains(expected), "{expected:?} is not in:\n{shown}");
    }

    let out = w.apply();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("deny this deploy; nothing ran"), "{shown}");
    assert_eq!(
        w.store().runs(100).unwrap().len(),
        runs,
        "no run was recorded"
    );
    assert_eq!(
        w.cloud("ecomm-staging-db.json").as_deref(),
        Some(cloud.as_str())
    );

    // Policies that cannot decide (a rule over its time budget) are no permission either.
    std::fs::write(
        w.repo.join("policies/slow.rego"),
        "package capstan\n\nwarn contains \"slow\" if count([x | some i in numbers.range(1, 100000); some j in numbers.range(1, 100000); x := i * j]) > 0\n",
    )
    .unwrap();
    w.edit(
        "projects/ecomm/project.yaml",
        "engine_version: \"15\"",
        "engine_version: \"16\"",
    );
    w.edit(
        "projects/ecomm/project.yaml",
        "memory: 1024",
        "memory: 2048",
    );
    w.commit("slow policy");
    let out = w.apply();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("could not decide, so nothing ran"),
        "{shown}"
    );
    assert!(shown.contains("longer than their budget"), "{shown}");
    assert_eq!(
        w.store().runs(100).unwrap().len(),
        runs,
        "no run was recorded"
    );
}

#[test]
fn a_destroy_in_production_is_warned_of_and_still_deploys() {
    let w = World::example();
    assert!(w.apply().status.success());
    // The peering link is no longer declared; its environment still is.
    w.edit(
        "projects/peering/project.yaml",
        "  link:\n    bundle: aws-vpc-peering\n    connections:\n      requester: us.network\n      accepter: eu.network\n",
        "",
    );
    w.commit("no more peering");
    let out = w
        .command(&["plan", "--format", "json"])
        .arg("--repo")
        .arg(&w.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan = w.scratch("plans").join("destroy.json");
    std::fs::write(&plan, &out.stdout).unwrap();
    let out = capstan(&w.repo)
        .args(["policy", "eval", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning denies nothing: {shown}"
    );
    assert!(
        shown.contains("  ! warn: peering-production-link: peering-production-link is destroyed in production [policies/databases.rego:56:1]"),
        "{shown}"
    );
    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        w.store()
            .instance("peering-production-link")
            .unwrap()
            .is_none()
    );
}

/// The input document's shape as docs/policies.md shows it: the same keys at the top, in
/// `plan` and in `repository`, and the documented version.
#[test]
fn the_input_document_is_what_the_docs_say() {
    let docs = std::fs::read_to_string(crate::support::root().join("docs/policies.md")).unwrap();
    let section = docs
        .split("## The input document")
        .nth(1)
        .expect("the section");
    let block = section
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the JSON skeleton");
    let documented: serde_json::Value = serde_json::from_str(block).expect("valid JSON");

    let tree = capstan::source::read_dir(&example_repo()).unwrap();
    let checked = capstan::core::check(&tree);
    let empty = Default::default();
    let plan = capstan::core::plan::against_deployed(
        &empty,
        &checked,
        &capstan::core::run::Scope::Branch {
            previews: Default::default(),
        },
        &capstan::core::drift::Heal::All,
    );
    let input = capstan::policy::document(
        capstan::policy::plan_json(&plan),
        &checked,
        serde_json::json!([]),
        None,
        "2026-12-05T22:00:00Z",
    );
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&input), keys(&documented));
    assert_eq!(keys(&input["plan"]), keys(&documented["plan"]));
    assert_eq!(keys(&input["repository"]), keys(&documented["repository"]));
    assert_eq!(input["version"], documented["version"]);
    assert_eq!(input["version"], capstan::policy::VERSION);
    // Every changed instance is described, a sensitive param only by its digest.
    let db = &input["repository"]["instances"]["ecomm-staging-db"];
    assert_eq!(db["environment_attributes"]["tier"], "staging");
    assert_eq!(db["file"], "projects/ecomm/environments/staging.yaml");
    assert_eq!(db["params"]["engine_version"], "16");
}
