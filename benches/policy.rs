//! Policies on big and small plans (BENCHMARKS.md): the example's policies
//! (`example-repo/policies/`, carried into the synthetic repository) evaluated on the
//! 40,000-instance plan (everything created) and on a one-instance plan, each beside the
//! plan itself. `CAPSTAN_BENCH_SHAPE=projects,environments,packages` (default 1000,4,10).

use std::path::PathBuf;
use std::time::Instant;

use capstan::core::drift::Heal;
use capstan::core::run::Scope;
use capstan::policy::{Budget, Policies};
use capstan::synth::{Change, Shape, generate};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Plans `plan` makes, then the input built and the policies evaluated five times.
fn measure(
    what: &str,
    checked: &capstan::core::Checked,
    plan: &capstan::core::plan::Plan,
    plan_ms: f64,
) {
    let policies = Policies::new(&checked.repository.policies, false).expect("policies");
    let mut inputs = Vec::new();
    let mut evals = Vec::new();
    let mut decisions = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let input = capstan::policy::document(
            capstan::policy::plan_json(plan),
            checked,
            serde_json::json!([]),
            None,
            "2026-12-05T00:00:00Z",
        );
        inputs.push(ms(t));
        let t = Instant::now();
        decisions = policies
            .evaluate(&input, Budget::default())
            .expect("the policies decide")
            .len();
        evals.push(ms(t));
    }
    println!(
        "{what}: {} changes; plan {plan_ms:.0} ms; input {:.0} ms; policies {:.0} ms (median of 5, {decisions} decisions)",
        plan.changes.len(),
        median(inputs),
        median(evals)
    );
}

fn main() {
    let shape = Shape::from_env();
    let base =
        capstan::source::read_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("example-repo"))
            .expect("example-repo");
    let tree = generate(&base, shape, None);
    let changed = generate(
        &base,
        shape,
        Some(Change {
            every: shape.projects,
            network_every: 0,
        }),
    );
    let checked = capstan::core::check(&tree);
    assert!(!checked.has_errors());
    assert!(
        !checked.repository.policies.is_empty(),
        "the example's policies came along"
    );
    println!("policies, {} instances", shape.instances());

    let t = Instant::now();
    let everything = capstan::core::plan::against_deployed(
        &Default::default(),
        &checked,
        &Scope::Branch {
            previews: Default::default(),
        },
        &Heal::All,
    );
    measure("everything created", &checked, &everything, ms(t));

    let new = capstan::core::check(&changed);
    let t = Instant::now();
    let one = capstan::core::plan::plan(&checked, &new);
    measure("one instance changed", &new, &one, ms(t));
}
