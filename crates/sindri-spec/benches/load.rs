//! How long loading a realistic `sindri.yaml` takes (the `sindri config validate`
//! budget is 3 ms for the whole process).

// criterion's macros define undocumented public functions.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const REALISTIC: &str = include_str!("../tests/fixtures/docker.yaml");
const MANY_ERRORS: &str = include_str!("../tests/fixtures/many-errors.yaml");

fn benches(c: &mut Criterion) {
    c.bench_function("load_realistic", |b| {
        b.iter(|| sindri_spec::load_str(black_box(REALISTIC), "sindri.yaml"))
    });
    c.bench_function("load_with_errors", |b| {
        b.iter(|| sindri_spec::load_str(black_box(MANY_ERRORS), "sindri.yaml"))
    });
    // Paid once per process, on the first load (the loader walks the schema).
    c.bench_function("schema_generation", |b| b.iter(sindri_spec::schema));
}

criterion_group!(load, benches);
criterion_main!(load);
