//! The shell scripts the installer runs in the environment, generated from manifests.
//!
//! Pure string building, so every script can be read and tested without an
//! environment. Every value from a manifest is single-quoted; the scripts need only a
//! POSIX `sh` (plus `apt-get`/`dpkg` for apt steps and `curl` or `wget` and
//! `sha256sum` for downloads).

use std::collections::BTreeMap;

use crate::exec::TAG;
use crate::manifest::{DownloadInstall, DownloadStep, Manifest, Step};

/// Where sindri keeps one file per installed extension: its version, when it was
/// installed and which apt packages it added. Outside the home directory on purpose:
/// when a provider replaces the environment (a new container), these go with the
/// installed tools, and the next deploy sees that they need installing again.
pub const MARKER_DIR: &str = "/var/lib/sindri/extensions";

/// One file per extension with `env:`/`path:`, sourced by [`ENV_SCRIPT`].
pub const ENV_DIR: &str = "/etc/sindri/env.d";

/// Sources every extension's environment. Login shells source it through
/// `/etc/profile.d/sindri.sh`, interactive bash through `/etc/bash.bashrc`; a command
/// run without a shell can be wrapped: `sh -c '. /etc/sindri/env.sh; exec "$@"' sh CMD`.
pub const ENV_SCRIPT: &str = "/etc/sindri/env.sh";

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quote_all<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| quote(s.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The start of every script: stop at the first failure, no prompts, and the
/// environment of every installed extension.
pub fn preamble() -> String {
    format!(
        "set -e\nexport DEBIAN_FRONTEND=noninteractive\n\
         for __sindri_env in {ENV_DIR}/*.sh; do if [ -r \"$__sindri_env\" ]; then . \"$__sindri_env\"; fi; done\n\
         unset __sindri_env\n"
    )
}

/// What the environment offers, and what sindri installed in it before, in
/// `key=value` lines and `marker NAME` blocks (see [`parse_probe`]).
pub fn probe() -> String {
    format!(
        "printf 'uid=%s\\n' \"$(id -u 2>/dev/null || echo unknown)\"\n\
         if command -v apt-get >/dev/null 2>&1; then echo apt=1; else echo apt=0; fi\n\
         if command -v sudo >/dev/null 2>&1; then echo sudo=1; else echo sudo=0; fi\n\
         printf 'arch=%s\\n' \"$(dpkg --print-architecture 2>/dev/null || uname -m 2>/dev/null || echo unknown)\"\n\
         for f in {MARKER_DIR}/*; do\n\
         \x20 [ -f \"$f\" ] || continue\n\
         \x20 printf 'marker %s\\n' \"${{f##*/}}\"\n\
         \x20 while IFS= read -r line || [ -n \"$line\" ]; do printf '  %s\\n' \"$line\"; done < \"$f\"\n\
         done\n"
    )
}

/// What a probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    /// The user id commands run as, when known.
    pub uid: Option<u32>,
    /// `apt-get` is there.
    pub apt: bool,
    /// `sudo` is there.
    pub sudo: bool,
    /// The CPU architecture (`amd64`, `arm64`, or `uname -m`'s word).
    pub arch: String,
    /// Extensions sindri installed, by name.
    pub markers: BTreeMap<String, Marker>,
}

/// What sindri wrote when it installed an extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marker {
    /// The manifest version installed.
    pub version: String,
    /// Unix seconds of the install.
    pub installed_at: Option<i64>,
    /// apt packages the install added (they were not there before).
    pub apt: Vec<String>,
}

/// Parses [`probe`]'s output.
pub fn parse_probe(lines: &[String]) -> Probed {
    let mut p = Probed::default();
    let mut current: Option<String> = None;
    for line in lines {
        if let Some(body) = line.strip_prefix("  ") {
            if let Some(name) = &current {
                let m = p.markers.entry(name.clone()).or_default();
                if let Some((k, v)) = body.split_once('=') {
                    match k {
                        "version" => m.version = v.to_string(),
                        "installed_at" => m.installed_at = v.parse().ok(),
                        "apt" => m.apt = v.split_whitespace().map(str::to_string).collect(),
                        _ => {}
                    }
                }
            }
            continue;
        }
        current = None;
        if let Some(name) = line.strip_prefix("marker ") {
            current = Some(name.to_string());
            p.markers.entry(name.to_string()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            match k {
                "uid" => p.uid = v.parse().ok(),
                "apt" => p.apt = v == "1",
                "sudo" => p.sudo = v == "1",
                "arch" => {
                    p.arch = match v {
                        "x86_64" => "amd64".into(),
                        "aarch64" => "arm64".into(),
                        other => other.to_string(),
                    }
                }
                _ => {}
            }
        }
    }
    p
}

/// Writes the extension's environment file (and, once, the files that source it),
/// then runs its `pre_install` hook. `None` when there is nothing to do.
pub fn prepare(m: &Manifest) -> Option<String> {
    let env = env_file(m);
    if env.is_none() && m.hooks.pre_install.is_none() {
        return None;
    }
    let mut s = String::new();
    if let Some(env) = env {
        s.push_str(&env_setup());
        s.push_str(&format!(
            "mkdir -p {ENV_DIR}\ncat > {ENV_DIR}/{name}.sh.tmp <<'SINDRI_ENV'\n{env}SINDRI_ENV\nmv {ENV_DIR}/{name}.sh.tmp {ENV_DIR}/{name}.sh\n. {ENV_DIR}/{name}.sh\n",
            name = m.name
        ));
    }
    if let Some(h) = &m.hooks.pre_install {
        s.push_str(&format!("# pre_install hook\n{h}\n"));
    }
    Some(s)
}

/// The content of `/etc/sindri/env.d/NAME.sh`, if the extension exports anything.
/// Sourcing it twice does not grow `PATH`.
pub fn env_file(m: &Manifest) -> Option<String> {
    if m.env.is_empty() && m.path.is_empty() {
        return None;
    }
    let mut s = format!(
        "# Written by sindri for extension {} {}.\n",
        m.name, m.version
    );
    for (k, v) in &m.env {
        s.push_str(&format!("export {k}=\"{v}\"\n"));
    }
    for dir in m.path.iter().rev() {
        s.push_str(&format!(
            "case \":$PATH:\" in *\":{dir}:\"*) ;; *) PATH=\"{dir}:$PATH\" ;; esac\n"
        ));
    }
    if !m.path.is_empty() {
        s.push_str("export PATH\n");
    }
    Some(s)
}

/// Creates [`ENV_SCRIPT`] and hooks it into login and interactive bash shells, once.
fn env_setup() -> String {
    format!(
        "mkdir -p {ENV_DIR}\n\
         if [ ! -f {ENV_SCRIPT} ]; then\n\
         \x20 printf '%s\\n' '# Environment of the extensions sindri installed.' \
         'for __f in {ENV_DIR}/*.sh; do if [ -r \"$__f\" ]; then . \"$__f\"; fi; done' 'unset __f' > {ENV_SCRIPT}\n\
         fi\n\
         if [ -d /etc/profile.d ] && [ ! -f /etc/profile.d/sindri.sh ]; then echo '. {ENV_SCRIPT}' > /etc/profile.d/sindri.sh; fi\n\
         if [ -f /etc/bash.bashrc ] && ! grep -q 'sindri/env.sh' /etc/bash.bashrc 2>/dev/null; then\n\
         \x20 printf '\\n# sindri extensions\\n[ -r {ENV_SCRIPT} ] && . {ENV_SCRIPT}\\n' >> /etc/bash.bashrc\n\
         fi\n"
    )
}

/// One `apt-get install` of `packages`, first saying (as tag lines `new-apt PKG`)
/// which of them are not installed yet, so `remove` takes out only what sindri added.
pub fn apt_install(packages: &[String], update: bool) -> String {
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p.split('=').next().unwrap_or(p))
        .collect();
    let mut s = String::new();
    s.push_str("if ! command -v apt-get >/dev/null 2>&1; then echo 'sindri: apt-get is not available: apt steps need a Debian or Ubuntu image' >&2; exit 3; fi\n");
    if update {
        s.push_str("apt-get update -q -o DPkg::Lock::Timeout=120\n");
    }
    s.push_str(&format!(
        "for p in {}; do\n\
         \x20 s=$(dpkg-query -W -f='${{db:Status-Status}}' \"$p\" 2>/dev/null || true)\n\
         \x20 [ \"$s\" = installed ] || echo \"{TAG}new-apt $p\"\n\
         done\n",
        quote_all(&names)
    ));
    s.push_str(&format!(
        "apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 {}\n",
        quote_all(packages)
    ));
    s
}

/// The script of one non-apt install step.
pub fn step(step: &Step) -> String {
    match step {
        Step::Apt(a) => apt_install(&a.packages, a.update),
        Step::Pip(p) => {
            let index = p
                .index_url
                .as_deref()
                .map(|u| format!("--index-url {} ", quote(u)))
                .unwrap_or_default();
            format!(
                "if ! command -v python3 >/dev/null 2>&1; then echo 'sindri: python3 is not installed: add `python` to requires' >&2; exit 3; fi\n\
                 python3 -m pip install --no-input --disable-pip-version-check --progress-bar off {index}{}\n",
                quote_all(&p.packages)
            )
        }
        Step::Npm(n) => format!(
            "if ! command -v npm >/dev/null 2>&1; then echo 'sindri: npm is not installed: add `nodejs` to requires' >&2; exit 3; fi\n\
             npm install -g --no-fund --no-audit --no-progress {}\n",
            quote_all(&n.packages)
        ),
        Step::Cargo(c) => format!(
            "if ! command -v cargo >/dev/null 2>&1; then echo 'sindri: cargo is not installed: add `rust` to requires' >&2; exit 3; fi\n\
             cargo install {}{}\n",
            if c.locked { "--locked " } else { "" },
            quote_all(&c.crates)
        ),
        Step::Script(s) => format!("{}\n", s.run),
        Step::Download(d) => download(d),
    }
}

/// Downloads the file for this architecture to a temporary directory, checks its
/// SHA-256 and only then installs or extracts it. A mismatch exits 4 and leaves
/// nothing behind.
pub fn download(d: &DownloadStep) -> String {
    let mut cases = String::new();
    for f in &d.files {
        cases.push_str(&format!(
            "  {}) url={}; sum={} ;;\n",
            f.arch.as_str(),
            quote(&f.url),
            quote(&f.sha256)
        ));
    }
    let have: Vec<&str> = d.files.iter().map(|f| f.arch.as_str()).collect();
    let install = match &d.install {
        DownloadInstall::Binary(path) => format!(
            "mkdir -p \"$(dirname {p})\"\ncp \"$tmp/file\" {p}.sindri-new\nchmod 0755 {p}.sindri-new\nmv {p}.sindri-new {p}\n",
            p = quote(path)
        ),
        DownloadInstall::Extract(e) => format!(
            "mkdir -p {dir}\ntar -xf \"$tmp/file\" -C {dir}{strip}\n",
            dir = quote(&e.dir),
            strip = if e.strip_components > 0 {
                format!(" --strip-components={}", e.strip_components)
            } else {
                String::new()
            }
        ),
    };
    format!(
        "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)\n\
         case \"$arch\" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac\n\
         case \"$arch\" in\n{cases}\
         \x20 *) echo \"sindri: no download for CPU architecture $arch (this extension has: {have})\" >&2; exit 3 ;;\n\
         esac\n\
         tmp=$(mktemp -d)\n\
         trap 'rm -rf \"$tmp\"' EXIT\n\
         if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o \"$tmp/file\" \"$url\"\n\
         elif command -v wget >/dev/null 2>&1; then wget -q -O \"$tmp/file\" \"$url\"\n\
         else echo 'sindri: downloading needs curl or wget: add `curl` to requires' >&2; exit 3; fi\n\
         if ! echo \"$sum  $tmp/file\" | sha256sum -c - >/dev/null 2>&1; then\n\
         \x20 echo \"sindri: checksum mismatch for $url: expected $sum, got $(sha256sum \"$tmp/file\" | cut -d' ' -f1); the file was not used\" >&2\n\
         \x20 exit 4\n\
         fi\n\
         echo \"verified sha256 $sum\"\n\
         {install}",
        have = have.join(", ")
    )
}

/// Records the extension as installed in the environment (see [`MARKER_DIR`]).
pub fn write_marker(name: &str, version: &str, installed_at: i64, apt_added: &[String]) -> String {
    format!(
        "mkdir -p {MARKER_DIR}\nprintf '%s\\n' {} {} {} > {MARKER_DIR}/{name}.tmp\nmv {MARKER_DIR}/{name}.tmp {MARKER_DIR}/{name}\n",
        quote(&format!("version={version}")),
        quote(&format!("installed_at={installed_at}")),
        quote(&format!("apt={}", apt_added.join(" "))),
    )
}

/// Undoes what sindri can undo by itself: downloaded binaries, cargo, npm and pip
/// packages, the apt packages it added (`apt_remove`, already filtered of packages
/// other extensions need), the environment file and the marker.
pub fn auto_remove(
    m: Option<&Manifest>,
    name: &str,
    apt_remove: &[String],
    keep: &dyn Fn(&str) -> bool,
) -> String {
    let mut s = String::new();
    if let Some(m) = m {
        for step in m.install.iter().rev() {
            match step {
                Step::Download(DownloadStep {
                    install: DownloadInstall::Binary(p),
                    ..
                }) => {
                    s.push_str(&format!("rm -f {}\n", quote(p)));
                }
                Step::Cargo(c) => {
                    let crates: Vec<&str> = c
                        .crates
                        .iter()
                        .map(|c| c.split('@').next().unwrap_or(c))
                        .filter(|c| !keep(c))
                        .collect();
                    if !crates.is_empty() {
                        s.push_str(&format!(
                            "if command -v cargo >/dev/null 2>&1; then cargo uninstall {} || echo 'sindri: cargo uninstall failed; continuing'; fi\n",
                            quote_all(&crates)
                        ));
                    }
                }
                Step::Npm(n) => {
                    let pkgs: Vec<&str> = n
                        .packages
                        .iter()
                        .map(|p| npm_name(p))
                        .filter(|p| !keep(p))
                        .collect();
                    if !pkgs.is_empty() {
                        s.push_str(&format!(
                            "if command -v npm >/dev/null 2>&1; then npm uninstall -g --no-fund --no-audit {}; fi\n",
                            quote_all(&pkgs)
                        ));
                    }
                }
                Step::Pip(p) => {
                    let pkgs: Vec<&str> = p
                        .packages
                        .iter()
                        .map(|p| pip_name(p))
                        .filter(|p| !keep(p))
                        .collect();
                    if !pkgs.is_empty() {
                        s.push_str(&format!(
                            "if command -v python3 >/dev/null 2>&1; then python3 -m pip uninstall -y --disable-pip-version-check {}; fi\n",
                            quote_all(&pkgs)
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    if !apt_remove.is_empty() {
        s.push_str(&format!(
            "if command -v apt-get >/dev/null 2>&1; then apt-get remove -y -q --autoremove -o DPkg::Lock::Timeout=120 {}; fi\n",
            quote_all(apt_remove)
        ));
    }
    s.push_str(&format!("rm -f {ENV_DIR}/{name}.sh {MARKER_DIR}/{name}\n"));
    s
}

/// A pip requirement's distribution name: `uvicorn[standard]>=0.30` → `uvicorn`.
pub fn pip_name(spec: &str) -> &str {
    let end = spec
        .find(['[', '<', '>', '=', '!', '~', ' ', ';'])
        .unwrap_or(spec.len());
    &spec[..end]
}

/// An npm specifier's package name: `pnpm@9` → `pnpm`, `@types/node@20` → `@types/node`.
pub fn npm_name(spec: &str) -> &str {
    match spec.char_indices().skip(1).find(|&(_, c)| c == '@') {
        Some((i, _)) => &spec[..i],
        None => spec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Arch, DownloadFile};

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_probe_output_is_parsed() {
        let lines: Vec<String> = [
            "uid=0",
            "apt=1",
            "sudo=0",
            "arch=x86_64",
            "marker jq",
            "  version=1.0.0",
            "  installed_at=1700000000",
            "  apt=jq libjq1",
            "marker tree",
            "  version=2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_probe(&lines);
        assert_eq!(p.uid, Some(0));
        assert!(p.apt && !p.sudo);
        assert_eq!(p.arch, "amd64");
        assert_eq!(p.markers["jq"].apt, ["jq", "libjq1"]);
        assert_eq!(p.markers["jq"].installed_at, Some(1_700_000_000));
        assert_eq!(p.markers["tree"].version, "2");
        assert_eq!(p.markers["tree"].installed_at, None);
    }

    #[test]
    fn package_names_are_taken_from_specifiers() {
        assert_eq!(pip_name("uvicorn[standard]>=0.30"), "uvicorn");
        assert_eq!(pip_name("ruff==0.6.9"), "ruff");
        assert_eq!(pip_name("torch"), "torch");
        assert_eq!(npm_name("pnpm@9"), "pnpm");
        assert_eq!(npm_name("@types/node@20"), "@types/node");
        assert_eq!(npm_name("@types/node"), "@types/node");
    }

    #[test]
    fn a_download_verifies_before_it_installs() {
        let d = DownloadStep {
            files: vec![DownloadFile {
                arch: Arch::Amd64,
                url: "https://example.invalid/kubectl".into(),
                sha256: "a".repeat(64),
            }],
            install: DownloadInstall::Binary("/usr/local/bin/kubectl".into()),
        };
        let s = download(&d);
        let check = s.find("sha256sum -c").expect("checks");
        let install = s.find("/usr/local/bin/kubectl").expect("installs");
        assert!(check < install, "{s}");
    }
}
