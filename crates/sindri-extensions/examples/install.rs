//! Installs a profile (or extensions) of the built-in catalog into a fresh Docker
//! environment and prints how long the install took; used by `bench/extensions.sh`.
//!
//!     install --image IMAGE --profile NAME            deploy, install, report, destroy
//!     install --profile NAME --print-apt             the apt packages it would install
//!                                                    (exit 3 if it has other steps)
//!
//! Prints `install_millis=N`, `apt_runs=N` and `extensions=a,b,c` lines.

use std::collections::BTreeSet;

use sindri_core::{DeployOptions, DestroyOptions, NoProgress, ResolvedSpec, dispatch};
use sindri_extensions::{Catalog, Installer, NoInstallProgress, Request, Step, Target, resolve};
use sindri_spec::{ProviderKind, ProvidersSpec, Spec};

fn usage() -> ! {
    eprintln!("usage: install [--image IMAGE] (--profile NAME | --extensions A,B) [--print-apt]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut image = "sindri-test/debian:bookworm".to_string();
    let mut profile = None;
    let mut extensions: Vec<String> = Vec::new();
    let mut print_apt = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--image" => image = args.next().unwrap_or_else(|| usage()),
            "--profile" => profile = Some(args.next().unwrap_or_else(|| usage())),
            "--extensions" => {
                extensions = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--print-apt" => print_apt = true,
            _ => usage(),
        }
    }
    if profile.is_none() && extensions.is_empty() {
        usage();
    }
    let catalog = Catalog::builtin()?;
    let mut req = Request::named(&extensions);
    req.profile = profile;
    let resolution = resolve(&catalog, &req, &Target::default())?;
    if print_apt {
        // Only apt-only profiles compare fairly with one `apt-get install` line.
        let other: Vec<String> = resolution
            .order
            .iter()
            .filter_map(|n| catalog.manifest(n))
            .flat_map(|m| {
                m.install
                    .iter()
                    .filter(|s| !matches!(s, Step::Apt(_)))
                    .map(move |s| format!("{}: {}", m.name, s.label()))
            })
            .collect();
        if !other.is_empty() {
            eprintln!(
                "not only apt packages, so one apt-get line is no fair comparison: {}",
                other.join("; ")
            );
            std::process::exit(3);
        }
        let mut seen = BTreeSet::new();
        let pkgs: Vec<&str> = resolution
            .order
            .iter()
            .filter_map(|n| catalog.manifest(n))
            .flat_map(|m| m.apt_packages())
            .filter(|p| seen.insert(*p))
            .collect();
        println!("{}", pkgs.join(" "));
        return Ok(());
    }

    let dir = tempfile::tempdir()?;
    let name = format!("bench-ext-{}", std::process::id());
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": name,
        "deployment": {"provider": "docker", "image": image},
    }))?;
    let rs = ResolvedSpec::new(spec, &dir.path().join("sindri.yaml"));
    let provider =
        sindri_providers::registry().create(ProviderKind::Docker, &ProvidersSpec::default())?;
    let d = dispatch::deploy(
        provider.as_ref(),
        &rs,
        DeployOptions::default(),
        &NoProgress,
    )
    .await?;
    let state = sindri_state::StateStore::open(&dir.path().join("state"))?;
    let installer = Installer::new(provider.as_ref(), &d, &catalog, &state, &NoInstallProgress);
    let started = std::time::Instant::now();
    let result = installer.sync(&resolution).await;
    let took = started.elapsed();
    dispatch::destroy(provider.as_ref(), &d, DestroyOptions { volumes: true }).await?;
    let (_, report) = result?;
    if let Some(e) = report.error() {
        return Err(e.into());
    }
    println!("install_millis={}", took.as_millis());
    println!("apt_runs={}", report.apt_runs);
    println!("extensions={}", report.installed().join(","));
    Ok(())
}
