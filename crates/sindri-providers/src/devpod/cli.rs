//! Running the `devpod` binary: finding it, the commands sindri uses, their JSON
//! output and DevPod's error messages turned into typed errors.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde::Deserialize;
use sindri_core::{Error, ErrorKind, Progress, Result};
use sindri_spec::ProviderKind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The environment variable that overrides where the `devpod` binary is.
pub const BIN_ENV: &str = "SINDRI_DEVPOD_BIN";

/// Where to get DevPod.
pub const INSTALL_URL: &str = "https://devpod.sh/docs/getting-started/install";

/// What to do when DevPod is missing.
pub fn install_hint() -> String {
    format!(
        "install the DevPod CLI ({INSTALL_URL}), or set {BIN_ENV} to the path of the `devpod` binary"
    )
}

/// Finds the binary: `pinned` when given, else `SINDRI_DEVPOD_BIN`, else `devpod` on
/// `PATH`. A missing binary is `Unavailable` with the install hint.
pub fn resolve(pinned: Option<&Path>) -> Result<PathBuf> {
    let unavailable = |msg: String| {
        Error::new(ErrorKind::Unavailable, msg)
            .with_provider(ProviderKind::Devpod)
            .with_hint(install_hint())
    };
    if let Some(p) = pinned {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(unavailable(format!(
                "the devpod binary {} does not exist",
                p.display()
            )))
        };
    }
    if let Some(v) = std::env::var_os(BIN_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(unavailable(format!(
                "{BIN_ENV}={} does not name a file",
                p.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("devpod"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| unavailable(format!("`devpod` is not on PATH and {BIN_ENV} is not set")))
}

/// A workspace as `devpod list --output json` prints it (the fields sindri reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ListedWorkspace {
    /// The workspace id.
    pub id: String,
    /// DevPod's unique id of the workspace.
    pub uid: String,
    /// Where its content comes from.
    pub source: Source,
    /// The DevPod provider running it.
    pub provider: Named,
    /// The devcontainer.json path, relative to the source folder.
    #[serde(rename = "devContainerPath")]
    pub devcontainer_path: String,
    /// The DevPod context.
    pub context: String,
}

/// A workspace's source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Source {
    /// A local folder, for workspaces created from a directory.
    #[serde(rename = "localFolder")]
    pub local_folder: String,
}

/// Something with a name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Named {
    /// The name.
    pub name: String,
}

/// What `devpod status --output json` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WorkspaceStatus {
    /// The workspace id.
    pub id: String,
    /// The DevPod context.
    pub context: String,
    /// The DevPod provider.
    pub provider: String,
    /// `Running`, `Busy`, `Stopped` or `NotFound` (the workspace is known but its
    /// container or machine is gone).
    pub state: String,
}

/// The `devpod` binary.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: PathBuf,
}

impl Cli {
    /// The binary at `bin`.
    pub fn new(bin: PathBuf) -> Cli {
        Cli { bin }
    }

    /// Where the binary is.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A command running `devpod ARGS`, killed when dropped, with no input.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// Runs `devpod ARGS` and collects its output.
    pub async fn output<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<Output> {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| self.spawn_error(&e))
    }

    /// Runs `devpod ARGS`; its stdout on success, a typed error naming `what` otherwise.
    pub async fn checked<S: AsRef<std::ffi::OsStr>>(
        &self,
        what: &str,
        args: &[S],
    ) -> Result<Vec<u8>> {
        let out = self.output(args).await?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(failure(what, out.status.code(), &out.stderr))
        }
    }

    /// Runs `devpod ARGS`, passing every line it
    /// prints to `progress`; fails with the last lines when it fails.
    pub async fn streamed<S: AsRef<std::ffi::OsStr>>(
        &self,
        what: &str,
        args: &[S],
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let mut tail: Vec<String> = Vec::new();
        let mut err_text = Vec::new();
        let read_out = async {
            if let Some(o) = out {
                let mut lines = BufReader::new(o).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = clean_line(&line);
                    if !line.is_empty() {
                        progress.message(&line);
                    }
                }
            }
        };
        let read_err = async {
            if let Some(e) = err {
                let mut lines = BufReader::new(e).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    err_text.extend_from_slice(line.as_bytes());
                    err_text.push(b'\n');
                    let line = clean_line(&line);
                    if !line.is_empty() {
                        progress.message(&line);
                        tail.push(line);
                    }
                }
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await.map_err(|e| self.spawn_error(&e))?;
        if status.success() {
            Ok(())
        } else {
            Err(failure(what, status.code(), &err_text))
        }
    }

    /// `devpod list --output json`.
    pub async fn list(&self) -> Result<Vec<ListedWorkspace>> {
        let out = self
            .checked("list workspaces", &["list", "--output", "json"])
            .await?;
        let text = String::from_utf8_lossy(&out);
        let text = text.trim();
        if text.is_empty() || text == "null" {
            return Ok(Vec::new());
        }
        serde_json::from_str(text).map_err(|e| {
            Error::platform(
                ProviderKind::Devpod,
                format!("`devpod list --output json` printed something that is not a workspace list: {e}"),
            )
        })
    }

    /// `devpod status ID --output json`; `None` when DevPod does not know the workspace.
    pub async fn status(&self, id: &str) -> Result<Option<WorkspaceStatus>> {
        match self
            .checked(
                "read the workspace status",
                &["status", id, "--output", "json"],
            )
            .await
        {
            Ok(out) => serde_json::from_slice(&out).map(Some).map_err(|e| {
                Error::platform(
                    ProviderKind::Devpod,
                    format!("`devpod status --output json` printed something unexpected: {e}"),
                )
            }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `devpod version`.
    pub async fn version(&self) -> Result<String> {
        let out = self.checked("print its version", &["version"]).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// The error for a binary that could not be started.
    pub fn spawn_error(&self, e: &std::io::Error) -> Error {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("cannot run {}: {e}", self.bin.display()))
            .with_provider(ProviderKind::Devpod)
            .with_hint(install_hint())
    }
}

/// Strips terminal colours and DevPod's log-level prefix from one line of its output.
pub fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    let t = out.trim();
    for prefix in ["fatal ", "error ", "[fatal] ", "[error] "] {
        if let Some(rest) = t.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
    t.to_string()
}

/// A failed `devpod` call as a typed error, with DevPod's own last words.
pub fn failure(what: &str, code: Option<i32>, stderr: &[u8]) -> Error {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<String> = text
        .lines()
        .map(clean_line)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(5);
    let said = lines[start..].join("; ");
    let code = code.map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
    let message = if said.is_empty() {
        format!("`devpod` failed to {what} ({code})")
    } else {
        format!("`devpod` failed to {what} ({code}): {said}")
    };
    let lower = said.to_lowercase();
    let (kind, hint) = if lower.contains("workspace")
        && (lower.contains("doesn't exist") || lower.contains("wasn't found"))
    {
        (ErrorKind::NotFound, None)
    } else if lower.contains("unknown flag")
        || lower.contains("unknown shorthand flag")
        || lower.contains("unknown command")
    {
        (
            ErrorKind::Platform,
            Some("this DevPod does not know a flag sindri uses; update DevPod (`devpod version`; see https://devpod.sh/docs/getting-started/install)".to_string()),
        )
    } else if lower.contains("couldn't find provider")
        || (lower.contains("provider") && lower.contains("not initialized"))
    {
        (
            ErrorKind::Invalid,
            Some("add and configure the DevPod provider first (`devpod provider add NAME`, `devpod provider use NAME`), or fix providers.devpod.provider".to_string()),
        )
    } else {
        (ErrorKind::Platform, None)
    };
    let e = Error::new(kind, message).with_provider(ProviderKind::Devpod);
    match hint {
        Some(h) => e.with_hint(h),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devpod_failures_are_typed() {
        let e = failure(
            "read the workspace status",
            Some(1),
            b"\x1b[31mfatal\x1b[0m workspace sindri-x doesn't exist\n",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(
            e.message().contains("workspace sindri-x doesn't exist"),
            "{e}"
        );
        let e = failure("start", Some(1), b"fatal unknown flag: --bogus\n");
        assert_eq!(e.kind(), ErrorKind::Platform);
        assert!(e.hint().is_some_and(|h| h.contains("update DevPod")));
        let e = failure("start", Some(1), b"fatal provider 'aws' is not initialized, please make sure to run 'devpod provider use aws'\n");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let e = failure("start", Some(1), b"fatal couldn't find provider with name gcp. Please make sure to add the provider via 'devpod provider add'\n");
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn colours_and_levels_are_stripped() {
        assert_eq!(clean_line("\x1b[1;31mfatal\x1b[0m  boom"), "boom");
        assert_eq!(clean_line("  info plain  "), "info plain");
    }

    #[test]
    fn a_pinned_binary_that_is_missing_is_unavailable_with_the_install_hint() {
        let e = resolve(Some(Path::new("/nonexistent/devpod"))).expect_err("missing");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.hint().is_some_and(|h| h.contains(INSTALL_URL)));
    }

    #[test]
    fn list_output_parses_devpods_workspace_json() {
        let text = r#"[{"id":"sindri-dev","uid":"default-si-1a2b3","provider":{"name":"docker"},"ide":{"name":"none"},
            "source":{"localFolder":"/home/u/proj"},"devContainerPath":".sindri/devpod/dev/devcontainer.json",
            "creationTimestamp":"2025-01-01T00:00:00Z","lastUsed":"2025-01-01T00:00:00Z","context":"default"}]"#;
        let ws: Vec<ListedWorkspace> = serde_json::from_str(text).expect("parse");
        assert_eq!(ws[0].source.local_folder, "/home/u/proj");
        assert_eq!(ws[0].provider.name, "docker");
        assert_eq!(
            ws[0].devcontainer_path,
            ".sindri/devpod/dev/devcontainer.json"
        );
    }
}
