//! The web view's fleet page on the synthetic repository, everything deployed
//! (BENCHMARKS.md, "Web view"): the state holds one deployed record per instance (as a
//! deploy writes it, with the digests of the branch's inputs), the view runs on a real
//! listener, and each page is fetched over HTTP as a browser would.
//!
//! `cargo bench --bench web`; `CAPSTAN_BENCH_SHAPE=projects,environments,packages` for
//! another size (1000,4,10 = 40,000 instances by default). Without `--bench` (as
//! `cargo test --all-targets` runs it) each measure is taken once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use capstan::core::commit::CommitId;
use capstan::core::deployed::{Deployed, Status, desired_inputs};
use capstan::core::run::{Trigger, Verb};
use capstan::state::{NewStep, Store};
use capstan::synth::{Shape, generate};
use capstan::web::{Auth, Branch, View};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// `GET path`: milliseconds to the whole answer, and its size.
fn fetch(addr: SocketAddr, path: &str) -> (f64, usize) {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).expect("the view listens");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let took = ms(t);
    let head = String::from_utf8_lossy(&out[..out.len().min(20)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    (took, out.len())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Records a deploy of `record` in `run`, as the deployer does: a step, then the record.
fn record_deploy(store: &Store, run: i64, record: &Deployed) {
    let step = store
        .begin_step(&NewStep {
            run,
            instance: &record.instance,
            project: &record.project,
            environment: &record.environment,
            package: &record.package,
            action: Verb::Deploy,
            inputs: &record.inputs,
            commit: record.commit.as_str(),
            attributes: &record.attributes,
            sensitive: &[],
            log_path: None,
            // No deploy lock is taken here, so the token is the first one.
            fence: 0,
        })
        .unwrap();
    store.finish_deploy(step, record).unwrap();
}

fn main() {
    let shape = Shape::from_env();
    // Without `--bench` (as `cargo test --all-targets` runs it), each measure once.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        5
    } else {
        1
    };
    let base =
        capstan::source::read_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("example-repo"))
            .expect("example-repo");
    let checked = Arc::new(capstan::core::check(&generate(&base, shape, None)));
    assert!(!checked.has_errors());
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&tmp.path().join("state.db")).unwrap());

    // Everything deployed, in waves, as the deployer records it.
    let t = Instant::now();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let run = store.begin_run(commit, Trigger::Start).unwrap();
    let mut deployed: BTreeMap<_, Deployed> = BTreeMap::new();
    for wave in &checked.resolved.waves {
        for id in wave {
            let inst = &checked.resolved.instances[id];
            let inputs = desired_inputs(inst, &deployed);
            let record = Deployed {
                instance: id.clone(),
                project: inst.project.to_string(),
                environment: inst.environment.to_string(),
                package: inst.package.to_string(),
                digest: inputs.digest(),
                inputs,
                artifacts: BTreeMap::new(),
                status: Status::Deployed,
                commit: CommitId::new(commit),
                attributes: BTreeMap::new(),
                sensitive: Vec::new(),
                updated_at: capstan::state::now(),
                drift: None,
            };
            record_deploy(&store, run, &record);
            deployed.insert(id.clone(), record);
        }
    }
    println!(
        "web view, {} instances deployed (recorded in {:.1} s)",
        deployed.len(),
        t.elapsed().as_secs_f64()
    );

    // What the first request pays, piece by piece.
    let t = Instant::now();
    let read = store.deployed().unwrap();
    let read_ms = ms(t);
    let t = Instant::now();
    let plan = capstan::core::plan::against_deployed(
        &read,
        &checked,
        &store.branch_scope().unwrap(),
        &capstan::core::drift::Heal::All,
    );
    println!(
        "the state read: {read_ms:.0} ms; the plan against it: {:.0} ms ({} changes)",
        ms(t),
        plan.changes.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let branch = Some(Arc::new(Branch {
        commit: CommitId::new(commit),
        checked: checked.clone(),
    }));
    let (_keep, rx) = tokio::sync::watch::channel(branch);
    let view_store = store.clone();
    let view = Arc::new(View::new(store, rx, None, Auth::None));
    let warm = view.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = capstan::web::router(view).into_make_service_with_connect_info::<SocketAddr>();
    rt.spawn(async move { axum::serve(listener, app).await });

    let (cold, size) = fetch(addr, "/");
    println!(
        "fleet, the very first request (the whole state read, planned, rows cached): {cold:.0} ms, {} KiB",
        size >> 10
    );
    // One more deploy of one instance: the next page reads that row and plans again.
    let mut after = Vec::new();
    for round in 0..rounds {
        let record = deployed.values().nth(round * 997).unwrap();
        record_deploy(&view_store, run, record);
        after.push(fetch(addr, "/").0);
    }
    println!(
        "fleet, first request after a deploy of one instance, computed on request: median {:.0} ms (min {:.0}, max {:.0}, one per round)",
        median(after.clone()),
        after.iter().copied().fold(f64::MAX, f64::min),
        after.iter().copied().fold(0.0, f64::max)
    );
    // As the daemon runs it: kept warm in the background.
    rt.spawn(capstan::web::keep_warm(
        warm,
        tokio_util::sync::CancellationToken::new(),
    ));
    let mut kept = Vec::new();
    for round in 0..rounds {
        let record = deployed.values().nth(round * 991 + 5).unwrap();
        record_deploy(&view_store, run, record);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        kept.push(fetch(addr, "/").0);
    }
    println!(
        "fleet, a request 1.5 s after a deploy of one instance, kept warm: median {:.0} ms (min {:.0}, max {:.0})",
        median(kept.clone()),
        kept.iter().copied().fold(f64::MAX, f64::min),
        kept.iter().copied().fold(0.0, f64::max)
    );
    let project = checked
        .resolved
        .instances
        .values()
        .nth(checked.resolved.instances.len() / 2)
        .unwrap()
        .project
        .to_string();
    for (what, path) in [
        ("fleet, page 1", "/".to_string()),
        ("fleet, page 200", "/?page=200".to_string()),
        ("fleet, one project", format!("/?project={project}")),
        (
            "fleet, a status with no instance",
            "/?status=failed".to_string(),
        ),
        (
            "an instance",
            format!(
                "/instances/{}",
                checked.resolved.instances.keys().next().unwrap()
            ),
        ),
        ("graph of a project", format!("/graph?project={project}")),
    ] {
        let times: Vec<f64> = (0..rounds * 2).map(|_| fetch(addr, &path).0).collect();
        let (_, size) = fetch(addr, &path);
        println!(
            "{what}: median {:.0} ms (min {:.0}, max {:.0}), {} KiB",
            median(times.clone()),
            times.iter().copied().fold(f64::MAX, f64::min),
            times.iter().copied().fold(0.0, f64::max),
            size >> 10
        );
    }
}
