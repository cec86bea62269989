//! Local clusters for trying the Kubernetes provider: `kind` or `k3d`, driven as
//! external programs (both run Kubernetes inside Docker). `sindri k8s create|destroy|
//! list|load` call these functions; nothing here is used by the provider itself.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::ProviderKind;

/// The cluster name when none is given.
pub const DEFAULT_CLUSTER: &str = "sindri";

/// A program that runs a local Kubernetes cluster in Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterTool {
    /// kind: Kubernetes in Docker (sigs.k8s.io/kind).
    Kind,
    /// k3d: k3s in Docker (k3d.io).
    K3d,
}

impl ClusterTool {
    /// Both tools, in the order they are preferred.
    pub const ALL: [ClusterTool; 2] = [ClusterTool::Kind, ClusterTool::K3d];

    /// The program's name.
    pub fn binary(self) -> &'static str {
        match self {
            ClusterTool::Kind => "kind",
            ClusterTool::K3d => "k3d",
        }
    }

    /// How to install it.
    pub fn install_hint(self) -> &'static str {
        match self {
            ClusterTool::Kind => {
                "install kind: `go install sigs.k8s.io/kind@latest`, `brew install kind`, or a release binary from https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
            }
            ClusterTool::K3d => {
                "install k3d: `brew install k3d`, or a release binary from https://k3d.io/#installation"
            }
        }
    }

    /// The kubeconfig context the tool writes for cluster `name`.
    pub fn context(self, name: &str) -> String {
        match self {
            ClusterTool::Kind => format!("kind-{name}"),
            ClusterTool::K3d => format!("k3d-{name}"),
        }
    }

    /// The command that creates cluster `name` and waits until its node is ready; it
    /// also makes the cluster the kubeconfig's current context.
    pub fn create_argv(self, name: &str) -> Vec<String> {
        let v: Vec<&str> = match self {
            ClusterTool::Kind => vec![
                "kind", "create", "cluster", "--name", name, "--wait", "120s",
            ],
            ClusterTool::K3d => vec!["k3d", "cluster", "create", name, "--wait"],
        };
        v.into_iter().map(str::to_string).collect()
    }

    /// The command that deletes cluster `name` (and its kubeconfig entries).
    pub fn delete_argv(self, name: &str) -> Vec<String> {
        let v: Vec<&str> = match self {
            ClusterTool::Kind => vec!["kind", "delete", "cluster", "--name", name],
            ClusterTool::K3d => vec!["k3d", "cluster", "delete", name],
        };
        v.into_iter().map(str::to_string).collect()
    }

    /// The command that lists the tool's clusters.
    pub fn list_argv(self) -> Vec<String> {
        let v: Vec<&str> = match self {
            ClusterTool::Kind => vec!["kind", "get", "clusters"],
            ClusterTool::K3d => vec!["k3d", "cluster", "list", "-o", "json"],
        };
        v.into_iter().map(str::to_string).collect()
    }

    /// The command that copies a local Docker image into cluster `name`'s nodes, so a
    /// pod can run an image that was built here and never pushed.
    pub fn load_argv(self, name: &str, image: &str) -> Vec<String> {
        let v: Vec<&str> = match self {
            ClusterTool::Kind => vec!["kind", "load", "docker-image", image, "--name", name],
            ClusterTool::K3d => vec!["k3d", "image", "import", image, "--cluster", name],
        };
        v.into_iter().map(str::to_string).collect()
    }

    /// The cluster names in the output of [`ClusterTool::list_argv`].
    pub fn parse_list(self, stdout: &str) -> Result<Vec<String>> {
        match self {
            ClusterTool::Kind => Ok(stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("No kind clusters"))
                .map(str::to_string)
                .collect()),
            ClusterTool::K3d => {
                if stdout.trim().is_empty() {
                    return Ok(Vec::new());
                }
                let v: serde_json::Value = serde_json::from_str(stdout).map_err(|e| {
                    Error::new(
                        ErrorKind::Platform,
                        format!(
                            "`k3d cluster list -o json` printed something that is not JSON: {e}"
                        ),
                    )
                })?;
                Ok(v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| {
                                c.get("name").and_then(|n| n.as_str()).map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default())
            }
        }
    }
}

impl fmt::Display for ClusterTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary())
    }
}

impl FromStr for ClusterTool {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "kind" => Ok(ClusterTool::Kind),
            "k3d" => Ok(ClusterTool::K3d),
            other => Err(format!(
                "unknown cluster tool `{other}`; expected kind or k3d"
            )),
        }
    }
}

/// Where `binary` is on `path` (a `PATH`-style list), if anywhere.
pub fn find_in_path(binary: &str, path: Option<&OsString>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .map(|dir| dir.join(binary))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The tool to use: the one asked for, which must be installed, else the first of kind
/// and k3d found on `path`. The error says how to install them.
pub fn choose(
    wanted: Option<ClusterTool>,
    path: Option<&OsString>,
) -> Result<(ClusterTool, PathBuf)> {
    let candidates: Vec<ClusterTool> = match wanted {
        Some(t) => vec![t],
        None => ClusterTool::ALL.to_vec(),
    };
    for t in &candidates {
        if let Some(p) = find_in_path(t.binary(), path) {
            return Ok((*t, p));
        }
    }
    let names: Vec<&str> = candidates.iter().map(|t| t.binary()).collect();
    let hints: Vec<&str> = candidates.iter().map(|t| t.install_hint()).collect();
    Err(Error::new(
        ErrorKind::Unavailable,
        format!(
            "{} is not installed (not found on PATH)",
            names.join(" or ")
        ),
    )
    .with_provider(ProviderKind::Kubernetes)
    .with_hint(format!(
        "{}; both run the cluster in Docker, which must be running",
        hints.join("; or ")
    )))
}

/// What a tool run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `argv` with the program at `program` (`argv[0]` names it in messages); a
/// failure carries the tool's own last lines of error output.
pub async fn run(program: &Path, argv: &[String]) -> Result<ToolOutput> {
    let out = tokio::process::Command::new(program)
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        // An interrupted `sindri k8s` stops the tool too.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot run {}: {e}", program.display()),
            )
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(Error::new(
            ErrorKind::Platform,
            format!(
                "`{}` failed ({}): {}",
                argv.join(" "),
                out.status,
                tail.join("\n")
            ),
        )
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("kind and k3d need a running Docker Engine (`docker info`)"));
    }
    Ok(ToolOutput { stdout, stderr })
}

/// A local cluster found by `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalCluster {
    /// The tool that made it.
    pub tool: ClusterTool,
    /// Its name.
    pub name: String,
    /// Its kubeconfig context.
    pub context: String,
}

/// Every cluster of every installed tool on `path`; a tool that is not installed is
/// skipped. Fails only when neither is installed.
pub async fn list(path: Option<&OsString>) -> Result<Vec<LocalCluster>> {
    let mut out = Vec::new();
    let mut found_any = false;
    for tool in ClusterTool::ALL {
        let Some(program) = find_in_path(tool.binary(), path) else {
            continue;
        };
        found_any = true;
        let res = run(&program, &tool.list_argv()).await?;
        for name in tool.parse_list(&res.stdout)? {
            out.push(LocalCluster {
                tool,
                context: tool.context(&name),
                name,
            });
        }
    }
    if !found_any {
        return Err(choose(None, path)
            .err()
            .unwrap_or_else(|| Error::internal("no cluster tool")));
    }
    Ok(out)
}
