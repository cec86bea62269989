//! Dependency graphs over node indices: waves (a topological order in layers) and
//! cycle paths.
//!
//! Kept free of names and manifests so the property tests and the benchmark exercise
//! exactly what the resolver runs.

/// `deps[i]` lists the nodes node `i` depends on (they must come before it).
///
/// Returns the nodes in waves: every node's dependencies are in earlier waves, and
/// each wave holds every node whose dependencies are all done, ascending. Nodes of one
/// wave are independent of each other, so they may be installed together.
///
/// On a cycle, returns the cycles found (each as a path `a, b, c, a` where every node
/// depends on the next), at least one and at most `MAX_CYCLES`.
pub fn waves(deps: &[Vec<usize>]) -> Result<Vec<Vec<usize>>, Vec<Vec<usize>>> {
    let n = deps.len();
    let mut missing = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            missing[i] += 1;
            dependents[d].push(i);
        }
    }
    let mut current: Vec<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
    let mut out = Vec::new();
    let mut placed = 0;
    while !current.is_empty() {
        placed += current.len();
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dependents[i] {
                missing[j] -= 1;
                if missing[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::replace(&mut current, next));
    }
    if placed == n {
        Ok(out)
    } else {
        // Every node left has a dependency left: the rest contains a cycle.
        let left: Vec<bool> = missing.iter().map(|&m| m > 0).collect();
        Err(cycles(deps, &left))
    }
}

/// At most this many cycles are reported; one is enough to act on, a few show the shape.
pub const MAX_CYCLES: usize = 5;

/// Cycles among the nodes where `within` is true, found by depth-first search; each
/// path starts and ends with the same node and follows dependency edges.
pub fn cycles(deps: &[Vec<usize>], within: &[bool]) -> Vec<Vec<usize>> {
    const WHITE: u8 = 0;
    const GRAY: u8 = 1;
    const BLACK: u8 = 2;
    let n = deps.len();
    let mut color = vec![WHITE; n];
    let mut found: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if !within[start] || color[start] != WHITE {
            continue;
        }
        // Iterative DFS: (node, index of the next dependency to look at).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = GRAY;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                if !within[d] {
                    continue;
                }
                match color[d] {
                    WHITE => {
                        color[d] = GRAY;
                        stack.push((d, 0));
                    }
                    GRAY => {
                        let pos = stack.iter().position(|&(s, _)| s == d).unwrap_or(0);
                        let mut path: Vec<usize> = stack[pos..].iter().map(|&(s, _)| s).collect();
                        path.push(d);
                        if !found.iter().any(|c| same_cycle(c, &path)) {
                            found.push(path);
                            if found.len() >= MAX_CYCLES {
                                return found;
                            }
                        }
                    }
                    _ => {}
                }
            } else {
                color[node] = BLACK;
                stack.pop();
            }
        }
    }
    found
}

/// True when two closed paths are the same cycle entered at different nodes.
fn same_cycle(a: &[usize], b: &[usize]) -> bool {
    let (a, b) = (&a[..a.len() - 1], &b[..b.len() - 1]);
    if a.len() != b.len() {
        return false;
    }
    let Some(shift) = b.iter().position(|&x| x == a[0]) else {
        return false;
    };
    (0..a.len()).all(|i| a[i] == b[(i + shift) % b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_one_node_per_wave() {
        // 0 depends on 1, 1 on 2.
        let w = waves(&[vec![1], vec![2], vec![]]).unwrap();
        assert_eq!(w, vec![vec![2], vec![1], vec![0]]);
    }

    #[test]
    fn independent_nodes_share_a_wave() {
        // 0 and 1 depend on 2; 3 depends on 0 and 1.
        let w = waves(&[vec![2], vec![2], vec![], vec![0, 1]]).unwrap();
        assert_eq!(w, vec![vec![2], vec![0, 1], vec![3]]);
    }

    #[test]
    fn a_cycle_is_reported_as_a_closed_path() {
        // 0 → 1 → 2 → 0, and 3 hangs off the cycle.
        let c = waves(&[vec![1], vec![2], vec![0], vec![0]]).unwrap_err();
        assert_eq!(c, vec![vec![0, 1, 2, 0]]);
    }

    #[test]
    fn a_self_dependency_is_a_cycle_of_one() {
        let c = waves(&[vec![], vec![1]]).unwrap_err();
        assert_eq!(c, vec![vec![1, 1]]);
    }

    #[test]
    fn rotations_of_a_cycle_are_the_same_cycle() {
        assert!(same_cycle(&[1, 2, 3, 1], &[3, 1, 2, 3]));
        assert!(!same_cycle(&[1, 2, 3, 1], &[1, 3, 2, 1]));
    }
}
