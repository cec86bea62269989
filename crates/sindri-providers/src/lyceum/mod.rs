//! The Lyceum provider: GPU VMs through Lyceum's VM API (`LYCEUM_API_KEY`, else
//! `~/.lyceum/api_key`; `LYCEUM_API_URL` moves the API, default
//! `https://api.lyceum.technology/api/v2/external`), reached over SSH as the user
//! `lyceum` with the system OpenSSH client ([`crate::ssh`]).
//!
//! # What an environment is
//! One VM of hardware profile `providers.lyceum.hardware_profile` (else the one
//! `resources.gpu.type` names), `resources.gpu.count` GPUs (1, 2, 4 or 8), on-demand
//! or spot (`providers.lyceum.spot`), with the user's SSH public key
//! (`providers.lyceum.ssh_public_key`, default `~/.ssh/id_ed25519.pub`) and a display
//! name that identifies it (see [`vm`]). Lyceum boots its own image: `deployment.image`
//! is not used, and CPU, memory and disk come with the profile.
//!
//! Before renting, `deploy` reads `/vms/availability` and refuses with a Capacity
//! error listing what is free when the asked-for variant has no room; Lyceum's own
//! "could not be provisioned" (HTTP 500) is a Capacity error too, never retried.
//! A VM can be `ready` before it has an address: `deploy` waits for both, and for SSH.
//!
//! # Billing
//! Lyceum has no stop, no suspend and no time limit: a VM bills from ready until it is
//! deleted. `capabilities()` says so and the CLI refuses `stop`/`start` before any
//! call; `status` says it in every message; `sindri destroy` ends billing. Runs rely
//! on the run supervisor's `max_duration` and on `on_finish` (`stop` is `destroy`
//! here), which the VM applies to itself when no sindri follows the run: for that,
//! [`Provider::self_end`] places the user's API key on the VM (`~/.sindri/lyceum-auth`,
//! mode 0600, sent over ssh stdin as secrets are) and the run supervisor runs
//! [`self_end_command`], `DELETE /vms/{id}` with that key. Lyceum's keys are not
//! scoped to one VM, so `providers.lyceum.self_destroy: false` keeps the key off
//! the VM (see docs/adr/0012-machines-end-themselves.md).
//!
//! # Env and secrets
//! Lyceum's create call takes no environment: `deployment.env` and secrets are
//! written over SSH into `~/.sindri/env`, which every `sindri exec` sources.
//!
//! # Changes
//! Lyceum cannot change a VM. A spec that asks for other hardware replaces the VM
//! (with a warning: its disk is lost); any other change is applied by delivering env
//! and secrets again.

pub mod api;
pub mod config;
// Shared with RunPod; compiled here only when the runpod feature is off.
#[cfg(not(feature = "runpod"))]
#[path = "../runpod/sshenv.rs"]
pub(crate) mod sshenv;
#[cfg(feature = "runpod")]
use crate::runpod::sshenv;
pub mod vm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sindri_core::progress::phase;
use sindri_core::provider::SelfEnd;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DeploymentState, DestroyOptions,
    DestroyReport, Endpoint, Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Operation,
    Plan, PlanAction, PlanStep, Progress, Provider, RenderedArtifact, ResolvedSpec, Result, Status,
    StatusState, TransferStats,
};
use sindri_spec::{LyceumSettings, OnFinish, ProviderKind, ProvidersSpec};

use crate::http::{Auth, HttpClient};
use crate::ssh::{LogSource, SshSession, SshTarget, quote};
use api::{LyceumApi, Vm, price_of};
pub use config::LyceumConfig;
use sshenv::{Patience, PublicKey};
use vm::VmSpec;

/// The file (in sindri's directory on the VM) holding the `Authorization` header the
/// VM deletes itself with.
const AUTH_FILE: &str = "lyceum-auth";

/// sindri's directory on the VM as a shell word: absolute paths quoted, relative ones
/// under `$HOME`.
fn dir_word(dir: &str) -> String {
    if dir.starts_with('/') {
        quote(dir)
    } else {
        format!("\"$HOME\"/{}", quote(dir.trim_end_matches('/')))
    }
}

/// The command a VM runs to delete itself through Lyceum's API at `api`
/// (`DELETE /vms/{id}`), with the `Authorization` header in `auth_file` (a shell
/// word), so the key is on no command line.
pub fn self_end_command(api: &str, vm_id: &str, auth_file: &str) -> String {
    let url = format!("{}/vms/{vm_id}", api.trim_end_matches('/'));
    format!(
        r#"f={auth_file}
[ -r "$f" ] || {{ echo "the Lyceum API key is not on this VM ($f): it cannot delete itself" >&2; exit 1; }}
command -v curl >/dev/null 2>&1 || {{ echo "curl is not installed on this VM: it cannot delete itself" >&2; exit 127; }}
curl -sS -f -m 60 --retry 5 -X DELETE -H @"$f" {url}"#,
        url = quote(&url)
    )
}

/// Why stop and start are missing, shown when the CLI refuses them.
pub const STOP_NOTE: &str = "Lyceum VMs cannot be stopped; `sindri destroy` ends billing \
(a Lyceum VM bills from ready until it is destroyed: there is no stop, suspend or time limit).";

const SSH_HINT: &str = "Lyceum VMs answer SSH a minute or two after they are ready; try \
`sindri deploy` again (it finds the VM), or check the key in providers.lyceum.ssh_public_key";

/// Builds the Lyceum provider from `providers.lyceum` and the environment. No I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(LyceumProvider::new(
        settings.lyceum.clone().unwrap_or_default(),
        LyceumConfig::from_env()?,
    )))
}

/// The Lyceum provider. The API client is made on first use (the key may come from a
/// file), then reused.
pub struct LyceumProvider {
    settings: LyceumSettings,
    config: LyceumConfig,
    api: tokio::sync::OnceCell<LyceumApi>,
}

impl LyceumProvider {
    /// A provider with these settings and endpoints.
    pub fn new(settings: LyceumSettings, config: LyceumConfig) -> LyceumProvider {
        LyceumProvider {
            settings,
            config,
            api: tokio::sync::OnceCell::new(),
        }
    }

    async fn api(&self) -> Result<&LyceumApi> {
        self.api
            .get_or_try_init(|| async {
                let (key, _) = self.config.key()?;
                let http = HttpClient::new(
                    ProviderKind::Lyceum,
                    "Lyceum API",
                    self.config.api.clone(),
                    Auth::bearer(key),
                    self.config.http.clone(),
                )?;
                Ok(LyceumApi::new(http))
            })
            .await
    }

    fn patience(&self) -> Patience {
        Patience {
            interval: self.config.poll_interval,
            attempts: self.config.max_polls.max(1),
        }
    }

    fn public_key(&self, settings: &LyceumSettings, base_dir: Option<&Path>) -> Result<PublicKey> {
        sshenv::public_key(
            ProviderKind::Lyceum,
            "providers.lyceum.ssh_public_key",
            settings.ssh_public_key.as_deref(),
            base_dir,
            self.config.home.as_deref(),
        )
    }

    /// The environment's live VMs (by display name), newest first.
    async fn ours(&self, api: &LyceumApi, name: &str, project: &str) -> Result<Vec<Vm>> {
        let mut vms: Vec<Vm> = api
            .list()
            .await?
            .into_iter()
            .filter(|v| is_ours(v, name, project))
            .collect();
        vms.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(vms)
    }

    /// The deployment's VM: the recorded one while it is alive and named for this
    /// environment, else one found by display name.
    async fn locate(&self, api: &LyceumApi, d: &Deployment) -> Result<Option<Vm>> {
        if let Some(id) = &d.resource_id
            && let Some(v) = api.status(id).await?
            && !v.is_terminal()
        {
            // The status answer may leave out the display name; the id is ours.
            if v.display_name.is_none() || is_ours(&v, &d.name, &d.project) {
                return Ok(Some(v));
            }
        }
        Ok(self
            .ours(api, &d.name, &d.project)
            .await?
            .into_iter()
            .next())
    }

    async fn require(&self, api: &LyceumApi, d: &Deployment) -> Result<Vm> {
        self.locate(api, d).await?.ok_or_else(|| {
            Error::not_found(format!(
                "environment `{}` is not deployed: Lyceum has no live VM named for it",
                d.name
            ))
            .with_provider(ProviderKind::Lyceum)
            .with_hint("deploy it with `sindri deploy`")
        })
    }

    /// Checks `/vms/availability` for the variant; refuses with what is free when it
    /// has no room. A failing availability call only warns: it is advisory.
    async fn check_availability(
        &self,
        api: &LyceumApi,
        want: &VmSpec,
        progress: &dyn Progress,
    ) -> Result<()> {
        let variants = match api.availability().await {
            Ok(v) => v,
            Err(e) => {
                progress.warn(&format!(
                    "could not read Lyceum's availability ({e}); asking for the VM anyway"
                ));
                return Ok(());
            }
        };
        let free: Vec<String> = variants
            .iter()
            .filter(|v| !v.available_gpus_per_instance.is_empty())
            .map(|v| {
                let mut counts = v.available_gpus_per_instance.clone();
                counts.sort_unstable();
                counts.dedup();
                let counts: Vec<String> = counts.iter().map(u32::to_string).collect();
                format!(
                    "{} {} x{}",
                    v.instance_type,
                    v.hardware_profile,
                    counts.join("/")
                )
            })
            .collect();
        let free_text = if free.is_empty() {
            "nothing is free right now".to_string()
        } else {
            format!("free now: {}", free.join(", "))
        };
        match variants
            .iter()
            .find(|v| v.hardware_profile == want.profile && v.instance_type == want.instance_type)
        {
            None => Err(Error::invalid(format!(
                "Lyceum does not offer {} {} VMs ({free_text})",
                want.instance_type, want.profile
            ))
            .with_provider(ProviderKind::Lyceum)
            .with_hint("choose another providers.lyceum.hardware_profile, or switch providers.lyceum.spot")),
            Some(v) if !v.available_gpus_per_instance.contains(&want.count) => Err(Error::new(
                ErrorKind::Capacity,
                format!(
                    "Lyceum has no {} VM free right now ({free_text})",
                    want.describe()
                ),
            )
            .with_provider(ProviderKind::Lyceum)
            .with_hint("pick one of the free variants (providers.lyceum.hardware_profile, resources.gpu.count, providers.lyceum.spot), or try again later")),
            Some(_) => Ok(()),
        }
    }

    /// Polls until the VM is ready with an address. A VM that fails is deleted (so it
    /// cannot bill) and reported.
    async fn wait_ready(&self, api: &LyceumApi, id: &str) -> Result<(Vm, String, u16)> {
        let p = self.patience();
        let mut last = String::from("not looked at yet");
        for attempt in 1..=p.attempts {
            let vm = api.status(id).await?.ok_or_else(|| {
                Error::platform(
                    ProviderKind::Lyceum,
                    format!("VM {id} disappeared while starting"),
                )
                .with_hint("a spot VM may have been reclaimed; run `sindri deploy` again")
            })?;
            if vm.is_terminal() {
                let state = vm.state();
                let _ = api.delete(id).await;
                return Err(Error::platform(
                    ProviderKind::Lyceum,
                    format!("VM {id} is {state} instead of becoming ready"),
                )
                .with_hint("it was deleted so it cannot bill; run `sindri deploy` again, or try another hardware profile"));
            }
            if vm.is_ready() {
                match vm.address()? {
                    Some((host, port)) => return Ok((vm, host, port)),
                    None => last = "ready, without an IP address yet".into(),
                }
            } else {
                last = vm.state();
            }
            if attempt < p.attempts {
                tokio::time::sleep(p.interval).await;
            }
        }
        Err(Error::new(
            ErrorKind::Transient,
            format!(
                "VM {id} did not become ready with an address within {} looks (last: {last}); it bills once ready",
                p.attempts
            ),
        )
        .with_provider(ProviderKind::Lyceum)
        .with_hint("run `sindri deploy` again to keep waiting, or `sindri destroy` to give it up"))
    }

    fn session_for(
        &self,
        name: &str,
        project: &str,
        vm: &Vm,
        host: String,
        port: u16,
        identity: Option<PathBuf>,
    ) -> Result<SshSession> {
        let mut target = SshTarget::new(self.config.ssh_user.clone(), host).with_port(port);
        target.identity = identity;
        Ok(SshSession::new(
            &format!("lyceum/{project}/{name}"),
            target,
            self.config.ssh_options()?,
        )
        .host_key_alias(format!("lyceum-{}", vm.vm_id))
        .env_files(vec![format!(
            "{}/env",
            self.config.env_dir.trim_end_matches('/')
        )]))
    }

    /// An SSH session to the deployment's ready VM; `NotFound` without one.
    async fn session(&self, d: &Deployment) -> Result<SshSession> {
        let api = self.api().await?;
        let vm = self.require(api, d).await?;
        let addr = if vm.is_ready() { vm.address()? } else { None };
        let Some((host, port)) = addr else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "VM {} of environment `{}` is {} and has no address yet",
                    vm.vm_id,
                    d.name,
                    vm.state()
                ),
            )
            .with_provider(ProviderKind::Lyceum)
            .with_hint("wait until `sindri status` says running, then try again"));
        };
        let identity = match d.detail("ssh_identity") {
            Some(p) => Some(PathBuf::from(p)),
            None => self
                .public_key(&self.settings, None)
                .ok()
                .and_then(|k| k.identity),
        };
        self.session_for(&d.name, &d.project, &vm, host, port, identity)
    }

    async fn price(&self, api: &LyceumApi, vm: &Vm) -> Option<f64> {
        let (profile, count) = (vm.profile()?, vm.count()?);
        let kind = vm
            .instance_type
            .clone()
            .unwrap_or_else(|| "on-demand".into());
        match api.pricing().await {
            Ok(p) => price_of(&p, &kind.to_ascii_lowercase(), &profile, count),
            Err(e) => {
                tracing::debug!(target: "sindri::lyceum", "pricing unavailable: {e}");
                None
            }
        }
    }
}

fn is_ours(v: &Vm, name: &str, project: &str) -> bool {
    v.display_name
        .as_deref()
        .and_then(vm::parse_display_name)
        .is_some_and(|(env, p)| env == name && p == project)
}

fn deployment_state(v: &Vm) -> DeploymentState {
    if v.is_terminal() {
        DeploymentState::Failed
    } else if v.is_ready() {
        DeploymentState::Ready
    } else {
        DeploymentState::Creating
    }
}

/// A deployment record rebuilt from a VM's display name; `None` for VMs sindri did
/// not name. Its spec hash is empty: Lyceum keeps none (see [`vm`]).
fn record(v: &Vm) -> Option<Deployment> {
    let (env, project) = vm::parse_display_name(v.display_name.as_deref()?)?;
    let mut d = Deployment::creating(&env, ProviderKind::Lyceum, &project, "");
    d.resource_id = Some(v.vm_id.clone());
    d.state = deployment_state(v);
    if let Some(n) = &v.display_name {
        d.details.insert("display_name".into(), n.clone());
    }
    if let Some(p) = v.profile() {
        d.details.insert("hardware_profile".into(), p);
    }
    if let Some(c) = v.count() {
        d.details.insert("gpu_count".into(), c.to_string());
    }
    if let Some(t) = &v.instance_type {
        d.details.insert("instance_type".into(), t.clone());
    }
    Some(d)
}

fn bills_until_destroyed(vm: &Vm) -> String {
    format!(
        "VM {} bills until destroyed: Lyceum VMs cannot be stopped and have no time limit (`sindri destroy` ends billing)",
        vm.vm_id
    )
}

fn check(name: &str, r: std::result::Result<String, Error>) -> Check {
    match r {
        Ok(detail) => Check {
            name: name.into(),
            status: CheckStatus::Ok,
            detail,
            hint: None,
        },
        Err(e) => Check {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: e.message().to_string(),
            hint: e.hint().map(str::to_string),
        },
    }
}

#[async_trait]
impl Provider for LyceumProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Lyceum
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            start_stop: false,
            suspend: false,
            exec: true,
            connect: true,
            logs: true,
            copy: true,
            gpu: true,
            volumes: false,
            // Lyceum has no firewall or port API; reach services with `ssh -L`.
            ports: false,
            spot: true,
            build: false,
            notes: vec![
                (Operation::Stop, STOP_NOTE),
                (Operation::Start, STOP_NOTE),
                (Operation::Suspend, STOP_NOTE),
            ],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match self.config.key() {
            Ok((_, source)) => {
                checks.push(check("lyceum api key", Ok(format!("key from {source}"))))
            }
            Err(e) => {
                checks.push(check("lyceum api key", Err(e)));
                return checks;
            }
        }
        match self.api().await {
            Ok(api) => checks.push(check(
                "lyceum api",
                api.user().await.map(|u| {
                    let credit = u
                        .get("credit_balance")
                        .and_then(serde_json::Value::as_f64)
                        .map(|c| format!("; credit balance {c:.2}"))
                        .unwrap_or_default();
                    format!("{} answers{credit}", api.base())
                }),
            )),
            Err(e) => checks.push(check("lyceum api", Err(e))),
        }
        checks.push(check("ssh client", sshenv::ssh_client_check().await));
        checks.push(check(
            "ssh public key",
            self.public_key(&self.settings, None)
                .map(|k| format!("{} (given to each VM)", k.path.display())),
        ));
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, current: Option<&Deployment>) -> Result<Plan> {
        let settings = spec.spec.providers.lyceum.clone().unwrap_or_default();
        let key = self.public_key(&settings, Some(&spec.base_dir))?;
        let want = vm::build(spec)?;
        sshenv::check_env_names(ProviderKind::Lyceum, &spec.spec.deployment.env)?;
        let api = self.api().await?;
        let artifacts = vec![RenderedArtifact {
            name: "lyceum-vm.json".into(),
            content: serde_json::to_string_pretty(&want.body(&key.text)).unwrap_or_default(),
        }];
        let price = match api.pricing().await {
            Ok(p) => price_of(&p, &want.instance_type, &want.profile, want.count),
            Err(_) => None,
        };
        let bills = match price {
            Some(c) => format!("${c:.2}/h from ready until destroyed (Lyceum has no stop)"),
            None => "billed from ready until destroyed (Lyceum has no stop)".to_string(),
        };
        let ours = self.ours(api, spec.name(), &spec.project).await?;
        let mut steps = Vec::new();
        match ours.first() {
            None => steps.push(PlanStep {
                action: PlanAction::Create,
                resource: format!("VM {} ({})", want.display_name, want.describe()),
                reason: Some(bills),
            }),
            Some(v) => {
                let recorded = current
                    .filter(|c| c.resource_id.as_deref() == Some(v.vm_id.as_str()))
                    .map(|c| c.spec_hash.clone())
                    .filter(|h| !h.is_empty());
                let hash = spec.spec_hash();
                let (action, reason) = if !want.same_hardware(v) {
                    (
                        PlanAction::Replace,
                        Some(format!(
                            "hardware changed to {}: Lyceum cannot change a VM, so a new one is rented and the old one's disk is lost; {bills}",
                            want.describe()
                        )),
                    )
                } else if recorded.as_deref() == Some(hash.as_str()) {
                    (PlanAction::Keep, None)
                } else {
                    // Lyceum keeps no spec hash: without a record, what was delivered is unknown.
                    let why = if recorded.is_some() {
                        "spec changed"
                    } else {
                        "not recorded on this machine"
                    };
                    (
                        PlanAction::Update,
                        Some(format!(
                            "{why}: env and secrets are delivered again over SSH"
                        )),
                    )
                };
                steps.push(PlanStep {
                    action,
                    resource: format!(
                        "VM {} ({})",
                        v.vm_id,
                        v.display_name.clone().unwrap_or_default()
                    ),
                    reason,
                });
                for extra in &ours[1..] {
                    steps.push(PlanStep {
                        action: PlanAction::Delete,
                        resource: format!("VM {}", extra.vm_id),
                        reason: Some("a duplicate left by an interrupted deploy".into()),
                    });
                }
            }
        }
        Ok(Plan {
            provider: ProviderKind::Lyceum,
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
        let settings = spec.spec.providers.lyceum.clone().unwrap_or_default();
        let key = self.public_key(&settings, Some(&spec.base_dir))?;
        let want = vm::build(spec)?;
        sshenv::check_env_names(ProviderKind::Lyceum, &spec.spec.deployment.env)?;
        let d = &spec.spec.deployment;
        if d.image.is_some() {
            progress.warn("Lyceum boots its own image: deployment.image is not used");
        }
        if d.resources.cpus.is_some() || d.resources.memory.is_some() || d.resources.disk.is_some()
        {
            progress.message(&format!(
                "Lyceum sizes CPU, memory and disk by hardware profile ({}); deployment.resources.cpus/memory/disk are not used",
                want.profile
            ));
        }
        let api = self.api().await?;

        let mut ours = self.ours(api, spec.name(), &spec.project).await?;
        let extras: Vec<Vm> = if ours.len() > 1 {
            ours.split_off(1)
        } else {
            Vec::new()
        };
        for extra in &extras {
            progress.message(&format!(
                "terminating VM {} (a duplicate left by an interrupted deploy)",
                extra.vm_id
            ));
            api.delete(&extra.vm_id).await?;
        }
        let existing = match ours.pop() {
            Some(v) if want.same_hardware(&v) => Some(v),
            Some(v) => {
                progress.warn(&format!(
                    "VM {} is {} {} x{}; terminating it and renting {} (its disk is lost)",
                    v.vm_id,
                    v.instance_type.clone().unwrap_or_default(),
                    v.profile().unwrap_or_default(),
                    v.count().unwrap_or(0),
                    want.describe()
                ));
                api.delete(&v.vm_id).await?;
                None
            }
            None => None,
        };
        let vm = match existing {
            Some(v) => {
                progress.message(&bills_until_destroyed(&v));
                v
            }
            None => {
                phase(
                    progress,
                    "check availability",
                    self.check_availability(api, &want, progress),
                )
                .await?;
                let what = format!("create VM {} ({})", want.display_name, want.describe());
                let v = phase(
                    progress,
                    "create vm",
                    api.create(&want.body(&key.text), &what),
                )
                .await?;
                progress.warn(&bills_until_destroyed(&v));
                v
            }
        };

        let mut rec = record(&vm).unwrap_or_else(|| {
            Deployment::creating(spec.name(), ProviderKind::Lyceum, &spec.project, "")
        });
        rec.resource_id = Some(vm.vm_id.clone());
        rec.name = spec.name().to_string();
        rec.project = spec.project.clone();
        rec.spec_hash = spec.spec_hash();
        rec.details
            .insert("display_name".into(), want.display_name.clone());
        rec.details
            .insert("hardware_profile".into(), want.profile.clone());
        rec.details
            .insert("gpu_count".into(), want.count.to_string());
        rec.details
            .insert("instance_type".into(), want.instance_type.clone());
        if let Some(id) = &key.identity {
            rec.details
                .insert("ssh_identity".into(), id.display().to_string());
        }
        if !opts.wait {
            rec.state = DeploymentState::Creating;
            progress.message("not waiting: env and secrets are delivered by the next `sindri deploy` once the VM is ready");
            return Ok(rec);
        }
        let (ready, host, port) =
            phase(progress, "wait for vm", self.wait_ready(api, &vm.vm_id)).await?;
        let session = self.session_for(
            spec.name(),
            &spec.project,
            &ready,
            host,
            port,
            key.identity.clone(),
        )?;
        phase(
            progress,
            "wait for ssh",
            sshenv::wait_for_ssh(ProviderKind::Lyceum, &session, self.patience(), SSH_HINT),
        )
        .await?;
        phase(
            progress,
            "deliver env and secrets",
            sshenv::deliver(
                ProviderKind::Lyceum,
                &session,
                &self.config.env_dir,
                &d.env,
                &spec.secrets,
            ),
        )
        .await?;
        rec.state = DeploymentState::Ready;
        Ok(rec)
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let api = self.api().await?;
        let Some(vm) = self.locate(api, d).await? else {
            let mut s = Status::new(StatusState::Missing);
            s.message = Some(format!(
                "Lyceum has no live VM named for environment `{}`",
                d.name
            ));
            return Ok(s);
        };
        let address = vm.address();
        let (state, what) = if vm.is_ready() {
            match &address {
                Ok(Some((h, p))) => (
                    StatusState::Running,
                    format!("VM {} is ready at {h}:{p}", vm.vm_id),
                ),
                Ok(None) => (
                    StatusState::Starting,
                    format!("VM {} is ready but has no IP address yet", vm.vm_id),
                ),
                Err(e) => (StatusState::Failed, e.message().to_string()),
            }
        } else {
            (
                StatusState::Starting,
                format!("VM {} is {}", vm.vm_id, vm.state()),
            )
        };
        let mut s = Status::new(state);
        s.message = Some(format!("{what}; {}", bills_until_destroyed(&vm)));
        let price = self.price(api, &vm).await;
        if vm.is_ready() {
            s.cost_per_hour = price;
        }
        if let Some(c) = price {
            s.details.insert("price_per_hour".into(), format!("{c:.2}"));
        }
        s.details.insert("vm".into(), vm.vm_id.clone());
        s.details.insert("status".into(), vm.state());
        if let Some(n) = &vm.display_name {
            s.details.insert("display_name".into(), n.clone());
        }
        if let Some(p) = vm.profile() {
            s.details.insert("hardware_profile".into(), p);
        }
        if let Some(c) = vm.count() {
            s.details.insert("gpu_count".into(), c.to_string());
        }
        if let Some(t) = &vm.instance_type {
            s.details.insert("instance_type".into(), t.clone());
        }
        if let Some(b) = vm.billed {
            s.details.insert("billed_so_far".into(), format!("{b:.2}"));
        }
        if let Ok(Some((h, p))) = address {
            s.endpoints.push(Endpoint {
                name: "ssh".into(),
                address: SshTarget::new(self.config.ssh_user.clone(), h)
                    .with_port(p)
                    .url(),
            });
        }
        Ok(s)
    }

    async fn start(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Lyceum,
            Operation::Start,
            Some(STOP_NOTE),
        ))
    }

    async fn stop(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Lyceum,
            Operation::Stop,
            Some(STOP_NOTE),
        ))
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Lyceum,
            Operation::Suspend,
            Some(STOP_NOTE),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        self.session(d).await?.exec(cmd, io).await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        self.session(d).await?.connect(io).await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let sources = [
            LogSource::Journal { unit: None },
            LogSource::File("/var/log/syslog".into()),
            LogSource::File("/var/log/cloud-init-output.log".into()),
        ];
        self.session(d).await?.logs(&sources, opts, out).await
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        self.session(d).await?.copy_in(from, to).await
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        self.session(d).await?.copy_out(from, to).await
    }

    async fn destroy(&self, d: &Deployment, _opts: DestroyOptions) -> Result<DestroyReport> {
        let api = self.api().await?;
        let mut vms = self.ours(api, &d.name, &d.project).await?;
        if let Some(id) = &d.resource_id
            && !vms.iter().any(|v| &v.vm_id == id)
            && let Some(v) = api.status(id).await?
            && !v.is_terminal()
            && (v.display_name.is_none() || is_ours(&v, &d.name, &d.project))
        {
            vms.push(v);
        }
        let mut report = DestroyReport::default();
        for v in &vms {
            if v.is_ready()
                && let Ok(Some((h, p))) = v.address()
                && let Ok(s) = self.session_for(&d.name, &d.project, v, h, p, None)
            {
                s.disconnect().await;
            }
            if api.delete(&v.vm_id).await? {
                report.removed.push(format!(
                    "VM {} ({}) and its disk; billing ended",
                    v.vm_id,
                    v.display_name.clone().unwrap_or_default()
                ));
            }
        }
        Ok(report)
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let api = self.api().await?;
        Ok(api.list().await?.iter().filter_map(record).collect())
    }

    async fn self_end(&self, d: &Deployment, policy: OnFinish) -> Result<Option<SelfEnd>> {
        if policy == OnFinish::Keep || !self.settings.self_destroy {
            return Ok(None);
        }
        let Some(id) = d.resource_id.clone() else {
            return Err(
                Error::not_found(format!("environment `{}` has no recorded VM", d.name))
                    .with_provider(ProviderKind::Lyceum),
            );
        };
        let (key, _) = self.config.key()?;
        let session = self.session(d).await?;
        let dir = dir_word(&self.config.env_dir);
        let place = format!(
            "umask 077 && mkdir -p -- {dir} && cat > {dir}/{AUTH_FILE}.tmp && mv -f -- {dir}/{AUTH_FILE}.tmp {dir}/{AUTH_FILE}"
        );
        let header = format!("Authorization: Bearer {}\n", key.expose());
        let mut scrub = crate::http::Redactor::new();
        scrub.add(key.expose());
        let (code, _, err) = session
            .run(
                &format!("sh -c {}", quote(&place)),
                Some(header.into_bytes()),
            )
            .await
            .map_err(|e| {
                Error::new(e.kind(), scrub.redact(e.message())).with_provider(ProviderKind::Lyceum)
            })?;
        if code != 0 {
            return Err(Error::platform(
                ProviderKind::Lyceum,
                format!(
                    "could not place the API key the VM needs to delete itself (exit code {code}): {}",
                    scrub.redact(String::from_utf8_lossy(&err).trim())
                ),
            )
            .with_hint("or set providers.lyceum.self_destroy: false and keep sindri following the run"));
        }
        Ok(Some(SelfEnd {
            command: self_end_command(self.config.api.as_str(), &id, &format!("{dir}/{AUTH_FILE}")),
            action: OnFinish::Destroy,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_deletes_itself_with_the_key_file_never_a_command_line() {
        let home = tempfile::tempdir().unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let bin = out_dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let curl = bin.join("curl");
        std::fs::write(
            &curl,
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$OUT/args\"\n\
             while [ $# -gt 0 ]; do\n\
               if [ \"$1\" = -H ]; then case \"$2\" in @*) cat \"${2#@}\" > \"$OUT/header\" ;; esac; fi\n\
               shift\n\
             done\n",
        )
        .unwrap();
        std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let file = format!("{}/{AUTH_FILE}", dir_word(".sindri"));
        let cmd = self_end_command(config::DEFAULT_API_URL, "vm-9918", &file);
        let run = || {
            std::process::Command::new("sh")
                .args(["-c", &cmd])
                .env_clear()
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("HOME", home.path())
                .env("OUT", out_dir.path())
                .output()
                .unwrap()
        };

        // No key on the VM (self_destroy was off when the run started): nothing is sent.
        let out = run();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot delete itself"));
        assert!(!out_dir.path().join("args").exists());

        std::fs::create_dir_all(home.path().join(".sindri")).unwrap();
        std::fs::write(
            home.path().join(".sindri").join(AUTH_FILE),
            "Authorization: Bearer lyceum-account-key\n",
        )
        .unwrap();
        let out = run();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let args = std::fs::read_to_string(out_dir.path().join("args")).unwrap();
        assert!(args.contains("-X\nDELETE\n"), "{args}");
        assert!(
            args.ends_with(&format!("{}/vms/vm-9918\n", config::DEFAULT_API_URL)),
            "{args}"
        );
        assert!(!args.contains("lyceum-account-key"), "{args}");
        assert_eq!(
            std::fs::read_to_string(out_dir.path().join("header")).unwrap(),
            "Authorization: Bearer lyceum-account-key\n"
        );
    }

    #[test]
    fn self_destroy_is_on_unless_turned_off() {
        assert!(LyceumSettings::default().self_destroy);
        let off: LyceumSettings =
            serde_json::from_value(serde_json::json!({"self_destroy": false})).unwrap();
        assert!(!off.self_destroy);
    }
}
