//! `sindri k8s create|destroy|list|load`: local Kubernetes clusters with kind or k3d,
//! for trying the Kubernetes provider without a cloud. Both run the cluster in Docker;
//! whichever is installed is used (kind first), and a missing tool is reported with
//! how to install it.

use serde::Serialize;
use sindri_providers::clusters::{self as cluster, ClusterTool, DEFAULT_CLUSTER, LocalCluster};

use crate::app::App;
use crate::output::{CliResult, Report, table};
use crate::progress::CliProgress;
use crate::signals::interruptible;

/// Local clusters for the Kubernetes provider.
#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    /// Create a local cluster with kind or k3d and make it the kubeconfig's current context.
    Create(ClusterArgs),
    /// Delete a local cluster (and its kubeconfig context).
    Destroy(ClusterArgs),
    /// List the local kind and k3d clusters.
    List,
    /// Copy a locally built Docker image into a local cluster's nodes, so a pod can run
    /// it without a registry.
    Load(LoadArgs),
}

/// Which cluster, made by which tool.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The cluster's name.
    #[arg(long, default_value = DEFAULT_CLUSTER)]
    pub name: String,
    /// `kind` or `k3d`; default: whichever is installed, kind first.
    #[arg(long)]
    pub tool: Option<ClusterTool>,
}

/// An image and the cluster to load it into.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The local image, e.g. `sindri-dev:latest`.
    pub image: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Serialize)]
struct ClusterReport {
    action: &'static str,
    tool: ClusterTool,
    name: String,
    context: String,
    command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
}

impl Report for ClusterReport {
    fn human(&self) -> String {
        match self.action {
            "create" => format!(
                "created {} cluster `{}`; kubeconfig context `{}` is now current\n\
                 next: deploy with `provider: kubernetes` (or set providers.kubernetes.context: {})",
                self.tool, self.name, self.context, self.context
            ),
            "destroy" => format!(
                "deleted {} cluster `{}` (context `{}`)",
                self.tool, self.name, self.context
            ),
            _ => {
                let image = self.image.as_deref().unwrap_or("");
                let mut text = format!(
                    "loaded image {image} into {} cluster `{}`\nnext: set deployment.image: {image}",
                    self.tool, self.name
                );
                if pulled_always(image) {
                    text.push_str(
                        "\nnote: Kubernetes pulls images tagged `latest` (or untagged) from their registry \
                         at every start; tag it otherwise (e.g. `:local`) so the loaded copy is used",
                    );
                }
                text
            }
        }
    }
}

/// Whether Kubernetes' default pull policy for `image` is `Always` (tag `latest` or
/// none, and no digest), which ignores a copy loaded into the nodes.
fn pulled_always(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

#[derive(Serialize)]
struct ListReport {
    clusters: Vec<LocalCluster>,
}

impl Report for ListReport {
    fn human(&self) -> String {
        if self.clusters.is_empty() {
            return "no local clusters; create one with `sindri k8s create`".to_string();
        }
        let rows: Vec<Vec<String>> = self
            .clusters
            .iter()
            .map(|c| vec![c.tool.to_string(), c.name.clone(), c.context.clone()])
            .collect();
        table(&["TOOL", "NAME", "CONTEXT"], &rows)
    }
}

/// Runs a `sindri k8s` command.
pub async fn run(app: &App, cmd: K8sCommand) -> CliResult {
    let path = std::env::var_os("PATH");
    match cmd {
        K8sCommand::List => {
            let clusters = interruptible(cluster::list(path.as_ref())).await?;
            app.out.emit(&ListReport { clusters });
            Ok(())
        }
        K8sCommand::Create(args) => act(app, "create", args, None, path).await,
        K8sCommand::Destroy(args) => act(app, "destroy", args, None, path).await,
        K8sCommand::Load(args) => act(app, "load", args.cluster, Some(args.image), path).await,
    }
}

async fn act(
    app: &App,
    action: &'static str,
    args: ClusterArgs,
    image: Option<String>,
    path: Option<std::ffi::OsString>,
) -> CliResult {
    let (tool, program) = cluster::choose(args.tool, path.as_ref())?;
    let command = match (action, &image) {
        ("create", _) => tool.create_argv(&args.name),
        ("destroy", _) => tool.delete_argv(&args.name),
        (_, Some(image)) => tool.load_argv(&args.name, image),
        (_, None) => tool.list_argv(),
    };
    let progress = CliProgress::new(&app.out);
    let ran = sindri_core::progress::phase(
        &progress,
        &command.join(" "),
        interruptible(cluster::run(&program, &command)),
    )
    .await;
    progress.finish();
    ran?;
    app.out.emit(&ClusterReport {
        action,
        tool,
        context: tool.context(&args.name),
        name: args.name,
        command,
        image,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pulled_always;

    #[test]
    fn latest_and_untagged_images_are_pulled_at_every_start() {
        assert!(pulled_always("sindri-dev:latest"));
        assert!(pulled_always("sindri-dev"));
        assert!(pulled_always("localhost:5000/dev"));
        assert!(!pulled_always("localhost:5000/dev:local"));
        assert!(!pulled_always("sindri-dev:local"));
        assert!(!pulled_always("dev@sha256:0123"));
    }
}
