//! The local provider: runs jobs on this machine, without isolation.
//!
//! # What an environment is
//! A directory, `<state dir>/local/<project id>-<name>/`, holding:
//! - `.sindri-owner.json`, the marker naming the environment, its project and spec
//!   hash (`list_owned` finds environments by it; a directory without it is never
//!   touched);
//! - `work/`, the copy of the run workdir that `sindri run` syncs, unless
//!   `providers.local.in_place: true`, in which case jobs run in the project's own
//!   directory and nothing is copied;
//! - `runs/<run id>/`, each run's supervisor files and log;
//! - `env.json`, `deployment.env`, applied to every exec.
//!
//! `exec` starts processes with this process's environment plus `deployment.env`,
//! in the environment directory unless told otherwise; `connect` starts `$SHELL` in the
//! workdir on this terminal; copies are file copies; `status` is whether the directory
//! exists; `logs` prints the latest run's log; `destroy` stops the runs still going
//! and removes the directory (never the project directory of an in-place
//! environment).
//!
//! # Not supported
//! `stop`, `start` and `suspend`: there is no machine to stop; a run is stopped with
//! `sindri runs cancel`. No isolation: `deployment.image`, `resources` and ports do
//! not apply (ports, volumes and builds are refused; GPUs are offered only when this
//! machine has NVIDIA devices, and are not partitioned). Secrets are not injected:
//! processes inherit this machine's environment.

mod copy;
mod env;
mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DestroyOptions, DestroyReport,
    Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Operation, Plan, PlanAction,
    PlanStep, Progress, Provider, RenderedArtifact, ResolvedSpec, Result, Status, StatusState,
    TransferStats, unix_now,
};
use sindri_spec::{LocalSettings, ProviderKind, ProvidersSpec};
use tokio::io::AsyncWriteExt;

use env::{ENV_FILE, Marker, RUNS_DIR, WORK_DIR, latest_run, read_env, read_marker, write_atomic};
pub use env::{MARKER, default_root};

/// Why `stop`, `start` and `suspend` are missing.
const NO_STOP_NOTE: &str = "a local environment is only a directory on this machine: there is no machine to stop or start. \
Local runs are cancelled with `sindri runs cancel`; `sindri destroy` removes the directory.";

/// How often `logs --follow` looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// Builds the local provider from `providers.local`. Reads the process environment to
/// find the state directory; touches no file.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(LocalProvider::new(
        default_root()?,
        settings.local.clone().unwrap_or_default(),
    )))
}

/// The local provider. `root` holds one directory per environment.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    root: PathBuf,
    settings: LocalSettings,
}

impl LocalProvider {
    /// A provider keeping its environments under `root` (normally
    /// `<state dir>/local`, see [`default_root`]).
    pub fn new(root: PathBuf, settings: LocalSettings) -> LocalProvider {
        LocalProvider { root, settings }
    }

    /// The directory of environment `name` of `project`.
    pub fn env_dir(&self, project: &str, name: &str) -> PathBuf {
        self.root.join(format!("{project}-{name}"))
    }

    /// The directory of a deployment: the one it recorded, else the conventional one.
    fn dir_of(&self, d: &Deployment) -> PathBuf {
        d.detail("dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.env_dir(&d.project, &d.name))
    }

    /// The marker of a deployed environment, or `NotFound`.
    fn require(&self, d: &Deployment) -> Result<(PathBuf, Marker)> {
        let dir = self.dir_of(d);
        match read_marker(&dir)? {
            Some(m) if m.project == d.project && m.name == d.name => Ok((dir, m)),
            Some(_) => Err(Error::new(
                ErrorKind::Conflict,
                format!("{} belongs to another environment", dir.display()),
            )
            .with_provider(ProviderKind::Local)),
            None => Err(Error::not_found(format!(
                "local environment `{}` is not deployed (no directory {})",
                d.name,
                dir.display()
            ))
            .with_provider(ProviderKind::Local)
            .with_hint("run `sindri deploy` (or `sindri run`) first")),
        }
    }

    /// The workdir an environment for `spec` uses.
    fn workdir_for(&self, spec: &ResolvedSpec, dir: &Path) -> PathBuf {
        if self.settings.in_place {
            let rel = spec.spec.run.as_ref().map_or(".", |r| r.workdir.as_str());
            let p = spec.path(rel);
            let p = if p.is_absolute() {
                p
            } else {
                std::env::current_dir().map(|c| c.join(&p)).unwrap_or(p)
            };
            p.canonicalize().unwrap_or(p)
        } else {
            dir.join(WORK_DIR)
        }
    }

    fn marker_for(&self, spec: &ResolvedSpec, dir: &Path, created_at: i64) -> Marker {
        Marker {
            managed: true,
            name: spec.name().to_string(),
            project: spec.project.clone(),
            spec_hash: spec.spec_hash(),
            workdir: self.workdir_for(spec, dir),
            in_place: self.settings.in_place,
            created_at,
            updated_at: unix_now(),
        }
    }

    /// NVIDIA device nodes on this machine.
    fn gpu_count() -> usize {
        std::fs::read_dir("/dev")
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n.strip_prefix("nvidia").is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Finds `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            start_stop: false,
            suspend: false,
            exec: true,
            connect: true,
            logs: true,
            copy: true,
            gpu: LocalProvider::gpu_count() > 0,
            volumes: false,
            ports: false,
            spot: false,
            build: false,
            notes: vec![
                (Operation::Start, NO_STOP_NOTE),
                (Operation::Stop, NO_STOP_NOTE),
                (Operation::Suspend, NO_STOP_NOTE),
            ],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let writable = {
            let mut p = self.root.as_path();
            loop {
                if p.exists() {
                    break std::fs::metadata(p)
                        .map(|m| !m.permissions().readonly())
                        .unwrap_or(false);
                }
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break false,
                }
            }
        };
        checks.push(Check {
            name: "environment directory".into(),
            status: if writable {
                CheckStatus::Ok
            } else {
                CheckStatus::Fail
            },
            detail: self.root.display().to_string(),
            hint: (!writable).then(|| "set SINDRI_STATE_DIR to a writable directory".to_string()),
        });
        for (tool, why) in [
            ("sh", "runs commands and the run supervisor"),
            (
                "setsid",
                "starts each run in its own process group (util-linux or busybox)",
            ),
            ("tar", "unpacks the workdir sync"),
        ] {
            let found = on_path(tool);
            checks.push(Check {
                name: format!("{tool} on PATH"),
                status: if found.is_some() {
                    CheckStatus::Ok
                } else {
                    CheckStatus::Fail
                },
                detail: found
                    .map_or_else(|| format!("not found; {why}"), |p| p.display().to_string()),
                hint: None,
            });
        }
        let gpus = LocalProvider::gpu_count();
        checks.push(Check {
            name: "GPUs".into(),
            status: CheckStatus::Ok,
            detail: if gpus == 0 {
                "no NVIDIA devices: specs asking for a GPU are refused".into()
            } else {
                format!("{gpus} NVIDIA device(s), shared by every local run")
            },
            hint: None,
        });
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, current: Option<&Deployment>) -> Result<Plan> {
        let _ = current;
        let dir = self.env_dir(&spec.project, spec.name());
        let existing = read_marker(&dir)?;
        let marker = self.marker_for(
            spec,
            &dir,
            existing.as_ref().map_or_else(unix_now, |m| m.created_at),
        );
        let (action, reason) = match &existing {
            None => (PlanAction::Create, None),
            Some(m) if m.spec_hash == marker.spec_hash && m.workdir == marker.workdir => {
                (PlanAction::Keep, None)
            }
            Some(_) => (PlanAction::Update, Some("spec changed".to_string())),
        };
        let mut steps = vec![PlanStep {
            action,
            resource: format!("directory {}", dir.display()),
            reason,
        }];
        if marker.in_place {
            steps.push(PlanStep {
                action: PlanAction::Keep,
                resource: format!(
                    "workdir {} (in place: used as it is, never copied or removed)",
                    marker.workdir.display()
                ),
                reason: None,
            });
        }
        Ok(Plan {
            provider: ProviderKind::Local,
            environment: spec.name().to_string(),
            steps,
            artifacts: vec![RenderedArtifact {
                name: MARKER.to_string(),
                content: marker.to_json(),
            }],
        })
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        _opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        let dir = self.env_dir(&spec.project, spec.name());
        let existing = read_marker(&dir)?;
        if let Some(m) = &existing
            && (m.project != spec.project || m.name != spec.name())
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} belongs to environment `{}` of project {}",
                    dir.display(),
                    m.name,
                    m.project
                ),
            )
            .with_provider(ProviderKind::Local));
        }
        let d = &spec.spec.deployment;
        if d.image.is_some() {
            progress.message("deployment.image is not used: local runs use this machine as it is");
        }
        if d.resources.cpus.is_some() || d.resources.memory.is_some() || d.resources.disk.is_some()
        {
            progress.warn("deployment.resources are not enforced by the local provider");
        }
        if let Some(gpu) = &d.resources.gpu {
            let have = LocalProvider::gpu_count();
            if (gpu.count as usize) > have {
                progress.warn(&format!(
                    "{} GPU(s) requested, this machine has {have}; local runs see all of them",
                    gpu.count
                ));
            }
        }
        if !spec.secrets.is_empty() {
            progress.warn(
                "secrets are not injected into local runs: they inherit this machine's environment",
            );
        }
        let marker = self.marker_for(
            spec,
            &dir,
            existing.as_ref().map_or_else(unix_now, |m| m.created_at),
        );
        if self.settings.in_place && !marker.workdir.is_dir() {
            return Err(Error::invalid(format!(
                "providers.local.in_place: the workdir {} is not a directory",
                marker.workdir.display()
            ))
            .with_provider(ProviderKind::Local));
        }
        let dir_for_io = dir.clone();
        let marker_for_io = marker.clone();
        let env_json = serde_json::to_string_pretty(&d.env).unwrap_or_else(|_| "{}".into());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&dir_for_io)?;
            // The marker first: an interrupted deploy leaves a directory sindri owns.
            write_atomic(&dir_for_io.join(MARKER), &marker_for_io.to_json())?;
            std::fs::create_dir_all(dir_for_io.join(RUNS_DIR))?;
            if !marker_for_io.in_place {
                std::fs::create_dir_all(&marker_for_io.workdir)?;
            }
            write_atomic(&dir_for_io.join(ENV_FILE), &env_json)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::internal(format!("deploy stopped: {e}")))??;
        Ok(marker.deployment(&dir))
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let dir = self.dir_of(d);
        match read_marker(&dir) {
            Ok(Some(m)) if m.project == d.project && m.name == d.name => {
                let mut s = Status::new(StatusState::Running);
                s.details
                    .insert("directory".into(), dir.display().to_string());
                s.details
                    .insert("workdir".into(), m.workdir.display().to_string());
                if m.in_place {
                    s.details.insert("in_place".into(), "true".into());
                }
                if let Some(run) = latest_run(&dir)
                    && let Some(id) = run.file_name()
                {
                    s.details
                        .insert("latest_run".into(), id.to_string_lossy().into_owned());
                }
                Ok(s)
            }
            Ok(_) => Ok(Status::new(StatusState::Missing)),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let mut s = Status::new(StatusState::Missing);
                s.message = Some(e.to_string());
                Ok(s)
            }
            Err(e) => Err(e),
        }
    }

    async fn start(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Local,
            Operation::Start,
            Some(NO_STOP_NOTE),
        ))
    }

    async fn stop(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Local,
            Operation::Stop,
            Some(NO_STOP_NOTE),
        ))
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Local,
            Operation::Suspend,
            Some(NO_STOP_NOTE),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        let (dir, _) = self.require(d)?;
        if let Some(user) = &cmd.user
            && std::env::var("USER").ok().as_deref() != Some(user.as_str())
        {
            return Err(Error::invalid(format!(
                "the local provider runs commands as the current user; cannot run as `{user}`"
            ))
            .with_provider(ProviderKind::Local));
        }
        let mut env = read_env(&dir);
        env.extend(cmd.env.iter().cloned());
        process::run(
            process::Spawn {
                argv: &cmd.argv,
                cwd: process::resolve_cwd(&dir, cmd.workdir.as_deref()),
                env,
            },
            io,
        )
        .await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        let (dir, marker) = self.require(d)?;
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_string());
        let cwd = if marker.workdir.is_dir() {
            marker.workdir.clone()
        } else {
            dir.clone()
        };
        process::run(
            process::Spawn {
                argv: &[shell],
                cwd,
                env: read_env(&dir),
            },
            io,
        )
        .await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let (dir, _) = self.require(d)?;
        let Some(run) = latest_run(&dir) else {
            return Ok(());
        };
        let log = run.join("log");
        let mut offset = 0u64;
        let bytes = tokio::fs::read(&log).await.unwrap_or_default();
        let shown = match opts.tail {
            Some(n) => last_lines(&bytes, n),
            None => &bytes[..],
        };
        out.write_all(shown).await?;
        out.flush().await?;
        offset += bytes.len() as u64;
        if !opts.follow {
            return Ok(());
        }
        // Until the supervisor records an exit code (the run is over) or the
        // environment is destroyed.
        loop {
            let finished = run.join("exit_code").exists();
            let bytes = match tokio::fs::read(&log).await {
                Ok(b) => b,
                Err(_) => return Ok(()),
            };
            if (bytes.len() as u64) > offset {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                out.write_all(&bytes[start..]).await?;
                out.flush().await?;
                offset = bytes.len() as u64;
            }
            if finished || !dir.exists() {
                return Ok(());
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        let (dir, _) = self.require(d)?;
        let from = from.to_path_buf();
        let to = process::resolve_cwd(&dir, Some(to));
        tokio::task::spawn_blocking(move || copy::copy(&from, &to))
            .await
            .map_err(|e| Error::internal(format!("copy stopped: {e}")))?
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        let (dir, _) = self.require(d)?;
        let from = process::resolve_cwd(&dir, Some(from));
        let to = to.to_path_buf();
        tokio::task::spawn_blocking(move || copy::copy(&from, &to))
            .await
            .map_err(|e| Error::internal(format!("copy stopped: {e}")))?
    }

    async fn destroy(&self, d: &Deployment, _opts: DestroyOptions) -> Result<DestroyReport> {
        let dir = self.dir_of(d);
        let mut report = DestroyReport::default();
        let marker = match read_marker(&dir)? {
            None => return Ok(report),
            Some(m) if m.project == d.project && m.name == d.name => m,
            Some(m) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} belongs to environment `{}` of project {}; not removing it",
                        dir.display(),
                        m.name,
                        m.project
                    ),
                )
                .with_provider(ProviderKind::Local));
            }
        };
        for stopped in stop_running_jobs(&dir).await {
            report.removed.push(stopped);
        }
        // Never the project directory: an in-place workdir lives outside `dir`, and
        // `dir` must not contain it either.
        if marker.in_place && marker.workdir.starts_with(&dir) {
            return Err(Error::internal(format!(
                "refusing to remove {}: it contains the in-place workdir {}",
                dir.display(),
                marker.workdir.display()
            ))
            .with_provider(ProviderKind::Local));
        }
        let target = dir.clone();
        tokio::task::spawn_blocking(move || remove_dir_retrying(&target))
            .await
            .map_err(|e| Error::internal(format!("destroy stopped: {e}")))??;
        report.removed.push(format!("directory {}", dir.display()));
        if marker.in_place {
            report.kept.push(format!(
                "workdir {} (the project directory itself; in-place environments never remove it)",
                marker.workdir.display()
            ));
        }
        Ok(report)
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(
                    Error::internal(format!("cannot list {}: {e}", self.root.display()))
                        .with_provider(ProviderKind::Local),
                );
            }
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            // Directories without a marker are not sindri's: skipped, never an error.
            if let Ok(Some(m)) = read_marker(&dir) {
                out.push(m.deployment(&dir));
            }
        }
        out.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
        Ok(out)
    }
}

/// Stops, with SIGTERM then SIGKILL to their process groups, the runs in `dir` that
/// have not recorded an exit code, and their supervisors. Returns what it stopped.
async fn stop_running_jobs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join(RUNS_DIR)) else {
        return Vec::new();
    };
    let mut stopped = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let run = entry.path();
        if run.join("exit_code").exists() {
            continue;
        }
        let read_pid = |name: &str| {
            std::fs::read_to_string(run.join(name))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|p| *p > 1)
        };
        let (Some(pgid), supervisor) = (read_pid("pid"), read_pid("supervisor_pid")) else {
            continue;
        };
        // The shell's `kill` takes a negative pid as a process group.
        let script = r#"
[ -n "$2" ] && kill -TERM "$2" 2>/dev/null
kill -TERM -"$1" 2>/dev/null || exit 0
n=0
while kill -0 -"$1" 2>/dev/null && [ "$n" -lt 5 ]; do sleep 1; n=$((n + 1)); done
kill -KILL -"$1" 2>/dev/null
exit 0
"#;
        let status = tokio::process::Command::new("sh")
            .args([
                "-c",
                script,
                "sh",
                &pgid.to_string(),
                &supervisor.map(|p| p.to_string()).unwrap_or_default(),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        if status.is_ok() {
            stopped.push(format!(
                "run {} (process group {pgid})",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    stopped
}

/// Removes `dir`; a supervisor writing its last files as it dies can make one attempt
/// fail with "directory not empty", so a few are made.
fn remove_dir_retrying(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let e = last.map_or_else(|| "unknown error".to_string(), |e| e.to_string());
    Err(
        Error::internal(format!("cannot remove {}: {e}", dir.display()))
            .with_provider(ProviderKind::Local),
    )
}

/// The last `n` lines of `bytes`.
fn last_lines(bytes: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_offer_exec_copy_logs_connect_and_refuse_stop_with_a_note() {
        let p = LocalProvider::new(PathBuf::from("/nonexistent"), LocalSettings::default());
        let caps = p.capabilities();
        for op in [
            Operation::Exec,
            Operation::Connect,
            Operation::Logs,
            Operation::CopyIn,
            Operation::CopyOut,
        ] {
            assert!(caps.supports(op), "{op}");
        }
        for op in [Operation::Start, Operation::Stop, Operation::Suspend] {
            assert!(!caps.supports(op), "{op}");
            assert!(
                caps.note(op)
                    .is_some_and(|n| n.contains("sindri runs cancel")),
                "{op}"
            );
        }
        assert!(!caps.ports && !caps.volumes && !caps.build && !caps.spot);
    }

    #[test]
    fn the_factory_touches_no_file() {
        let p = factory(&ProvidersSpec::default()).expect("factory");
        assert_eq!(p.kind(), ProviderKind::Local);
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a", 3), b"a");
    }
}
