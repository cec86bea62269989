//! What every `sindri` command pays for state: open the store and read one deployment.
//!
//! Run with `cargo bench -p sindri-state`. A plain timing loop (no criterion) keeps the
//! workspace's dependency tree small; it prints the median and the 99th percentile of
//! a fresh `StateStore::open` + `get_deployment`, after a first open has created and
//! migrated the file, on a store holding 1000 deployments.

use std::time::{Duration, Instant};

use sindri_core::Deployment;
use sindri_spec::ProviderKind;
use sindri_state::StateStore;

const DEPLOYMENTS: usize = 1000;
const ITERATIONS: usize = 2000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let store = StateStore::open(dir.path())?;
        for i in 0..DEPLOYMENTS {
            let mut d = Deployment::creating(&format!("env-{i}"), ProviderKind::Docker, "p", "h");
            d.details.insert("container".into(), format!("c{i}"));
            store.upsert_deployment(&d)?;
        }
    }

    let mut open_only = Vec::with_capacity(ITERATIONS);
    let mut open_and_read = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS {
        let start = Instant::now();
        let store = StateStore::open(dir.path())?;
        let opened = start.elapsed();
        let found = store.get_deployment("p", &format!("env-{}", i % DEPLOYMENTS))?;
        let total = start.elapsed();
        assert!(found.is_some(), "deployment env-{i} vanished");
        drop(store);
        open_only.push(opened);
        open_and_read.push(total);
    }
    report("open", &mut open_only);
    report("open + get_deployment", &mut open_and_read);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{what:<24} median {:>8.1} µs   p99 {:>8.1} µs   ({} runs)",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}
