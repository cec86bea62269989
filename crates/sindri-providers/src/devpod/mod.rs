//! The DevPod provider: any cloud through the `devpod` CLI (loft-sh/devpod).
//!
//! DevPod creates a workspace from a devcontainer.json on the DevPod provider the user
//! chose (docker, ssh, aws, gcloud, kubernetes…). sindri renders the devcontainer.json
//! with sindri-render and drives the `devpod` binary; it never talks to a cloud itself.
//!
//! # Commands
//! | operation | DevPod command |
//! |---|---|
//! | deploy | `devpod up PROJECT --id sindri-NAME --ide none --devcontainer-path .sindri/devpod/NAME/devcontainer.json [--provider P] [--provider-option K=V]… [--recreate]` |
//! | status | `devpod status ID --output json` (`Running`, `Busy`, `Stopped`, `NotFound`) |
//! | stop / start | `devpod stop ID` / `devpod up --id ID --ide none` |
//! | exec, copies | `devpod ssh ID --agent-forwarding=false --start-services=false [--user U] --command 'sh -c …'` |
//! | connect | `devpod ssh ID --command 'sh -c …exec $SHELL -l'` on this terminal |
//! | logs | `devpod logs ID` (the workspace container's output) |
//! | destroy | `devpod delete ID` (`--force` when DevPod asks for it) |
//! | list_owned | `devpod list --output json`, ids starting `sindri-` with sindri's marker |
//!
//! The binary is `SINDRI_DEVPOD_BIN` when set, else `devpod` on `PATH`. Without it,
//! `check` fails with the install hint and every other operation fails with
//! `Unavailable` before doing anything.
//!
//! # Ownership
//! The workspace id is `sindri-NAME` (shortened with a hash past DevPod's 48
//! characters, see [`workspace_id`]). DevPod ids are global to a DevPod context, so the
//! id alone proves nothing: sindri owns a workspace only when DevPod lists it with the
//! project directory as its source and `.sindri/devpod/NAME/devcontainer.json` as its
//! devcontainer path, and `.sindri/devpod/NAME/sindri-owner.json` next to it names the
//! environment, the project (which must also be the id of that source folder) and the
//! spec hash last applied. A `sindri-NAME` workspace without that marker is refused
//! with `Conflict`, never touched.
//!
//! # Updates
//! An unchanged spec on a running workspace runs nothing. A changed spec rewrites the
//! devcontainer.json and runs `devpod up --recreate` (container rebuilt, named volumes
//! kept). A changed DevPod provider or provider options delete the workspace and create
//! it again, since `--recreate` keeps the machine. The marker records the hash being
//! applied before `devpod up` starts, so an interrupted deploy is finished (with
//! `--recreate`) by the next one.
//!
//! # Secrets
//! DevPod has no secret store, and each way of handing it values writes them down:
//! `--workspace-env K=V` puts them on `ps`; `--workspace-env-file` needs a plain-text
//! file; `${localEnv:NAME}` in `remoteEnv` is substituted by DevPod's agent, which saves
//! the substituted config in its workspace result (`~/.devpod/contexts/*/workspaces/*/
//! workspace_result.json`, plain text), resolves `localEnv` on the remote machine for
//! machine providers, and substitutes again (with nothing) whenever a stopped workspace
//! is started with `devpod up`. So sindri removes secrets from `remoteEnv`, and after
//! `devpod up` streams their values over the stdin of `devpod ssh --command 'cat >…'`
//! into `HOME/.sindri/secrets.env` (mode 0600, on the home volume, rewritten on every
//! deploy), which `exec` and `connect` load; secrets with a `mount` are written to that
//! path the same way. Values never appear on an argv, in a file on this machine, or in
//! DevPod's state. File secrets stay bind mounts of the project's file, as rendered.
//!
//! # Limits
//! No suspend (DevPod has none). No published ports: DevPod forwards ports only inside
//! its own sessions (`devpod ssh ID -L 8080:localhost:8080`), so specs with ports are
//! refused. GPUs come from the DevPod provider's machine: `hostRequirements.gpu` is
//! passed on, and deploy warns when `nvidia-smi -L` finds none. `logs --follow` prints
//! what DevPod has and returns: `devpod logs` cannot follow. `destroy` removes the
//! whole workspace; on DevPod's docker provider the named volumes stay on the Docker
//! host (DevPod removes only the container) and the report says how to remove them; on
//! machine providers the machine and its disks go with the workspace, so the home
//! volume cannot be kept.

mod cli;
mod copy;
mod session;
mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DeploymentState, DestroyOptions,
    DestroyReport, Endpoint, Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink,
    NoProgress, Operation, Plan, PlanAction, PlanStep, Progress, Provider, RenderedArtifact,
    ResolvedSpec, Result, Status, StatusState, TransferStats, project_id, unix_now,
};
use sindri_render::{ExportFormat, Renderer};
use sindri_spec::{DevpodSettings, ProviderKind, ProvidersSpec, SecretSource};
use tokio::io::AsyncWriteExt;

pub use cli::{BIN_ENV, INSTALL_URL};
use cli::{Cli, ListedWorkspace};
use workspace::{DEVCONTAINER, Marker};
pub use workspace::{DIR, MARKER, PREFIX, devcontainer_path, workspace_id};

/// Why `suspend` is missing.
const NO_SUSPEND: &str = "DevPod has no suspend (no memory snapshot): use `sindri stop`, which runs `devpod stop` and keeps the workspace's disk";

/// Builds the DevPod provider from `providers.devpod`. Does no I/O: the binary is
/// looked up when an operation runs.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(DevpodProvider::new(
        settings.devpod.clone().unwrap_or_default(),
    )))
}

/// The DevPod provider.
#[derive(Debug, Clone)]
pub struct DevpodProvider {
    settings: DevpodSettings,
    bin: Option<PathBuf>,
}

/// What DevPod lists for an id, judged against sindri's marker.
enum Lookup {
    /// DevPod has no workspace of that id.
    Missing,
    /// DevPod has it and sindri made it for this environment.
    Ours(Box<Found>),
    /// DevPod has it but it is not this environment's; why.
    Foreign(String),
}

/// A workspace sindri owns.
struct Found {
    ws: ListedWorkspace,
    marker: Marker,
    /// `.sindri/devpod/NAME/` in the project.
    dir: PathBuf,
}

impl DevpodProvider {
    /// A provider finding `devpod` through `SINDRI_DEVPOD_BIN` or `PATH`.
    pub fn new(settings: DevpodSettings) -> DevpodProvider {
        DevpodProvider {
            settings,
            bin: None,
        }
    }

    /// A provider running the `devpod` binary at `bin`.
    pub fn with_binary(settings: DevpodSettings, bin: PathBuf) -> DevpodProvider {
        DevpodProvider {
            settings,
            bin: Some(bin),
        }
    }

    fn cli(&self) -> Result<Cli> {
        cli::resolve(self.bin.as_deref()).map(Cli::new)
    }

    fn ide(&self) -> &str {
        self.settings.ide.as_deref().unwrap_or("none")
    }

    fn id_of(d: &Deployment) -> String {
        d.resource_id
            .clone()
            .unwrap_or_else(|| workspace_id(&d.name))
    }

    /// The devcontainer.json for `spec`, as written to `.sindri/devpod/NAME/`.
    fn render(spec: &ResolvedSpec) -> Result<String> {
        let dir = spec.base_dir.join(".sindri").join("templates");
        let artifacts = Renderer::new(Some(&dir))?.render(ExportFormat::Devcontainer, spec)?;
        let content = artifacts
            .into_iter()
            .next()
            .map(|a| a.content)
            .ok_or_else(|| Error::internal("sindri-render produced no devcontainer.json"))?;
        workspace::adjust_devcontainer(&content, spec)
    }

    /// What DevPod lists under `id`, and whether it is environment `name` of `project`.
    async fn lookup(&self, cli: &Cli, id: &str, name: &str, project: &str) -> Result<Lookup> {
        let listed = cli.list().await?;
        let Some(ws) = listed.into_iter().find(|w| w.id == id) else {
            return Ok(Lookup::Missing);
        };
        Ok(match marker_of(&ws)? {
            Some((m, dir))
                if m.name == name
                    && m.project == project
                    && m.workspace == id
                    && source_project(&ws) == m.project =>
            {
                Lookup::Ours(Box::new(Found { ws, marker: m, dir }))
            }
            Some((m, _)) => Lookup::Foreign(format!(
                "it belongs to environment `{}` of project {}",
                m.name, m.project
            )),
            None if ws.source.local_folder.is_empty() => {
                Lookup::Foreign("it was not created from a local folder, so not by sindri".into())
            }
            None => Lookup::Foreign(format!(
                "it has no sindri marker ({}/{}/…/{MARKER})",
                ws.source.local_folder, DIR
            )),
        })
    }

    /// The environment's workspace, or `NotFound` / `Conflict`.
    async fn require(&self, d: &Deployment) -> Result<(Cli, Found)> {
        let cli = self.cli()?;
        let id = Self::id_of(d);
        match self.lookup(&cli, &id, &d.name, &d.project).await? {
            Lookup::Ours(f) => Ok((cli, *f)),
            Lookup::Missing => Err(Error::not_found(format!(
                "DevPod has no workspace {id} for environment `{}`",
                d.name
            ))
            .with_provider(ProviderKind::Devpod)
            .with_hint("run `sindri deploy` first")),
            Lookup::Foreign(why) => Err(conflict(&id, &why)),
        }
    }

    /// Why an existing workspace must be deleted and created again rather than
    /// recreated in place.
    fn replace_reason(&self, f: &Found) -> Option<String> {
        if let Some(p) = &self.settings.provider
            && !f.ws.provider.name.is_empty()
            && f.ws.provider.name != *p
        {
            return Some(format!(
                "the DevPod provider changes from {} to {p}",
                f.ws.provider.name
            ));
        }
        if f.marker.options_hash != workspace::options_hash(&self.settings.options) {
            return Some("providers.devpod.options changed".into());
        }
        None
    }

    /// `devpod delete ID`, with `--force` when DevPod asks for it (the container or
    /// machine is already gone). A workspace DevPod no longer knows is fine.
    async fn delete(cli: &Cli, id: &str) -> Result<()> {
        match cli.checked("delete the workspace", &["delete", id]).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) if e.message().contains("--force") => {
                match cli
                    .checked("delete the workspace", &["delete", id, "--force"])
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the secrets file and the mounted secrets into the workspace, values on
    /// the stdin of `devpod ssh`.
    async fn write_secrets(
        cli: &Cli,
        id: &str,
        spec: &ResolvedSpec,
        secrets_file: &str,
    ) -> Result<()> {
        let env_names = workspace::env_secret_names(spec);
        let vars: Vec<(String, String)> = spec
            .secrets
            .iter()
            .filter(|s| s.mount.is_none() && env_names.contains(&s.name))
            .map(|s| (s.name.clone(), s.value.expose().to_string()))
            .collect();
        let mut writes = vec![(
            secrets_file.to_string(),
            session::secrets_file_content(&vars).into_bytes(),
            "the secrets file".to_string(),
        )];
        for s in &spec.secrets {
            let file_source = spec
                .spec
                .secrets
                .iter()
                .any(|r| r.name == s.name && r.source == SecretSource::File);
            if let (Some(mount), false) = (&s.mount, file_source) {
                writes.push((
                    mount.clone(),
                    s.value.expose().as_bytes().to_vec(),
                    format!("secret {}", s.name),
                ));
            }
        }
        for (path, data, what) in writes {
            let args = session::ssh_args(id, None, &session::write_file_line(&path));
            let (code, _, err) = session::run_collect(cli, &args, Some(data)).await?;
            if code != 0 {
                return Err(Error::platform(
                    ProviderKind::Devpod,
                    format!(
                        "writing {what} to {path} in workspace {id} failed (exit code {code}): {}",
                        cli::clean_line(&String::from_utf8_lossy(&err))
                    ),
                )
                .with_hint("the workspace's user must be able to create that file; choose another `mount` path or home"));
            }
        }
        Ok(())
    }

    /// Warns when a GPU was asked for and the workspace shows none.
    async fn check_gpu(cli: &Cli, id: &str, progress: &dyn Progress) -> Result<()> {
        let args = session::ssh_args(id, None, "sh -c 'nvidia-smi -L'");
        let (code, out, err) = session::run_collect(cli, &args, None).await?;
        if code != 0 || String::from_utf8_lossy(&out).trim().is_empty() {
            let why = cli::clean_line(&String::from_utf8_lossy(&err));
            progress.warn(&format!(
                "deployment.resources.gpu: the workspace shows no GPU (`nvidia-smi -L` exited {code}{}). \
                 DevPod passes hostRequirements.gpu on, but the GPU must come from the DevPod provider's machine: \
                 choose one with GPUs through providers.devpod.options (e.g. an instance type)",
                if why.is_empty() { String::new() } else { format!(": {why}") }
            ));
        }
        Ok(())
    }
}

/// `.sindri/devpod/NAME/`'s marker for a listed workspace, if it has one.
fn marker_of(ws: &ListedWorkspace) -> Result<Option<(Marker, PathBuf)>> {
    if ws.source.local_folder.is_empty() || ws.devcontainer_path.is_empty() {
        return Ok(None);
    }
    let rel = Path::new(&ws.devcontainer_path);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Ok(None);
    }
    let Some(dir) = Path::new(&ws.source.local_folder)
        .join(rel)
        .parent()
        .map(Path::to_path_buf)
    else {
        return Ok(None);
    };
    Ok(workspace::read_marker(&dir)?.map(|m| (m, dir)))
}

/// The project id of a workspace's source folder.
fn source_project(ws: &ListedWorkspace) -> String {
    project_id(Path::new(&ws.source.local_folder))
}

fn conflict(id: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("DevPod workspace {id} exists but sindri did not create it for this environment: {why}"),
    )
    .with_provider(ProviderKind::Devpod)
    .with_hint(format!(
        "sindri never touches it; delete it yourself (`devpod delete {id}`) or rename the environment"
    ))
}

/// The deployment record of a workspace sindri owns.
fn record(f: &Found) -> Deployment {
    let mut details = BTreeMap::new();
    details.insert("workspace".to_string(), f.ws.id.clone());
    if !f.ws.uid.is_empty() {
        details.insert("devpod_uid".to_string(), f.ws.uid.clone());
    }
    details.insert("source".to_string(), f.ws.source.local_folder.clone());
    details.insert(
        "devcontainer_path".to_string(),
        f.ws.devcontainer_path.clone(),
    );
    if !f.ws.provider.name.is_empty() {
        details.insert("devpod_provider".to_string(), f.ws.provider.name.clone());
    }
    if !f.ws.context.is_empty() {
        details.insert("devpod_context".to_string(), f.ws.context.clone());
    }
    details.insert("secrets_file".to_string(), f.marker.secrets_file.clone());
    Deployment {
        name: f.marker.name.clone(),
        provider: ProviderKind::Devpod,
        project: f.marker.project.clone(),
        resource_id: Some(f.ws.id.clone()),
        spec_hash: f.marker.spec_hash.clone(),
        state: if f.marker.pending.is_some() {
            DeploymentState::Creating
        } else {
            DeploymentState::Ready
        },
        details,
        created_at: f.marker.created_at,
        updated_at: f.marker.updated_at,
    }
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

fn blocking_error(e: tokio::task::JoinError) -> Error {
    Error::internal(format!("the copy stopped: {e}")).with_provider(ProviderKind::Devpod)
}

#[async_trait]
impl Provider for DevpodProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Devpod
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            start_stop: true,
            suspend: false,
            exec: true,
            connect: true,
            logs: true,
            copy: true,
            // Passed on as hostRequirements.gpu; whether a GPU is there depends on the
            // DevPod provider's machine, and deploy warns when none shows up.
            gpu: true,
            volumes: true,
            // DevPod forwards ports only within its own sessions; nothing is published.
            ports: false,
            spot: false,
            build: true,
            notes: vec![(Operation::Suspend, NO_SUSPEND)],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match self.cli() {
            Err(e) => checks.push(Check {
                name: "devpod CLI".into(),
                status: CheckStatus::Fail,
                detail: e.message().to_string(),
                hint: Some(cli::install_hint()),
            }),
            Ok(cli) => match cli.version().await {
                Ok(v) => checks.push(Check {
                    name: "devpod CLI".into(),
                    status: CheckStatus::Ok,
                    detail: format!("{v} ({})", cli.bin().display()),
                    hint: None,
                }),
                Err(e) => checks.push(Check {
                    name: "devpod CLI".into(),
                    status: CheckStatus::Fail,
                    detail: format!("{} does not run: {e}", cli.bin().display()),
                    hint: Some(cli::install_hint()),
                }),
            },
        }
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, _current: Option<&Deployment>) -> Result<Plan> {
        let project_dir = workspace::project_dir(spec)?;
        let content = Self::render(spec)?;
        let name = spec.name();
        let id = workspace_id(name);
        let rel = devcontainer_path(name);
        let dir = workspace::env_dir(&project_dir, name);
        let hash = spec.spec_hash();
        let provider = self
            .settings
            .provider
            .clone()
            .unwrap_or_else(|| "DevPod's default provider".into());
        let ws_step = match self.cli() {
            Err(e) => PlanStep {
                action: PlanAction::Create,
                resource: format!("DevPod workspace {id}"),
                reason: Some(format!("cannot see existing workspaces: {}", e.message())),
            },
            Ok(cli) => match self.lookup(&cli, &id, name, &spec.project).await? {
                Lookup::Foreign(why) => return Err(conflict(&id, &why)),
                Lookup::Missing => PlanStep {
                    action: PlanAction::Create,
                    resource: format!("DevPod workspace {id}"),
                    reason: Some(format!(
                        "`devpod up` of {} on {provider}",
                        project_dir.display()
                    )),
                },
                Lookup::Ours(f) => match self.replace_reason(&f) {
                    Some(why) => PlanStep {
                        action: PlanAction::Replace,
                        resource: format!("DevPod workspace {id}"),
                        reason: Some(format!("{why}: deleted and created again")),
                    },
                    None if f.marker.spec_hash != hash || f.marker.pending.is_some() => PlanStep {
                        action: PlanAction::Replace,
                        resource: format!("DevPod workspace {id}"),
                        reason: Some(
                            "spec changed: `devpod up --recreate` (named volumes kept)".into(),
                        ),
                    },
                    None => PlanStep {
                        action: PlanAction::Keep,
                        resource: format!("DevPod workspace {id}"),
                        reason: None,
                    },
                },
            },
        };
        let file_action = match std::fs::read_to_string(dir.join(DEVCONTAINER)) {
            Ok(existing) if existing == content => PlanAction::Keep,
            Ok(_) => PlanAction::Update,
            Err(_) => PlanAction::Create,
        };
        Ok(Plan {
            provider: ProviderKind::Devpod,
            environment: name.to_string(),
            steps: vec![
                PlanStep {
                    action: file_action,
                    resource: format!("file {}", dir.join(DEVCONTAINER).display()),
                    reason: None,
                },
                ws_step,
            ],
            artifacts: vec![RenderedArtifact { name: rel, content }],
        })
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        _opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        let cli = self.cli()?;
        let project_dir = workspace::project_dir(spec)?;
        let content = Self::render(spec)?;
        let name = spec.name();
        let id = workspace_id(name);
        let rel = devcontainer_path(name);
        let dir = workspace::env_dir(&project_dir, name);
        let hash = spec.spec_hash();
        let found = match self.lookup(&cli, &id, name, &spec.project).await? {
            Lookup::Foreign(why) => return Err(conflict(&id, &why)),
            Lookup::Missing => None,
            Lookup::Ours(f) => Some(*f),
        };
        let state = match &found {
            Some(_) => cli.status(&id).await?.map(|s| s.state),
            None => None,
        };
        let replace = found.as_ref().and_then(|f| self.replace_reason(f));
        let on_disk = std::fs::read_to_string(dir.join(DEVCONTAINER)).ok();
        let unchanged = replace.is_none()
            && on_disk.as_deref() == Some(content.as_str())
            && found
                .as_ref()
                .is_some_and(|f| f.marker.spec_hash == hash && f.marker.pending.is_none());
        if let (true, Some(f), Some("Running")) = (unchanged, &found, state.as_deref()) {
            return Ok(record(f));
        }
        if let Some(why) = &replace {
            progress.message(&format!(
                "{why}: deleting workspace {id} to create it again"
            ));
            sindri_core::progress::phase(
                progress,
                "delete the old workspace",
                Self::delete(&cli, &id),
            )
            .await?;
        }

        let home = spec.spec.deployment.home.trim_end_matches('/');
        let secrets_file = format!(
            "{}/.sindri/secrets.env",
            if home.is_empty() { "" } else { home }
        );
        let now = unix_now();
        let mut marker = Marker {
            managed: true,
            name: name.to_string(),
            project: spec.project.clone(),
            workspace: id.clone(),
            spec_hash: found
                .as_ref()
                .filter(|_| replace.is_none())
                .map(|f| f.marker.spec_hash.clone())
                .unwrap_or_default(),
            pending: Some(hash.clone()),
            devpod_provider: self.settings.provider.clone(),
            options_hash: workspace::options_hash(&self.settings.options),
            secrets_file: secrets_file.clone(),
            volumes: workspace::volume_names(spec),
            created_at: found.as_ref().map_or(now, |f| f.marker.created_at),
            updated_at: now,
        };
        {
            let (dir, content, marker_json, project_dir) = (
                dir.clone(),
                content.clone(),
                marker.to_json(),
                project_dir.clone(),
            );
            tokio::task::spawn_blocking(move || -> Result<()> {
                workspace::ensure_gitignore(&project_dir)?;
                // The marker first: an interrupted deploy leaves files sindri knows.
                workspace::write_atomic(&dir.join(MARKER), &marker_json)?;
                workspace::write_atomic(&dir.join(DEVCONTAINER), &content)
            })
            .await
            .map_err(|e| {
                Error::internal(format!("writing the devcontainer.json stopped: {e}"))
            })??;
        }

        let mut args: Vec<String> = vec![
            "up".into(),
            project_dir.display().to_string(),
            "--id".into(),
            id.clone(),
            "--ide".into(),
            self.ide().to_string(),
            "--devcontainer-path".into(),
            rel,
        ];
        if let Some(p) = &self.settings.provider {
            args.push("--provider".into());
            args.push(p.clone());
        }
        for (k, v) in &self.settings.options {
            args.push("--provider-option".into());
            args.push(format!("{k}={v}"));
        }
        let recreate = found.is_some() && replace.is_none() && !unchanged;
        if recreate {
            args.push("--recreate".into());
        }
        let what = if found.is_some() && replace.is_none() {
            if recreate {
                "recreate the workspace"
            } else {
                "start the workspace"
            }
        } else {
            "create the workspace"
        };
        sindri_core::progress::phase(progress, "devpod up", cli.streamed(what, &args, progress))
            .await?;

        if !unchanged {
            sindri_core::progress::phase(
                progress,
                "write secrets",
                Self::write_secrets(&cli, &id, spec, &secrets_file),
            )
            .await?;
            if spec.spec.deployment.resources.gpu.is_some() {
                sindri_core::progress::phase(
                    progress,
                    "check GPUs",
                    Self::check_gpu(&cli, &id, progress),
                )
                .await?;
            }
        }

        marker.spec_hash = hash;
        marker.pending = None;
        marker.updated_at = unix_now();
        workspace::write_atomic(&dir.join(MARKER), &marker.to_json())?;

        match self.lookup(&cli, &id, name, &spec.project).await? {
            Lookup::Ours(f) => Ok(record(&f)),
            Lookup::Missing => Err(Error::platform(
                ProviderKind::Devpod,
                format!("`devpod up` succeeded but `devpod list` does not show workspace {id}"),
            )),
            Lookup::Foreign(why) => Err(conflict(&id, &why)),
        }
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let cli = self.cli()?;
        let id = Self::id_of(d);
        let found = match self.lookup(&cli, &id, &d.name, &d.project).await? {
            Lookup::Missing => return Ok(Status::new(StatusState::Missing)),
            Lookup::Foreign(why) => {
                let mut s = Status::new(StatusState::Missing);
                s.message = Some(conflict(&id, &why).to_string());
                return Ok(s);
            }
            Lookup::Ours(f) => f,
        };
        let Some(ws) = cli.status(&id).await? else {
            return Ok(Status::new(StatusState::Missing));
        };
        let (state, message) = match ws.state.as_str() {
            "Running" => (StatusState::Running, None),
            "Busy" => (StatusState::Starting, Some("DevPod reports the workspace busy (starting or changing)".to_string())),
            "Stopped" => (StatusState::Stopped, None),
            "NotFound" => (
                StatusState::Missing,
                Some("DevPod knows the workspace but its container or machine is gone; `sindri deploy` creates it again".to_string()),
            ),
            other => (StatusState::Failed, Some(format!("DevPod reports state `{other}`"))),
        };
        let mut s = Status::new(state);
        s.message = message;
        s.details.insert("workspace".into(), id.clone());
        s.details
            .insert("source".into(), found.ws.source.local_folder.clone());
        if !ws.provider.is_empty() {
            s.details
                .insert("devpod_provider".into(), ws.provider.clone());
        }
        if !ws.context.is_empty() {
            s.details
                .insert("devpod_context".into(), ws.context.clone());
        }
        if state == StatusState::Running {
            s.endpoints.push(Endpoint {
                name: "ssh (configured by DevPod in ~/.ssh/config)".into(),
                address: format!("ssh://{id}.devpod"),
            });
        }
        Ok(s)
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        let (cli, f) = self.require(d).await?;
        let id = f.ws.id;
        match cli.status(&id).await?.map(|s| s.state) {
            Some(s) if s == "Running" => Ok(()),
            None => Err(Error::not_found(format!("DevPod has no workspace {id}"))
                .with_provider(ProviderKind::Devpod)),
            Some(_) => {
                let args = ["up", "--id", id.as_str(), "--ide", self.ide()];
                cli.streamed("start the workspace", &args, &NoProgress)
                    .await
            }
        }
    }

    async fn stop(&self, d: &Deployment) -> Result<()> {
        let (cli, f) = self.require(d).await?;
        let id = f.ws.id;
        match cli.status(&id).await?.map(|s| s.state).as_deref() {
            Some("Stopped") => Ok(()),
            None | Some("NotFound") => Err(Error::not_found(format!(
                "the container or machine of workspace {id} is gone; nothing to stop"
            ))
            .with_provider(ProviderKind::Devpod)
            .with_hint("`sindri deploy` creates it again")),
            Some(_) => cli
                .checked("stop the workspace", &["stop", id.as_str()])
                .await
                .map(|_| ()),
        }
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Devpod,
            Operation::Suspend,
            Some(NO_SUSPEND),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        // Bad input is refused before DevPod is asked anything.
        session::exec_line(cmd, None)?;
        let (cli, f) = self.require(d).await?;
        let line = session::exec_line(cmd, Some(&f.marker.secrets_file))?;
        let args = session::ssh_args(&f.ws.id, cmd.user.as_deref(), &line);
        session::run(&cli, &args, io).await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        let (cli, f) = self.require(d).await?;
        let args = vec![
            "ssh".to_string(),
            f.ws.id.clone(),
            "--command".to_string(),
            session::login_line(Some(&f.marker.secrets_file)),
        ];
        session::run(&cli, &args, io).await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let (cli, f) = self.require(d).await?;
        let bytes = cli
            .checked("read the workspace logs", &["logs", f.ws.id.as_str()])
            .await?;
        let shown = match opts.tail {
            Some(n) => last_lines(&bytes, n),
            None => &bytes[..],
        };
        out.write_all(shown).await?;
        out.flush().await?;
        Ok(())
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        let (cli, f) = self.require(d).await?;
        let t = copy::Target {
            bin: cli.bin().to_path_buf(),
            id: f.ws.id,
        };
        let (from, to) = (from.to_path_buf(), to.to_string());
        tokio::task::spawn_blocking(move || copy::copy_in(&t, &from, &to))
            .await
            .map_err(blocking_error)?
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        let (cli, f) = self.require(d).await?;
        let t = copy::Target {
            bin: cli.bin().to_path_buf(),
            id: f.ws.id,
        };
        let (from, to) = (from.to_string(), to.to_path_buf());
        tokio::task::spawn_blocking(move || copy::copy_out(&t, &from, &to))
            .await
            .map_err(blocking_error)?
    }

    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
        let cli = self.cli()?;
        let id = Self::id_of(d);
        let mut report = DestroyReport::default();
        let f = match self.lookup(&cli, &id, &d.name, &d.project).await? {
            Lookup::Missing => return Ok(report),
            Lookup::Foreign(why) => return Err(conflict(&id, &why)),
            Lookup::Ours(f) => f,
        };
        Self::delete(&cli, &id).await?;
        let provider = if f.ws.provider.name.is_empty() {
            "DevPod provider's".to_string()
        } else {
            format!("{} provider's", f.ws.provider.name)
        };
        report.removed.push(format!(
            "DevPod workspace {id} (the {provider} container or machine)"
        ));
        if f.ws.provider.name == "docker" {
            for v in &f.marker.volumes {
                report.kept.push(format!(
                    "Docker volume {v}: DevPod's docker provider deletes only the container, so the volume stays on its Docker host{}; remove it there with `docker volume rm {v}`",
                    if opts.volumes { " even with --volumes (DevPod offers no way to delete it)" } else { "" }
                ));
            }
        } else if !f.marker.volumes.is_empty() {
            report.removed.push(format!(
                "volumes {} with the workspace (DevPod deletes a workspace's data with it{})",
                f.marker.volumes.join(", "),
                if opts.volumes {
                    ""
                } else {
                    "; the home volume cannot be kept without --volumes"
                }
            ));
        }
        let dir = f.dir.clone();
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(
                Error::internal(format!("cannot remove {}: {e}", dir.display()))
                    .with_provider(ProviderKind::Devpod),
            ),
        })
        .await
        .map_err(|e| Error::internal(format!("destroy stopped: {e}")))??;
        if removed {
            report.removed.push(format!("files {}", f.dir.display()));
        }
        Ok(report)
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let cli = self.cli()?;
        let mut out = Vec::new();
        for ws in cli.list().await? {
            if !ws.id.starts_with(PREFIX) {
                continue;
            }
            // Workspaces without a readable marker are not sindri's: skipped, never an error.
            let Ok(Some((marker, dir))) = marker_of(&ws) else {
                continue;
            };
            if marker.workspace != ws.id || source_project(&ws) != marker.project {
                continue;
            }
            out.push(record(&Found { ws, marker, dir }));
        }
        out.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_honest() {
        let p = DevpodProvider::new(DevpodSettings::default());
        let caps = p.capabilities();
        assert!(caps.supports(Operation::Stop) && caps.supports(Operation::Start));
        assert!(!caps.supports(Operation::Suspend));
        assert!(
            caps.note(Operation::Suspend)
                .is_some_and(|n| n.contains("devpod stop"))
        );
        assert!(caps.build && caps.gpu && caps.volumes);
        assert!(!caps.ports && !caps.spot);
    }

    #[test]
    fn the_factory_does_no_io() {
        let p = factory(&ProvidersSpec::default()).expect("factory");
        assert_eq!(p.kind(), ProviderKind::Devpod);
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a", 3), b"a");
    }
}
