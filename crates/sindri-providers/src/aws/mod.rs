//! The AWS EC2 provider: one instance per environment, on-demand or spot, reached over
//! SSH with the system OpenSSH client ([`crate::ssh`]).
//!
//! AWS is called through a small typed client over SigV4-signed HTTP (EC2 and STS
//! Query API, SSM JSON) rather than the AWS SDK, whose EC2 crate alone takes longer to
//! build than all of sindri; see docs/adr/0010-aws-client.md. Credentials and region
//! come from the standard chain (see `credentials.rs`); `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_EC2`/`_SSM`/`_STS` point it at an emulator such as moto.
//!
//! # What an environment is
//! For environment `NAME` of project `P`, every resource tagged at creation (through
//! `TagSpecifications`, so there is never an untagged moment) with `sindri.managed=true`,
//! `sindri.environment=NAME` and `sindri.project=P`:
//! - the instance `sindri-NAME` (also tagged with `sindri.spec-hash`, the login user and
//!   the published ports), and its EBS root volume;
//! - the security group `sindri-NAME-P`: SSH (22/tcp) and `deployment.ports` (the
//!   container port, since nothing remaps ports on EC2) from one CIDR only;
//! - the key pair `sindri-NAME-P`, imported from `providers.aws.ssh_public_key`
//!   (default `~/.ssh/id_ed25519.pub`, then `~/.ssh/id_rsa.pub`).
//!
//! Nothing without those tags is ever modified or removed.
//!
//! # The SSH source address
//! The security group admits one CIDR: `providers.aws.ssh_cidr`, else
//! `SINDRI_AWS_SSH_CIDR` (e.g. `203.0.113.7/32`;
//! `0.0.0.0/0` opens it to everyone, with a warning), else `SINDRI_PUBLIC_IP`, else
//! this machine's public address as `https://checkip.amazonaws.com` reports it
//! (`SINDRI_CHECKIP_URL` moves that). When none works, deploy refuses rather than
//! open SSH to the world. Deploy reconciles the rules, so a new address only needs a
//! new `sindri deploy`.
//!
//! # Images and instance types
//! `deployment.image` may be an AMI id (`ami-…`) or `ubuntu[:24.04|:22.04]`; without
//! it, the current Ubuntu 24.04 (or, with a GPU, the Deep Learning Base AMI) for the
//! instance type's architecture, read from AWS's public SSM parameters. Instance
//! types: see `catalog.rs`. The root volume is `resources.disk` plus each
//! `deployment.volumes` size; volumes are directories on it, kept across stop/start.
//!
//! # Spot
//! `providers.aws.spot`: `never` or `false` (on-demand), `always` or `true` (one-time
//! spot; a capacity error is an error, never an on-demand instance), `auto` (spot,
//! then on-demand on capacity errors only, with a warning). One-time spot instances cannot be stopped:
//! `stop` says so; `destroy` them instead.
//!
//! # Runs: the machine ends itself, spot interruptions
//! When a run starts, [`Provider::self_end`] sets the instance's
//! `InstanceInitiatedShutdownBehavior` (RunInstances sets it too, from
//! `run.on_finish`) to `stop`, or `terminate` for `on_finish: destroy` and for spot
//! instances (a one-time spot instance cannot stop), and gives the run supervisor
//! [`SHUTDOWN_COMMAND`]: once the job ends with no sindri following, the instance shuts
//! itself down, and EC2 stops or terminates it, with no AWS credentials on the
//! machine. A terminated instance leaves its security group and key pair (they do
//! not bill): `sindri destroy` or `sindri resources cleanup` removes them.
//!
//! Spot instances carry the deployment detail `run_interruption_check`
//! ([`INTERRUPTION_CHECK`], installed by user-data; its script is
//! [`INTERRUPTION_CHECK_SCRIPT`]), which the supervisor polls through IMDSv2.
//!
//! # Secrets
//! Delivered over SSH, never in user-data or tags: `deploy` writes them into
//! `/run/sindri/env` (a tmpfs, so never on the EBS volume; mode 0600) and mounted
//! files, once the machine is reachable. A stopped instance loses them; the next
//! `deploy` delivers them again.
//!
//! # Not supported
//! `suspend` (EC2 hibernation is not supported by sindri yet) and `deployment.build`
//! (EC2 boots AMIs; build images elsewhere). `destroy` always deletes the root volume
//! with the instance: use `stop` to keep the disk.

mod catalog;
mod client;
mod credentials;
mod deploy;
mod ec2;
mod manage;
mod sigv4;
mod time;
mod userdata;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sindri_core::provider::SelfEnd;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DestroyOptions, DestroyReport,
    Error, ExecCommand, ExecIo, LogOptions, LogSink, Operation, Plan, Progress, Provider,
    ResolvedSpec, Result, Status, TransferStats,
};
use sindri_spec::{AwsSettings, OnFinish, ProviderKind, ProvidersSpec};

use crate::ssh::SshOptions;
use client::{Api, Tuning};
use credentials::AwsEnv;

/// Tag on everything sindri creates: `true`.
pub const TAG_MANAGED: &str = "sindri.managed";
/// Tag naming the environment.
pub const TAG_ENVIRONMENT: &str = "sindri.environment";
/// Tag naming the project (see `sindri_core::project_id`).
pub const TAG_PROJECT: &str = "sindri.project";
/// Tag with the hash of the deployed spec, on the instance.
pub const TAG_SPEC_HASH: &str = "sindri.spec-hash";

/// What a run's machine runs to end itself (see `Provider::self_end`): a shutdown from
/// inside, which EC2 turns into stop or terminate as the instance's
/// `InstanceInitiatedShutdownBehavior` says. Cloud-init's default user has
/// passwordless sudo.
pub const SHUTDOWN_COMMAND: &str =
    "if [ \"$(id -u)\" -eq 0 ]; then shutdown -h now; else sudo -n shutdown -h now; fi";

/// Where user-data installs the spot interruption check the run supervisor polls.
pub const INTERRUPTION_CHECK: &str = userdata::INTERRUPTION_CHECK;

/// The spot interruption check (POSIX sh): exits 0 printing EC2's notice when IMDSv2
/// has one, 1 when not, 2 when the metadata service cannot be reached.
/// `SINDRI_IMDS_ENDPOINT` moves the metadata service, for tests only.
pub const INTERRUPTION_CHECK_SCRIPT: &str = userdata::CHECK_SCRIPT;

/// Why `suspend` is missing, shown when it is refused.
const SUSPEND_NOTE: &str = "EC2 hibernation is not supported by sindri yet. Use `sindri stop`: \
compute billing stops and the EBS root volume is kept (one-time spot instances cannot stop; destroy them).";

/// Builds the AWS provider from `providers.aws`. Does no I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(AwsProvider::new(
        settings.aws.clone().unwrap_or_default(),
    )))
}

/// The AWS EC2 provider. Cheap to build: credentials and region are resolved by the
/// first operation that needs them, then reused.
pub struct AwsProvider {
    settings: AwsSettings,
    env: AwsEnv,
    tuning: Tuning,
    ssh_options: Option<SshOptions>,
    ssh_endpoint: Option<(String, u16)>,
    ssh_user: Option<String>,
    secrets_dir: String,
    api: tokio::sync::OnceCell<Api>,
}

/// Builds an [`AwsProvider`] with settings beyond `providers.aws`: another
/// environment than the process's, faster polling for emulators, or an SSH endpoint
/// that stands in for the instances' public addresses (a tunnel, or a test server).
pub struct AwsProviderBuilder {
    provider: AwsProvider,
}

impl AwsProviderBuilder {
    /// Reads these variables instead of the process environment (`AWS_*`, `HOME`,
    /// `SINDRI_*`). Variables not given are unset.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> AwsProviderBuilder
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.provider.env = AwsEnv::from_vars(vars);
        self
    }

    /// How `ssh` is run (known_hosts, control sockets); default: in sindri's state
    /// directory.
    pub fn ssh_options(mut self, options: SshOptions) -> AwsProviderBuilder {
        self.provider.ssh_options = Some(options);
        self
    }

    /// Connects to `host:port` instead of each instance's public address.
    pub fn ssh_endpoint(mut self, host: impl Into<String>, port: u16) -> AwsProviderBuilder {
        self.provider.ssh_endpoint = Some((host.into(), port));
        self
    }

    /// Logs in as `user` instead of the image's default user.
    pub fn ssh_user(mut self, user: impl Into<String>) -> AwsProviderBuilder {
        self.provider.ssh_user = Some(user.into());
        self
    }

    /// The directory on the machine that receives secrets (default `/run/sindri`).
    pub fn secrets_dir(mut self, dir: impl Into<String>) -> AwsProviderBuilder {
        self.provider.secrets_dir = dir.into();
        self
    }

    /// The interval between polls while waiting for a state (default 5 s), and how
    /// many polls a wait makes before giving up (default 120).
    pub fn polling(mut self, interval: Duration, max_polls: u32) -> AwsProviderBuilder {
        self.provider.tuning.poll_interval = interval;
        self.provider.tuning.max_polls = max_polls.max(1);
        self
    }

    /// `MaxResults` of paginated calls (default 1000; clamped to each call's range).
    pub fn page_size(mut self, n: u32) -> AwsProviderBuilder {
        self.provider.tuning.page_size = n;
        self
    }

    /// Tries per request (default 6) and the first retry delay (default 500 ms).
    pub fn retries(mut self, max_attempts: u32, base_delay: Duration) -> AwsProviderBuilder {
        self.provider.tuning.max_attempts = max_attempts.max(1);
        self.provider.tuning.retry_base = base_delay;
        self
    }

    /// The provider.
    pub fn build(self) -> AwsProvider {
        self.provider
    }
}

impl AwsProvider {
    /// A provider with `providers.aws` settings, reading the process environment.
    pub fn new(settings: AwsSettings) -> AwsProvider {
        AwsProvider::builder(settings).build()
    }

    /// A builder starting from `providers.aws` settings and the process environment.
    pub fn builder(settings: AwsSettings) -> AwsProviderBuilder {
        AwsProviderBuilder {
            provider: AwsProvider {
                settings,
                env: AwsEnv::from_process(),
                tuning: Tuning::default(),
                ssh_options: None,
                ssh_endpoint: None,
                ssh_user: None,
                secrets_dir: "/run/sindri".to_string(),
                api: tokio::sync::OnceCell::new(),
            },
        }
    }

    /// The signed-request client, resolving credentials and region on first use.
    async fn api(&self) -> Result<&Api> {
        self.api
            .get_or_try_init(|| Api::connect(&self.env, &self.settings, self.tuning))
            .await
    }

    fn ssh_options(&self) -> Result<SshOptions> {
        if let Some(o) = &self.ssh_options {
            return Ok(o.clone());
        }
        let dir = if let Some(d) = self.env.get("SINDRI_STATE_DIR") {
            std::path::PathBuf::from(d)
        } else if let Some(x) = self
            .env
            .get("XDG_STATE_HOME")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute())
        {
            x.join("sindri")
        } else if let Some(h) = self.env.home() {
            h.join(".local/state/sindri")
        } else {
            return SshOptions::from_env();
        };
        Ok(SshOptions::in_state_dir(&dir))
    }

    fn ctx<'a>(&'a self, api: &'a Api, region: Option<&str>) -> manage::Ctx<'a> {
        manage::Ctx {
            p: self,
            api,
            region: region.unwrap_or(&api.region).to_string(),
        }
    }

    async fn ctx_for<'a>(&'a self, d: &Deployment) -> Result<manage::Ctx<'a>> {
        let api = self.api().await?;
        Ok(self.ctx(api, d.detail("region")))
    }
}

fn check_of(name: &str, r: std::result::Result<String, Error>, warn_only: bool) -> Check {
    match r {
        Ok(detail) => Check {
            name: name.into(),
            status: CheckStatus::Ok,
            detail,
            hint: None,
        },
        Err(e) => Check {
            name: name.into(),
            status: if warn_only {
                CheckStatus::Warn
            } else {
                CheckStatus::Fail
            },
            detail: e.message().to_string(),
            hint: e.hint().map(str::to_string),
        },
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aws
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
            spot: true,
            build: false,
            notes: vec![(Operation::Suspend, SUSPEND_NOTE)],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match self.api().await {
            Ok(api) => {
                checks.push(check_of(
                    "aws credentials",
                    Ok(format!(
                        "from {}; region {} (from {})",
                        api.credential_source, api.region, api.region_source
                    )),
                    false,
                ));
                let ctx = self.ctx(api, None);
                checks.push(check_of(
                    "aws identity",
                    ctx.ec2()
                        .caller_identity()
                        .await
                        .map(|c| format!("account {} as {}", c.account, c.arn)),
                    false,
                ));
                checks.push(check_of(
                    "ssh source address",
                    deploy::ssh_cidr(&ctx)
                        .await
                        .map(|(cidr, how)| format!("SSH will be allowed from {cidr} ({how})")),
                    true,
                ));
            }
            Err(e) => checks.push(check_of("aws credentials", Err(e), false)),
        }
        checks.push(check_of(
            "ssh public key",
            deploy::public_key(&self.env, &self.settings, None)
                .map(|k| format!("{}", k.path.display())),
            false,
        ));
        let ssh = tokio::process::Command::new("ssh").arg("-V").output().await;
        checks.push(check_of(
            "ssh client",
            match ssh {
                Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                _ => Err(Error::new(sindri_core::ErrorKind::Unavailable, "the OpenSSH client `ssh` is not installed")
                    .with_hint("install it: `apt-get install openssh-client` (Debian/Ubuntu), `brew install openssh` (macOS)")),
            },
            false,
        ));
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, _current: Option<&Deployment>) -> Result<Plan> {
        let api = self.api().await?;
        deploy::plan(&self.ctx(api, None), spec).await
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        let api = sindri_core::progress::phase(progress, "connect to aws", self.api()).await?;
        deploy::deploy(&self.ctx(api, None), spec, opts, progress).await
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        manage::status(&self.ctx_for(d).await?, d).await
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        manage::start(&self.ctx_for(d).await?, d).await
    }

    async fn stop(&self, d: &Deployment) -> Result<()> {
        manage::stop(&self.ctx_for(d).await?, d).await
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Aws,
            Operation::Suspend,
            Some(SUSPEND_NOTE),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        let s = manage::session(&self.ctx_for(d).await?, d).await?;
        s.exec(cmd, io).await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        let s = manage::session(&self.ctx_for(d).await?, d).await?;
        s.connect(io).await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let s = manage::session(&self.ctx_for(d).await?, d).await?;
        s.logs(&manage::log_sources(), opts, out).await
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        let s = manage::session(&self.ctx_for(d).await?, d).await?;
        s.copy_in(from, to).await
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        let s = manage::session(&self.ctx_for(d).await?, d).await?;
        s.copy_out(from, to).await
    }

    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
        manage::destroy(&self.ctx_for(d).await?, d, opts).await
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let api = self.api().await?;
        manage::list_owned(&self.ctx(api, None)).await
    }

    async fn self_end(&self, d: &Deployment, policy: OnFinish) -> Result<Option<SelfEnd>> {
        if policy == OnFinish::Keep {
            return Ok(None);
        }
        let ctx = self.ctx_for(d).await?;
        let Some(inst) = manage::find_one(&ctx, d).await? else {
            return Err(Error::not_found(format!(
                "environment `{}` has no instance on AWS",
                d.name
            ))
            .with_provider(ProviderKind::Aws));
        };
        let behavior = deploy::shutdown_behavior(inst.is_spot(), Some(policy));
        ctx.ec2()
            .set_shutdown_behavior(&inst.instance_id, behavior)
            .await
            .map_err(|e| {
                e.with_hint("allow ec2:ModifyInstanceAttribute, or keep sindri following the run (no --detach)")
            })?;
        Ok(Some(SelfEnd {
            command: SHUTDOWN_COMMAND.to_string(),
            action: if behavior == "terminate" {
                OnFinish::Destroy
            } else {
                OnFinish::Stop
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_declare_everything_but_suspend_and_build() {
        let p = AwsProvider::new(AwsSettings::default());
        let caps = p.capabilities();
        for op in Operation::ALL {
            assert_eq!(caps.supports(op), op != Operation::Suspend, "{op}");
        }
        assert!(caps.gpu && caps.spot && caps.volumes && caps.ports);
        assert!(!caps.build);
        assert!(
            caps.note(Operation::Suspend)
                .unwrap()
                .contains("hibernation")
        );
    }

    #[test]
    fn the_factory_does_no_io() {
        let settings = ProvidersSpec {
            aws: Some(AwsSettings {
                region: Some("nowhere-1".into()),
                profile: Some("does-not-exist".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = factory(&settings).unwrap();
        assert_eq!(p.kind(), ProviderKind::Aws);
    }
}
