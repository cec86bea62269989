//! The RunPod provider: GPU (or CPU) pods through RunPod's REST API v1
//! (`RUNPOD_API_KEY`; `RUNPOD_API_URL` moves the API, default
//! `https://rest.runpod.io/v1`), reached over SSH with the system OpenSSH client
//! ([`crate::ssh`]) at the pod's public IP and the public port RunPod maps to 22.
//!
//! # What an environment is
//! One pod named `sindri-<environment>` carrying sindri's markers in its `env` (see
//! [`pod`]): the image (`deployment.image`), `deployment.env`, the ports (`22/tcp`
//! always, for SSH, and each of `deployment.ports` as TCP), a container disk
//! (`providers.runpod.container_disk`, default 20 GB), a pod volume of
//! `resources.disk` (default 20 GB) mounted at `deployment.home`, or instead the
//! network volume `providers.runpod.network_volume_id`, and `interruptible`
//! (`providers.runpod.spot`).
//!
//! # GPUs
//! The GPU types are `providers.runpod.gpu_types` in order, else the RunPod types
//! `resources.gpu.type` stands for (`h100` is tried as SXM, then PCIe, then NVL).
//! Each type is asked for on its own: when RunPod has no capacity for one, a warning
//! names it with RunPod's reason and the next is tried; when none has capacity the
//! error lists every type and reason. Without a GPU, a CPU pod of `resources.cpus`
//! vCPUs is created.
//!
//! # SSH
//! The user is `root`; the public key is `~/.ssh/id_ed25519.pub` (else
//! `~/.ssh/id_rsa.pub`), handed to the pod as `PUBLIC_KEY` (what RunPod's images
//! install into `authorized_keys` before starting sshd) and `SSH_PUBLIC_KEY` (RunPod's
//! documented per-pod override). An image of one's own must do the same: run an SSH
//! server that trusts `PUBLIC_KEY`. Host keys are remembered per pod and start (see
//! [`api::Pod::host_key_alias`]): RunPod reuses public addresses, remaps ports on
//! every start, and a restarted container has new host keys.
//!
//! # Env and secrets
//! Pod `env` is readable through RunPod's API, so secrets never go there: they and
//! `deployment.env` are written over SSH into `<home>/.sindri/env`, which every
//! `sindri exec` sources (see [`sshenv`]). A `mount:` secret's link outside the pod
//! volume lives on the container disk, which RunPod wipes when the pod restarts: run
//! `sindri deploy` after `sindri start` to place it again.
//!
//! # Changes
//! A changed spec updates the pod in place (`PATCH /pods/{id}`: image, env, ports,
//! disks; RunPod restarts it and keeps the pod volume). What only a new pod can change
//! (GPU types or count, cloud type, spot, network volume) replaces the pod, with a
//! warning: its pod volume goes with it.
//!
//! # A run's pod ends itself
//! For a run, [`Provider::self_end`] gives the run supervisor [`self_end_command`]: once
//! the job ends with no sindri following, the pod calls RunPod's API itself
//! (`POST /pods/{id}/stop`, or `DELETE /pods/{id}` for `on_finish: destroy`) with
//! the pod-scoped key RunPod puts in every pod's environment (`RUNPOD_API_KEY`), read
//! from the pod's own environment and sent from a private header file, never from a
//! command line. sindri delivers no key of its own for this.
//!
//! # Cost
//! `status` reports RunPod's own price of the pod per hour (`adjustedCostPerHr`, else
//! `costPerHr`) while it runs; a stopped pod bills only its volume.

pub mod api;
pub mod config;
pub mod pod;
pub(crate) mod sshenv;

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
use sindri_spec::{OnFinish, ProviderKind, ProvidersSpec, RunpodSettings};

use crate::http::{Auth, HttpClient};
use crate::ssh::{LogSource, SshSession, SshTarget, quote};
use api::{Pod, RunpodApi};
pub use config::RunpodConfig;
use pod::{MARK_ENVIRONMENT, MARK_HARDWARE, MARK_PROJECT, MARK_SPEC_HASH, PodSpec};
use sshenv::{Patience, PublicKey};

const SUSPEND_NOTE: &str = "RunPod pods cannot be suspended. Use `sindri stop`: the GPU stops \
billing and the pod volume is kept (it still bills for storage).";

const SSH_HINT: &str = "the pod's image must run an SSH server that trusts the key in PUBLIC_KEY \
(RunPod's own images, e.g. runpod/pytorch, do); see https://docs.runpod.io/pods/configuration/use-ssh";

/// Builds the RunPod provider from `providers.runpod` and the environment. No I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(RunpodProvider::new(
        settings.runpod.clone().unwrap_or_default(),
        RunpodConfig::from_env()?,
    )))
}

/// The RunPod provider. The API client is made on first use, then reused.
pub struct RunpodProvider {
    settings: RunpodSettings,
    config: RunpodConfig,
    api: tokio::sync::OnceCell<RunpodApi>,
}

impl RunpodProvider {
    /// A provider with these settings and endpoints.
    pub fn new(settings: RunpodSettings, config: RunpodConfig) -> RunpodProvider {
        RunpodProvider {
            settings,
            config,
            api: tokio::sync::OnceCell::new(),
        }
    }

    async fn api(&self) -> Result<&RunpodApi> {
        self.api
            .get_or_try_init(|| async {
                let key = self.config.key()?;
                let http = HttpClient::new(
                    ProviderKind::Runpod,
                    "RunPod API",
                    self.config.api.clone(),
                    Auth::bearer(key),
                    self.config.http.clone(),
                )?
                .with_classifier(api::classify);
                Ok(RunpodApi::new(http))
            })
            .await
    }

    fn patience(&self) -> Patience {
        Patience {
            interval: self.config.poll_interval,
            attempts: self.config.max_polls.max(1),
        }
    }

    fn public_key(&self) -> Result<PublicKey> {
        sshenv::public_key(
            ProviderKind::Runpod,
            "providers.runpod.ssh_public_key",
            self.settings.ssh_public_key.as_deref(),
            None,
            self.config.home.as_deref(),
        )
    }

    /// The environment's pods (by name and markers), running ones first.
    async fn ours(&self, api: &RunpodApi, name: &str, project: &str) -> Result<Vec<Pod>> {
        let mut pods: Vec<Pod> = api
            .list(Some(&pod::pod_name(name)))
            .await?
            .into_iter()
            .filter(|p| pod::is_ours(p, name, project))
            .collect();
        pods.sort_by_key(|p| p.status() != "RUNNING");
        Ok(pods)
    }

    /// The deployment's pod: the recorded one while it carries the markers, else one
    /// found by name and markers.
    async fn locate(&self, api: &RunpodApi, d: &Deployment) -> Result<Option<Pod>> {
        if let Some(id) = &d.resource_id
            && let Some(p) = api.get(id).await?
            && pod::is_ours(&p, &d.name, &d.project)
        {
            return Ok(Some(p));
        }
        Ok(self
            .ours(api, &d.name, &d.project)
            .await?
            .into_iter()
            .next())
    }

    async fn require(&self, api: &RunpodApi, d: &Deployment) -> Result<Pod> {
        self.locate(api, d).await?.ok_or_else(|| {
            Error::not_found(format!(
                "environment `{}` is not deployed: RunPod has no pod `{}` with its markers",
                d.name,
                pod::pod_name(&d.name)
            ))
            .with_provider(ProviderKind::Runpod)
            .with_hint("deploy it with `sindri deploy`")
        })
    }

    /// Polls until the pod runs and has a public address for SSH.
    async fn wait_running(&self, api: &RunpodApi, id: &str) -> Result<Pod> {
        let p = self.patience();
        let mut last = String::from("not looked at yet");
        for attempt in 1..=p.attempts {
            let pod = api.get(id).await?.ok_or_else(|| {
                Error::platform(
                    ProviderKind::Runpod,
                    format!("pod {id} disappeared while starting"),
                )
                .with_hint(
                    "RunPod may have reclaimed an interruptible pod; run `sindri deploy` again",
                )
            })?;
            match pod.status() {
                "RUNNING" if pod.ssh_address().is_some() => return Ok(pod),
                "RUNNING" => last = "running, without a public IP and SSH port yet".into(),
                "TERMINATED" => {
                    return Err(Error::platform(
                        ProviderKind::Runpod,
                        format!("pod {id} was terminated while starting"),
                    )
                    .with_hint(
                        "RunPod may have reclaimed an interruptible pod; run `sindri deploy` again",
                    ));
                }
                "" => last = "in an unknown state".into(),
                other => last = other.to_ascii_lowercase(),
            }
            if attempt < p.attempts {
                tokio::time::sleep(p.interval).await;
            }
        }
        Err(Error::new(
            ErrorKind::Transient,
            format!(
                "pod {id} did not get a public IP and SSH port within {} looks (last: {last})",
                p.attempts
            ),
        )
        .with_provider(ProviderKind::Runpod)
        .with_hint("on Community Cloud not every machine has a public IP; set providers.runpod.cloud_type: SECURE, or try again"))
    }

    /// Polls until the pod is `EXITED`.
    async fn wait_stopped(&self, api: &RunpodApi, id: &str) -> Result<()> {
        let p = self.patience();
        for attempt in 1..=p.attempts {
            match api.get(id).await? {
                None => return Ok(()),
                Some(pod) if matches!(pod.status(), "EXITED" | "TERMINATED") => return Ok(()),
                Some(_) if attempt < p.attempts => tokio::time::sleep(p.interval).await,
                Some(pod) => {
                    return Err(Error::new(
                        ErrorKind::Transient,
                        format!("pod {id} is still {} after stop", pod.status()),
                    )
                    .with_provider(ProviderKind::Runpod)
                    .with_hint("run `sindri stop` again"));
                }
            }
        }
        Ok(())
    }

    fn session_for(
        &self,
        name: &str,
        project: &str,
        pod: &Pod,
        identity: Option<PathBuf>,
    ) -> Result<SshSession> {
        let (host, port) = pod.ssh_address().ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!("pod {} has no public IP and SSH port yet", pod.id),
            )
            .with_provider(ProviderKind::Runpod)
            .with_hint("wait for it to finish starting (`sindri status`), then try again")
        })?;
        let mut target = SshTarget::new(self.config.ssh_user.clone(), host).with_port(port);
        target.identity = identity;
        let home = pod_home(pod);
        Ok(SshSession::new(
            &format!("runpod/{project}/{name}"),
            target,
            self.config.ssh_options()?,
        )
        .host_key_alias(pod.host_key_alias())
        .env_files(vec![format!("{}/env", env_dir(&home))]))
    }

    /// An SSH session to the deployment's running pod; `NotFound` without one.
    async fn session(&self, d: &Deployment) -> Result<SshSession> {
        let api = self.api().await?;
        let pod = self.require(api, d).await?;
        if pod.status() != "RUNNING" {
            return Err(Error::invalid(format!(
                "environment `{}` is not running (pod {} is {})",
                d.name,
                pod.id,
                pod.status().to_ascii_lowercase()
            ))
            .with_provider(ProviderKind::Runpod)
            .with_hint("start it with `sindri start`"));
        }
        let identity = match d.detail("ssh_identity") {
            Some(p) => Some(PathBuf::from(p)),
            None => self.public_key().ok().and_then(|k| k.identity),
        };
        self.session_for(&d.name, &d.project, &pod, identity)
    }

    /// Creates the pod with the first GPU type RunPod has capacity for.
    async fn create(&self, api: &RunpodApi, ps: &PodSpec, progress: &dyn Progress) -> Result<Pod> {
        if ps.gpu_types.is_empty() {
            return api
                .create(
                    &ps.body_for(None),
                    &format!("create pod {} ({})", ps.name, ps.describe(None)),
                )
                .await;
        }
        let mut failures = Vec::new();
        for (i, gpu) in ps.gpu_types.iter().enumerate() {
            let what = format!("create pod {} ({})", ps.name, ps.describe(Some(gpu)));
            match api.create(&ps.body_for(Some(gpu)), &what).await {
                Ok(p) => return Ok(p),
                Err(e) if e.kind() == ErrorKind::Capacity => {
                    let reason = api_reason(&e);
                    let then = match ps.gpu_types.get(i + 1) {
                        Some(n) => format!("; trying {n}"),
                        None => String::new(),
                    };
                    progress.warn(&format!("runpod has no capacity for {gpu}: {reason}{then}"));
                    failures.push(format!("{gpu}: {reason}"));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Capacity,
            format!(
                "no GPU type had capacity for pod {} ({}); tried {}",
                ps.name,
                ps.describe(None),
                failures.join("; ")
            ),
        )
        .with_provider(ProviderKind::Runpod)
        .with_hint(
            "add GPU types to providers.runpod.gpu_types, try the other cloud_type (SECURE or COMMUNITY), or try again later",
        ))
    }
}

/// The command a pod runs to stop (`on_finish: stop`) or delete itself through
/// RunPod's REST API at `api`, authenticated with the pod-scoped `RUNPOD_API_KEY`
/// RunPod sets in the pod's environment (read from PID 1's when an SSH session lacks
/// it). The key travels in a 0600 header file, so it is on no command line.
pub fn self_end_command(api: &str, pod_id: &str, policy: OnFinish) -> String {
    let base = api.trim_end_matches('/');
    let (method, url) = match policy {
        OnFinish::Destroy => ("DELETE", format!("{base}/pods/{pod_id}")),
        _ => ("POST", format!("{base}/pods/{pod_id}/stop")),
    };
    format!(
        r#"key=${{RUNPOD_API_KEY:-}}
if [ -z "$key" ] && [ -r /proc/1/environ ]; then key=$(tr '\0' '\n' < /proc/1/environ | sed -n 's/^RUNPOD_API_KEY=//p' | head -n 1); fi
[ -n "$key" ] || {{ echo "RUNPOD_API_KEY is not in the pod's environment: it cannot end itself" >&2; exit 1; }}
command -v curl >/dev/null 2>&1 || {{ echo "curl is not installed in the pod: it cannot end itself" >&2; exit 127; }}
h=$(umask 077 && mktemp) || exit 1
trap 'rm -f "$h"' EXIT
printf 'Authorization: Bearer %s\n' "$key" > "$h"
curl -sS -f -m 60 --retry 5 -X {method} -H @"$h" {url}"#,
        url = quote(&url)
    )
}

/// RunPod's reason in a capacity error, without sindri's request description.
fn api_reason(e: &Error) -> String {
    let m = e.message();
    match m.split_once("): HTTP ") {
        Some((_, rest)) => match rest.split_once(": ") {
            Some((_, reason)) => reason.to_string(),
            None => rest.to_string(),
        },
        None => m.to_string(),
    }
}

/// Where the pod volume (home) is mounted.
fn pod_home(pod: &Pod) -> String {
    pod.volume_mount_path
        .clone()
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| "/root".to_string())
}

/// sindri's directory on the pod volume.
fn env_dir(home: &str) -> String {
    format!("{}/.sindri", home.trim_end_matches('/'))
}

fn status_state(pod: &Pod) -> StatusState {
    match pod.status() {
        "RUNNING" if pod.ssh_address().is_some() => StatusState::Running,
        "RUNNING" => StatusState::Starting,
        "EXITED" => StatusState::Stopped,
        "TERMINATED" => StatusState::Missing,
        _ => StatusState::Starting,
    }
}

fn deployment_state(pod: &Pod) -> DeploymentState {
    match pod.status() {
        "RUNNING" => DeploymentState::Ready,
        "EXITED" => DeploymentState::Stopped,
        "TERMINATED" => DeploymentState::Destroying,
        _ => DeploymentState::Creating,
    }
}

fn gpu_words(pod: &Pod) -> Option<String> {
    let g = pod.gpu.as_ref()?;
    let name = g.display_name.clone().or_else(|| g.id.clone())?;
    Some(format!("{}x {name}", g.count.unwrap_or(1)))
}

/// A deployment record rebuilt from a pod's markers.
fn record(pod: &Pod) -> Deployment {
    let mut d = Deployment::creating(
        pod.env_var(MARK_ENVIRONMENT).unwrap_or_default(),
        ProviderKind::Runpod,
        pod.env_var(MARK_PROJECT).unwrap_or_default(),
        pod.env_var(MARK_SPEC_HASH).unwrap_or_default(),
    );
    d.resource_id = Some(pod.id.clone());
    d.state = deployment_state(pod);
    d.details.insert("pod".into(), pod.id.clone());
    d.details.insert("home".into(), pod_home(pod));
    if let Some(g) = gpu_words(pod) {
        d.details.insert("gpu".into(), g);
    }
    if let Some(i) = pod.interruptible {
        d.details.insert("interruptible".into(), i.to_string());
    }
    if let Some(dc) = pod.machine.as_ref().and_then(|m| m.data_center_id.clone()) {
        d.details.insert("data_center".into(), dc);
    }
    d
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
impl Provider for RunpodProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Runpod
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
            // One pod volume (home) or one network volume; no extra volumes.
            volumes: false,
            ports: true,
            spot: true,
            build: false,
            notes: vec![(Operation::Suspend, SUSPEND_NOTE)],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let api = match self.api().await {
            Ok(a) => a,
            Err(e) => {
                checks.push(check("runpod api key", Err(e)));
                return checks;
            }
        };
        checks.push(check(
            "runpod api",
            api.list(None).await.map(|pods| {
                format!(
                    "{} answers; the account has {} pods",
                    api.base(),
                    pods.len()
                )
            }),
        ));
        checks.push(check("ssh client", sshenv::ssh_client_check().await));
        checks.push(check(
            "ssh public key",
            self.public_key()
                .map(|k| format!("{} (installed on pods as PUBLIC_KEY)", k.path.display())),
        ));
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, current: Option<&Deployment>) -> Result<Plan> {
        let key = self.public_key()?;
        let hash = spec.spec_hash();
        let ps = pod::build(spec, &key.text, &hash)?;
        sshenv::check_env_names(ProviderKind::Runpod, &spec.spec.deployment.env)?;
        let api = self.api().await?;
        let mut body = ps.body_for(ps.gpu_types.first().map(String::as_str));
        if ps.gpu_types.len() > 1 {
            body["gpuTypeIds"] = serde_json::json!(ps.gpu_types);
        }
        let artifacts = vec![RenderedArtifact {
            name: "runpod-pod.json".into(),
            content: serde_json::to_string_pretty(&body).unwrap_or_default(),
        }];
        let ours = self.ours(api, spec.name(), &spec.project).await?;
        let mut steps = Vec::new();
        let tried = if ps.gpu_types.len() > 1 {
            Some(format!(
                "GPU types tried one at a time, in order: {}",
                ps.gpu_types.join(", ")
            ))
        } else {
            None
        };
        match ours.first() {
            None => steps.push(PlanStep {
                action: PlanAction::Create,
                resource: format!("pod {} ({})", ps.name, ps.describe(None)),
                reason: tried,
            }),
            Some(p) => {
                let recorded = current
                    .filter(|c| c.resource_id.as_deref() == Some(p.id.as_str()))
                    .map(|c| c.spec_hash.as_str());
                let same = p.env_var(MARK_SPEC_HASH) == Some(hash.as_str())
                    || recorded == Some(hash.as_str());
                let (action, reason) = if same && p.status() == "RUNNING" {
                    (PlanAction::Keep, None)
                } else if same {
                    (
                        PlanAction::Update,
                        Some(format!(
                            "it is {}: deploy starts it",
                            p.status().to_ascii_lowercase()
                        )),
                    )
                } else if p.env_var(MARK_HARDWARE) == Some(ps.hardware.as_str())
                    && ps.needs_update(p)
                {
                    (
                        PlanAction::Update,
                        Some("spec changed: RunPod updates the pod in place and restarts it (the pod volume is kept)".into()),
                    )
                } else if p.env_var(MARK_HARDWARE) == Some(ps.hardware.as_str()) {
                    (
                        PlanAction::Update,
                        Some("secrets changed: they are delivered again over SSH".into()),
                    )
                } else {
                    (
                        PlanAction::Replace,
                        Some("GPU, cloud type, spot or network volume changed: a new pod is rented and the old one's pod volume is lost".into()),
                    )
                };
                steps.push(PlanStep {
                    action,
                    resource: format!("pod {} ({})", p.id, ps.name),
                    reason,
                });
                for extra in &ours[1..] {
                    steps.push(PlanStep {
                        action: PlanAction::Delete,
                        resource: format!("pod {}", extra.id),
                        reason: Some("a duplicate left by an interrupted deploy".into()),
                    });
                }
            }
        }
        Ok(Plan {
            provider: ProviderKind::Runpod,
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
        let key = self.public_key()?;
        let hash = spec.spec_hash();
        let ps = pod::build(spec, &key.text, &hash)?;
        sshenv::check_env_names(ProviderKind::Runpod, &spec.spec.deployment.env)?;
        let api = self.api().await?;

        let mut ours = self.ours(api, spec.name(), &spec.project).await?;
        let extras: Vec<Pod> = if ours.len() > 1 {
            ours.split_off(1)
        } else {
            Vec::new()
        };
        for extra in &extras {
            progress.message(&format!(
                "terminating pod {} (a duplicate left by an interrupted deploy)",
                extra.id
            ));
            api.delete(&extra.id).await?;
        }
        let pod = match ours.pop() {
            Some(p) if p.env_var(MARK_SPEC_HASH) == Some(hash.as_str()) => {
                if p.status() == "EXITED" {
                    phase(progress, "start pod", api.action(&p.id, "start")).await?;
                }
                p
            }
            Some(p) if p.env_var(MARK_HARDWARE) == Some(ps.hardware.as_str()) => {
                let current = if ps.needs_update(&p) {
                    phase(progress, "update pod", api.update(&p.id, &ps.update_body())).await?
                } else {
                    // Only secrets changed: they travel over SSH, and an update
                    // would restart the pod for nothing.
                    p.clone()
                };
                if p.status() == "EXITED" {
                    phase(progress, "start pod", api.action(&p.id, "start")).await?;
                }
                current
            }
            Some(p) => {
                progress.warn(&format!(
                    "pod {} was rented with other hardware; terminating it and renting {} (its pod volume is lost)",
                    p.id,
                    ps.describe(None)
                ));
                api.delete(&p.id).await?;
                phase(progress, "create pod", self.create(api, &ps, progress)).await?
            }
            None => phase(progress, "create pod", self.create(api, &ps, progress)).await?,
        };

        let mut d = record(&pod);
        d.name = spec.name().to_string();
        d.project = spec.project.clone();
        d.spec_hash = hash;
        if let Some(id) = &key.identity {
            d.details
                .insert("ssh_identity".into(), id.display().to_string());
        }
        if !opts.wait {
            d.state = DeploymentState::Creating;
            progress.message("not waiting: env and secrets are delivered by the next `sindri deploy` once the pod runs");
            return Ok(d);
        }
        let running = phase(progress, "wait for pod", self.wait_running(api, &pod.id)).await?;
        let session =
            self.session_for(spec.name(), &spec.project, &running, key.identity.clone())?;
        phase(
            progress,
            "wait for ssh",
            sshenv::wait_for_ssh(ProviderKind::Runpod, &session, self.patience(), SSH_HINT),
        )
        .await?;
        phase(
            progress,
            "deliver env and secrets",
            sshenv::deliver(
                ProviderKind::Runpod,
                &session,
                &env_dir(&pod_home(&running)),
                &spec.spec.deployment.env,
                &spec.secrets,
            ),
        )
        .await?;
        if let Some(c) = running.cost() {
            progress.message(&format!(
                "pod {} runs at ${c:.3}/h until `sindri stop` or `sindri destroy`",
                running.id
            ));
        }
        let mut fresh = record(&running);
        fresh.name = d.name;
        fresh.project = d.project;
        fresh.spec_hash = d.spec_hash;
        fresh.details.extend(d.details);
        fresh.state = DeploymentState::Ready;
        Ok(fresh)
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let api = self.api().await?;
        let Some(pod) = self.locate(api, d).await? else {
            let mut s = Status::new(StatusState::Missing);
            s.message = Some(format!(
                "RunPod has no pod `{}` with this environment's markers",
                pod::pod_name(&d.name)
            ));
            return Ok(s);
        };
        let state = status_state(&pod);
        let mut s = Status::new(state);
        s.message = Some(match state {
            StatusState::Running => format!("pod {} is running", pod.id),
            StatusState::Starting => {
                format!("pod {} is starting (no public IP and SSH port yet)", pod.id)
            }
            StatusState::Stopped => format!(
                "pod {} is stopped: the GPU does not bill, the pod volume still does",
                pod.id
            ),
            _ => format!("pod {} is {}", pod.id, pod.status().to_ascii_lowercase()),
        });
        if pod.status() == "RUNNING" {
            s.cost_per_hour = pod.cost();
        }
        s.details.insert("pod".into(), pod.id.clone());
        if let Some(i) = &pod.image {
            s.details.insert("image".into(), i.clone());
        }
        if let Some(g) = gpu_words(&pod) {
            s.details.insert("gpu".into(), g);
        }
        if let Some(i) = pod.interruptible {
            s.details.insert("interruptible".into(), i.to_string());
        }
        if let Some(dc) = pod.machine.as_ref().and_then(|m| m.data_center_id.clone()) {
            s.details.insert("data_center".into(), dc);
        }
        if let Some(c) = pod.cost() {
            s.details.insert("price_per_hour".into(), format!("{c:.3}"));
        }
        if let Some((ip, port)) = pod.ssh_address() {
            s.endpoints.push(Endpoint {
                name: "ssh".into(),
                address: SshTarget::new(self.config.ssh_user.clone(), ip.clone())
                    .with_port(port)
                    .url(),
            });
            for (internal, public) in pod.port_mappings.iter().flatten() {
                if internal != "22" {
                    s.endpoints.push(Endpoint {
                        name: format!("port {internal}/tcp"),
                        address: format!("tcp://{ip}:{public}"),
                    });
                }
            }
        }
        Ok(s)
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let pod = self.require(api, d).await?;
        if pod.status() != "RUNNING" {
            api.action(&pod.id, "start").await.map_err(|e| {
                if e.kind() == ErrorKind::Capacity {
                    e.with_hint("the GPUs of the pod's machine are rented by someone else now; wait, or `sindri destroy` and `sindri deploy` for a new machine (the pod volume is lost)")
                } else {
                    e
                }
            })?;
        }
        self.wait_running(api, &pod.id).await.map(|_| ())
    }

    async fn stop(&self, d: &Deployment) -> Result<()> {
        let api = self.api().await?;
        let pod = self.require(api, d).await?;
        if pod.status() == "EXITED" {
            return Ok(());
        }
        api.action(&pod.id, "stop").await?;
        self.wait_stopped(api, &pod.id).await
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Runpod,
            Operation::Suspend,
            Some(SUSPEND_NOTE),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        self.session(d).await?.exec(cmd, io).await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        self.session(d).await?.connect(io).await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let session = self.session(d).await?;
        let sources = [
            LogSource::Journal { unit: None },
            LogSource::File("/var/log/syslog".into()),
            LogSource::File("/var/log/messages".into()),
        ];
        session.logs(&sources, opts, out).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                e.with_provider(ProviderKind::Runpod).with_hint(
                    "the pod's image keeps no system log; RunPod shows the container's output in its console (https://console.runpod.io/pods)",
                )
            } else {
                e
            }
        })
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        self.session(d).await?.copy_in(from, to).await
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        self.session(d).await?.copy_out(from, to).await
    }

    async fn destroy(&self, d: &Deployment, _opts: DestroyOptions) -> Result<DestroyReport> {
        let api = self.api().await?;
        let mut pods = self.ours(api, &d.name, &d.project).await?;
        if let Some(id) = &d.resource_id
            && !pods.iter().any(|p| &p.id == id)
            && let Some(p) = api.get(id).await?
            && pod::is_ours(&p, &d.name, &d.project)
        {
            pods.push(p);
        }
        let mut report = DestroyReport::default();
        for p in &pods {
            if let Ok(s) = self.session_for(&d.name, &d.project, p, None) {
                s.disconnect().await;
            }
            if api.delete(&p.id).await? {
                report.removed.push(format!(
                    "pod {} ({}) with its pod volume at {} (RunPod deletes it with the pod)",
                    p.id,
                    pod::pod_name(&d.name),
                    pod_home(p)
                ));
            }
        }
        if let Some(v) = self
            .settings
            .network_volume_id
            .as_deref()
            .filter(|v| !v.is_empty())
            && !pods.is_empty()
        {
            report.kept.push(format!(
                "network volume {v}: sindri never deletes it; remove it in the RunPod console if it is no longer needed"
            ));
        }
        Ok(report)
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let api = self.api().await?;
        Ok(api
            .list(None)
            .await?
            .iter()
            .filter(|p| pod::is_managed(p))
            .map(record)
            .collect())
    }

    async fn self_end(&self, d: &Deployment, policy: OnFinish) -> Result<Option<SelfEnd>> {
        if policy == OnFinish::Keep {
            return Ok(None);
        }
        let Some(id) = d.resource_id.as_deref() else {
            return Err(
                Error::not_found(format!("environment `{}` has no recorded pod", d.name))
                    .with_provider(ProviderKind::Runpod),
            );
        };
        Ok(Some(SelfEnd {
            command: self_end_command(self.config.api.as_str(), id, policy),
            action: policy,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a self-end command with a stand-in `curl` first on PATH that records its
    /// arguments, the header file it was given and that file's path.
    fn run_with_stub_curl(
        command: &str,
        env: &[(&str, &str)],
    ) -> (std::process::Output, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let curl = dir.path().join("curl");
        std::fs::write(
            &curl,
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$OUT/args\"\n\
             while [ $# -gt 0 ]; do\n\
               if [ \"$1\" = -H ]; then case \"$2\" in @*) cat \"${2#@}\" > \"$OUT/header\"; printf '%s' \"${2#@}\" > \"$OUT/header_path\" ;; esac; fi\n\
               shift\n\
             done\n",
        )
        .unwrap();
        std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", command])
            .env_clear()
            .env("PATH", path)
            .env("OUT", dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out, dir)
    }

    #[test]
    fn a_pod_stops_or_deletes_itself_with_its_own_key_never_on_a_command_line() {
        let cmd = self_end_command("https://rest.runpod.io/v1/", "pod123", OnFinish::Stop);
        let (out, dir) = run_with_stub_curl(&cmd, &[("RUNPOD_API_KEY", "pod-scoped-key-42")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert!(args.windows(2).any(|w| w == ["-X", "POST"]), "{args:?}");
        assert_eq!(
            args.last(),
            Some(&"https://rest.runpod.io/v1/pods/pod123/stop")
        );
        assert!(
            args.iter().all(|a| !a.contains("pod-scoped-key-42")),
            "the key is on curl's command line: {args:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("header")).unwrap(),
            "Authorization: Bearer pod-scoped-key-42\n"
        );
        let header_path = std::fs::read_to_string(dir.path().join("header_path")).unwrap();
        assert!(
            !std::path::Path::new(&header_path).exists(),
            "the header file is removed afterwards"
        );

        let cmd = self_end_command("https://rest.runpod.io/v1", "pod123", OnFinish::Destroy);
        let (out, dir) = run_with_stub_curl(&cmd, &[("RUNPOD_API_KEY", "k")]);
        assert!(out.status.success());
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert!(args.contains("-X\nDELETE\n"), "{args}");
        assert!(
            args.ends_with("https://rest.runpod.io/v1/pods/pod123\n"),
            "{args}"
        );

        // Without the pod's key there is nothing to call with: say so, call nothing.
        let (out, dir) = run_with_stub_curl(&cmd, &[]);
        if std::fs::read_to_string("/proc/1/environ").is_ok_and(|e| !e.contains("RUNPOD_API_KEY="))
        {
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("RUNPOD_API_KEY"));
            assert!(!dir.path().join("args").exists());
        }
    }

    #[test]
    fn capacity_reasons_drop_the_request_description() {
        let e = Error::new(
            ErrorKind::Capacity,
            "create pod sindri-x (1x NVIDIA L40S, on-demand) (RunPod API): HTTP 500 Internal Server Error: There are no longer any instances available",
        );
        assert_eq!(
            api_reason(&e),
            "There are no longer any instances available"
        );
        assert_eq!(
            api_reason(&Error::new(ErrorKind::Capacity, "plain")),
            "plain"
        );
    }
}
