//! The E2B provider: E2B sandboxes through E2B's REST API, and commands and files
//! through envd, the daemon inside each sandbox (Connect RPC with JSON, and its
//! `/files` endpoint). No E2B CLI or SDK is needed.
//!
//! # What an environment is
//! One sandbox from `providers.e2b.template` (default `base`) with the metadata
//! `sindri.managed=true`, `sindri.environment=NAME`, `sindri.project=<project id>`
//! and `sindri.spec-hash`, `deployment.env` as its environment, a lifetime of
//! `providers.e2b.timeout` (default 1 hour) after which it is killed, or paused with
//! `providers.e2b.auto_pause`.
//!
//! A sandbox cannot be changed in place: a changed spec replaces it (its files are
//! lost, and deploy says so). E2B sizes sandboxes by template, so
//! `deployment.resources` shapes only `sindri export e2b`; `deployment.image` and
//! `build` are turned into a template by `sindri export e2b` and `e2b template
//! build`, then named in `providers.e2b.template`.
//!
//! # Lifecycle
//! E2B has no stopped state: `suspend` pauses the sandbox (memory and files kept),
//! `start` resumes it, and `stop` is refused with that advice. GPUs are refused
//! before anything is sent: E2B offers none.
//!
//! # Secrets
//! Env-style secrets are part of the sandbox's environment, passed once in the
//! create request (E2B never returns them); `mount:` secrets are written as files
//! through envd with mode 0600.

pub mod api;
pub mod config;
pub mod connect;
pub mod envd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use sindri_core::progress::phase;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DeploymentState, DestroyOptions,
    DestroyReport, Endpoint, Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Operation,
    Plan, PlanAction, PlanStep, Progress, Provider, ResolvedSpec, Result, Status, StatusState,
    TransferStats,
};
use sindri_render::{ExportFormat, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, Renderer};
use sindri_spec::{E2bSettings, ProviderKind, ProvidersSpec, Spec};
use tokio::io::AsyncWriteExt;

use crate::http::HttpClient;
use api::{E2bApi, SandboxDetail};
pub use config::E2bConfig;
use envd::Envd;

/// The template used when `providers.e2b.template` is not set.
pub const DEFAULT_TEMPLATE: &str = "base";
/// The sandbox lifetime when `providers.e2b.timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Metadata holding the deployed spec's hash.
pub const META_SPEC_HASH: &str = "sindri.spec-hash";

const STOP_NOTE: &str = "E2B has no stopped state; use `sindri suspend` (the sandbox is paused with its \
memory and files) and `sindri start` to resume it.";

/// Builds the E2B provider from `providers.e2b` and the environment. Does no I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(E2bProvider::new(
        settings.e2b.clone().unwrap_or_default(),
        E2bConfig::from_env()?,
    )))
}

/// The E2B provider.
pub struct E2bProvider {
    settings: E2bSettings,
    config: E2bConfig,
    api: tokio::sync::OnceCell<E2bApi>,
}

impl E2bProvider {
    /// A provider with these settings and endpoints.
    pub fn new(settings: E2bSettings, config: E2bConfig) -> E2bProvider {
        E2bProvider {
            settings,
            config,
            api: tokio::sync::OnceCell::new(),
        }
    }

    async fn api(&self) -> Result<&E2bApi> {
        self.api
            .get_or_try_init(|| async {
                let key = self.config.key()?;
                let http = HttpClient::new(
                    ProviderKind::E2b,
                    "E2B API",
                    self.config.api.clone(),
                    crate::http::Auth::Header {
                        name: "X-API-Key",
                        value: key,
                    },
                    self.config.http.clone(),
                )?
                .with_classifier(api::classify);
                Ok(E2bApi::new(http))
            })
            .await
    }

    fn settings_of<'a>(&'a self, spec: &'a Spec) -> &'a E2bSettings {
        spec.providers.e2b.as_ref().unwrap_or(&self.settings)
    }

    fn template(&self, spec: &Spec) -> String {
        self.settings_of(spec)
            .template
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string())
    }

    fn timeout(&self, spec: &Spec) -> u64 {
        self.settings_of(spec)
            .timeout
            .map(|t| t.0)
            .unwrap_or(DEFAULT_TIMEOUT)
            .as_secs()
            .max(1)
    }

    /// The environment's sandboxes, by metadata; running ones first.
    async fn ours(&self, api: &E2bApi, name: &str, project: &str) -> Result<Vec<SandboxDetail>> {
        let mut found = api
            .list(&[
                (LABEL_MANAGED, "true"),
                (LABEL_ENVIRONMENT, name),
                (LABEL_PROJECT, project),
            ])
            .await?;
        // The filter is the server's; check it here too before touching anything.
        found.retain(|s| is_ours(s, name, project));
        found.sort_by(|a, b| {
            (b.state == "running")
                .cmp(&(a.state == "running"))
                .then_with(|| b.started_at.cmp(&a.started_at))
        });
        Ok(found)
    }

    /// The deployment's sandbox: the recorded one when it still carries the
    /// metadata, else one found by metadata.
    async fn locate(&self, api: &E2bApi, d: &Deployment) -> Result<Option<SandboxDetail>> {
        if let Some(id) = &d.resource_id
            && let Some(s) = api.get(id).await?
            && is_ours(&s, &d.name, &d.project)
        {
            return Ok(Some(s));
        }
        let mut found = self.ours(api, &d.name, &d.project).await?;
        if found.is_empty() {
            return Ok(None);
        }
        // The list omits the envd token; the detail has it.
        let id = found.remove(0).sandbox_id;
        api.get(&id).await
    }

    async fn require(&self, api: &E2bApi, d: &Deployment) -> Result<SandboxDetail> {
        self.locate(api, d).await?.ok_or_else(|| {
            Error::not_found(format!(
                "environment `{}` is not deployed: no E2B sandbox has its metadata (it may have timed out)",
                d.name
            ))
            .with_provider(ProviderKind::E2b)
            .with_hint("deploy it with `sindri deploy`")
        })
    }

    /// The sandbox's envd, refusing a paused sandbox.
    async fn envd(&self, api: &E2bApi, d: &Deployment) -> Result<(SandboxDetail, Envd)> {
        let s = self.require(api, d).await?;
        if s.state != "running" {
            return Err(Error::invalid(format!(
                "environment `{}` is not running (sandbox {} is {})",
                d.name, s.sandbox_id, s.state
            ))
            .with_provider(ProviderKind::E2b)
            .with_hint("resume it with `sindri start`"));
        }
        let envd = Envd::new(api.http(), &self.config, &s)?;
        Ok((s, envd))
    }

    fn render(spec: &ResolvedSpec) -> Result<Vec<sindri_core::RenderedArtifact>> {
        let s = &spec.spec.deployment;
        if s.image.is_none() && s.build.is_none() {
            // e2b.toml describes a template built from an image; without one the
            // sandbox comes from an existing template and there is nothing to render.
            return Ok(Vec::new());
        }
        let dir = spec.base_dir.join(".sindri").join("templates");
        Renderer::new(Some(&dir))?.render(ExportFormat::E2b, spec)
    }

    /// The create request's body.
    fn create_body(&self, spec: &ResolvedSpec) -> Value {
        let s = &spec.spec;
        let mut metadata: Map<String, Value> = sindri_render::labels(spec)
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        metadata.insert(META_SPEC_HASH.into(), Value::String(spec.spec_hash()));
        let mut env: Map<String, Value> = s
            .deployment
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for sec in spec.secrets.iter().filter(|x| x.mount.is_none()) {
            env.insert(
                sec.name.clone(),
                Value::String(sec.value.expose().to_string()),
            );
        }
        let mut body = json!({
            "templateID": self.template(s),
            "timeout": self.timeout(s),
            "autoPause": self.settings_of(s).auto_pause,
            "secure": true,
            "metadata": metadata,
        });
        if !env.is_empty() {
            body["envVars"] = Value::Object(env);
        }
        body
    }

    async fn deliver_file_secrets(
        &self,
        api: &E2bApi,
        sandbox: &SandboxDetail,
        spec: &ResolvedSpec,
    ) -> Result<()> {
        let mounted: Vec<_> = spec.secrets.iter().filter(|s| s.mount.is_some()).collect();
        if mounted.is_empty() {
            return Ok(());
        }
        let envd = Envd::new(api.http(), &self.config, sandbox)?;
        let mut paths = Vec::new();
        for s in &mounted {
            let path = s.mount.clone().unwrap_or_default();
            envd.upload(&path, s.value.expose().as_bytes().to_vec())
                .await
                .map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!(
                            "could not write secret {} to {path}: {}",
                            s.name,
                            e.message()
                        ),
                    )
                    .with_provider(ProviderKind::E2b)
                    .with_hint(
                        "choose a `mount` path the sandbox's user can write, e.g. under its home",
                    )
                })?;
            paths.push(path);
        }
        let mut argv = vec!["chmod".to_string(), "600".to_string()];
        argv.extend(paths);
        let code = envd.run(&argv, &[], None, None, ExecIo::null()).await?;
        if code != 0 {
            return Err(Error::platform(
                ProviderKind::E2b,
                format!("could not restrict the secret files to their owner (chmod exited {code})"),
            ));
        }
        Ok(())
    }

    async fn kill_all(
        &self,
        api: &E2bApi,
        sandboxes: &[SandboxDetail],
        report: &mut DestroyReport,
    ) -> Result<()> {
        for s in sandboxes {
            if api.kill(&s.sandbox_id).await? {
                report.removed.push(format!("sandbox {}", s.sandbox_id));
            }
        }
        Ok(())
    }
}

fn is_ours(s: &SandboxDetail, name: &str, project: &str) -> bool {
    s.metadata.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && s.metadata.get(LABEL_ENVIRONMENT).map(String::as_str) == Some(name)
        && s.metadata.get(LABEL_PROJECT).map(String::as_str) == Some(project)
}

fn record(s: &SandboxDetail) -> Deployment {
    let meta = |k: &str| s.metadata.get(k).cloned().unwrap_or_default();
    let mut d = Deployment::creating(
        &meta(LABEL_ENVIRONMENT),
        ProviderKind::E2b,
        &meta(LABEL_PROJECT),
        &meta(META_SPEC_HASH),
    );
    d.resource_id = Some(s.sandbox_id.clone());
    d.state = match s.state.as_str() {
        "running" => DeploymentState::Ready,
        "paused" | "pausing" => DeploymentState::Suspended,
        _ => DeploymentState::Creating,
    };
    d.details.insert("template".into(), s.template_id.clone());
    d
}

/// The sandbox address of a port: `https://<port>-<id>.<domain>`.
fn port_url(s: &SandboxDetail, domain: &str, port: u16) -> String {
    let domain = s
        .domain
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or(domain);
    format!("https://{port}-{}.{domain}", s.sandbox_id)
}

fn join_remote(base: &str, rel: &Path) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    for c in rel.components() {
        out.push('/');
        out.push_str(&c.as_os_str().to_string_lossy());
    }
    out
}

#[async_trait]
impl Provider for E2bProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::E2b
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            start_stop: false,
            suspend: true,
            exec: true,
            connect: true,
            logs: true,
            copy: true,
            gpu: false,
            volumes: false,
            ports: true,
            spot: false,
            build: false,
            notes: vec![(Operation::Stop, STOP_NOTE)],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let api = match self.api().await {
            Ok(a) => a,
            Err(e) => {
                checks.push(Check {
                    name: "e2b api key".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
                return checks;
            }
        };
        checks.push(Check {
            name: "e2b api key".into(),
            status: CheckStatus::Ok,
            detail: "E2B_API_KEY is set".into(),
            hint: None,
        });
        checks.push(match api.list(&[(LABEL_MANAGED, "true")]).await {
            Ok(found) => Check {
                name: "e2b api".into(),
                status: CheckStatus::Ok,
                detail: format!(
                    "{} answers; {} sandboxes of sindri's",
                    self.config.api,
                    found.len()
                ),
                hint: None,
            },
            Err(e) => Check {
                name: "e2b api".into(),
                status: CheckStatus::Fail,
                detail: e.message().to_string(),
                hint: e.hint().map(str::to_string),
            },
        });
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, _current: Option<&Deployment>) -> Result<Plan> {
        let artifacts = Self::render(spec)?;
        let api = self.api().await?;
        let s = &spec.spec;
        let template = self.template(s);
        let ours = self.ours(api, spec.name(), &spec.project).await?;
        let mut steps = Vec::new();
        match ours.first() {
            None => steps.push(PlanStep {
                action: PlanAction::Create,
                resource: format!("sandbox from template {template}"),
                reason: Some(format!("lifetime {}s", self.timeout(s))),
            }),
            Some(sb) => {
                let same = sb.metadata.get(META_SPEC_HASH) == Some(&spec.spec_hash());
                let (action, reason) = match (same, sb.state.as_str()) {
                    (false, _) => (
                        PlanAction::Replace,
                        Some("spec changed; E2B sandboxes cannot change in place, so its files are lost".to_string()),
                    ),
                    (true, "running") => (PlanAction::Keep, None),
                    (true, other) => (PlanAction::Update, Some(format!("it is {other}: deploy resumes it"))),
                };
                steps.push(PlanStep {
                    action,
                    resource: format!("sandbox {}", sb.sandbox_id),
                    reason,
                });
                for extra in &ours[1..] {
                    steps.push(PlanStep {
                        action: PlanAction::Delete,
                        resource: format!("sandbox {}", extra.sandbox_id),
                        reason: Some("a duplicate left by an interrupted deploy".into()),
                    });
                }
            }
        }
        Ok(Plan {
            provider: ProviderKind::E2b,
            environment: spec.name().to_string(),
            steps,
            artifacts,
        })
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        _opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        let api = self.api().await?;
        let s = &spec.spec;
        let hash = spec.spec_hash();
        let template = self.template(s);
        let timeout = self.timeout(s);
        if self.settings_of(s).template.is_none()
            && (s.deployment.image.is_some() || s.deployment.build.is_some())
        {
            progress.warn(&format!(
                "E2B runs templates, not images: using template `{DEFAULT_TEMPLATE}`. To run deployment.image, \
                 build a template with `sindri export e2b -o DIR` and `e2b template build` in DIR, then set providers.e2b.template"
            ));
        }
        if s.deployment.resources.cpus.is_some() || s.deployment.resources.memory.is_some() {
            progress.message("E2B sizes sandboxes by template: deployment.resources applies to `sindri export e2b` only");
        }

        let mut ours = self.ours(api, spec.name(), &spec.project).await?;
        let extras = if ours.len() > 1 {
            ours.split_off(1)
        } else {
            Vec::new()
        };
        for extra in &extras {
            progress.message(&format!(
                "killing sandbox {} (a duplicate left by an interrupted deploy)",
                extra.sandbox_id
            ));
            api.kill(&extra.sandbox_id).await?;
        }

        let reuse = match ours.pop() {
            Some(sb) if sb.metadata.get(META_SPEC_HASH) == Some(&hash) => Some(sb),
            Some(sb) => {
                progress.warn(&format!(
                    "the spec changed and E2B sandboxes cannot change in place: replacing sandbox {} (its files are lost)",
                    sb.sandbox_id
                ));
                phase(progress, "kill old sandbox", api.kill(&sb.sandbox_id)).await?;
                None
            }
            None => None,
        };

        let sandbox_id = match reuse {
            Some(sb) => {
                if sb.state != "running" {
                    phase(
                        progress,
                        "resume sandbox",
                        api.connect(&sb.sandbox_id, timeout),
                    )
                    .await?;
                }
                sb.sandbox_id
            }
            None => {
                let body = self.create_body(spec);
                // The body carries secret values: scrub them from anything this call reports.
                let mut http = api.http().clone();
                for sec in &spec.secrets {
                    http.add_secret(sec.value.expose());
                }
                let creator = E2bApi::new(http);
                let created = phase(progress, "create sandbox", async {
                    creator.create(&body, &template).await.map_err(|e| {
                        if e.kind() == ErrorKind::NotFound {
                            e.with_hint(format!(
                                "is there a template `{template}`? Build one with `sindri export e2b -o DIR` and `e2b template build` in DIR, or set providers.e2b.template"
                            ))
                        } else {
                            e
                        }
                    })
                })
                .await?;
                let detail = api.get(&created.sandbox_id).await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Transient,
                        format!(
                            "sandbox {} vanished right after it was created",
                            created.sandbox_id
                        ),
                    )
                    .with_provider(ProviderKind::E2b)
                })?;
                phase(
                    progress,
                    "deliver secrets",
                    self.deliver_file_secrets(api, &detail, spec),
                )
                .await?;
                created.sandbox_id
            }
        };
        let detail = api.get(&sandbox_id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Transient,
                format!("sandbox {sandbox_id} disappeared during deploy"),
            )
            .with_provider(ProviderKind::E2b)
        })?;
        let mut d = record(&detail);
        d.name = spec.name().to_string();
        d.project = spec.project.clone();
        d.spec_hash = hash;
        d.state = DeploymentState::Ready;
        d.details.insert("timeout_secs".into(), timeout.to_string());
        if !s.deployment.ports.is_empty() {
            let ports: Vec<String> = s
                .deployment
                .ports
                .iter()
                .map(|p| p.container.to_string())
                .collect();
            d.details.insert("ports".into(), ports.join(","));
        }
        Ok(d)
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let api = self.api().await?;
        let Some(sb) = self.locate(api, d).await? else {
            let mut s = Status::new(StatusState::Missing);
            s.message = Some("no E2B sandbox has this environment's metadata".into());
            return Ok(s);
        };
        let state = match sb.state.as_str() {
            "running" => StatusState::Running,
            "paused" | "pausing" => StatusState::Suspended,
            _ => StatusState::Starting,
        };
        let mut s = Status::new(state);
        s.message = Some(format!(
            "sandbox {} is {}; it expires at {}",
            sb.sandbox_id, sb.state, sb.end_at
        ));
        s.details.insert("sandbox".into(), sb.sandbox_id.clone());
        s.details.insert(
            "template".into(),
            sb.alias.clone().unwrap_or_else(|| sb.template_id.clone()),
        );
        s.details.insert("expires".into(), sb.end_at.clone());
        s.details.insert("cpus".into(), sb.cpu_count.to_string());
        s.details
            .insert("memory_mib".into(), sb.memory_mb.to_string());
        for port in d
            .detail("ports")
            .unwrap_or("")
            .split(',')
            .filter_map(|p| p.parse::<u16>().ok())
        {
            s.endpoints.push(Endpoint {
                name: format!("port {port}/tcp"),
                address: port_url(&sb, &self.config.domain, port),
            });
        }
        Ok(s)
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let sb = self.require(api, d).await?;
        let timeout = d
            .detail("timeout_secs")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| {
                self.settings
                    .timeout
                    .map(|t| t.0)
                    .unwrap_or(DEFAULT_TIMEOUT)
                    .as_secs()
            });
        api.connect(&sb.sandbox_id, timeout).await?;
        Ok(())
    }

    async fn stop(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::E2b,
            Operation::Stop,
            Some(STOP_NOTE),
        ))
    }

    async fn suspend(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let sb = self.require(api, d).await?;
        match api.pause(&sb.sandbox_id).await? {
            404 => Err(
                Error::not_found(format!("sandbox {} is gone", sb.sandbox_id))
                    .with_provider(ProviderKind::E2b),
            ),
            409 => match api.get(&sb.sandbox_id).await? {
                Some(now) if now.state == "paused" || now.state == "pausing" => Ok(()),
                _ => Err(Error::new(
                    ErrorKind::Conflict,
                    format!("sandbox {} cannot be paused right now", sb.sandbox_id),
                )
                .with_provider(ProviderKind::E2b)
                .with_hint("try again in a moment")),
            },
            _ => Ok(()),
        }
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        let api = self.api().await?;
        let (_, envd) = self.envd(api, d).await?;
        envd.run(
            &cmd.argv,
            &cmd.env,
            cmd.workdir.as_deref(),
            cmd.user.as_deref(),
            io,
        )
        .await
    }

    async fn connect(&self, d: &Deployment, mut io: ExecIo) -> Result<i32> {
        let api = self.api().await?;
        let (_, envd) = self.envd(api, d).await?;
        if io.tty.is_none() {
            let (_tx, rx) = tokio::sync::watch::channel((80u16, 24u16));
            io.tty = Some(rx);
        }
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
        let shell = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"
                .to_string(),
        ];
        envd.run(&shell, &[("TERM".to_string(), term)], None, None, io)
            .await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let api = self.api().await?;
        let sb = self.require(api, d).await?;
        let tail = opts.tail.unwrap_or(100).min(1000) as u32;
        let mut entries = api.logs(&sb.sandbox_id, None, tail, "backward").await?;
        // Backward answers come newest first.
        entries.sort_by_key(|e| api::rfc3339_millis(&e.timestamp).unwrap_or(0));
        let mut cursor = None;
        for e in &entries {
            out.write_all(format!("{} {}\n", e.timestamp, e.message).as_bytes())
                .await?;
            cursor = api::rfc3339_millis(&e.timestamp).or(cursor);
        }
        out.flush().await?;
        if !opts.follow {
            return Ok(());
        }
        let mut since = cursor.unwrap_or_else(|| sindri_core::unix_now() * 1000);
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if api.get(&sb.sandbox_id).await?.is_none() {
                return Ok(());
            }
            for e in api
                .logs(&sb.sandbox_id, Some(since + 1), 1000, "forward")
                .await?
            {
                out.write_all(format!("{} {}\n", e.timestamp, e.message).as_bytes())
                    .await?;
                if let Some(ms) = api::rfc3339_millis(&e.timestamp) {
                    since = since.max(ms);
                }
            }
            out.flush().await?;
        }
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        let api = self.api().await?;
        let (_, envd) = self.envd(api, d).await?;
        let meta = std::fs::metadata(from).map_err(|e| {
            Error::invalid(format!("cannot read {}: {e}", from.display()))
                .with_provider(ProviderKind::E2b)
        })?;
        let mut stats = TransferStats::default();
        let mut executables = Vec::new();
        if meta.is_file() {
            let data = tokio::fs::read(from).await?;
            stats.bytes = data.len() as u64;
            stats.files = 1;
            envd.upload(to, data).await?;
            if is_executable(&meta) {
                executables.push(to.to_string());
            }
        } else {
            envd.make_dir(to).await?;
            let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
            while let Some(rel) = stack.pop() {
                let dir = from.join(&rel);
                let mut entries: Vec<_> =
                    std::fs::read_dir(&dir)?.collect::<std::io::Result<_>>()?;
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    let rel = rel.join(e.file_name());
                    let remote = join_remote(to, &rel);
                    let ft = e.file_type()?;
                    if ft.is_dir() {
                        envd.make_dir(&remote).await?;
                        stack.push(rel);
                    } else if ft.is_file() {
                        let m = e.metadata()?;
                        let data = tokio::fs::read(e.path()).await?;
                        stats.files += 1;
                        stats.bytes += data.len() as u64;
                        envd.upload(&remote, data).await?;
                        if is_executable(&m) {
                            executables.push(remote);
                        }
                    } else {
                        tracing::debug!(target: "sindri::e2b", "skipped {} (not a file or directory)", e.path().display());
                    }
                }
            }
        }
        // envd's upload does not carry modes; restore the executable bit.
        for chunk in executables.chunks(200) {
            let mut argv = vec!["chmod".to_string(), "+x".to_string()];
            argv.extend(chunk.iter().cloned());
            let code = envd.run(&argv, &[], None, None, ExecIo::null()).await?;
            if code != 0 {
                return Err(Error::platform(
                    ProviderKind::E2b,
                    format!("chmod +x of copied files exited {code}"),
                ));
            }
        }
        Ok(stats)
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        let api = self.api().await?;
        let (_, envd) = self.envd(api, d).await?;
        let root = envd.stat(from).await?.ok_or_else(|| {
            Error::not_found(format!("{from} does not exist in environment `{}`", d.name))
                .with_provider(ProviderKind::E2b)
        })?;
        let mut stats = TransferStats::default();
        if !root.is_dir() {
            if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent).await?;
            }
            stats.bytes = download_to(&envd, from, to, root.mode).await?;
            stats.files = 1;
            return Ok(stats);
        }
        tokio::fs::create_dir_all(to).await?;
        let mut stack = vec![(from.trim_end_matches('/').to_string(), to.to_path_buf())];
        while let Some((remote, local)) = stack.pop() {
            for e in envd.list_dir(&remote).await? {
                let path = if e.path.is_empty() {
                    format!("{remote}/{}", e.name)
                } else {
                    e.path.clone()
                };
                let target = local.join(&e.name);
                if e.is_dir() {
                    tokio::fs::create_dir_all(&target).await?;
                    stack.push((path, target));
                } else if e.is_file() {
                    stats.bytes += download_to(&envd, &path, &target, e.mode).await?;
                    stats.files += 1;
                }
            }
        }
        Ok(stats)
    }

    async fn destroy(&self, d: &Deployment, _opts: DestroyOptions) -> Result<DestroyReport> {
        let api = self.api().await?;
        let mut targets = self.ours(api, &d.name, &d.project).await?;
        if let Some(id) = &d.resource_id
            && !targets.iter().any(|s| &s.sandbox_id == id)
            && let Some(s) = api.get(id).await?
            && is_ours(&s, &d.name, &d.project)
        {
            targets.push(s);
        }
        let mut report = DestroyReport::default();
        self.kill_all(api, &targets, &mut report).await?;
        Ok(report)
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let api = self.api().await?;
        Ok(api
            .list(&[(LABEL_MANAGED, "true")])
            .await?
            .iter()
            .filter(|s| s.metadata.contains_key(LABEL_ENVIRONMENT))
            .map(record)
            .collect())
    }
}

fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

/// Downloads `remote` to `local` through a partial file beside it, so `local` is
/// either the whole file or untouched. A download cut off part way is a read, safe to
/// repeat: it is started again, as the client's retry policy allows.
async fn download_to(envd: &Envd, remote: &str, local: &Path, mode: u32) -> Result<u64> {
    let mut part = local.as_os_str().to_owned();
    part.push(".sindri-partial");
    let part = PathBuf::from(part);
    let policy = envd.retry().clone();
    let mut attempt = 0;
    let n = loop {
        attempt += 1;
        let mut f = tokio::fs::File::create(&part).await?;
        let got = envd.download(remote, &mut f).await;
        drop(f);
        match got {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::Transient && attempt < policy.max_attempts => {
                let delay = policy.backoff(attempt);
                tracing::info!(target: "sindri::e2b", "{}; starting the download again in {:.1}s", e.message(), delay.as_secs_f64());
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(e);
            }
        }
    };
    let perm = mode & 0o777;
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&part, std::fs::Permissions::from_mode(perm)).await?;
    }
    tokio::fs::rename(&part, local).await?;
    Ok(n)
}
