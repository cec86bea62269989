//! Property tests of the resolver: on random acyclic graphs the waves respect every
//! edge; on random graphs with an injected cycle a cycle is always found, and every
//! reported path is a real cycle of the graph.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sindri_extensions::graph::waves;
use sindri_extensions::manifest::{AptStep, Step};
use sindri_extensions::{Catalog, Manifest, Problem, Request, Source, Target, resolve};

/// A random DAG on `n` nodes under a random relabelling: edges only go from a node to
/// one that comes earlier in a hidden order, so there is no cycle.
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..60).prop_flat_map(|n| {
        let edges = proptest::collection::vec((0..n, 0..n), 0..n * 3);
        let perm = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        (Just(n), edges, perm).prop_map(|(n, edges, perm)| {
            let mut deps = vec![BTreeSet::new(); n];
            for (a, b) in edges {
                if a != b {
                    // Hidden order: the larger hidden index depends on the smaller.
                    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
                    deps[perm[hi]].insert(perm[lo]);
                }
            }
            deps.into_iter().map(|d| d.into_iter().collect()).collect()
        })
    })
}

/// A random DAG plus a cycle through `k` distinct nodes.
fn cyclic() -> impl Strategy<Value = Vec<Vec<usize>>> {
    dag().prop_flat_map(|deps| {
        let n = deps.len();
        let cycle = Just((0..n).collect::<Vec<usize>>())
            .prop_shuffle()
            .prop_flat_map(move |order| (1..=n.min(8)).prop_map(move |k| order[..k].to_vec()));
        (Just(deps), cycle).prop_map(|(mut deps, cycle)| {
            for i in 0..cycle.len() {
                let (from, to) = (cycle[i], cycle[(i + 1) % cycle.len()]);
                if !deps[from].contains(&to) {
                    deps[from].push(to);
                }
            }
            deps
        })
    })
}

fn is_real_cycle(deps: &[Vec<usize>], path: &[usize]) -> bool {
    let inner = &path[..path.len() - 1];
    let distinct: BTreeSet<_> = inner.iter().collect();
    path.len() >= 2
        && path.first() == path.last()
        && distinct.len() == inner.len()
        && path.windows(2).all(|w| deps[w[0]].contains(&w[1]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn waves_respect_every_edge_and_place_every_node_once(deps in dag()) {
        let w = waves(&deps).expect("a DAG has waves");
        let mut wave_of = BTreeMap::new();
        for (k, wave) in w.iter().enumerate() {
            for &node in wave {
                prop_assert!(wave_of.insert(node, k).is_none(), "node {} placed twice", node);
            }
        }
        prop_assert_eq!(wave_of.len(), deps.len());
        for (node, ds) in deps.iter().enumerate() {
            for d in ds {
                prop_assert!(wave_of[d] < wave_of[&node], "{} must come before {}", d, node);
            }
            // Tight layering: a node is as early as its dependencies allow.
            let earliest = ds.iter().map(|d| wave_of[d] + 1).max().unwrap_or(0);
            prop_assert_eq!(wave_of[&node], earliest);
        }
    }

    #[test]
    fn an_injected_cycle_is_always_found_and_every_path_is_a_real_cycle(deps in cyclic()) {
        let cycles = waves(&deps).expect_err("a graph with a cycle has no waves");
        prop_assert!(!cycles.is_empty());
        for c in &cycles {
            prop_assert!(is_real_cycle(&deps, c), "not a cycle of the graph: {:?}", c);
        }
    }

    #[test]
    fn resolution_by_name_orders_requirements_first(deps in dag(), pick in proptest::collection::vec(any::<proptest::sample::Index>(), 1..5)) {
        let names: Vec<String> = (0..deps.len()).map(|i| format!("ext{i}")).collect();
        let mut c = Catalog::empty();
        for (i, ds) in deps.iter().enumerate() {
            c.insert(manifest(&names[i], ds.iter().map(|&d| names[d].clone()).collect()), Source::Builtin);
        }
        let wanted: Vec<String> = pick.iter().map(|ix| names[ix.index(names.len())].clone()).collect();
        let r = resolve(&c, &Request::named(&wanted), &Target::default()).expect("resolves");
        let pos: BTreeMap<&str, usize> = r.order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        for w in &wanted {
            prop_assert!(pos.contains_key(w.as_str()));
        }
        for n in &r.order {
            for req in &c.manifest(n).expect("known").requires {
                prop_assert!(pos.get(req.as_str()).is_some_and(|&p| p < pos[n.as_str()]), "{} before {}", req, n);
            }
        }
    }

    #[test]
    fn resolution_by_name_reports_injected_cycles_as_name_paths(deps in cyclic()) {
        let names: Vec<String> = (0..deps.len()).map(|i| format!("ext{i}")).collect();
        let mut c = Catalog::empty();
        for (i, ds) in deps.iter().enumerate() {
            c.insert(manifest(&names[i], ds.iter().map(|&d| names[d].clone()).collect()), Source::Builtin);
        }
        let e = resolve(&c, &Request::named(&names), &Target::default()).expect_err("cycle");
        let mut found = false;
        for p in &e.problems {
            if let Problem::Cycle { path } = p {
                found = true;
                let idx: Vec<usize> = path.iter().map(|n| n[3..].parse().expect("index")).collect();
                prop_assert!(is_real_cycle(&deps, &idx), "not a cycle: {:?}", path);
                prop_assert!(e.to_string().contains(&path.join(" → ")));
            }
        }
        prop_assert!(found, "{}", e);
    }
}

fn manifest(name: &str, requires: Vec<String>) -> Manifest {
    Manifest {
        name: name.into(),
        version: "1".into(),
        description: "synthetic".into(),
        category: Default::default(),
        requires,
        conflicts: Vec::new(),
        requirements: Default::default(),
        install: vec![Step::Apt(AptStep {
            packages: vec!["jq".into()],
            update: false,
        })],
        env: Default::default(),
        path: Vec::new(),
        validate: Vec::new(),
        hooks: Default::default(),
        remove: Default::default(),
    }
}
