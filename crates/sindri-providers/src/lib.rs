//! sindri's providers: one module per platform, each implementing
//! [`sindri_core::Provider`], and the conformance suite every one of them passes.
//!
//! [`registry`] is the only entry point the CLI uses.

#[cfg(any(
    feature = "docker",
    feature = "ssh",
    feature = "kubernetes",
    feature = "devpod"
))]
pub(crate) mod archive;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "devpod")]
pub mod devpod;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "e2b")]
pub mod e2b;
#[cfg(feature = "fly")]
pub mod fly;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "lyceum")]
pub mod lyceum;
#[cfg(feature = "runpod")]
pub mod runpod;
#[cfg(feature = "ssh")]
pub mod ssh;

/// Local Kubernetes clusters (kind, k3d) for `sindri k8s`: tooling around the
/// Kubernetes provider, not a provider operation, so it has its own name here.
#[cfg(feature = "kubernetes")]
pub use kubernetes::cluster as clusters;

use sindri_core::Registry;

/// Every provider compiled into this binary.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut r = Registry::new();
    #[cfg(feature = "docker")]
    r.register(
        sindri_spec::ProviderKind::Docker,
        "the local Docker Engine (DOCKER_HOST, docker context), through its API",
        docker::factory,
    );
    #[cfg(feature = "kubernetes")]
    r.register(
        sindri_spec::ProviderKind::Kubernetes,
        "a Kubernetes cluster from the kubeconfig context, through its API (server-side apply)",
        kubernetes::factory,
    );
    #[cfg(feature = "fly")]
    r.register(
        sindri_spec::ProviderKind::Fly,
        "Fly.io Machines, through the Machines API (FLY_API_TOKEN or `fly auth login`)",
        fly::factory,
    );
    #[cfg(feature = "e2b")]
    r.register(
        sindri_spec::ProviderKind::E2b,
        "E2B sandboxes, through E2B's API and envd (E2B_API_KEY)",
        e2b::factory,
    );
    #[cfg(feature = "devpod")]
    r.register(
        sindri_spec::ProviderKind::Devpod,
        "any cloud through the DevPod CLI (`devpod` on PATH or SINDRI_DEVPOD_BIN; its providers and options)",
        devpod::factory,
    );
    #[cfg(feature = "aws")]
    r.register(
        sindri_spec::ProviderKind::Aws,
        "AWS EC2 instances, on-demand or spot, over SSH (AWS credential chain: env, ~/.aws, IMDS)",
        aws::factory,
    );
    #[cfg(feature = "runpod")]
    r.register(
        sindri_spec::ProviderKind::Runpod,
        "RunPod GPU (or CPU) pods over SSH, through RunPod's REST API (RUNPOD_API_KEY)",
        runpod::factory,
    );
    #[cfg(feature = "lyceum")]
    r.register(
        sindri_spec::ProviderKind::Lyceum,
        "Lyceum GPU VMs over SSH, through Lyceum's VM API (LYCEUM_API_KEY); no stop: destroy ends billing",
        lyceum::factory,
    );
    #[cfg(feature = "local")]
    r.register(
        sindri_spec::ProviderKind::Local,
        "this machine, without isolation: runs in a directory under the state dir",
        local::factory,
    );
    r
}
