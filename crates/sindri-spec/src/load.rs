//! Loading `sindri.yaml`: YAML → positioned tree → structural check against the
//! generated schema → semantic checks → typed [`Spec`].
//!
//! Every stage adds to one list of problems, and the list is reported whole, in file
//! order: a person fixes the file in one pass instead of one error per run.

use std::path::Path;

use serde::Deserialize;

use crate::de::{NodeDe, Step};
use crate::diagnostic::{Diagnostic, Diagnostics, Mark, PathBuf, Problem};
use crate::model::Spec;
use crate::yaml::{self, Kind, Node};
use crate::{semantic, table, validate};

/// Reads and loads the configuration file at `path`.
///
/// A file that cannot be read is reported as a single diagnostic with line 0.
pub fn load_file(path: &Path) -> Result<Spec, Diagnostics> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => load_str(&source, &file),
        Err(e) => {
            let (found, hint) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    "no such file".to_string(),
                    Some("create one with `sindri config init --provider docker`".to_string()),
                ),
                std::io::ErrorKind::InvalidData => (
                    "a file that is not UTF-8 text".to_string(),
                    Some("save the file as UTF-8".to_string()),
                ),
                _ => (format!("a file that cannot be read ({e})"), None),
            };
            Err(Diagnostics::new(vec![Diagnostic::whole_file(
                &file,
                found,
                "a readable sindri.yaml",
                hint,
            )]))
        }
    }
}

/// Loads a configuration from its text; `file_name` is used in the diagnostics.
pub fn load_str(source: &str, file_name: &str) -> Result<Spec, Diagnostics> {
    let parsed = yaml::parse(source);
    let mut problems = parsed.problems;
    let mut spec = None;
    if !parsed.fatal {
        match parsed.root {
            None if problems.is_empty() => problems.push(empty_file(source)),
            None => {}
            Some(root) => check_document(&root, &mut problems, &mut spec),
        }
    }
    match spec {
        Some(spec) if problems.is_empty() => Ok(spec),
        _ => Err(finish(problems, source, file_name)),
    }
}

fn empty_file(source: &str) -> Problem {
    let found = if source.trim().is_empty() {
        "an empty file"
    } else {
        "a file with only comments"
    };
    Problem::new(
        Mark { line: 1, col: 1 },
        PathBuf::root(),
        found,
        "a mapping with at least `name` and `deployment`",
        Some("start from `sindri config init --provider docker`".into()),
    )
}

fn check_document(root: &Node, problems: &mut Vec<Problem>, spec: &mut Option<Spec>) {
    match &root.kind {
        Kind::Map(_) => {}
        _ => {
            let found = if root.is_null() {
                "an empty document".to_string()
            } else {
                validate::describe_node(root)
            };
            problems.push(Problem::new(
                root.start,
                PathBuf::root(),
                found,
                "a mapping with at least `name` and `deployment` at the top level",
                Some("start from `sindri config init --provider docker`".into()),
            ));
            return;
        }
    }
    problems.extend(validate::check(root, &table::SCHEMA));
    problems.extend(semantic::check(root));
    if !problems.is_empty() {
        return;
    }
    // The checks above cover everything serde enforces; this is the last line of
    // defence, and it still says where.
    match Spec::deserialize(NodeDe(root)) {
        Ok(s) => *spec = Some(s),
        Err(e) => problems.push(serde_problem(root, e)),
    }
}

/// Positions a serde error at the deepest node along its path.
fn serde_problem(root: &Node, e: crate::de::Error) -> Problem {
    let mut node = root;
    let mut path = PathBuf::root();
    for step in e.reversed_path.iter().rev() {
        let next = match step {
            Step::Key(k) => {
                path.push_key(k);
                node.get(k)
            }
            Step::Index(i) => {
                path.push_index(*i);
                node.items().get(*i)
            }
        };
        if let Some(n) = next {
            node = n;
        }
    }
    let (found, expected) = match e.message.split_once("; expected ") {
        Some((f, x)) => (f.trim_start_matches("found ").to_string(), x.to_string()),
        None => (e.message, "a value the model accepts".to_string()),
    };
    Problem::new(node.start, path, found, expected, None).with_end(node.end)
}

fn finish(mut problems: Vec<Problem>, source: &str, file_name: &str) -> Diagnostics {
    problems.sort_by_key(|p| p.start);
    // A problem inside an anchored value shows up once per alias; report it once.
    let mut seen: Vec<(Mark, String, String)> = Vec::new();
    problems.retain(|p| {
        let key = (p.start, p.found.clone(), p.expected.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    // The parser does not count a byte order mark; neither does the snippet.
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines: Vec<&str> = text.lines().collect();
    Diagnostics::new(
        problems
            .into_iter()
            .map(|p| Diagnostic::from_problem(p, file_name, &lines))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde alone notices is still reported with a path and a position.
    #[test]
    fn serde_errors_are_positioned() {
        let src =
            "name: dev\ndeployment:\n  provider: docker\n  resources:\n    memory: 2 parsecs\n";
        let root = yaml::parse(src).root.unwrap();
        let err = Spec::deserialize(NodeDe(&root)).unwrap_err();
        let p = serde_problem(&root, err);
        assert_eq!(p.path, "deployment.resources.memory");
        assert_eq!((p.start.line, p.start.col), (5, 13));
        assert_eq!(p.found, "unit `parsecs` in `2 parsecs`");

        let src = "name: dev\ndeployment:\n  provider: docker\n  ports: [80, 1]\nsecrets: [{name: A, source: env}, {name: B}]\n";
        let root = yaml::parse(src).root.unwrap();
        let err = Spec::deserialize(NodeDe(&root)).unwrap_err();
        let p = serde_problem(&root, err);
        assert_eq!(p.path, "secrets[1]");
        assert_eq!((p.start.line, p.start.col), (5, 35));
        assert!(p.found.contains("missing field `source`"), "{}", p.found);
    }
}
