//! The catalog: every extension and profile sindri knows, built in or from the user's
//! directories.
//!
//! The built-in catalog is embedded in the binary (see `build.rs`). A user directory
//! (`extensions.sources` in sindri.yaml, relative to the config file) holds manifests as
//! `<name>.yaml` and profiles as `profiles/<name>.yaml`, the same layout as the
//! built-in `catalog/` directory. A user extension or profile with a built-in's name
//! replaces it, so a team can pin its own version of `nodejs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sindri_core::{Error, Result};
use sindri_spec::ExtensionsSpec;

use crate::manifest::{Manifest, Profile};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

/// Where a manifest or profile came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Embedded in sindri.
    Builtin,
    /// A file of a user directory.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin => f.write_str("built-in"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An extension with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The manifest.
    pub manifest: Manifest,
    /// Its origin.
    pub source: Source,
}

/// A profile with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileEntry {
    /// The profile.
    pub profile: Profile,
    /// Its origin.
    pub source: Source,
}

/// Extensions and profiles by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    extensions: BTreeMap<String, Entry>,
    profiles: BTreeMap<String, ProfileEntry>,
}

impl Catalog {
    /// An empty catalog (for tests and synthetic catalogs).
    pub fn empty() -> Catalog {
        Catalog::default()
    }

    /// The catalog embedded in sindri. An error here is a bug in a built-in manifest;
    /// the crate's tests load every one.
    pub fn builtin() -> Result<Catalog> {
        let mut c = Catalog::empty();
        let mut problems = Vec::new();
        for (file, text) in embedded::EXTENSIONS {
            match Manifest::parse(text, &format!("built-in {file}")) {
                Ok(m) => {
                    check_file_name(&mut problems, file, &m.name, "extension");
                    c.insert(m, Source::Builtin);
                }
                Err(p) => problems.extend(p),
            }
        }
        for (file, text) in embedded::PROFILES {
            match Profile::parse(text, &format!("built-in profiles/{file}")) {
                Ok(p) => {
                    check_file_name(&mut problems, file, &p.name, "profile");
                    c.insert_profile(p, Source::Builtin);
                }
                Err(p) => problems.extend(p),
            }
        }
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(Error::internal(format!(
                "the built-in extension catalog is broken:\n  {}",
                problems.join("\n  ")
            )))
        }
    }

    /// The built-in catalog plus the directories of `extensions.sources`, anchored at
    /// `base_dir` (the config file's directory).
    pub fn for_spec(spec: &ExtensionsSpec, base_dir: &Path) -> Result<Catalog> {
        let mut c = Catalog::builtin()?;
        let dirs: Vec<PathBuf> = spec.sources.iter().map(|s| base_dir.join(s)).collect();
        c.load_dirs(&dirs)?;
        Ok(c)
    }

    /// Adds every manifest and profile of `dirs`; a name defined by a directory
    /// replaces the built-in one. Every problem of every file is reported at once.
    pub fn load_dirs(&mut self, dirs: &[PathBuf]) -> Result<()> {
        let mut problems = Vec::new();
        let mut from_user: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut profiles_from_user: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in dirs {
            if !dir.is_dir() {
                problems.push(format!(
                    "{}: not a directory (extensions.sources entries are directories of manifests, relative to the config file)",
                    dir.display()
                ));
                continue;
            }
            for file in yaml_files(dir, &mut problems) {
                let text = match std::fs::read_to_string(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        problems.push(format!("{}: {e}", file.display()));
                        continue;
                    }
                };
                match Manifest::parse(&text, &file.display().to_string()) {
                    Ok(m) => {
                        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                        if stem != m.name {
                            problems.push(format!(
                                "{}: defines extension `{}`; name the file `{}.yaml`",
                                file.display(),
                                m.name,
                                m.name
                            ));
                            continue;
                        }
                        if let Some(other) = from_user.insert(m.name.clone(), file.clone()) {
                            problems.push(format!(
                                "extension `{}` is defined twice: {} and {}",
                                m.name,
                                other.display(),
                                file.display()
                            ));
                        }
                        self.insert(m, Source::File(file));
                    }
                    Err(p) => problems.extend(p),
                }
            }
            let pdir = dir.join("profiles");
            if pdir.is_dir() {
                for file in yaml_files(&pdir, &mut problems) {
                    let text = match std::fs::read_to_string(&file) {
                        Ok(t) => t,
                        Err(e) => {
                            problems.push(format!("{}: {e}", file.display()));
                            continue;
                        }
                    };
                    match Profile::parse(&text, &file.display().to_string()) {
                        Ok(p) => {
                            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                            if stem != p.name {
                                problems.push(format!(
                                    "{}: defines profile `{}`; name the file `{}.yaml`",
                                    file.display(),
                                    p.name,
                                    p.name
                                ));
                                continue;
                            }
                            if let Some(other) =
                                profiles_from_user.insert(p.name.clone(), file.clone())
                            {
                                problems.push(format!(
                                    "profile `{}` is defined twice: {} and {}",
                                    p.name,
                                    other.display(),
                                    file.display()
                                ));
                            }
                            self.insert_profile(p, Source::File(file));
                        }
                        Err(p) => problems.extend(p),
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{} problem(s) in extension manifests:\n  {}",
                problems.len(),
                problems.join("\n  ")
            ))
            .with_hint("`sindri extension schema` prints the manifest's JSON Schema"))
        }
    }

    /// Adds (or replaces) an extension.
    pub fn insert(&mut self, manifest: Manifest, source: Source) {
        self.extensions
            .insert(manifest.name.clone(), Entry { manifest, source });
    }

    /// Adds (or replaces) a profile.
    pub fn insert_profile(&mut self, profile: Profile, source: Source) {
        self.profiles
            .insert(profile.name.clone(), ProfileEntry { profile, source });
    }

    /// An extension by name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.extensions.get(name)
    }

    /// An extension's manifest by name.
    pub fn manifest(&self, name: &str) -> Option<&Manifest> {
        self.extensions.get(name).map(|e| &e.manifest)
    }

    /// A profile by name.
    pub fn profile(&self, name: &str) -> Option<&ProfileEntry> {
        self.profiles.get(name)
    }

    /// Every extension, by name.
    pub fn extensions(&self) -> impl Iterator<Item = &Entry> {
        self.extensions.values()
    }

    /// Every profile, by name.
    pub fn profiles(&self) -> impl Iterator<Item = &ProfileEntry> {
        self.profiles.values()
    }

    /// How many extensions there are.
    pub fn len(&self) -> usize {
        self.extensions.len()
    }

    /// True when there is no extension.
    pub fn is_empty(&self) -> bool {
        self.extensions.is_empty()
    }

    /// The extension name closest to a misspelled one, if any is close.
    pub fn suggest_extension(&self, name: &str) -> Option<&str> {
        did_you_mean(name, self.extensions.keys().map(String::as_str))
    }

    /// The profile name closest to a misspelled one, if any is close.
    pub fn suggest_profile(&self, name: &str) -> Option<&str> {
        did_you_mean(name, self.profiles.keys().map(String::as_str))
    }

    /// A profile's extensions, with those of the profiles it extends, in order and
    /// without repeats. Unknown or cyclic `extends` are errors naming the chain.
    pub fn profile_extensions(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut chain = Vec::new();
        self.expand_profile(name, &mut chain, &mut out)?;
        Ok(out)
    }

    fn expand_profile(
        &self,
        name: &str,
        chain: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        if let Some(pos) = chain.iter().position(|c| c == name) {
            let mut cycle: Vec<&str> = chain[pos..].iter().map(String::as_str).collect();
            cycle.push(name);
            return Err(Error::invalid(format!(
                "profiles extend each other in a cycle: {}",
                cycle.join(" → ")
            )));
        }
        let Some(entry) = self.profiles.get(name) else {
            let mut msg = format!("unknown profile `{name}`");
            if let Some(parent) = chain.last() {
                msg.push_str(&format!(" (extended by profile `{parent}`)"));
            }
            let mut e = Error::invalid(msg);
            e = match self.suggest_profile(name) {
                Some(s) => e.with_hint(format!(
                    "did you mean `{s}`? (`sindri profile list` shows every profile)"
                )),
                None => e.with_hint("`sindri profile list` shows every profile"),
            };
            return Err(e);
        };
        chain.push(name.to_string());
        for parent in &entry.profile.extends {
            self.expand_profile(parent, chain, out)?;
        }
        chain.pop();
        for e in &entry.profile.extensions {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        Ok(())
    }
}

/// The candidate closest to `name`, if it is close enough to be a likely typo (or a
/// prefix such as `node` for `nodejs`).
pub fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

fn check_file_name(problems: &mut Vec<String>, file: &str, name: &str, what: &str) {
    if file.strip_suffix(".yaml") != Some(name) {
        problems.push(format!(
            "built-in {file}: defines {what} `{name}`; name the file `{name}.yaml`"
        ));
    }
}

fn yaml_files(dir: &Path, problems: &mut Vec<String>) -> Vec<PathBuf> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_and_prefixes() {
        let names = ["nodejs", "python", "pytorch-cpu", "ripgrep", "git"];
        assert_eq!(did_you_mean("pyhton", names.into_iter()), Some("python"));
        assert_eq!(did_you_mean("node", names.into_iter()), Some("nodejs"));
        assert_eq!(
            did_you_mean("pytorch", names.into_iter()),
            Some("pytorch-cpu")
        );
        assert_eq!(did_you_mean("ripgre", names.into_iter()), Some("ripgrep"));
        assert_eq!(did_you_mean("kubernetes", names.into_iter()), None);
    }
}
