//! `deploy` and `plan`: one decision procedure, run for real or only described.
//!
//! The engine is the only truth: the container of the environment is looked up by
//! name and judged by its labels. Same spec hash (and build digest) → keep it (start it
//! and re-deliver secrets when needed); different → build, recreate the container,
//! keep the volumes. Every object is created with the environment's labels before it
//! is used, so a deploy cancelled at any await point leaves only labelled objects,
//! which the next deploy reuses or replaces and `destroy` finds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use sindri_core::progress::phase;
use sindri_core::{
    DeployOptions, Deployment, DeploymentState, Error, ErrorKind, Plan, PlanAction, PlanStep,
    Progress, RenderedArtifact, ResolvedSpec, Result,
};
use sindri_spec::{DockerSettings, ProviderKind};

use super::archive::{self, BuildContext};
use super::engine::{EngineHost, api_error, is_not_modified, is_status};
use super::objects::{self, Found};
use super::request::{
    self, LABEL_BUILD_HASH, LABEL_SPEC_HASH, Ownership, container_name, home_volume_name,
    image_tag, network_name, volume_name,
};
use super::secrets;
use super::session::{ExecRequest, capture};

/// How long a started container may take to accept commands.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the spec asks of the engine, worked out before anything is changed.
pub(crate) struct Target {
    pub settings: DockerSettings,
    pub container: String,
    /// The network to attach to, and whether sindri manages it.
    pub network: (String, bool),
    /// Volume names with a description, home first.
    pub volumes: Vec<(String, String)>,
    /// The image the container runs.
    pub image: String,
    /// The scanned build context, when building.
    pub build: Option<BuildContext>,
    /// The id `image` names on the engine now, when not building and present: a tag
    /// moved to another image (`docker build -t` again) is a change to deploy.
    pub image_id: Option<String>,
    pub spec_hash: String,
}

impl Target {
    /// Reads the spec (and the build context, off the async runtime).
    pub async fn new(spec: &ResolvedSpec, fallback: &DockerSettings) -> Result<Target> {
        request::validate(spec)?;
        let settings = request::effective_settings(spec, fallback);
        request::dind(&settings)?;
        let d = &spec.spec.deployment;
        let env = spec.name();
        let build = match &d.build {
            Some(b) => {
                let context = spec.path(&b.context);
                let dockerfile = spec.path(&b.dockerfile);
                let args: BTreeMap<String, String> = b.args.clone();
                let target = b.target.clone();
                Some(
                    tokio::task::spawn_blocking(move || {
                        archive::scan_context(&context, &dockerfile, &args, target.as_deref())
                    })
                    .await
                    .map_err(|e| {
                        Error::internal(format!("scanning the build context failed: {e}"))
                    })??,
                )
            }
            None => None,
        };
        let image = match (&build, &d.image) {
            (Some(_), _) => image_tag(env, &spec.project),
            (None, Some(i)) => i.clone(),
            (None, None) => {
                return Err(
                    Error::invalid("deployment: neither `image` nor `build` is set")
                        .with_provider(ProviderKind::Docker),
                );
            }
        };
        let network = match &settings.network {
            Some(n) => (n.clone(), false),
            None => (network_name(env), true),
        };
        let mut volumes = vec![(home_volume_name(env), format!("home directory {}", d.home))];
        for v in &d.volumes {
            volumes.push((volume_name(env, &v.name), format!("volume at {}", v.path)));
        }
        Ok(Target {
            settings,
            container: container_name(env),
            network,
            volumes,
            image,
            build,
            image_id: None,
            spec_hash: spec.spec_hash(),
        })
    }

    /// Looks up the id `image` names now (not for built images, which the build
    /// digest covers).
    async fn resolve_image(&mut self, docker: &Docker) -> Result<()> {
        if self.build.is_some() {
            return Ok(());
        }
        self.image_id = match docker.inspect_image(&self.image).await {
            Ok(i) => i.id,
            Err(e) if is_status(&e, 404) => None,
            Err(e) => return Err(api_error(&format!("inspect image {}", self.image), e)),
        };
        Ok(())
    }

    fn build_hash(&self) -> Option<&str> {
        self.build.as_ref().map(|b| b.digest.as_str())
    }

    /// Why an existing container does not match, or `None` when it does.
    fn drift(&self, c: &ContainerInspectResponse) -> Option<String> {
        let have_spec = objects::label(c, LABEL_SPEC_HASH).unwrap_or("");
        if have_spec != self.spec_hash {
            return Some(format!(
                "spec changed (spec hash {have_spec} → {})",
                self.spec_hash
            ));
        }
        let have_build = objects::label(c, LABEL_BUILD_HASH);
        if have_build != self.build_hash() {
            return Some("build inputs changed (Dockerfile, build args or context files)".into());
        }
        if let (Some(now), Some(running)) = (&self.image_id, &c.image)
            && now != running
        {
            return Some(format!("image {} now points at another image", self.image));
        }
        None
    }
}

/// Deploys `spec`. See the module docs.
pub(crate) async fn deploy(
    docker: &Docker,
    host: &EngineHost,
    spec: &ResolvedSpec,
    fallback: &DockerSettings,
    opts: DeployOptions,
    progress: &dyn Progress,
) -> Result<Deployment> {
    let mut target = Target::new(spec, fallback).await?;
    let env = spec.name();
    let project = spec.project.as_str();
    let dind = request::dind(&target.settings)?;

    let existing = phase(progress, "inspect engine", async {
        if let Some(rt) = &dind.runtime {
            objects::require_runtime(docker, rt).await?;
        }
        target.resolve_image(docker).await?;
        objects::find(docker, env, project).await
    })
    .await?;
    let existing = match existing {
        Found::Missing => None,
        Found::Ours(c) => Some(*c),
        Found::NotOurs(o) => return Err(request::conflict("container", &target.container, &o)),
    };

    if let Some(c) = &existing
        && target.drift(c).is_none()
    {
        return resume(docker, host, spec, &target, c, opts, progress).await;
    }

    warn_unenforced(spec, progress);
    let labels = request::labels(spec, target.build_hash());
    match &target.build {
        Some(ctx) => {
            phase(
                progress,
                "build image",
                build_image(docker, spec, &target.image, ctx, &labels, progress),
            )
            .await?
        }
        None => {
            phase(
                progress,
                "find image",
                objects::ensure_image(docker, &target.image, progress),
            )
            .await?
        }
    }
    ensure_storage(docker, spec, &target, &labels, progress).await?;

    if let Some(old) = &existing {
        phase(progress, "remove old container", async {
            remove_container(docker, &objects::id_of(old)).await
        })
        .await?;
    }

    let body = request::container_body(spec, &target.settings, &target.image, target.build_hash())?;
    let id = phase(progress, "create container", async {
        let opts = CreateContainerOptionsBuilder::new()
            .name(&target.container)
            .build();
        match docker.create_container(Some(opts), body).await {
            Ok(r) => {
                for w in r.warnings {
                    progress.warn(&format!("docker: {w}"));
                }
                Ok(r.id)
            }
            Err(e) if is_status(&e, 409) => {
                // Created meanwhile (a concurrent deploy): use it only if it is ours and current.
                match objects::find(docker, env, project).await? {
                    Found::Ours(c) if target.drift(&c).is_none() => Ok(objects::id_of(&c)),
                    Found::NotOurs(o) => Err(request::conflict("container", &target.container, &o)),
                    _ => Err(api_error(
                        &format!("create container {}", target.container),
                        e,
                    )),
                }
            }
            Err(e) => Err(api_error(
                &format!("create container {}", target.container),
                e,
            )),
        }
    })
    .await?;

    phase(progress, "start container", start(docker, spec, &id)).await?;
    let c = objects::inspect_container(docker, &id)
        .await?
        .ok_or_else(|| vanished(&target.container))?;
    phase(
        progress,
        DELIVER_PHASE,
        deliver_ready(docker, &id, &c, spec, opts.wait),
    )
    .await?;
    Ok(record(spec, host, &target, id, opts.wait))
}

/// The container exists and matches: start it if needed, make sure its secrets are in
/// place, and wait. Changes nothing when it is already running with its secrets.
async fn resume(
    docker: &Docker,
    host: &EngineHost,
    spec: &ResolvedSpec,
    target: &Target,
    c: &ContainerInspectResponse,
    opts: DeployOptions,
    progress: &dyn Progress,
) -> Result<Deployment> {
    let id = objects::id_of(c);
    let mut c = c.clone();
    match objects::status_of(&c) {
        Some(ContainerStateStatusEnum::RUNNING) => {}
        Some(ContainerStateStatusEnum::PAUSED) => {
            return Err(Error::invalid(format!(
                "container {} is paused (docker pause); sindri will not unpause it behind your back",
                target.container
            ))
            .with_provider(ProviderKind::Docker)
            .with_hint(format!("`docker unpause {}`, then deploy again", target.container)));
        }
        _ => {
            let labels = request::labels(spec, target.build_hash());
            ensure_storage(docker, spec, target, &labels, progress).await?;
            phase(progress, "start container", start(docker, spec, &id)).await?;
            c = objects::inspect_container(docker, &id)
                .await?
                .ok_or_else(|| vanished(&target.container))?;
        }
    }
    let already = phase(progress, "check secrets", secrets::delivered(docker, &id)).await?;
    if !already {
        phase(
            progress,
            DELIVER_PHASE,
            deliver_ready(docker, &id, &c, spec, opts.wait),
        )
        .await?;
    }
    // A successful marker check is an exec that ran: the container is ready.
    Ok(record(spec, host, target, id, opts.wait || already))
}

/// Network and volumes, created with labels when missing.
async fn ensure_storage(
    docker: &Docker,
    spec: &ResolvedSpec,
    target: &Target,
    labels: &std::collections::HashMap<String, String>,
    progress: &dyn Progress,
) -> Result<()> {
    let env = spec.name();
    let project = spec.project.as_str();
    phase(progress, "create network", async {
        let (net, managed) = &target.network;
        if *managed {
            objects::ensure_network(docker, net, labels, env, project).await
        } else {
            objects::require_network(docker, net).await
        }
    })
    .await?;
    phase(progress, "create volumes", async {
        for (v, _) in &target.volumes {
            objects::ensure_volume(docker, v, labels, env, project).await?;
        }
        Ok::<_, Error>(())
    })
    .await
}

/// Force-removes a container and its anonymous volumes (images may declare `VOLUME`).
pub(crate) async fn remove_container(docker: &Docker, id: &str) -> Result<()> {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api_error(&format!("remove container {id}"), e)),
    }
}

fn vanished(name: &str) -> Error {
    Error::new(
        ErrorKind::Transient,
        format!("container {name} disappeared while deploying (removed by someone else?)"),
    )
    .with_provider(ProviderKind::Docker)
    .with_hint("run `sindri deploy` again")
}

/// Starts the container, turning the engine's failures into what the user can fix.
async fn start(docker: &Docker, spec: &ResolvedSpec, id: &str) -> Result<()> {
    match docker.start_container(id, None).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_modified(&e) => Ok(()),
        Err(e) => Err(start_error(spec.name(), &spec.spec.deployment.ports, e)),
    }
}

/// Explains a failed start: a taken port, no GPU, no shell in the image.
pub(crate) fn start_error(
    env: &str,
    ports: &[sindri_spec::PortMapping],
    e: bollard::errors::Error,
) -> Error {
    let message = match &e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let lower = message.to_ascii_lowercase();
    let name = container_name(env);
    if lower.contains("port is already allocated") || lower.contains("address already in use") {
        // "Bind for 0.0.0.0:8080 failed" / "listen tcp4 0.0.0.0:8080: bind": the
        // numbers after a colon are the candidates.
        let mentioned: Vec<u16> = message
            .split(':')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        let port = ports.iter().find(|p| mentioned.contains(&p.host));
        let which = match port {
            Some(p) => format!("host port {}/{}", p.host, p.protocol.as_str()),
            None => "a host port in deployment.ports".to_string(),
        };
        return Error::new(
            ErrorKind::Conflict,
            format!("cannot start {name}: {which} is already in use on the Docker host ({})", message.trim()),
        )
        .with_provider(ProviderKind::Docker)
        .with_hint("stop whatever holds the port, or publish another host port in deployment.ports (e.g. \"8081:80\")")
        .with_source(e);
    }
    if lower.contains("could not select device driver") || lower.contains("nvidia") {
        return Error::new(
            ErrorKind::Capacity,
            format!("cannot start {name}: no GPU is available to this Docker Engine ({})", message.trim()),
        )
        .with_provider(ProviderKind::Docker)
        .with_hint("install the NVIDIA Container Toolkit and run `sudo nvidia-ctk runtime configure --runtime=docker`, or remove deployment.resources.gpu")
        .with_source(e);
    }
    if lower.contains("/bin/sh") && (lower.contains("no such file") || lower.contains("not found"))
    {
        return Error::invalid(format!(
            "cannot start {name}: the image has no /bin/sh; sindri keeps the environment alive with a POSIX shell"
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint("use an image with a shell, or build one with deployment.build")
        .with_source(e);
    }
    if lower.contains("unable to apply caps") || lower.contains("operation not permitted") {
        return Error::platform(
            ProviderKind::Docker,
            format!("cannot start {name}: the engine could not grant the container's privileges ({})", message.trim()),
        )
        .with_hint("`dind: privileged` needs an engine that may grant every capability; a rootless or nested engine cannot. Use `dind: socket` instead")
        .with_source(e);
    }
    if lower.contains("docker-init") {
        return Error::platform(
            ProviderKind::Docker,
            format!(
                "cannot start {name}: the engine cannot run its init process ({})",
                message.trim()
            ),
        )
        .with_hint("install docker-init (Debian: the `tini` package) on the Docker host")
        .with_source(e);
    }
    api_error(&format!("start container {name}"), e)
}

/// The phase that ends a deploy: one exec both delivers the secrets and proves the
/// container accepts commands.
const DELIVER_PHASE: &str = "deliver secrets and wait for ready";

/// Delivers the secrets into the started container `c`, which also proves it ready:
/// delivery is an exec, and a container that runs one is ready. A separate readiness
/// probe first would cost an inspect and an exec on every deploy. Only when the
/// delivery fails (still starting, or exited at once) does it wait, with `wait`, for
/// readiness, which explains an exited container in words, and deliver again.
async fn deliver_ready(
    docker: &Docker,
    id: &str,
    c: &ContainerInspectResponse,
    spec: &ResolvedSpec,
    wait: bool,
) -> Result<()> {
    let user = c
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    match secrets::deliver(docker, id, &user, &spec.secrets).await {
        Ok(()) => Ok(()),
        Err(_) if wait => {
            wait_ready(docker, id).await?;
            // Ready now: a second failure is the one that explains.
            secrets::deliver(docker, id, &user, &spec.secrets).await
        }
        Err(e) => Err(e),
    }
}

/// Waits until the container runs and accepts a command.
pub(crate) async fn wait_ready(docker: &Docker, id: &str) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let c = objects::inspect_container(docker, id)
            .await?
            .ok_or_else(|| vanished(id))?;
        match objects::status_of(&c) {
            Some(ContainerStateStatusEnum::RUNNING) => {
                let out = capture(
                    docker,
                    id,
                    ExecRequest {
                        argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
                        ..Default::default()
                    },
                    None,
                )
                .await?;
                if out.code == 0 {
                    return Ok(());
                }
            }
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                return Err(Error::platform(
                    ProviderKind::Docker,
                    format!(
                        "the container stopped right after starting: {}",
                        super::status::explain(&c)
                            .1
                            .unwrap_or_else(|| "no reason given".into())
                    ),
                )
                .with_hint("see `sindri logs`"));
            }
            _ => {}
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "the container was not ready after {} s",
                    READY_TIMEOUT.as_secs()
                ),
            )
            .with_provider(ProviderKind::Docker));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

fn record(
    spec: &ResolvedSpec,
    host: &EngineHost,
    target: &Target,
    id: String,
    ready: bool,
) -> Deployment {
    let mut d = Deployment::creating(
        spec.name(),
        ProviderKind::Docker,
        &spec.project,
        &target.spec_hash,
    );
    d.resource_id = Some(id);
    d.state = if ready {
        DeploymentState::Ready
    } else {
        DeploymentState::Creating
    };
    d.details = BTreeMap::from([
        ("container".to_string(), target.container.clone()),
        ("image".to_string(), target.image.clone()),
        ("network".to_string(), target.network.0.clone()),
        ("home_volume".to_string(), home_volume_name(spec.name())),
        ("engine".to_string(), host.url.clone()),
        ("secrets".to_string(), spec.secrets.len().to_string()),
    ]);
    d
}

/// Says which settings Docker does not enforce, so nobody relies on them silently.
fn warn_unenforced(spec: &ResolvedSpec, progress: &dyn Progress) {
    let d = &spec.spec.deployment;
    if d.resources.disk.is_some() {
        progress.warn(
            "deployment.resources.disk is not enforced: Docker's local volumes have no size limit",
        );
    }
    if d.volumes.iter().any(|v| v.size.is_some()) {
        progress.warn(
            "deployment.volumes[].size is not enforced: Docker's local volumes have no size limit",
        );
    }
    if let Some(g) = &d.resources.gpu
        && let Some(kind) = &g.kind
    {
        progress.warn(&format!(
            "deployment.resources.gpu.type `{kind}` cannot be chosen on Docker: any {} GPU(s) of the host are used",
            g.count
        ));
    }
}

/// Builds the image through the engine, streaming the build's output as progress.
///
/// Two builds: the user's Dockerfile, unlabelled and untagged; then one `LABEL` step on
/// top that adds every label at once and tags the result. Docker's classic builder
/// turns the `labels` build option into one step per label and, when its client goes
/// away, still finishes the step in progress; labelling in a single step of its own
/// means an interrupted build leaves either unlabelled build cache (like an
/// interrupted `docker build`) or an image carrying all of sindri's labels, which
/// `destroy --volumes` finds. Removing the labelled image prunes its untagged parents.
async fn build_image(
    docker: &Docker,
    spec: &ResolvedSpec,
    tag: &str,
    ctx: &BuildContext,
    labels: &std::collections::HashMap<String, String>,
    progress: &dyn Progress,
) -> Result<()> {
    // Another environment built from the same Dockerfile shares these layers as build
    // cache, and its `destroy --volumes` prunes them; a build that loses its own
    // result that way before labelling it is simply run again.
    let mut attempt = 0;
    loop {
        match build_once(docker, spec, tag, ctx, labels, progress).await {
            Err(Lost(id)) if attempt < 2 => {
                attempt += 1;
                progress.message(&format!(
                    "image {id} was removed during the build (shared build cache); building again"
                ));
            }
            Err(Lost(id)) => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("building image {tag}: image {id} kept disappearing during the build"),
                )
                .with_provider(ProviderKind::Docker)
                .with_hint(
                    "another process is removing images on this engine; run `sindri deploy` again",
                ));
            }
            Err(Failed(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
}

/// Why one build attempt failed.
enum BuildFailure {
    /// The image built by the first step vanished before it could be labelled.
    Lost(String),
    /// Anything else.
    Failed(Error),
}
use BuildFailure::{Failed, Lost};

impl From<Error> for BuildFailure {
    fn from(e: Error) -> Self {
        Failed(e)
    }
}

async fn build_once(
    docker: &Docker,
    spec: &ResolvedSpec,
    tag: &str,
    ctx: &BuildContext,
    labels: &std::collections::HashMap<String, String>,
    progress: &dyn Progress,
) -> std::result::Result<(), BuildFailure> {
    let b = spec
        .spec
        .deployment
        .build
        .as_ref()
        .ok_or_else(|| Error::internal("build requested without deployment.build"))?;
    let args: std::collections::HashMap<String, String> =
        b.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut opts = BuildImageOptionsBuilder::new()
        .dockerfile(&ctx.dockerfile)
        .rm(true)
        .forcerm(true);
    if !args.is_empty() {
        opts = opts.buildargs(&args);
    }
    if let Some(t) = &b.target {
        opts = opts.target(t);
    }
    let entries = ctx.entries.clone();
    let extra = ctx.extra_dockerfile.clone();
    let upload = archive::tar_upload(move |builder| {
        archive::append_entries(builder, &entries)?;
        if let Some(df) = extra {
            archive::append_bytes(builder, ".sindri.Dockerfile", &df)?;
        }
        Ok(())
    });
    let what = format!("building image {tag} from {}", b.dockerfile);
    let built = run_build(docker, opts.build(), upload, &what, &|line| {
        progress.message(line)
    })
    .await?
    .ok_or_else(|| {
        Error::platform(
            ProviderKind::Docker,
            format!("{what}: the engine did not say which image it built"),
        )
    })?;

    let dockerfile = label_dockerfile(&built, labels);
    let upload = archive::tar_upload(move |builder| {
        archive::append_bytes(builder, "Dockerfile", dockerfile.as_bytes())
    });
    let opts = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    progress.message(&format!("labelling {tag}"));
    match run_build(
        docker,
        opts,
        upload,
        &format!("labelling image {tag}"),
        &|_| {},
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(e) => match docker.inspect_image(&built).await {
            // Unlabelled and untagged between the two steps, it is fair game for the
            // pruning of another environment's destroy.
            Err(gone) if is_status(&gone, 404) => Err(Lost(built)),
            _ => Err(Failed(e)),
        },
    }
}

/// A Dockerfile that adds `labels` to image `id` in one step.
pub(crate) fn label_dockerfile(
    id: &str,
    labels: &std::collections::HashMap<String, String>,
) -> String {
    let mut pairs: Vec<_> = labels.iter().collect();
    pairs.sort();
    let quoted: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                serde_json::Value::from(k.as_str()),
                serde_json::Value::from(v.as_str())
            )
        })
        .collect();
    format!("FROM {id}\nLABEL {}\n", quoted.join(" "))
}

/// Runs one build request, handing each output line to `on_line`; returns the built
/// image's id.
async fn run_build(
    docker: &Docker,
    opts: bollard::query_parameters::BuildImageOptions,
    upload: archive::TarUpload<()>,
    what: &str,
    on_line: &(dyn Fn(&str) + Sync),
) -> Result<Option<String>> {
    let mut stream = docker.build_image(opts, None, Some(bollard::body_stream(upload.body)));
    let mut failure: Option<String> = None;
    let mut request_error = None;
    let mut id = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream {
                    for line in text
                        .lines()
                        .map(str::trim_end)
                        .filter(|l| !l.trim().is_empty())
                    {
                        if let Some(short) = line.strip_prefix("Successfully built ") {
                            id.get_or_insert_with(|| short.trim().to_string());
                        }
                        on_line(line);
                    }
                }
                if let Some(msg) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(msg);
                }
                if let Some(aux) = info.aux.and_then(|a| a.id) {
                    id = Some(aux);
                }
            }
            // The engine's report of a failed step arrives as a stream error.
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                failure = Some(error);
                break;
            }
            Err(e) => {
                request_error = Some(e);
                break;
            }
        }
    }
    drop(stream);
    // A broken context (unreadable file) explains a failed request better than the
    // request error does.
    archive::finish(upload.done).await?;
    if let Some(e) = request_error {
        return Err(api_error(what, e));
    }
    match failure {
        None => Ok(id),
        Some(msg) => Err(Error::platform(ProviderKind::Docker, format!("{what} failed: {}", msg.trim()))
            .with_hint("the build output above shows the failing step; fix the Dockerfile or the build context")),
    }
}

/// What `deploy` would do; changes nothing.
pub(crate) async fn plan(
    docker: &Docker,
    spec: &ResolvedSpec,
    fallback: &DockerSettings,
) -> Result<Plan> {
    let mut target = Target::new(spec, fallback).await?;
    let env = spec.name();
    let project = spec.project.as_str();
    let dind = request::dind(&target.settings)?;
    if let Some(rt) = &dind.runtime {
        objects::require_runtime(docker, rt).await?;
    }
    target.resolve_image(docker).await?;
    let mut steps = Vec::new();
    let step = |action, resource: String, reason: Option<String>| PlanStep {
        action,
        resource,
        reason,
    };

    // The engine is asked everything at once: plan waits on one round trip, not on
    // one per object.
    let (net, managed) = &target.network;
    let (found, network_owner, volume_owners) = tokio::try_join!(
        objects::find(docker, env, project),
        async {
            if *managed {
                objects::network_owner(docker, net, env, project).await
            } else {
                objects::require_network(docker, net).await.map(|()| None)
            }
        },
        futures_util::future::try_join_all(
            target
                .volumes
                .iter()
                .map(|(v, _)| objects::volume_owner(docker, v, env, project)),
        ),
    )?;

    let (container_action, container_reason) = match found {
        Found::Missing => (PlanAction::Create, None),
        Found::NotOurs(o) => return Err(request::conflict("container", &target.container, &o)),
        Found::Ours(c) => match target.drift(&c) {
            Some(why) => (
                PlanAction::Replace,
                Some(format!("{why}; volumes are kept")),
            ),
            None => match objects::status_of(&c) {
                Some(ContainerStateStatusEnum::RUNNING) => (PlanAction::Keep, None),
                other => (
                    PlanAction::Update,
                    Some(format!(
                        "{}: deploy starts it and delivers its secrets",
                        other
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "not running".into())
                    )),
                ),
            },
        },
    };
    let recreate = matches!(container_action, PlanAction::Create | PlanAction::Replace);

    match &target.build {
        Some(ctx) => steps.push(if recreate {
            step(
                PlanAction::Create,
                format!("image {}", target.image),
                Some(format!(
                    "build from {} (build digest {})",
                    ctx.dockerfile, ctx.digest
                )),
            )
        } else {
            step(PlanAction::Keep, format!("image {}", target.image), None)
        }),
        // `resolve_image` has just asked the engine for it.
        None if target.image_id.is_some() => steps.push(step(
            PlanAction::Keep,
            format!("image {}", target.image),
            Some("present on the engine".into()),
        )),
        None => steps.push(step(
            PlanAction::Create,
            format!("image {}", target.image),
            Some("not on the engine: deploy will try to pull it".into()),
        )),
    }

    if *managed {
        steps.push(match network_owner {
            None => step(PlanAction::Create, format!("network {net}"), None),
            Some(Ownership::Ours) => step(PlanAction::Keep, format!("network {net}"), None),
            Some(other) => return Err(request::conflict("network", net, &other)),
        });
    } else {
        steps.push(step(
            PlanAction::Keep,
            format!("network {net}"),
            Some("providers.docker.network; not managed by sindri".into()),
        ));
    }
    for ((v, what), owner) in target.volumes.iter().zip(volume_owners) {
        steps.push(match owner {
            None => step(
                PlanAction::Create,
                format!("volume {v}"),
                Some(what.clone()),
            ),
            Some(Ownership::Ours) => {
                step(PlanAction::Keep, format!("volume {v}"), Some(what.clone()))
            }
            Some(other) => return Err(request::conflict("volume", v, &other)),
        });
    }
    steps.push(step(
        container_action,
        format!("container {}", target.container),
        container_reason,
    ));
    for s in &spec.secrets {
        let how = match &s.mount {
            Some(m) => format!("file {m}, kept in the {} tmpfs", request::SECRETS_DIR),
            None => format!(
                "environment variable, kept in the {} tmpfs",
                request::SECRETS_DIR
            ),
        };
        steps.push(step(
            if recreate {
                PlanAction::Create
            } else {
                PlanAction::Keep
            },
            format!("secret {}", s.name),
            Some(how),
        ));
    }

    let body = request::container_body(spec, &target.settings, &target.image, target.build_hash())?;
    Ok(Plan {
        provider: ProviderKind::Docker,
        environment: env.to_string(),
        steps,
        artifacts: vec![RenderedArtifact {
            name: "docker-container.json".into(),
            content: request::plan_artifact(spec, &target.container, &body)?,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_added_in_one_sorted_step() {
        let labels = std::collections::HashMap::from([
            ("sindri.project".to_string(), "abc".to_string()),
            ("sindri.environment".to_string(), "dev".to_string()),
        ]);
        assert_eq!(
            label_dockerfile("sha256:1234", &labels),
            "FROM sha256:1234\nLABEL \"sindri.environment\"=\"dev\" \"sindri.project\"=\"abc\"\n"
        );
    }

    #[test]
    fn start_failures_are_explained() {
        let port: sindri_spec::PortMapping = "8080:80".parse().unwrap();
        let err = |m: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: m.into(),
        };
        let e = start_error(
            "dev",
            &[port],
            err(
                "driver failed programming external connectivity on endpoint sindri-dev (x): Bind for 0.0.0.0:8080 failed: port is already allocated",
            ),
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.message().contains("host port 8080/tcp"), "{e}");
        let e = start_error(
            "dev",
            &[],
            err("could not select device driver \"\" with capabilities: [[gpu]]"),
        );
        assert_eq!(e.kind(), ErrorKind::Capacity);
        let e = start_error(
            "dev",
            &[],
            err(
                "OCI runtime create failed: exec: \"/bin/sh\": stat /bin/sh: no such file or directory",
            ),
        );
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("no /bin/sh"));
    }
}
