//! The Kubernetes provider: the cluster of the user's kubeconfig context, driven
//! through its API with kube-rs. `kubectl` is never needed.
//!
//! # What an environment is
//! Exactly the objects `sindri export kubernetes` writes
//! ([`sindri_render::kubernetes::objects`]; or, when the project overrides the
//! `kubernetes.yaml` template, the documents of the rendered file): a StatefulSet of one
//! replica whose volume claim templates hold the home directory and the extra volumes,
//! and a Service when ports are published. Beside them, the Secret `<name>-secrets`
//! holds the resolved secret values (the only place they go) and carries the spec hash
//! as an annotation. Every object carries `sindri.managed=true`,
//! `sindri.environment=<name>` and `sindri.project=<project id>`.
//!
//! # Apply and ownership
//! Server-side apply with field manager `sindri`, forced (so sindri takes back fields
//! someone edited by hand) only after reading the object and finding sindri's labels
//! for this environment; an object of that name without them is someone else's and the
//! deploy is refused with a Conflict, as is a volume claim the StatefulSet would adopt
//! (`<template>-<name>-0`) without them. `plan` diffs against the live objects with a
//! server-side dry run (the Secret by its hash annotations, never by value); what
//! cannot change in place is compared by value (quantities as numbers, since the
//! server rewrites them in canonical form; sindri also sends them in that form).
//!
//! # Lifecycle
//! `stop` scales the workload to 0 (the volume claims stay), `start` scales it back
//! and waits for ready. `destroy` deletes every labelled object; the volume claims
//! (the StatefulSet's and those an overridden template declares) only with
//! `--volumes`. `status` reads the pod's phase, conditions, container states and
//! events and says in words what is wrong (image pull, crash loop with the last log
//! lines, no node with a free GPU or matching the selector).
//!
//! # Sessions
//! `exec` and `connect` use the API's exec over a websocket (`v5.channel.k8s.io`,
//! falling back to v4), with a TTY and resize for `connect`. `copy_in`/`copy_out`
//! stream tar archives through exec (the image needs `sh` and `tar`). Over v4 (API
//! servers before 1.30) a command's input cannot be ended without ending the session,
//! so `copy_in` fails there, saying so.
//!
//! # Finding environments
//! `list_owned` lists across all namespaces, or in the provider's namespace when RBAC
//! allows only that (a Role rather than a ClusterRole).
//!
//! # Timeouts
//! The API server must take the connection within [`Timeouts::connect`] and answer a
//! plain request within [`Timeouts::request`]: an unreachable cluster is reported
//! (naming the server from the kubeconfig, and which wait ran out) in under 10 s.
//! Watches, `logs --follow` and exec sessions have no read timeout.
//!
//! # Not supported
//! `suspend` (Kubernetes has no memory snapshots), images built from `deployment.build`
//! (build them and load them into a local cluster yourself: `sindri k8s load`), and
//! exec as another user.

mod apply;
mod archive;
pub mod cluster;
mod connect;
mod manifests;
mod session;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sindri_core::{
    Capabilities, Check, CheckStatus, DeployOptions, Deployment, DestroyOptions, DestroyReport,
    Error, ExecCommand, ExecIo, LogOptions, LogSink, Operation, Plan, Progress, Provider,
    ResolvedSpec, Result, Status, TransferStats,
};
use sindri_spec::{KubernetesSettings, ProviderKind, ProvidersSpec};

pub use apply::FIELD_MANAGER;
pub use connect::Timeouts;
pub use manifests::{ANNOTATION_SECRETS_HASH, ANNOTATION_SPEC_HASH};

use connect::Conn;

const SUSPEND_NOTE: &str = "Kubernetes cannot snapshot a pod's memory. Use `sindri stop`: the StatefulSet is scaled to 0 and the home volume is kept.";

/// Builds the Kubernetes provider from `providers.kubernetes`. Does no I/O.
pub fn factory(settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(KubernetesProvider::new(
        settings.kubernetes.clone().unwrap_or_default(),
    )))
}

/// The Kubernetes provider. Cheap to build: the kubeconfig is read by the first
/// operation, and the clients are then reused.
pub struct KubernetesProvider {
    settings: KubernetesSettings,
    kubeconfig: Option<PathBuf>,
    timeouts: Timeouts,
    conn: tokio::sync::OnceCell<Conn>,
}

impl KubernetesProvider {
    /// A provider with these settings, using `KUBECONFIG` (or `~/.kube/config`).
    pub fn new(settings: KubernetesSettings) -> KubernetesProvider {
        KubernetesProvider {
            settings,
            kubeconfig: None,
            timeouts: Timeouts::default(),
            conn: tokio::sync::OnceCell::new(),
        }
    }

    /// Reads this kubeconfig file instead of `KUBECONFIG` / `~/.kube/config`.
    pub fn with_kubeconfig(mut self, path: impl Into<PathBuf>) -> KubernetesProvider {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Replaces the timeouts (tests shorten them).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> KubernetesProvider {
        self.timeouts = timeouts;
        self
    }

    async fn conn(&self) -> Result<&Conn> {
        self.conn
            .get_or_try_init(|| {
                connect::connect(&self.settings, self.kubeconfig.as_ref(), self.timeouts)
            })
            .await
    }
}

#[async_trait]
impl Provider for KubernetesProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kubernetes
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
            build: false,
            notes: vec![(Operation::Suspend, SUSPEND_NOTE)],
        }
    }

    async fn check(&self) -> Vec<Check> {
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(e) => {
                return vec![Check {
                    name: "kubeconfig".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                }];
            }
        };
        let mut checks = vec![Check {
            name: "kubeconfig".into(),
            status: CheckStatus::Ok,
            detail: format!(
                "context `{}`, server {}, namespace `{}`",
                conn.context, conn.server, conn.namespace
            ),
            hint: None,
        }];
        match conn.client.apiserver_version().await {
            Ok(v) => checks.push(Check {
                name: "api server".into(),
                status: CheckStatus::Ok,
                detail: format!("Kubernetes {} at {}", v.git_version, conn.server),
                hint: None,
            }),
            Err(e) => {
                let e = conn.error("get", "/version", None, &conn.namespace, e);
                checks.push(Check {
                    name: "api server".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
                return checks;
            }
        }
        let ar = connect::known("StatefulSet");
        match conn
            .api(&ar, &conn.namespace)
            .list(&kube::api::ListParams::default().limit(1))
            .await
        {
            Ok(_) => checks.push(Check {
                name: "permissions".into(),
                status: CheckStatus::Ok,
                detail: format!("can list statefulsets in `{}`", conn.namespace),
                hint: None,
            }),
            Err(e) => {
                let e = conn.error("list", "statefulsets.apps", None, &conn.namespace, e);
                checks.push(Check {
                    name: "permissions".into(),
                    status: CheckStatus::Fail,
                    detail: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
            }
        }
        checks
    }

    async fn plan(&self, spec: &ResolvedSpec, _current: Option<&Deployment>) -> Result<Plan> {
        let conn = self.conn().await?;
        let m = manifests::build(spec, &conn.namespace)?;
        apply::plan(conn, spec, &m).await
    }

    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        let conn = self.conn().await?;
        let m = manifests::build(spec, &conn.namespace)?;
        apply::deploy(conn, spec, &m, opts, progress, self.timeouts).await
    }

    async fn status(&self, d: &Deployment) -> Result<Status> {
        let conn = self.conn().await?;
        status::status(conn, d).await
    }

    async fn start(&self, d: &Deployment) -> Result<()> {
        let conn = self.conn().await?;
        let t = status::target(conn, d);
        status::require_workload(conn, d, &t).await?;
        status::scale(conn, &t, 1).await?;
        status::wait_ready(
            conn,
            &t.ar,
            &t.name,
            &t.ns,
            &sindri_core::NoProgress,
            self.timeouts,
        )
        .await
    }

    async fn stop(&self, d: &Deployment) -> Result<()> {
        let conn = self.conn().await?;
        let t = status::target(conn, d);
        let w = status::require_workload(conn, d, &t).await?;
        status::scale(conn, &t, 0).await?;
        status::wait_no_pods(conn, &w, &t.ns).await
    }

    async fn suspend(&self, _d: &Deployment) -> Result<()> {
        Err(Error::unsupported(
            ProviderKind::Kubernetes,
            Operation::Suspend,
            Some(SUSPEND_NOTE),
        ))
    }

    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        let argv = session::wrap(cmd)?;
        let conn = self.conn().await?;
        session::run(conn, d, argv, io).await
    }

    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        let conn = self.conn().await?;
        let argv = vec!["sh".into(), "-c".into(), session::SHELL.into()];
        session::run(conn, d, argv, io).await
    }

    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        let conn = self.conn().await?;
        session::logs(conn, d, opts, out).await
    }

    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        let conn = self.conn().await?;
        session::copy_in(conn, d, from, to).await
    }

    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        let conn = self.conn().await?;
        session::copy_out(conn, d, from, to).await
    }

    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
        let conn = self.conn().await?;
        let t = status::target(conn, d);
        apply::destroy(conn, d, &t.ns, opts).await
    }

    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        let conn = self.conn().await?;
        apply::list_owned(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sindri_core::ExecCommand;

    #[test]
    fn exec_without_env_or_workdir_runs_the_argv_as_is() {
        let cmd = ExecCommand::new(["echo", "a b"]);
        assert_eq!(session::wrap(&cmd).unwrap(), vec!["echo", "a b"]);
    }

    #[test]
    fn exec_env_and_workdir_go_through_sh_without_quoting_the_values() {
        let mut cmd = ExecCommand::new(["printenv", "X"]);
        cmd.env = vec![("X".into(), "it's $HOME; rm -rf /".into())];
        cmd.workdir = Some("/tmp/a dir".into());
        let argv = session::wrap(&cmd).unwrap();
        assert_eq!(argv[..3], ["sh", "-c", "cd -- \"$0\" && exec \"$@\""]);
        assert_eq!(
            argv[3..],
            [
                "/tmp/a dir",
                "env",
                "X=it's $HOME; rm -rf /",
                "printenv",
                "X"
            ]
        );
    }

    #[test]
    fn exec_as_another_user_is_refused_with_a_reason() {
        let mut cmd = ExecCommand::new(["id"]);
        cmd.user = Some("dev".into());
        let e = session::wrap(&cmd).unwrap_err();
        assert_eq!(e.kind(), sindri_core::ErrorKind::Invalid);
        assert!(e.message().contains("user `dev`"), "{e}");
    }

    #[test]
    fn exit_codes_come_from_the_status_causes() {
        let parse = |v: serde_json::Value| session::exit_code(&serde_json::from_value(v).unwrap());
        assert_eq!(
            parse(serde_json::json!({"metadata": {}, "status": "Success"})).unwrap(),
            0
        );
        let failed = serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: exit status 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        });
        assert_eq!(parse(failed).unwrap(), 3);
        let broken = serde_json::json!({"metadata": {}, "status": "Failure", "message": "executable file not found in $PATH", "reason": "InternalError"});
        let e = parse(broken).unwrap_err();
        assert!(e.message().contains("executable file not found"), "{e}");
    }
}
