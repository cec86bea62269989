//! Embeds the built-in catalog: every `catalog/*.yaml` (extensions) and
//! `catalog/profiles/*.yaml` becomes an `include_str!` entry of a generated table, so
//! adding a manifest needs no code change and the binary carries no file system
//! dependency.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn table(out: &mut String, name: &str, files: &[PathBuf]) {
    writeln!(out, "/// Embedded `(file name, content)` pairs.").ok();
    writeln!(out, "pub static {name}: &[(&str, &str)] = &[").ok();
    for f in files {
        let file_name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        writeln!(
            out,
            "    ({file_name:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .ok();
    }
    writeln!(out, "];").ok();
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let catalog = root.join("catalog");
    let profiles = catalog.join("profiles");
    println!("cargo:rerun-if-changed={}", catalog.display());
    println!("cargo:rerun-if-changed={}", profiles.display());
    let ext_files = yaml_files(&catalog);
    let profile_files = yaml_files(&profiles);
    for f in ext_files.iter().chain(&profile_files) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut out = String::new();
    table(&mut out, "EXTENSIONS", &ext_files);
    table(&mut out, "PROFILES", &profile_files);
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("catalog.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
}
