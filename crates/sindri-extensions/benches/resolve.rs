//! Resolution of a 1,000-extension synthetic catalog (target: under 5 ms).
//!
//! Each extension requires up to three earlier ones (chosen by a fixed-seed generator,
//! so every run measures the same graph); the request names all 1,000, so the whole
//! closure, the waves, the conflict and the requirement checks are computed.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use sindri_extensions::manifest::{AptStep, Step};
use sindri_extensions::{Catalog, Manifest, Request, Source, Target, resolve};

const N: usize = 1000;

fn synthetic() -> (Catalog, Vec<String>) {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let names: Vec<String> = (0..N).map(|i| format!("ext-{i:04}")).collect();
    let mut c = Catalog::empty();
    for i in 0..N {
        let mut requires = Vec::new();
        if i > 0 {
            for _ in 0..next() % 4 {
                let r = names[next() % i].clone();
                if !requires.contains(&r) {
                    requires.push(r);
                }
            }
        }
        // A few conflicts with extensions outside the request keep that check busy.
        let conflicts = if i % 50 == 0 {
            vec![format!("other-{i}")]
        } else {
            Vec::new()
        };
        c.insert(
            Manifest {
                name: names[i].clone(),
                version: "1.0.0".into(),
                description: "synthetic".into(),
                category: Default::default(),
                requires,
                conflicts,
                requirements: Default::default(),
                install: vec![Step::Apt(AptStep {
                    packages: vec![format!("pkg-{i}")],
                    update: false,
                })],
                env: Default::default(),
                path: Vec::new(),
                validate: Vec::new(),
                hooks: Default::default(),
                remove: Default::default(),
            },
            Source::Builtin,
        );
    }
    (c, names)
}

fn bench(cr: &mut Criterion) {
    let (catalog, names) = synthetic();
    let all = Request::named(&names);
    let r = resolve(&catalog, &all, &Target::default()).expect("resolves");
    assert_eq!(r.order.len(), N);
    cr.bench_function("resolve 1000 extensions (all requested)", |b| {
        b.iter(|| {
            resolve(&catalog, std::hint::black_box(&all), &Target::default()).expect("resolves")
        })
    });
    // A typical request: a handful of leaves pulling in their closure.
    let few = Request::named(&names[N - 10..]);
    cr.bench_function("resolve 10 leaves of a 1000-extension catalog", |b| {
        b.iter(|| {
            resolve(&catalog, std::hint::black_box(&few), &Target::default()).expect("resolves")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
