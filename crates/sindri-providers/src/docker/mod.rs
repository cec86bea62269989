//! The Docker provider: the local Docker Engine (or any engine `DOCKER_HOST` or the
//! current docker context points at), driven through its HTTP API with bollard. The
//! docker CLI is never run.
//!
//! # What an environment is
//! For environment `NAME`, sindri creates, each labelled `sindri.managed=true`,
//! `sindri.environment=NAME`, `sindri.project=<project id>` and `sindri.spec-hash`:
//! - the container `sindri-NAME`, whose entrypoint is a signal-aware `sh` sleep loop
//!   (never the image's CMD), with `docker-init` as PID 1, so any image with a POSIX
//!   shell works;
//! - the network `sindri-NAME` (unless `providers.docker.network` names one);
//! - the volume `sindri-NAME-home` at `deployment.home`, and `sindri-NAME-VOL` for
//!   each `deployment.volumes` entry;
//! - the image `sindri-NAME:<project id>` when `deployment.build` is given.
//!
//! # When deploy changes something
//! The container is kept when its labels carry the spec's hash (and, for a build, the
//! digest of the build inputs) and it still runs the image its tag names; otherwise it
//! is replaced and the volumes are kept. `destroy` keeps volumes, the network and
//! built images unless asked for `--volumes`, and says so.
//!
//! # Secrets
//! Delivered after every start into a tmpfs at `/run/sindri` through exec stdin; see
//! `secrets.rs`. A stopped container loses them: `start` cannot re-deliver them (it is
//! not given the spec), `deploy` does, and `status` says when they are missing.
//!
//! # Not supported
//! `suspend`: `docker pause` freezes processes but keeps their memory, so it is not a
//! suspend that frees resources; use `stop` (the home volume is kept).

mod archive;
mod deploy;
mod engine;
mod ignore;
mod objects;
mod request;
mod secrets;
mod session;
mod status;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DestroyOptions, DestroyReport,
    Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Operation, Plan, Progress,
    Provider, ResolvedSpec, Result, Status, TransferStats,
};
use sindri_spec::{DockerSettings, PortMapping, Protocol, ProviderKind, ProvidersSpec};
use tokio::io::AsyncWriteExt;

use engine::{EngineHost, HostLookup, api_error, is_not_modified, is_status};
pub use request::{
    LABEL_BUILD_HASH, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, LABEL_SPEC_HASH,
    container_name,
};

/// Why `suspend` is missing, shown when it is refused.
const SUSPEND_NOTE: &str = "Docker cannot suspend: `docker pause` freezes processes but keeps their memory allocated. \
Use `sindri stop` instead: compute stops and the home volume is kept.";

/// How long `stop` lets the container end before the engine kills it; sindri's
/// keep-alive loop ends at once on SIGTERM.
const STOP_GRACE_SECS: i32 = 10;

/// Builds the Docker provider from `providers.docker`. Does no I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(DockerProvider::new(
        settings.docker.clone().unwrap_or_default(),
    )))
}

/// The Docker provider. Cheap to build; the engine is first contacted by the first
/// operation that needs it, and the connection is then reused.
pub struct DockerProvider {
    settings: DockerSettings,
    engine: tokio::sync::OnceCell<Connected>,
}

struct Connected {
    docker: Docker,
    host: EngineHost,
}

impl DockerProvider {
    /// A provider with these settings (`host`, and defaults for `dind`, `network` and
    /// `runtime` when a spec has no `providers.docker` of its own).
    pub fn new(settings: DockerSettings) -> DockerProvider {
        DockerProvider {
            settings,
            engine: tokio::sync::OnceCell::new(),
        }
    }

    /// The engine connection, made on first use within 5 s or an `Unavailable` error
    /// naming the address tried and how to start Docker.
    async fn connect(&self) -> Result<&Connected> {
        self.engine
            .get_or_try_init(|| async {
                let lookup = HostLookup::from_env(self.settings.host.as_deref());
                let host = engine::resolve_host(&lookup)?;
                let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
                let docker = engine::connect(&host, tls).await?;
                Ok(Connected { docker, host })
            })
            .await
    }
}

#[async_trait]
impl Provider for DockerProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Docker
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            start_stop: true,
            suspend: false,
            exec: true,
            connect: true,
            logs: true,
            copy: true,
            gpu: true,
            volumes: true,
            ports: true,
            spot: false,
            build: true,
            notes: vec![(Operation::Suspend, SUSPEND_NOTE)],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let c = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check {
                    name: "docker engine".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
                return checks;
            }
        };
        match c.docker.version().await {
            Ok(v) => checks.push(Check {
                name: "docker engine".into(),
                status: CheckStatus::Ok,
                detail: format!(
                    "Docker Engine {} (API {}) at {}",
                    v.version.unwrap_or_else(|| "?".into()),
                    v.api_version.unwrap_or_else(|| "?".into()),
                    c.host.describe()
                ),
                hint: None,
            }),
            Err(e) => {
                let e = api_error("read the engine version", e);
                checks.push(Check {
                    name: "docker engine".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
                return checks;
            }
        }
        let info = match c.docker.info().await {
            Ok(i) => i,
            Err(e) => {
                checks.push(Check {
                    name: "docker runtimes".into(),
                    status: CheckStatus::Warn,
                    detail: api_error("read the engine's info", e).message().to_string(),
                    hint: None,
                });
                return checks;
            }
        };
        let mut runtimes: Vec<String> = info
            .runtimes
            .clone()
            .unwrap_or_default()
            .into_keys()
            .collect();
        runtimes.sort();
        let wanted = request::dind(&self.settings).ok().and_then(|d| d.runtime);
        match wanted {
            Some(rt) if !runtimes.contains(&rt) => checks.push(Check {
                name: "docker runtimes".into(),
                status: CheckStatus::Fail,
                detail: format!("runtime `{rt}` is not available (the engine has: {})", runtimes.join(", ")),
                hint: Some(if rt == request::SYSBOX_RUNTIME {
                    "install Sysbox on the Docker host, or use `dind: privileged`".into()
                } else {
                    "register the runtime in /etc/docker/daemon.json, or remove providers.docker.runtime".into()
                }),
            }),
            _ => checks.push(Check {
                name: "docker runtimes".into(),
                status: CheckStatus::Ok,
                detail: format!(
                    "{} (default {})",
                    runtimes.join(", "),
                    info.default_runtime.clone().unwrap_or_else(|| "runc".into())
                ),
                hint: None,
            }),
        }
        if let (Some(_), Some(root)) = (c.host.socket_path(), info.docker_root_dir.as_deref())
            && let Ok(fs) = rustix::fs::statvfs(root)
        {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            let total = fs.f_blocks.saturating_mul(fs.f_frsize).max(1);
            let gib = free as f64 / (1u64 << 30) as f64;
            let low = free < 2 * (1u64 << 30) || free * 20 < total;
            checks.push(Check {
                name: "docker disk space".into(),
                status: if low {
                    CheckStatus::Warn
                } else {
                    CheckStatus::Ok
                },
                detail: format!("{gib:.1} GiB free in {root}"),
                hint: low.then(|| {
                    "free space: `docker system prune` removes unused images and build cache"
                        .to_string()
                }),
            });
        }
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, _current: Option<&Deployment>) -> Result<Plan> {
        let c = self.connect().await?;
        deploy::plan(&c.docker, spec, &self.settings).await
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        let c = sindri_core::progress::phase(progress, "connect to docker", self.connect()).await?;
        deploy::deploy(&c.docker, &c.host, spec, &self.settings, opts, progress).await
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let c = self.connect().await?;
        status::status(&c.docker, &c.host, d).await
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        let c = self.connect().await?;
        let container = objects::require(&c.docker, d).await?;
        let id = objects::id_of(&container);
        match c.docker.start_container(&id, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_modified(&e) => Ok(()),
            Err(e) => Err(deploy::start_error(
                &d.name,
                &published_ports(&container),
                e,
            )),
        }
    }

    async fn stop(&self, d: &Deployment) -> Result<()> {
        let c = self.connect().await?;
        let container = objects::require(&c.docker, d).await?;
        let id = objects::id_of(&container);
        let opts = StopContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECS)
            .build();
        match c.docker.stop_container(&id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_modified(&e) => Ok(()),
            Err(e) => Err(api_error(
                &format!("stop container {}", container_name(&d.name)),
                e,
            )),
        }
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Docker,
            Operation::Suspend,
            Some(SUSPEND_NOTE),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        let c = self.connect().await?;
        let container = objects::require_running(&c.docker, d).await?;
        let req = session::ExecRequest {
            argv: session::wrap(&cmd.argv),
            env: cmd.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: cmd.workdir.clone(),
            user: cmd.user.clone(),
        };
        session::run(&c.docker, &objects::id_of(&container), req, io).await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        let c = DockerProvider::connect(self).await?;
        let container = objects::require_running(&c.docker, d).await?;
        let req = session::ExecRequest {
            argv: session::shell(),
            ..Default::default()
        };
        session::run(&c.docker, &objects::id_of(&container), req, io).await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let c = self.connect().await?;
        let container = objects::require(&c.docker, d).await?;
        let tail = opts
            .tail
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".to_string());
        let options = LogsOptionsBuilder::new()
            .follow(opts.follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let mut stream = c.docker.logs(&objects::id_of(&container), Some(options));
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| {
                api_error(&format!("read the logs of {}", container_name(&d.name)), e)
            })?;
            out.write_all(&item.into_bytes()).await?;
            out.flush().await?;
        }
        Ok(())
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        let c = self.connect().await?;
        copy_in(&c.docker, d, from, to).await
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        let c = self.connect().await?;
        copy_out(&c.docker, d, from, to).await
    }

    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
        let c = self.connect().await?;
        destroy(&c.docker, d, opts).await
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let c = self.connect().await?;
        status::list_owned(&c.docker, &c.host).await
    }
}

/// Host ports a container publishes, for explaining a failed start.
fn published_ports(c: &bollard::models::ContainerInspectResponse) -> Vec<PortMapping> {
    let mut out = Vec::new();
    let Some(bindings) = c
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
    else {
        return out;
    };
    for (key, list) in bindings {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let Ok(container) = port.parse::<u16>() else {
            continue;
        };
        let protocol = if proto == "udp" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        for b in list.iter().flatten() {
            if let Some(host) = b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()) {
                out.push(PortMapping {
                    container,
                    host,
                    protocol,
                });
            }
        }
    }
    out
}

/// Go's `os.ModeDir`, as the engine reports a path's mode.
const GO_MODE_DIR: u32 = 1 << 31;

/// Whether `path` exists in the container, and whether it is a directory.
async fn path_kind(docker: &Docker, id: &str, path: &str) -> Result<Option<bool>> {
    let opts = ContainerArchiveInfoOptionsBuilder::new().path(path).build();
    match docker.get_container_archive_info(id, Some(opts)).await {
        Ok(stat) => Ok(Some(stat.file_mode & GO_MODE_DIR != 0)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(api_error(&format!("look up {path}"), e)),
    }
}

fn parent_of(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((p, _)) => p,
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit_once('/').map(|(_, b)| b).unwrap_or(path)
}

/// Copies a local file or directory into the container. `to` names the copy itself: a
/// directory's contents land in `to` (merged when it exists, created with its parents
/// when not); a file becomes `to`, or `to/<name>` when `to` is an existing directory.
async fn copy_in(docker: &Docker, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
    if !to.starts_with('/') {
        return Err(Error::invalid(format!(
            "copy destination `{to}`: expected an absolute path inside the environment"
        )));
    }
    let meta = tokio::fs::symlink_metadata(from).await.map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("cannot read {}: {e}", from.display()))
    })?;
    let from_is_dir = meta.is_dir();
    let container = objects::require(docker, d).await?;
    let id = objects::id_of(&container);
    let to_norm = if to.trim_end_matches('/').is_empty() {
        "/".to_string()
    } else {
        to.trim_end_matches('/').to_string()
    };
    let local_name = from
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: expected a file or directory name in UTF-8",
                from.display()
            ))
        })?
        .to_string();

    // Where to extract, the name of the copy inside the archive, and directories to create.
    let (extract_at, top, missing): (String, String, Vec<String>) =
        match (path_kind(docker, &id, &to_norm).await?, from_is_dir) {
            (Some(true), true) => (to_norm.clone(), String::new(), vec![]),
            (Some(true), false) => (to_norm.clone(), local_name, vec![]),
            (Some(false), false) => (
                parent_of(&to_norm).to_string(),
                base_name(&to_norm).to_string(),
                vec![],
            ),
            (Some(false), true) => {
                return Err(Error::invalid(format!(
                    "cannot copy directory {} onto the file {to_norm}",
                    from.display()
                )));
            }
            (None, _) => {
                let mut ancestor = parent_of(&to_norm).to_string();
                loop {
                    match path_kind(docker, &id, &ancestor).await? {
                        Some(true) => break,
                        Some(false) => {
                            return Err(Error::invalid(format!(
                                "cannot copy to {to_norm}: {ancestor} is a file"
                            )));
                        }
                        None => ancestor = parent_of(&ancestor).to_string(),
                    }
                }
                let rel = to_norm
                    .strip_prefix(&ancestor)
                    .unwrap_or(&to_norm)
                    .trim_start_matches('/')
                    .to_string();
                let parts: Vec<&str> = rel.split('/').collect();
                let missing = (1..parts.len()).map(|i| parts[..i].join("/")).collect();
                (ancestor, rel, missing)
            }
        };

    let from = from.to_path_buf();
    let upload = archive::tar_upload(move |b| {
        for dir in &missing {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(sindri_core::unix_now().max(0) as u64);
            h.set_cksum();
            b.append_data(&mut h, format!("{dir}/"), std::io::empty())
                .map_err(|e| Error::internal(format!("cannot archive {dir}: {e}")))?;
        }
        if from_is_dir {
            let mut entries = Vec::new();
            if !top.is_empty() {
                entries.push(archive::Entry {
                    name: format!("{top}/"),
                    path: from.clone(),
                });
            }
            entries.extend(archive::walk(&from, &top, &|_, _| archive::Walk::Include)?);
            archive::append_entries(b, &entries)
        } else {
            archive::append_entries(
                b,
                &[archive::Entry {
                    name: top.clone(),
                    path: from.clone(),
                }],
            )
        }
    });
    let opts = UploadToContainerOptionsBuilder::new()
        .path(&extract_at)
        .copy_uidgid("1")
        .build();
    let sent = docker
        .upload_to_container(&id, Some(opts), bollard::body_stream(upload.body))
        .await;
    let stats = archive::finish(upload.done).await?;
    sent.map_err(|e| api_error(&format!("copy into {to_norm}"), e))?;
    Ok(stats)
}

/// Copies a file or directory out of the container; `to` names the copy itself (see
/// `archive::unpack`).
async fn copy_out(docker: &Docker, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
    if !from.starts_with('/') {
        return Err(Error::invalid(format!(
            "copy source `{from}`: expected an absolute path inside the environment"
        )));
    }
    let container = objects::require(docker, d).await?;
    let id = objects::id_of(&container);
    if path_kind(docker, &id, from).await?.is_none() {
        return Err(Error::not_found(format!(
            "no such file or directory in environment `{}`: {from}",
            d.name
        ))
        .with_provider(ProviderKind::Docker));
    }
    let opts = DownloadFromContainerOptionsBuilder::new()
        .path(from)
        .build();
    let action = format!("copy {from} out of {}", container_name(&d.name));
    let stream = docker
        .download_from_container(&id, Some(opts))
        .map(move |r| r.map_err(|e| api_error(&action, e)));
    archive::unpack(stream, to).await
}

/// Removes the environment's objects. The container always; volumes, the network and
/// built images only with `opts.volumes`, else they are reported as kept with how to
/// remove them. Only objects labelled for this environment of this project are touched.
async fn destroy(docker: &Docker, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
    let mut report = DestroyReport::default();
    let name = container_name(&d.name);
    let mut removed_ids = Vec::new();
    match objects::find(docker, &d.name, &d.project).await? {
        objects::Found::Ours(c) => {
            let id = objects::id_of(&c);
            deploy::remove_container(docker, &id).await?;
            report.removed.push(format!("container {name}"));
            removed_ids.push(id);
        }
        objects::Found::NotOurs(_) => report.kept.push(format!(
            "container {name}: not created by sindri for this environment; left alone"
        )),
        objects::Found::Missing => {}
    }
    let filter = request::owner_filter(&d.name, &d.project);
    let found = objects::labelled(docker, &filter).await?;
    for (id, cname) in &found.containers {
        if removed_ids.contains(id) {
            continue;
        }
        deploy::remove_container(docker, id).await?;
        report.removed.push(format!("container {cname}"));
    }
    let home = request::home_volume_name(&d.name);
    if opts.volumes {
        // Removing a network takes the engine ~150 ms; volumes and networks do not
        // depend on each other once the containers are gone, so they go at once.
        let volumes = futures_util::future::join_all(found.volumes.iter().map(|v| async move {
            match docker
                .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
            {
                Ok(()) => Ok(Some(format!("volume {v}"))),
                Err(e) if is_status(&e, 404) => Ok(None),
                Err(e) => Err(api_error(&format!("remove volume {v}"), e).with_hint(
                    "a container outside sindri may be using it: `docker ps -a --filter volume=NAME`",
                )),
            }
        }));
        let networks =
            futures_util::future::join_all(found.networks.iter().map(|(id, net)| async move {
                match docker.remove_network(id).await {
                    Ok(()) => Ok(Some(format!("network {net}"))),
                    Err(e) if is_status(&e, 404) => Ok(None),
                    Err(e) => Err(api_error(&format!("remove network {net}"), e)
                        .with_hint("a container outside sindri may still be attached to it")),
                }
            }));
        let (volumes, networks) = tokio::join!(volumes, networks);
        for removed in volumes.into_iter().chain(networks) {
            report.removed.extend(removed?);
        }
    } else {
        for v in &found.volumes {
            let what = if *v == home { " (home directory)" } else { "" };
            report.kept.push(format!(
                "volume {v}{what}: kept for the next deploy; remove it with `sindri destroy --volumes` or `docker volume rm {v}`"
            ));
        }
        for (_, net) in &found.networks {
            report.kept.push(format!(
                "network {net}: kept for the next deploy; `sindri destroy --volumes` removes it"
            ));
        }
    }
    let image_name = |id: &str, tags: &[String]| {
        tags.iter()
            .find(|t| !t.starts_with("<none>"))
            .cloned()
            .unwrap_or_else(|| id.chars().take(19).collect())
    };
    if opts.volumes {
        // An image with children cannot be removed before them (409), so retry
        // until a round makes no progress; removing a child prunes its untagged parents.
        let mut pending = found.images.clone();
        loop {
            let mut blocked = Vec::new();
            let before = pending.len();
            for (id, tags) in pending {
                let name = image_name(&id, &tags);
                let ropts = RemoveImageOptionsBuilder::new()
                    .force(false)
                    .noprune(false)
                    .build();
                match docker.remove_image(&id, Some(ropts), None).await {
                    Ok(_) => report.removed.push(format!("image {name}")),
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) if is_status(&e, 409) => blocked.push((id, tags)),
                    Err(e) => return Err(api_error(&format!("remove image {name}"), e)),
                }
            }
            if blocked.is_empty() {
                break;
            }
            if blocked.len() == before {
                for (id, tags) in blocked {
                    let name = image_name(&id, &tags);
                    report.kept.push(format!(
                        "image {name}: still used by a container or image outside sindri; remove it with `docker image rm {name}`"
                    ));
                }
                break;
            }
            pending = blocked;
        }
    } else {
        for (id, tags) in &found.images {
            let name = image_name(id, tags);
            report.kept.push(format!(
                "image {name} (built by sindri): `sindri destroy --volumes` or `docker image rm {name}` removes it"
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_declare_everything_but_suspend_and_spot() {
        let p = DockerProvider::new(DockerSettings::default());
        let caps = p.capabilities();
        let ops = caps.operations();
        for op in Operation::ALL {
            assert_eq!(ops.contains(&op), op != Operation::Suspend, "{op}");
        }
        assert!(caps.gpu && caps.build && caps.volumes && caps.ports);
        assert!(!caps.spot);
        assert!(
            caps.note(Operation::Suspend)
                .unwrap()
                .contains("sindri stop")
        );
    }

    #[test]
    fn the_factory_does_no_io() {
        // An address nothing listens on: building the provider must still succeed.
        let settings = ProvidersSpec {
            docker: Some(DockerSettings {
                host: Some("unix:///nonexistent/docker.sock".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = factory(&settings).unwrap();
        assert_eq!(p.kind(), ProviderKind::Docker);
    }

    #[test]
    fn paths_split_like_posix() {
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(base_name("/a/b"), "b");
    }
}
