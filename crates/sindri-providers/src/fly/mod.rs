//! The Fly.io provider: Fly Machines through the Machines REST API. flyctl is needed
//! only for `connect` (`flyctl ssh console`).
//!
//! # What an environment is
//! For environment `NAME` in app `APP` (`providers.fly.app`, default `NAME`; created in
//! `providers.fly.org`, default `personal`, when missing):
//! - a volume named `home` (`resources.disk`, default 10 GB) in the region, mounted at
//!   `deployment.home`;
//! - one machine whose config carries the metadata `sindri.managed=true`,
//!   `sindri.environment=NAME`, `sindri.project=<project id>` and `sindri.spec-hash`,
//!   sized by `sindri_render::fly::guest` (so it matches `sindri export fly`), with
//!   `deployment.env`, a service per published port (`autostop` from
//!   `providers.fly.auto_stop`), and sindri's keep-alive loop as its process.
//!
//! Regions are tried in the order of `providers.fly.regions` (default `iad`): when a
//! region has no capacity the volume made there is removed, a warning names the
//! region and Fly's reason, and the next region is tried.
//!
//! # Secrets
//! The published Machines API has no secrets endpoint, so secret values never enter
//! the machine's config or environment (both readable through the API). After the
//! machine starts, `deploy` writes them through exec **stdin** (never a command line)
//! into `/run/sindri` with mode 0600: env-style secrets as `export` lines in
//! `/run/sindri/secrets.env`, which every `sindri exec` sources, and `mount:` secrets
//! as files linked from their paths. A machine's root file system is reset when it
//! restarts from `stopped`, so after `sindri start` (or an autostart) run
//! `sindri deploy` again to deliver them; a suspended machine keeps them. In a
//! `sindri connect` shell, run `. /run/sindri/secrets.env` to load them.
//!
//! # Not supported
//! Logs and file copies: the Machines API has neither (flyctl reads logs from Fly's
//! log service and copies files over SSH).

pub mod api;
pub mod config;
pub mod machine;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sindri_core::progress::phase;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DeploymentState, DestroyOptions,
    DestroyReport, Endpoint, Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Operation,
    Plan, PlanAction, PlanStep, Progress, Provider, ResolvedSecret, ResolvedSpec, Result, Status,
    StatusState, TransferStats,
};
use sindri_render::fly::{HOME_VOLUME, app_name, guest};
use sindri_render::{
    DEFAULT_VOLUME_GIB, ExportFormat, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, Renderer,
};
use sindri_spec::{FlySettings, ProviderKind, ProvidersSpec, Spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{HttpClient, Redactor};
use api::{FlyApi, META_APP_CREATED, META_SPEC_HASH, Machine};
pub use config::FlyConfig;

/// The region used when `providers.fly.regions` is empty.
pub const DEFAULT_REGION: &str = "iad";
/// The organization used when `providers.fly.org` is not set.
pub const DEFAULT_ORG: &str = "personal";

const LOGS_NOTE: &str = "Fly's Machines API has no log endpoint; read the logs with \
`fly logs --app <app>` (flyctl).";
const COPY_NOTE: &str = "Fly's Machines API has no file transfer; use \
`fly ssh sftp shell --app <app>` (flyctl), or `sindri exec` with a here-document for small text files.";
const CONNECT_NOTE: &str = "`sindri connect` on Fly runs `flyctl ssh console`, and flyctl is not on PATH; \
install it with `curl -L https://fly.io/install.sh | sh` (https://fly.io/docs/flyctl/install/) and log in with `fly auth login`.";

/// Builds the Fly provider from `providers.fly` and the environment. Does no I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(FlyProvider::new(
        settings.fly.clone().unwrap_or_default(),
        FlyConfig::from_env()?,
    )))
}

/// The Fly provider. The API client is made on first use (the token may come from a
/// file), then reused.
pub struct FlyProvider {
    settings: FlySettings,
    config: FlyConfig,
    api: tokio::sync::OnceCell<FlyApi>,
}

impl FlyProvider {
    /// A provider with these settings and endpoints.
    pub fn new(settings: FlySettings, config: FlyConfig) -> FlyProvider {
        FlyProvider {
            settings,
            config,
            api: tokio::sync::OnceCell::new(),
        }
    }

    async fn api(&self) -> Result<&FlyApi> {
        self.api
            .get_or_try_init(|| async {
                let (token, _) = self.config.token()?;
                let mut base = self.config.api.clone();
                let path = format!("{}/v1", base.path().trim_end_matches('/'));
                base.set_path(&path);
                let http = HttpClient::new(
                    ProviderKind::Fly,
                    "Fly Machines API",
                    base,
                    config::auth_for(&token),
                    self.config.http.clone(),
                )?
                .with_classifier(api::classify);
                Ok(FlyApi::new(http))
            })
            .await
    }

    fn settings_of<'a>(&'a self, spec: Option<&'a Spec>) -> &'a FlySettings {
        spec.and_then(|s| s.providers.fly.as_ref())
            .unwrap_or(&self.settings)
    }

    fn org(&self, spec: Option<&Spec>) -> String {
        self.settings_of(spec)
            .org
            .clone()
            .unwrap_or_else(|| DEFAULT_ORG.to_string())
    }

    fn regions(&self, spec: &Spec) -> Vec<String> {
        let r = &self.settings_of(Some(spec)).regions;
        if r.is_empty() {
            vec![DEFAULT_REGION.to_string()]
        } else {
            r.clone()
        }
    }

    /// The app of a deployment: as recorded, else from the settings, else its name.
    fn app_of(&self, d: &Deployment) -> String {
        d.detail("app")
            .map(str::to_string)
            .or_else(|| self.settings.app.clone())
            .unwrap_or_else(|| d.name.clone())
    }

    /// The environment's machines in `app`, by labels; started ones first, then the
    /// newest.
    async fn ours(
        &self,
        api: &FlyApi,
        app: &str,
        name: &str,
        project: &str,
    ) -> Result<Vec<Machine>> {
        let mut ms: Vec<Machine> = api
            .machines(app)
            .await?
            .into_iter()
            .filter(|m| is_ours(m, name, project))
            .collect();
        ms.sort_by(|a, b| {
            (b.state == "started")
                .cmp(&(a.state == "started"))
                .then_with(|| b.created_at.cmp(&a.created_at))
        });
        Ok(ms)
    }

    /// The deployment's machine: the recorded one when it still carries the labels,
    /// else one found by labels.
    async fn locate(&self, api: &FlyApi, d: &Deployment) -> Result<Option<(String, Machine)>> {
        let app = self.app_of(d);
        if let Some(id) = &d.resource_id
            && let Some(m) = api.machine(&app, id).await?
            && is_ours(&m, &d.name, &d.project)
        {
            return Ok(Some((app, m)));
        }
        let found = self.ours(api, &app, &d.name, &d.project).await?;
        Ok(found.into_iter().next().map(|m| (app, m)))
    }

    async fn require(&self, api: &FlyApi, d: &Deployment) -> Result<(String, Machine)> {
        self.locate(api, d).await?.ok_or_else(|| {
            Error::not_found(format!(
                "environment `{}` is not deployed: app `{}` has no machine with its labels",
                d.name,
                self.app_of(d)
            ))
            .with_provider(ProviderKind::Fly)
            .with_hint("deploy it with `sindri deploy`")
        })
    }

    async fn require_started(&self, api: &FlyApi, d: &Deployment) -> Result<(String, Machine)> {
        let (app, m) = self.require(api, d).await?;
        if m.state != "started" {
            return Err(Error::invalid(format!(
                "environment `{}` is not running (machine {} is {})",
                d.name, m.id, m.state
            ))
            .with_provider(ProviderKind::Fly)
            .with_hint("start it with `sindri start`"));
        }
        Ok((app, m))
    }

    /// How long to wait for a machine: `providers.fly.wait_timeout` (of the spec, else
    /// of the provider's settings), else the configured default.
    fn wait_limit(&self, spec: Option<&Spec>) -> Duration {
        self.settings_of(spec)
            .wait_timeout
            .map(|d| d.get())
            .unwrap_or(self.config.wait)
    }

    /// Refuses a `providers.fly.wait_timeout` too short to wait with, before any call.
    fn check_wait_limit(&self, spec: &Spec) -> Result<()> {
        let Some(limit) = self.settings_of(Some(spec)).wait_timeout.map(|d| d.get()) else {
            return Ok(());
        };
        if limit < Duration::from_secs(1) {
            return Err(Error::invalid(format!(
                "providers.fly.wait_timeout is {}s, too short to wait for a machine",
                limit.as_secs_f64()
            ))
            .with_provider(ProviderKind::Fly)
            .with_hint("set it to at least 1s, e.g. `10m`, or leave it out for 5m"));
        }
        Ok(())
    }

    /// Waits for `state` through the API's `/wait`, which answers 408 when its own
    /// timeout passes first: then it waits again, until `limit` is used up.
    async fn wait_for(
        &self,
        api: &FlyApi,
        app: &str,
        m: &Machine,
        state: &str,
        limit: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!(
                        "machine {} of app `{app}` did not become {state} within {}s",
                        m.id,
                        limit.as_secs()
                    ),
                )
                .with_provider(ProviderKind::Fly)
                .with_hint("see what it is doing with `sindri status` or `fly machine status`, then try again; providers.fly.wait_timeout sets how long to wait"));
            }
            let started = Instant::now();
            if api
                .wait(app, &m.id, state, m.instance_id.as_deref(), deadline - now)
                .await?
            {
                return Ok(());
            }
            // The API holds a wait for up to a minute; one that gave up at once is
            // not asked again in a tight loop.
            if started.elapsed() < Duration::from_millis(500) {
                tokio::time::sleep(
                    Duration::from_millis(250)
                        .min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
    }

    /// Polls until the machine is `state` (for states `/wait` does not know).
    async fn poll_for(
        &self,
        api: &FlyApi,
        app: &str,
        id: &str,
        state: &str,
        limit: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut delay = Duration::from_millis(100);
        loop {
            let m = api.machine(app, id).await?.ok_or_else(|| {
                Error::not_found(format!("machine {id} of app `{app}` disappeared"))
                    .with_provider(ProviderKind::Fly)
            })?;
            if m.state == state {
                return Ok(());
            }
            if Instant::now() + delay > deadline {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!(
                        "machine {id} of app `{app}` is {} and did not become {state} in time",
                        m.state
                    ),
                )
                .with_provider(ProviderKind::Fly));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn start_machine(
        &self,
        api: &FlyApi,
        app: &str,
        m: &Machine,
        limit: Duration,
    ) -> Result<()> {
        if m.state == "started" {
            return Ok(());
        }
        api.action(app, &m.id, "start").await?;
        self.wait_for(api, app, m, "started", limit).await
    }

    async fn stop_machine(
        &self,
        api: &FlyApi,
        app: &str,
        m: &Machine,
        limit: Duration,
    ) -> Result<()> {
        if matches!(m.state.as_str(), "stopped" | "created") {
            return Ok(());
        }
        api.action(app, &m.id, "stop").await?;
        self.wait_for(api, app, m, "stopped", limit).await
    }

    /// Stops and deletes a machine; true when it existed.
    async fn remove_machine(
        &self,
        api: &FlyApi,
        app: &str,
        m: &Machine,
        limit: Duration,
    ) -> Result<bool> {
        self.stop_machine(api, app, m, limit).await?;
        api.delete_machine(app, &m.id).await
    }

    /// Creates the volume and machine in the first region with capacity.
    async fn create_in_regions(
        &self,
        api: &FlyApi,
        spec: &ResolvedSpec,
        app: &str,
        app_created: bool,
        progress: &dyn Progress,
    ) -> Result<Machine> {
        let regions = self.regions(&spec.spec);
        if self.settings_of(Some(&spec.spec)).regions.is_empty() {
            progress.message(&format!(
                "no providers.fly.regions given: using {DEFAULT_REGION}"
            ));
        }
        let size_gb = volume_size(&spec.spec);
        let volumes = api.volumes(app).await?;
        let mut failures: Vec<String> = Vec::new();
        for (i, region) in regions.iter().enumerate() {
            let next = regions.get(i + 1);
            let say = |why: &str| {
                let then = match next {
                    Some(n) => format!("; trying {n}"),
                    None => String::new(),
                };
                progress.warn(&format!("fly region {region} has no capacity: {why}{then}"));
            };
            let left_over = volumes.iter().find(|v| {
                v.name == HOME_VOLUME && &v.region == region && v.attached_machine_id.is_none()
            });
            let (volume, created) = match left_over {
                Some(v) => (v.id.clone(), false),
                None => match api.create_volume(app, HOME_VOLUME, region, size_gb).await {
                    Ok(v) => (v.id, true),
                    Err(e) if e.kind() == ErrorKind::Capacity => {
                        say(e.message());
                        failures.push(format!("{region}: {}", e.message()));
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let body = json!({
                "name": spec.name(),
                "region": region,
                "config": machine::config(spec, &volume, app_created)?,
            });
            match api.create_machine(app, region, &body).await {
                Ok(m) => return Ok(m),
                Err(e) if e.kind() == ErrorKind::Capacity => {
                    say(e.message());
                    failures.push(format!("{region}: {}", e.message()));
                    if created && let Err(cleanup) = api.delete_volume(app, &volume).await {
                        progress.warn(&format!(
                            "could not remove volume {volume} made in {region}: {cleanup}"
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Capacity,
            format!(
                "no region had capacity for the machine: {}",
                failures.join("; ")
            ),
        )
        .with_provider(ProviderKind::Fly)
        .with_hint(
            "add regions to providers.fly.regions, ask for a smaller size, or try again later",
        ))
    }

    /// Writes the secrets into `/run/sindri` through exec stdin.
    async fn deliver_secrets(
        &self,
        api: &FlyApi,
        app: &str,
        id: &str,
        secrets: &[ResolvedSecret],
    ) -> Result<()> {
        let mut scrub = Redactor::new();
        for s in secrets {
            scrub.add(s.value.expose());
        }
        let write = |path: String, link: String, value: String| {
            let scrub = scrub.clone();
            async move {
                let argv = vec![
                    "/bin/sh".to_string(),
                    "-c".to_string(),
                    machine::WRITE_SECRET.to_string(),
                    "sindri-secret".to_string(),
                    path.clone(),
                    link,
                ];
                let r = api
                    .exec(app, id, &argv, Some(&value), Duration::from_secs(60))
                    .await
                    .map_err(|e| scrubbed(e, &scrub))?;
                if r.exit_code != 0 {
                    return Err(Error::platform(
                        ProviderKind::Fly,
                        scrub.redact(&format!(
                            "could not write {path} on machine {id} (exit code {}): {}",
                            r.exit_code,
                            r.stderr.unwrap_or_default().trim()
                        )),
                    ));
                }
                Ok(())
            }
        };
        write(
            format!("{}/secrets.env", self.config.secrets_dir),
            String::new(),
            machine::secrets_env(secrets),
        )
        .await?;
        for s in secrets {
            if let Some(mount) = &s.mount {
                write(
                    format!("{}/files/{}", self.config.secrets_dir, s.name),
                    mount.clone(),
                    s.value.expose().to_string(),
                )
                .await?;
            }
        }
        Ok(())
    }

    fn render(spec: &ResolvedSpec) -> Result<Vec<sindri_core::RenderedArtifact>> {
        let dir = spec.base_dir.join(".sindri").join("templates");
        Renderer::new(Some(&dir))?.render(ExportFormat::Fly, spec)
    }
}

/// An error with secret values scrubbed from its message and hint.
fn scrubbed(e: Error, r: &Redactor) -> Error {
    let out = Error::new(e.kind(), r.redact(e.message())).with_provider(ProviderKind::Fly);
    match e.hint() {
        Some(h) => out.with_hint(r.redact(h)),
        None => out,
    }
}

fn is_ours(m: &Machine, name: &str, project: &str) -> bool {
    m.meta(LABEL_MANAGED) == Some("true")
        && m.meta(LABEL_ENVIRONMENT) == Some(name)
        && m.meta(LABEL_PROJECT) == Some(project)
}

fn volume_size(spec: &Spec) -> u64 {
    spec.deployment
        .resources
        .disk
        .map(|b| b.gib_ceil().max(1))
        .unwrap_or(DEFAULT_VOLUME_GIB)
}

fn status_state(state: &str) -> StatusState {
    match state {
        "started" => StatusState::Running,
        "stopping" | "stopped" => StatusState::Stopped,
        "suspending" | "suspended" => StatusState::Suspended,
        "failed" => StatusState::Failed,
        "destroying" | "destroyed" => StatusState::Missing,
        _ => StatusState::Starting,
    }
}

fn deployment_state(state: &str) -> DeploymentState {
    match state {
        "started" => DeploymentState::Ready,
        "stopping" | "stopped" => DeploymentState::Stopped,
        "suspending" | "suspended" => DeploymentState::Suspended,
        "failed" => DeploymentState::Failed,
        "destroying" | "destroyed" => DeploymentState::Destroying,
        _ => DeploymentState::Creating,
    }
}

/// A deployment record rebuilt from a machine's metadata.
fn record(app: &str, org: &str, m: &Machine) -> Deployment {
    let mut d = Deployment::creating(
        m.meta(LABEL_ENVIRONMENT).unwrap_or_default(),
        ProviderKind::Fly,
        m.meta(LABEL_PROJECT).unwrap_or_default(),
        m.meta(META_SPEC_HASH).unwrap_or_default(),
    );
    d.resource_id = Some(m.id.clone());
    d.state = deployment_state(&m.state);
    d.details.insert("app".into(), app.to_string());
    d.details.insert("org".into(), org.to_string());
    d.details.insert("region".into(), m.region.clone());
    d.details.insert(
        "app_created".into(),
        (m.meta(META_APP_CREATED) == Some("true")).to_string(),
    );
    if let Some(v) = m.volume_ids().first() {
        d.details.insert("volume".into(), v.clone());
    }
    if let Some(ip) = &m.private_ip {
        d.details.insert("private_ip".into(), ip.clone());
    }
    d
}

/// Reads all of `stdin` as text: the Machines API takes exec input as a string.
async fn read_stdin(io: &mut ExecIo) -> Result<Option<String>> {
    let Some(stdin) = io.stdin.as_mut() else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    stdin.read_to_end(&mut buf).await?;
    String::from_utf8(buf).map(Some).map_err(|_| {
        Error::invalid(
            "the fly provider passes a command's input as text, and this input is binary",
        )
        .with_provider(ProviderKind::Fly)
        .with_hint("encode it first (e.g. base64) and decode it in the command")
    })
}

#[async_trait]
impl Provider for FlyProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Fly
    }

    fn capabilities(&self) -> Capabilities {
        let connect = self.config.flyctl.is_some();
        let mut notes = vec![
            (Operation::Logs, LOGS_NOTE),
            (Operation::CopyIn, COPY_NOTE),
            (Operation::CopyOut, COPY_NOTE),
        ];
        if !connect {
            notes.push((Operation::Connect, CONNECT_NOTE));
        }
        Capabilities {
            start_stop: true,
            suspend: true,
            exec: true,
            connect,
            logs: false,
            copy: false,
            gpu: true,
            // A Fly machine mounts one volume: home.
            volumes: false,
            ports: true,
            spot: false,
            build: false,
            notes,
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match self.config.token() {
            Ok((_, source)) => checks.push(Check {
                name: "fly token".into(),
                status: CheckStatus::Ok,
                detail: format!("token from {source}"),
                hint: None,
            }),
            Err(e) => {
                checks.push(Check {
                    name: "fly token".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
                return checks;
            }
        }
        let org = self.org(None);
        let api = match self.api().await {
            Ok(api) => Some(api),
            Err(e) => {
                checks.push(Check {
                    name: "fly machines api".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
                None
            }
        };
        if let Some(api) = api {
            match api.list_apps(&org).await {
                Ok(apps) => checks.push(Check {
                    name: "fly machines api".into(),
                    status: CheckStatus::Ok,
                    detail: format!(
                        "{} answers; organization `{org}` has {} apps",
                        self.config.api,
                        apps.len()
                    ),
                    hint: None,
                }),
                Err(e) => checks.push(Check {
                    name: "fly machines api".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                }),
            }
        }
        checks.push(match &self.config.flyctl {
            Some(p) => Check {
                name: "flyctl".into(),
                status: CheckStatus::Ok,
                detail: format!("{} (used by `sindri connect`)", p.display()),
                hint: None,
            },
            None => Check {
                name: "flyctl".into(),
                status: CheckStatus::Warn,
                detail: "flyctl is not on PATH: `sindri connect` is unavailable".into(),
                hint: Some("install it: `curl -L https://fly.io/install.sh | sh`".into()),
            },
        });
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, _current: Option<&Deployment>) -> Result<Plan> {
        let artifacts = Self::render(spec)?;
        self.check_wait_limit(&spec.spec)?;
        let api = self.api().await?;
        let s = &spec.spec;
        let app = app_name(s);
        let org = self.org(Some(s));
        let mut steps = Vec::new();
        let app_exists = api.app(&app).await?.is_some();
        steps.push(PlanStep {
            action: if app_exists {
                PlanAction::Keep
            } else {
                PlanAction::Create
            },
            resource: format!("app {app}"),
            reason: (!app_exists).then(|| format!("in organization {org}")),
        });
        let ours = if app_exists {
            self.ours(api, &app, spec.name(), &spec.project).await?
        } else {
            Vec::new()
        };
        let g = guest(s);
        let size = format!("{} {} CPU, {} MB", g.cpu_kind, g.cpus, g.memory_mb);
        match ours.first() {
            None => {
                let region = self.regions(s).remove(0);
                steps.push(PlanStep {
                    action: PlanAction::Create,
                    resource: format!("volume {HOME_VOLUME} ({} GB)", volume_size(s)),
                    reason: Some(format!("in region {region}")),
                });
                steps.push(PlanStep {
                    action: PlanAction::Create,
                    resource: format!("machine {} ({size})", spec.name()),
                    reason: Some(format!("in region {region}")),
                });
            }
            Some(m) => {
                for v in m.volume_ids() {
                    steps.push(PlanStep {
                        action: PlanAction::Keep,
                        resource: format!("volume {v} ({HOME_VOLUME})"),
                        reason: None,
                    });
                }
                let same = m.meta(META_SPEC_HASH) == Some(spec.spec_hash().as_str());
                let (action, reason) = match (same, m.state.as_str()) {
                    (false, _) => (PlanAction::Update, Some("spec changed".to_string())),
                    (true, "started") => (PlanAction::Keep, None),
                    (true, other) => (
                        PlanAction::Update,
                        Some(format!("it is {other}: deploy starts it")),
                    ),
                };
                steps.push(PlanStep {
                    action,
                    resource: format!("machine {} ({size}) in {}", m.id, m.region),
                    reason,
                });
                for extra in &ours[1..] {
                    steps.push(PlanStep {
                        action: PlanAction::Delete,
                        resource: format!("machine {}", extra.id),
                        reason: Some("a duplicate left by an interrupted deploy".into()),
                    });
                }
            }
        }
        Ok(Plan {
            provider: ProviderKind::Fly,
            environment: spec.name().to_string(),
            steps,
            artifacts,
        })
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        self.check_wait_limit(&spec.spec)?;
        let api = self.api().await?;
        let s = &spec.spec;
        let app = app_name(s);
        let org = self.org(Some(s));
        let hash = spec.spec_hash();

        let created_app = phase(progress, "fly app", async {
            match api.app(&app).await? {
                Some(_) => Ok::<bool, Error>(false),
                None => {
                    api.create_app(&app, &org).await.map_err(|e| {
                        if e.kind() == ErrorKind::Conflict {
                            let hint = "app names are unique across all of Fly.io; set providers.fly.app to another name";
                            e.with_hint(hint)
                        } else {
                            e
                        }
                    })?;
                    Ok(true)
                }
            }
        })
        .await?;

        let mut ours = self.ours(api, &app, spec.name(), &spec.project).await?;
        let extras: Vec<Machine> = if ours.len() > 1 {
            ours.split_off(1)
        } else {
            Vec::new()
        };
        for extra in &extras {
            progress.message(&format!(
                "removing machine {} (a duplicate left by an interrupted deploy)",
                extra.id
            ));
            self.remove_machine(api, &app, extra, self.wait_limit(Some(s)))
                .await?;
        }
        let existing = ours.pop();
        let app_created = created_app
            || existing
                .as_ref()
                .is_some_and(|m| m.meta(META_APP_CREATED) == Some("true"));

        let machine = match existing {
            Some(m) if m.meta(META_SPEC_HASH) == Some(hash.as_str()) => {
                if m.state != "started" {
                    phase(progress, "start machine", async {
                        api.action(&app, &m.id, "start").await
                    })
                    .await?;
                }
                m
            }
            Some(m) => {
                let volume = match m.volume_ids().into_iter().next() {
                    Some(v) => v,
                    None => {
                        return Err(Error::platform(
                            ProviderKind::Fly,
                            format!("machine {} of app `{app}` has no home volume", m.id),
                        )
                        .with_hint("destroy it with `sindri destroy` and deploy again"));
                    }
                };
                let body = json!({
                    "region": m.region,
                    "config": machine::config(spec, &volume, app_created)?,
                });
                phase(progress, "update machine", async {
                    api.update_machine(&app, &m.id, &body).await.map_err(|e| {
                        if e.kind() == ErrorKind::Capacity {
                            e.with_hint("the machine's host cannot fit the new size; `sindri destroy` then `sindri deploy` places it anew (the home volume is kept unless --volumes)")
                        } else {
                            e
                        }
                    })
                })
                .await?
            }
            None => {
                phase(
                    progress,
                    "create machine",
                    self.create_in_regions(api, spec, &app, app_created, progress),
                )
                .await?
            }
        };

        if opts.wait || !spec.secrets.is_empty() {
            phase(
                progress,
                "wait for machine",
                self.wait_for(api, &app, &machine, "started", self.wait_limit(Some(s))),
            )
            .await?;
        }
        if !spec.secrets.is_empty() {
            phase(
                progress,
                "deliver secrets",
                self.deliver_secrets(api, &app, &machine.id, &spec.secrets),
            )
            .await?;
        }
        if !s.deployment.ports.is_empty() {
            progress.message(&format!(
                "ports are published at {app}.fly.dev once the app has a public IP (`fly ips allocate-v6 --app {app}`)"
            ));
        }
        let fresh = api.machine(&app, &machine.id).await?.unwrap_or(machine);
        let mut d = record(&app, &org, &fresh);
        d.name = spec.name().to_string();
        d.project = spec.project.clone();
        d.spec_hash = hash;
        d.state = DeploymentState::Ready;
        d.details
            .insert("app_created".into(), app_created.to_string());
        Ok(d)
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let api = self.api().await?;
        let Some((app, m)) = self.locate(api, d).await? else {
            let mut s = Status::new(StatusState::Missing);
            s.message = Some(format!(
                "app `{}` has no machine of this environment",
                self.app_of(d)
            ));
            return Ok(s);
        };
        let mut s = Status::new(status_state(&m.state));
        s.message = Some(format!("machine {} is {}", m.id, m.state));
        s.details.insert("app".into(), app.clone());
        s.details.insert("machine".into(), m.id.clone());
        s.details.insert("region".into(), m.region.clone());
        if let Some(image) = m.image() {
            s.details.insert("image".into(), image.to_string());
        }
        if let Some(ip) = &m.private_ip {
            s.details.insert("private_ip".into(), ip.clone());
            s.endpoints.push(Endpoint {
                name: "private (6PN)".into(),
                address: format!("[{ip}]"),
            });
        }
        s.endpoints.push(Endpoint {
            name: "private DNS".into(),
            address: format!("{}.vm.{app}.internal", m.id),
        });
        if let Some(services) = m.config.get("services").and_then(|v| v.as_array()) {
            for svc in services {
                let proto = svc
                    .get("protocol")
                    .and_then(|v| v.as_str())
                    .unwrap_or("tcp");
                let internal = svc
                    .get("internal_port")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                for p in svc
                    .get("ports")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    if let Some(port) = p.get("port").and_then(|v| v.as_u64()) {
                        s.endpoints.push(Endpoint {
                            name: format!("port {internal}/{proto} (public)"),
                            address: format!("{proto}://{app}.fly.dev:{port}"),
                        });
                    }
                }
            }
        }
        Ok(s)
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let (app, m) = self.require(api, d).await?;
        self.start_machine(api, &app, &m, self.wait_limit(None))
            .await
    }

    async fn stop(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let (app, m) = self.require(api, d).await?;
        self.stop_machine(api, &app, &m, self.wait_limit(None))
            .await
    }

    async fn suspend(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let (app, m) = self.require(api, d).await?;
        match m.state.as_str() {
            "suspended" => return Ok(()),
            "started" => {}
            other => {
                return Err(Error::invalid(format!(
                    "environment `{}` cannot be suspended: machine {} is {other}",
                    d.name, m.id
                ))
                .with_provider(ProviderKind::Fly)
                .with_hint("only a running machine can be suspended; start it first"));
            }
        }
        api.action(&app, &m.id, "suspend").await?;
        // `/wait` in the published API knows started, stopped and destroyed only.
        self.poll_for(api, &app, &m.id, "suspended", self.wait_limit(None))
            .await
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, mut io: ExecIo) -> Result<i32> {
        let api = self.api().await?;
        let (app, m) = self.require_started(api, d).await?;
        let argv = machine::exec_argv(cmd, &self.config.secrets_dir)?;
        let stdin = read_stdin(&mut io).await?;
        let r = api
            .exec(
                &app,
                &m.id,
                &argv,
                stdin.as_deref(),
                self.config.exec_timeout,
            )
            .await?;
        if let Some(out) = &r.stdout {
            io.stdout.write_all(out.as_bytes()).await?;
        }
        io.stdout.flush().await?;
        if let Some(err) = &r.stderr {
            io.stderr.write_all(err.as_bytes()).await?;
        }
        io.stderr.flush().await?;
        Ok(r.exit_code)
    }

    async fn connect(&self, d: &Deployment, _io: ExecIo) -> Result<i32> {
        let Some(flyctl) = self.config.flyctl.clone() else {
            return Err(Error::unsupported(
                ProviderKind::Fly,
                Operation::Connect,
                Some(CONNECT_NOTE),
            ));
        };
        let api = self.api().await?;
        let (app, m) = self.require_started(api, d).await?;
        // flyctl takes over the terminal: sindri's streams are not used.
        let status = tokio::process::Command::new(&flyctl)
            .args(["ssh", "console", "--app", &app, "--machine", &m.id])
            .stdin(std::process::Stdio::inherit())
            .stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .status()
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot run {}: {e}", flyctl.display()),
                )
                .with_provider(ProviderKind::Fly)
                .with_hint("reinstall flyctl: `curl -L https://fly.io/install.sh | sh`")
            })?;
        Ok(status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }))
    }

    async fn logs(&self, _d: &Deployment, _opts: LogOptions, _out: LogSink<'_>) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Fly,
            Operation::Logs,
            Some(LOGS_NOTE),
        ))
    }

    async fn copy_in(&self, _d: &Deployment, _from: &Path, _to: &str) -> Result<TransferStats> {
        Err(Error::unsupported(
            ProviderKind::Fly,
            Operation::CopyIn,
            Some(COPY_NOTE),
        ))
    }

    async fn copy_out(&self, _d: &Deployment, _from: &str, _to: &Path) -> Result<TransferStats> {
        Err(Error::unsupported(
            ProviderKind::Fly,
            Operation::CopyOut,
            Some(COPY_NOTE),
        ))
    }

    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
        let api = self.api().await?;
        let app = self.app_of(d);
        let mut report = DestroyReport::default();
        if api.app(&app).await?.is_none() {
            return Ok(report);
        }
        let mut machines = self.ours(api, &app, &d.name, &d.project).await?;
        if let Some(id) = &d.resource_id
            && !machines.iter().any(|m| &m.id == id)
            && let Some(m) = api.machine(&app, id).await?
            && is_ours(&m, &d.name, &d.project)
        {
            machines.push(m);
        }
        let mut volume_ids: BTreeSet<String> =
            d.detail("volume").map(str::to_string).into_iter().collect();
        let mut app_created = d.detail("app_created") == Some("true");
        for m in &machines {
            volume_ids.extend(m.volume_ids());
            app_created |= m.meta(META_APP_CREATED) == Some("true");
            if self
                .remove_machine(api, &app, m, self.wait_limit(None))
                .await?
            {
                report
                    .removed
                    .push(format!("machine {} of app {app}", m.id));
            }
        }
        let volumes = api.volumes(&app).await?;
        let ours: Vec<_> = volumes
            .iter()
            .filter(|v| {
                volume_ids.contains(&v.id)
                    || (app_created && v.name == HOME_VOLUME && v.attached_machine_id.is_none())
            })
            .collect();
        for v in &ours {
            if opts.volumes {
                if api.delete_volume(&app, &v.id).await? {
                    report
                        .removed
                        .push(format!("volume {} ({}) of app {app}", v.id, v.name));
                }
            } else {
                report.kept.push(format!(
                    "volume {} ({}, {} GB) of app {app}: remove it with `sindri destroy --volumes`",
                    v.id,
                    v.name,
                    v.size_gb.unwrap_or(0)
                ));
            }
        }
        if app_created && opts.volumes {
            let machines_left = api.machines(&app).await?;
            let volumes_left = api.volumes(&app).await?;
            if machines_left.is_empty() && volumes_left.is_empty() && api.delete_app(&app).await? {
                report.removed.push(format!("app {app}"));
            }
        }
        Ok(report)
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let api = self.api().await?;
        let org = self.org(None);
        let mut out = Vec::new();
        for app in api.list_apps(&org).await? {
            for m in api.machines(&app).await? {
                if m.meta(LABEL_MANAGED) == Some("true") && m.meta(LABEL_ENVIRONMENT).is_some() {
                    out.push(record(&app, &org, &m));
                }
            }
        }
        Ok(out)
    }
}
