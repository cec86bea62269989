//! The only way commands call a provider.
//!
//! Each function checks the provider's [`Capabilities`] (and, for deploy, whether the
//! spec asks for something the provider lacks, such as a GPU on E2B) and refuses with a
//! typed [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) or
//! [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) error before the provider is
//! called, so nothing reaches the platform.

use std::path::Path;

use crate::capability::Operation;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::provider::{
    DeployOptions, DestroyOptions, DestroyReport, ExecCommand, ExecIo, LogOptions, LogSink,
    Provider, SelfEnd, TransferStats,
};
use crate::record::{Deployment, Plan, Status};
use crate::resolved::ResolvedSpec;

/// Refuses `op` unless `provider` declares it.
pub fn require(provider: &dyn Provider, op: Operation) -> Result<()> {
    let caps = provider.capabilities();
    if caps.supports(op) {
        Ok(())
    } else {
        Err(Error::unsupported(provider.kind(), op, caps.note(op)))
    }
}

/// Refuses a spec that asks for features the provider lacks. Every problem is listed.
pub fn check_spec(provider: &dyn Provider, spec: &ResolvedSpec) -> Result<()> {
    let caps = provider.capabilities();
    let d = &spec.spec.deployment;
    let kind = provider.kind();
    let mut problems = Vec::new();
    if d.resources.gpu.is_some() && !caps.gpu {
        problems.push(format!(
            "deployment.resources.gpu: the {kind} provider offers no GPUs"
        ));
    }
    if !d.ports.is_empty() && !caps.ports {
        problems.push(format!(
            "deployment.ports: the {kind} provider cannot publish ports"
        ));
    }
    if !d.volumes.is_empty() && !caps.volumes {
        problems.push(format!(
            "deployment.volumes: the {kind} provider has no persistent volumes"
        ));
    }
    if let Some(build) = d.build.as_ref().filter(|_| !caps.build) {
        let kubernetes = kind == sindri_spec::ProviderKind::Kubernetes;
        // Kubernetes always pulls `:latest` from a registry, so a loaded image needs
        // another tag.
        let tag = if kubernetes { "local" } else { "latest" };
        let image = format!("sindri-{}:{tag}", spec.name());
        let mut line = format!(
            "deployment.build: the {kind} provider cannot build images; build the image \
             yourself (`docker build -t {image} -f {} {}`) and set deployment.image to it",
            build.dockerfile, build.context
        );
        if kubernetes {
            line.push_str(&format!(
                ", loaded into a local kind or k3d cluster with `sindri k8s load {image}` or pushed to a registry the cluster can pull from"
            ));
        }
        problems.push(line);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(problems.join("\n"))
            .with_provider(kind)
            .with_hint("remove these settings or choose another provider (`sindri providers` lists what each supports)"))
    }
}

/// `plan`.
pub async fn plan(
    p: &dyn Provider,
    spec: &ResolvedSpec,
    current: Option<&Deployment>,
) -> Result<Plan> {
    require(p, Operation::Plan)?;
    check_spec(p, spec)?;
    p.plan(spec, current).await
}

/// `deploy`.
pub async fn deploy(
    p: &dyn Provider,
    spec: &ResolvedSpec,
    opts: DeployOptions,
    progress: &dyn Progress,
) -> Result<Deployment> {
    require(p, Operation::Deploy)?;
    check_spec(p, spec)?;
    p.deploy(spec, opts, progress).await
}

/// `status`.
pub async fn status(p: &dyn Provider, d: &Deployment) -> Result<Status> {
    require(p, Operation::Status)?;
    p.status(d).await
}

/// `start`.
pub async fn start(p: &dyn Provider, d: &Deployment) -> Result<()> {
    require(p, Operation::Start)?;
    p.start(d).await
}

/// `stop`.
pub async fn stop(p: &dyn Provider, d: &Deployment) -> Result<()> {
    require(p, Operation::Stop)?;
    p.stop(d).await
}

/// `suspend`.
pub async fn suspend(p: &dyn Provider, d: &Deployment) -> Result<()> {
    require(p, Operation::Suspend)?;
    p.suspend(d).await
}

/// `exec`.
pub async fn exec(p: &dyn Provider, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
    require(p, Operation::Exec)?;
    if cmd.argv.is_empty() {
        return Err(
            Error::invalid("no command given").with_hint("usage: sindri exec -- CMD [ARGS...]")
        );
    }
    p.exec(d, cmd, io).await
}

/// `connect`.
pub async fn connect(p: &dyn Provider, d: &Deployment, io: ExecIo) -> Result<i32> {
    require(p, Operation::Connect)?;
    p.connect(d, io).await
}

/// `logs`.
pub async fn logs(
    p: &dyn Provider,
    d: &Deployment,
    opts: LogOptions,
    out: LogSink<'_>,
) -> Result<()> {
    require(p, Operation::Logs)?;
    p.logs(d, opts, out).await
}

/// `copy_in`.
pub async fn copy_in(
    p: &dyn Provider,
    d: &Deployment,
    from: &Path,
    to: &str,
) -> Result<TransferStats> {
    require(p, Operation::CopyIn)?;
    p.copy_in(d, from, to).await
}

/// `copy_out`.
pub async fn copy_out(
    p: &dyn Provider,
    d: &Deployment,
    from: &str,
    to: &Path,
) -> Result<TransferStats> {
    require(p, Operation::CopyOut)?;
    p.copy_out(d, from, to).await
}

/// `destroy`.
pub async fn destroy(
    p: &dyn Provider,
    d: &Deployment,
    opts: DestroyOptions,
) -> Result<DestroyReport> {
    require(p, Operation::Destroy)?;
    p.destroy(d, opts).await
}

/// `list_owned`.
pub async fn list_owned(p: &dyn Provider) -> Result<Vec<Deployment>> {
    require(p, Operation::ListOwned)?;
    p.list_owned().await
}

/// `self_end`: asks only for `stop` and `destroy` (a kept machine has nothing to do),
/// and only of a provider that can run the command there (exec).
pub async fn self_end(
    p: &dyn Provider,
    d: &Deployment,
    policy: sindri_spec::OnFinish,
) -> Result<Option<SelfEnd>> {
    if policy == sindri_spec::OnFinish::Keep || !p.capabilities().supports(Operation::Exec) {
        return Ok(None);
    }
    p.self_end(d, policy).await
}
