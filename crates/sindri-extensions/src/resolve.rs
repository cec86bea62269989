//! From "profile `ml` plus `rust`" to the exact extensions to install, in an order
//! that respects every `requires`, in waves of independent extensions.
//!
//! Everything that can be known before touching the environment is checked here, and
//! every problem is reported at once: unknown extensions and profiles (with "did you
//! mean"), dependency cycles (with the full path), conflicts (saying why each side is
//! there) and requirements the spec cannot meet (a GPU, memory, disk, the network).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use sindri_core::Error;
use sindri_spec::{ByteSize, Spec};

use crate::catalog::Catalog;
use crate::graph;

/// What to install: a profile and extension names, as in `extensions:` of sindri.yaml
/// or on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// A profile whose extensions are wanted.
    pub profile: Option<String>,
    /// Extensions wanted in addition, with where each was asked for.
    pub extensions: Vec<(String, Reason)>,
    /// Extensions already in the environment: they are not installed again, but a
    /// conflict with one of them is an error.
    pub present: Vec<String>,
}

impl Request {
    /// The request of sindri.yaml's `extensions:` section.
    pub fn from_spec(spec: &sindri_spec::ExtensionsSpec) -> Request {
        Request {
            profile: spec.profile.clone(),
            extensions: spec
                .active
                .iter()
                .map(|n| (n.clone(), Reason::Active))
                .collect(),
            present: Vec::new(),
        }
    }

    /// Extensions named on the command line.
    pub fn named<S: AsRef<str>>(names: &[S]) -> Request {
        Request {
            profile: None,
            extensions: names
                .iter()
                .map(|n| (n.as_ref().to_string(), Reason::Named))
                .collect(),
            present: Vec::new(),
        }
    }
}

/// Why an extension is part of a resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "by")]
pub enum Reason {
    /// Listed in `extensions.active`.
    Active,
    /// Part of the profile.
    Profile(String),
    /// Named on the command line.
    Named,
    /// Required by another extension.
    RequiredBy(String),
    /// Already in the environment.
    Present,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Active => f.write_str("listed in extensions.active"),
            Reason::Profile(p) => write!(f, "in profile `{p}`"),
            Reason::Named => f.write_str("asked for"),
            Reason::RequiredBy(e) => write!(f, "required by `{e}`"),
            Reason::Present => f.write_str("already installed"),
        }
    }
}

/// What the environment offers, from `deployment.resources`; `None` is unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target {
    /// GPUs requested.
    pub gpus: Option<u32>,
    /// Memory.
    pub memory: Option<ByteSize>,
    /// Disk.
    pub disk: Option<ByteSize>,
    /// Why the environment cannot reach the network, when the spec says so
    /// (`providers.docker.network: none`); `None` when it can, as far as the spec tells.
    pub offline: Option<&'static str>,
}

impl Target {
    /// What the spec asks of the provider.
    pub fn from_spec(spec: &Spec) -> Target {
        let r = &spec.deployment.resources;
        // Docker's `none` network gives the container a loopback interface only.
        let docker_none = spec.deployment.provider == sindri_spec::ProviderKind::Docker
            && spec
                .providers
                .docker
                .as_ref()
                .and_then(|d| d.network.as_deref())
                == Some("none");
        Target {
            gpus: r.gpu.as_ref().map(|g| g.count),
            memory: r.memory,
            disk: r.disk,
            offline: docker_none.then_some("providers.docker.network is `none`"),
        }
    }
}

/// A problem found while resolving. Nothing has been installed when one is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum Problem {
    /// The profile does not exist.
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The closest existing profile.
        suggestion: Option<String>,
    },
    /// The profile exists but extends an unknown profile, or extends in a cycle.
    BrokenProfile {
        /// The profile asked for.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// An extension does not exist.
    UnknownExtension {
        /// The name asked for.
        name: String,
        /// Who asked for it.
        wanted: String,
        /// The closest existing extension.
        suggestion: Option<String>,
    },
    /// Extensions require each other in a circle.
    Cycle {
        /// The path, first and last the same: each requires the next.
        path: Vec<String>,
    },
    /// Two extensions that cannot be together are both wanted.
    Conflict {
        /// One side and why it is there.
        a: String,
        /// Why `a` is there.
        a_why: String,
        /// The other side.
        b: String,
        /// Why `b` is there.
        b_why: String,
    },
    /// The spec does not give the environment what an extension needs.
    Requirement {
        /// The extension (or extensions, comma-separated, for a sum like disk).
        extension: String,
        /// What is missing.
        message: String,
        /// What to change.
        hint: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnknownProfile { name, suggestion } => {
                write!(f, "unknown profile `{name}`")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                Ok(())
            }
            Problem::BrokenProfile { name, message } => write!(f, "profile `{name}`: {message}"),
            Problem::UnknownExtension {
                name,
                wanted,
                suggestion,
            } => {
                write!(f, "unknown extension `{name}` ({wanted})")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                Ok(())
            }
            Problem::Cycle { path } => {
                write!(
                    f,
                    "extensions require each other in a cycle: {}",
                    path.join(" → ")
                )
            }
            Problem::Conflict { a, a_why, b, b_why } => write!(
                f,
                "`{a}` ({a_why}) conflicts with `{b}` ({b_why}); choose one"
            ),
            Problem::Requirement { message, hint, .. } => write!(f, "{message}; {hint}"),
        }
    }
}

/// Every problem of a request, reported together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolveError {
    /// The problems, in a stable order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems with the requested extensions:", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ResolveError {}

impl From<ResolveError> for Error {
    fn from(e: ResolveError) -> Error {
        Error::invalid(e.to_string()).with_hint(
            "nothing was installed; `sindri extension list` and `sindri profile list` show what exists, \
             `sindri extension info NAME` what one requires",
        )
    }
}

/// The extensions to install, ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Every extension, each after everything it requires.
    pub order: Vec<String>,
    /// The same extensions in waves: each wave only requires earlier waves, so the
    /// extensions of one wave can be installed together.
    pub waves: Vec<Vec<String>>,
    /// Why each extension is included (the first reason found).
    pub reasons: BTreeMap<String, Reason>,
}

impl Resolution {
    /// True when nothing is to be installed.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// True when `name` is part of this resolution.
    pub fn contains(&self, name: &str) -> bool {
        self.reasons.contains_key(name)
    }
}

/// Resolves `req` against `catalog` for an environment offering `target`.
pub fn resolve(
    catalog: &Catalog,
    req: &Request,
    target: &Target,
) -> Result<Resolution, ResolveError> {
    let mut problems = Vec::new();
    let mut reasons: BTreeMap<String, Reason> = BTreeMap::new();
    // Roots in the order asked for; the closure is walked breadth-first from them.
    let mut queue: Vec<String> = Vec::new();
    if let Some(profile) = &req.profile {
        match catalog.profile_extensions(profile) {
            Ok(names) => {
                for n in names {
                    if !reasons.contains_key(&n) {
                        reasons.insert(n.clone(), Reason::Profile(profile.clone()));
                        queue.push(n);
                    }
                }
            }
            Err(_) if catalog.profile(profile).is_none() => {
                problems.push(Problem::UnknownProfile {
                    name: profile.clone(),
                    suggestion: catalog.suggest_profile(profile).map(str::to_string),
                })
            }
            Err(e) => problems.push(Problem::BrokenProfile {
                name: profile.clone(),
                message: match e.hint() {
                    Some(h) => format!("{}; {h}", e.message()),
                    None => e.message().to_string(),
                },
            }),
        }
    }
    for (n, why) in &req.extensions {
        if !reasons.contains_key(n) {
            reasons.insert(n.clone(), why.clone());
            queue.push(n.clone());
        }
    }

    // The closure over `requires`; unknown names are collected, not followed.
    let mut i = 0;
    let mut unknown = BTreeSet::new();
    while i < queue.len() {
        let name = queue[i].clone();
        i += 1;
        let Some(m) = catalog.manifest(&name) else {
            if unknown.insert(name.clone()) {
                problems.push(Problem::UnknownExtension {
                    suggestion: catalog.suggest_extension(&name).map(str::to_string),
                    wanted: reasons
                        .get(&name)
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                    name,
                });
            }
            continue;
        };
        for r in &m.requires {
            if !reasons.contains_key(r) {
                reasons.insert(r.clone(), Reason::RequiredBy(name.clone()));
                queue.push(r.clone());
            }
        }
    }
    for n in &unknown {
        reasons.remove(n);
    }

    // Index the known extensions in name order, so waves come out sorted by name.
    let names: Vec<&String> = reasons.keys().collect();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            catalog
                .manifest(n)
                .map(|m| {
                    m.requires
                        .iter()
                        .filter_map(|r| index.get(r.as_str()).copied())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let waves = match graph::waves(&deps) {
        Ok(w) => w,
        Err(cycles) => {
            for c in cycles {
                problems.push(Problem::Cycle {
                    path: c.into_iter().map(|i| names[i].clone()).collect(),
                });
            }
            Vec::new()
        }
    };

    check_conflicts(catalog, &reasons, &req.present, &mut problems);
    check_requirements(catalog, &reasons, target, &mut problems);

    if !problems.is_empty() {
        return Err(ResolveError { problems });
    }
    let waves: Vec<Vec<String>> = waves
        .into_iter()
        .map(|w| w.into_iter().map(|i| names[i].clone()).collect())
        .collect();
    Ok(Resolution {
        order: waves.iter().flatten().cloned().collect(),
        waves,
        reasons,
    })
}

fn check_conflicts(
    catalog: &Catalog,
    reasons: &BTreeMap<String, Reason>,
    present: &[String],
    problems: &mut Vec<Problem>,
) {
    let mut all: BTreeMap<&str, String> = reasons
        .iter()
        .map(|(n, r)| (n.as_str(), r.to_string()))
        .collect();
    for p in present {
        all.entry(p.as_str())
            .or_insert_with(|| Reason::Present.to_string());
    }
    // Every pair is found from the side that declares it (both sides are in `all`),
    // so one pass over the declared conflicts suffices.
    let mut seen = BTreeSet::new();
    for &a in all.keys() {
        let Some(m) = catalog.manifest(a) else {
            continue;
        };
        for b in &m.conflicts {
            let b = b.as_str();
            if b == a || !all.contains_key(b) {
                continue;
            }
            // Two present extensions were accepted before; only new pairs are refused.
            if !reasons.contains_key(a) && !reasons.contains_key(b) {
                continue;
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if seen.insert(key) {
                let (x, y) = key;
                problems.push(Problem::Conflict {
                    a: x.to_string(),
                    a_why: all[x].clone(),
                    b: y.to_string(),
                    b_why: all[y].clone(),
                });
            }
        }
    }
}

fn check_requirements(
    catalog: &Catalog,
    reasons: &BTreeMap<String, Reason>,
    target: &Target,
    problems: &mut Vec<Problem>,
) {
    let mut disk_total = 0u64;
    let mut disk_users = Vec::new();
    let mut network_users = Vec::new();
    for name in reasons.keys() {
        let Some(m) = catalog.manifest(name) else {
            continue;
        };
        if m.needs_network() {
            network_users.push(name.clone());
        }
        let req = &m.requirements;
        if req.gpu && target.gpus.is_none() {
            problems.push(Problem::Requirement {
                extension: name.clone(),
                message: format!(
                    "`{name}` ({}) needs a GPU, and deployment.resources.gpu is not set",
                    reasons[name]
                ),
                hint: format!(
                    "add `gpu: {{count: 1}}` under deployment.resources, or leave `{name}` out"
                ),
            });
        }
        if let (Some(need), Some(have)) = (req.memory, target.memory)
            && need.bytes() > have.bytes()
        {
            problems.push(Problem::Requirement {
                extension: name.clone(),
                message: format!(
                    "`{name}` ({}) needs {need} of memory, and deployment.resources.memory is {have}",
                    reasons[name]
                ),
                hint: format!("set deployment.resources.memory to at least {need}, or leave `{name}` out"),
            });
        }
        if let Some(d) = req.disk {
            disk_total += d.bytes();
            disk_users.push(format!("{name} {d}"));
        }
    }
    if let Some(why) = target.offline
        && !network_users.is_empty()
    {
        let them = if network_users.len() == 1 {
            "it"
        } else {
            "them"
        };
        problems.push(Problem::Requirement {
            extension: network_users.join(", "),
            message: format!(
                "{} download{} while installing, and the environment has no network ({why})",
                network_users
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if network_users.len() == 1 { "s" } else { "" },
            ),
            hint: format!(
                "give the environment a network with internet access (providers.docker.network), or leave {them} out"
            ),
        });
    }
    if let Some(have) = target.disk
        && disk_total > have.bytes()
    {
        let total = ByteSize(disk_total);
        problems.push(Problem::Requirement {
            extension: disk_users.iter().map(|u| u.split(' ').next().unwrap_or("")).collect::<Vec<_>>().join(", "),
            message: format!(
                "the extensions need about {total} of disk ({}), and deployment.resources.disk is {have}",
                disk_users.join(", ")
            ),
            hint: format!("set deployment.resources.disk to at least {total}, or install fewer extensions"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Source;
    use crate::manifest::{Manifest, Profile, Requirements};

    fn ext(name: &str, requires: &[&str], conflicts: &[&str]) -> Manifest {
        Manifest {
            name: name.into(),
            version: "1".into(),
            description: format!("{name} test extension"),
            category: Default::default(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
            conflicts: conflicts.iter().map(|s| s.to_string()).collect(),
            requirements: Requirements::default(),
            install: vec![crate::manifest::Step::Apt(crate::manifest::AptStep {
                packages: vec![name.into()],
                update: false,
            })],
            env: Default::default(),
            path: Vec::new(),
            validate: Vec::new(),
            hooks: Default::default(),
            remove: Default::default(),
        }
    }

    fn catalog(exts: Vec<Manifest>) -> Catalog {
        let mut c = Catalog::empty();
        for m in exts {
            c.insert(m, Source::Builtin);
        }
        c
    }

    #[test]
    fn requirements_come_first_and_independent_ones_share_a_wave() {
        let c = catalog(vec![
            ext("jupyter", &["python"], &[]),
            ext("uv", &["python"], &[]),
            ext("python", &["curl"], &[]),
            ext("curl", &[], &[]),
            ext("jq", &[], &[]),
        ]);
        let r = resolve(
            &c,
            &Request::named(&["jupyter", "uv", "jq"]),
            &Target::default(),
        )
        .unwrap();
        assert_eq!(
            r.waves,
            vec![vec!["curl", "jq"], vec!["python"], vec!["jupyter", "uv"]]
        );
        assert_eq!(r.order, ["curl", "jq", "python", "jupyter", "uv"]);
        assert_eq!(r.reasons["python"], Reason::RequiredBy("jupyter".into()));
        assert_eq!(r.reasons["jq"], Reason::Named);
    }

    #[test]
    fn a_cycle_is_reported_with_its_full_path() {
        let c = catalog(vec![
            ext("a", &["b"], &[]),
            ext("b", &["c"], &[]),
            ext("c", &["a"], &[]),
        ]);
        let e = resolve(&c, &Request::named(&["a"]), &Target::default()).unwrap_err();
        assert_eq!(
            e.problems,
            vec![Problem::Cycle {
                path: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }]
        );
        assert_eq!(
            e.to_string(),
            "extensions require each other in a cycle: a → b → c → a"
        );
    }

    #[test]
    fn unknown_names_get_a_suggestion_and_every_problem_is_listed() {
        let mut c = catalog(vec![
            ext("python", &[], &[]),
            ext("jupyter", &["pyhton"], &[]),
            ext("nodejs", &[], &[]),
        ]);
        c.insert_profile(
            Profile {
                name: "ml".into(),
                description: "x".into(),
                extends: vec![],
                extensions: vec!["jupyter".into()],
            },
            Source::Builtin,
        );
        let req = Request {
            profile: Some("ml".into()),
            extensions: vec![("node".into(), Reason::Active)],
            present: vec![],
        };
        let e = resolve(&c, &req, &Target::default()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "unknown extension `pyhton` (required by `jupyter`); did you mean `python`?"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "unknown extension `node` (listed in extensions.active); did you mean `nodejs`?"
            ),
            "{text}"
        );
        assert_eq!(e.problems.len(), 2, "{text}");

        let req = Request {
            profile: Some("mll".into()),
            ..Default::default()
        };
        let e = resolve(&c, &req, &Target::default()).unwrap_err();
        assert_eq!(e.to_string(), "unknown profile `mll`; did you mean `ml`?");
    }

    #[test]
    fn a_conflict_names_both_sides_and_why_they_are_there() {
        let c = catalog(vec![
            ext("docker-cli", &[], &[]),
            ext("podman", &[], &["docker-cli"]),
            ext("devtools", &["docker-cli"], &[]),
        ]);
        let req = Request {
            profile: None,
            extensions: vec![
                ("devtools".into(), Reason::Named),
                ("podman".into(), Reason::Active),
            ],
            present: vec![],
        };
        let e = resolve(&c, &req, &Target::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`docker-cli` (required by `devtools`) conflicts with `podman` (listed in extensions.active); choose one"
        );
        // Against what is already installed, too.
        let req = Request {
            present: vec!["docker-cli".into()],
            ..Request::named(&["podman"])
        };
        let e = resolve(&c, &req, &Target::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("`docker-cli` (already installed) conflicts with `podman` (asked for)"),
            "{e}"
        );
    }

    #[test]
    fn a_gpu_extension_needs_a_gpu_in_the_spec() {
        let mut cuda = ext("cuda-toolkit", &[], &[]);
        cuda.requirements.gpu = true;
        cuda.requirements.memory = Some(ByteSize(8 << 30));
        let c = catalog(vec![cuda]);
        let t = Target {
            gpus: None,
            memory: Some(ByteSize(4 << 30)),
            ..Default::default()
        };
        let e = resolve(&c, &Request::named(&["cuda-toolkit"]), &t).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "`cuda-toolkit` (asked for) needs a GPU, and deployment.resources.gpu is not set"
            ),
            "{text}"
        );
        assert!(
            text.contains("needs 8GiB of memory, and deployment.resources.memory is 4GiB"),
            "{text}"
        );
        let ok = Target {
            gpus: Some(1),
            ..Default::default()
        };
        assert!(resolve(&c, &Request::named(&["cuda-toolkit"]), &ok).is_ok());
    }

    #[test]
    fn an_environment_without_network_refuses_what_downloads() {
        // `offline-tool` only runs a script and does not say it downloads: allowed.
        let mut local = ext("offline-tool", &[], &[]);
        local.install = vec![crate::manifest::Step::Script(crate::manifest::ScriptStep {
            run: "cp /opt/vendor/tool /usr/local/bin/".into(),
            root: true,
            uses: Vec::new(),
        })];
        let mut fetch = local.clone();
        fetch.name = "fetcher".into();
        fetch.requirements.network = true;
        let c = catalog(vec![ext("jq", &[], &[]), local, fetch]);
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker", "image": "debian:bookworm"},
            "providers": {"docker": {"network": "none"}},
        }))
        .expect("spec");
        let t = Target::from_spec(&spec);
        let e = resolve(&c, &Request::named(&["jq", "offline-tool", "fetcher"]), &t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`fetcher`, `jq` download while installing, and the environment has no network \
             (providers.docker.network is `none`); give the environment a network with internet \
             access (providers.docker.network), or leave them out"
        );
        assert!(resolve(&c, &Request::named(&["offline-tool"]), &t).is_ok());
        // Any other network, or the environment's own, is assumed to reach the internet.
        let mut spec = spec;
        spec.providers.docker = None;
        assert!(resolve(&c, &Request::named(&["jq"]), &Target::from_spec(&spec)).is_ok());
    }

    #[test]
    fn disk_needs_add_up() {
        let mut a = ext("a", &[], &[]);
        a.requirements.disk = Some(ByteSize(3 << 30));
        let mut b = ext("b", &[], &[]);
        b.requirements.disk = Some(ByteSize(3 << 30));
        let c = catalog(vec![a, b]);
        let t = Target {
            disk: Some(ByteSize(5 << 30)),
            ..Default::default()
        };
        let e = resolve(&c, &Request::named(&["a", "b"]), &t).unwrap_err();
        assert!(
            e.to_string()
                .contains("need about 6GiB of disk (a 3GiB, b 3GiB)"),
            "{e}"
        );
    }
}
