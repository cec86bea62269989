//! Finding, creating and removing the engine objects of one environment, always
//! checking labels before touching anything.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use futures_util::StreamExt;
use sindri_core::{Deployment, Error, Progress, Result};
use sindri_spec::ProviderKind;

use super::engine::{api_error, is_status};
use super::request::{Ownership, conflict, container_name, ownership};

/// The container of an environment, as the engine reports it.
pub(crate) enum Found {
    /// No container of that name.
    Missing,
    /// Ours.
    Ours(Box<ContainerInspectResponse>),
    /// A container of that name that is not this environment's.
    NotOurs(Ownership),
}

/// Inspects a container by name; `None` when it does not exist.
pub(crate) async fn inspect_container(
    docker: &Docker,
    name: &str,
) -> Result<Option<ContainerInspectResponse>> {
    match docker.inspect_container(name, None).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(api_error(&format!("inspect container {name}"), e)),
    }
}

/// Looks up the container of environment `env` of `project`.
pub(crate) async fn find(docker: &Docker, env: &str, project: &str) -> Result<Found> {
    let name = container_name(env);
    Ok(match inspect_container(docker, &name).await? {
        None => Found::Missing,
        Some(c) => {
            match ownership(
                c.config.as_ref().and_then(|c| c.labels.as_ref()),
                env,
                project,
            ) {
                Ownership::Ours => Found::Ours(Box::new(c)),
                other => Found::NotOurs(other),
            }
        }
    })
}

/// The container of a deployment, or a `NotFound` error saying how to create it.
pub(crate) async fn require(docker: &Docker, d: &Deployment) -> Result<ContainerInspectResponse> {
    let name = container_name(&d.name);
    match find(docker, &d.name, &d.project).await? {
        Found::Ours(c) => Ok(*c),
        Found::Missing => Err(Error::not_found(format!(
            "environment `{}` is not deployed: there is no container {name}",
            d.name
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint("deploy it with `sindri deploy`")),
        Found::NotOurs(o) => Err(Error::not_found(format!(
            "environment `{}` is not deployed: the container {name} is not sindri's ({})",
            d.name,
            match o {
                Ownership::Other { project, .. } => format!("it belongs to project {project}"),
                _ => "it has no sindri labels".to_string(),
            }
        ))
        .with_provider(ProviderKind::Docker)),
    }
}

/// The container's state.
pub(crate) fn status_of(c: &ContainerInspectResponse) -> Option<ContainerStateStatusEnum> {
    c.state.as_ref().and_then(|s| s.status)
}

/// A label of the container.
pub(crate) fn label<'a>(c: &'a ContainerInspectResponse, key: &str) -> Option<&'a str> {
    c.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// The container's id.
pub(crate) fn id_of(c: &ContainerInspectResponse) -> String {
    c.id.clone().unwrap_or_default()
}

/// A running container, or an error saying why commands cannot run in it.
pub(crate) async fn require_running(
    docker: &Docker,
    d: &Deployment,
) -> Result<ContainerInspectResponse> {
    let c = require(docker, d).await?;
    match status_of(&c) {
        Some(ContainerStateStatusEnum::RUNNING) => Ok(c),
        Some(ContainerStateStatusEnum::PAUSED) => Err(Error::invalid(format!(
            "environment `{}` is paused (docker pause)",
            d.name
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint(format!(
            "resume it with `docker unpause {}`",
            container_name(&d.name)
        ))),
        other => Err(Error::invalid(format!(
            "environment `{}` is not running (container state: {})",
            d.name,
            other
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into())
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint("start it with `sindri start`, or `sindri deploy`")),
    }
}

/// Creates the network unless a network of that name exists; refuses one that is not
/// this environment's.
pub(crate) async fn ensure_network(
    docker: &Docker,
    name: &str,
    labels: &HashMap<String, String>,
    env: &str,
    project: &str,
) -> Result<()> {
    match docker.inspect_network(name, None).await {
        Ok(n) => match ownership(n.labels.as_ref(), env, project) {
            Ownership::Ours => Ok(()),
            other => Err(conflict("network", name, &other)),
        },
        Err(e) if is_status(&e, 404) => {
            let req = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            match docker.create_network(req).await {
                Ok(_) => Ok(()),
                // Created meanwhile by a concurrent deploy: judge it like an existing one.
                Err(e) if is_status(&e, 409) => {
                    Box::pin(ensure_network(docker, name, labels, env, project)).await
                }
                Err(e) => Err(api_error(&format!("create network {name}"), e)),
            }
        }
        Err(e) => Err(api_error(&format!("inspect network {name}"), e)),
    }
}

/// Checks that a network sindri does not manage exists.
pub(crate) async fn require_network(docker: &Docker, name: &str) -> Result<()> {
    match docker.inspect_network(name, None).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Err(Error::not_found(format!(
            "network `{name}` (providers.docker.network) does not exist"
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint(format!(
            "create it with `docker network create {name}`, or remove providers.docker.network"
        ))),
        Err(e) => Err(api_error(&format!("inspect network {name}"), e)),
    }
}

/// Whether a volume exists, and whose it is.
pub(crate) async fn volume_owner(
    docker: &Docker,
    name: &str,
    env: &str,
    project: &str,
) -> Result<Option<Ownership>> {
    match docker.inspect_volume(name).await {
        Ok(v) => Ok(Some(ownership(Some(&v.labels), env, project))),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(api_error(&format!("inspect volume {name}"), e)),
    }
}

/// Creates a volume unless it exists; refuses one that is not this environment's.
pub(crate) async fn ensure_volume(
    docker: &Docker,
    name: &str,
    labels: &HashMap<String, String>,
    env: &str,
    project: &str,
) -> Result<()> {
    match volume_owner(docker, name, env, project).await? {
        Some(Ownership::Ours) => Ok(()),
        Some(other) => Err(conflict("volume", name, &other)),
        None => {
            // Creating an existing volume succeeds silently, so a race cannot fail here;
            // the inspect above already refused foreign ones.
            docker
                .create_volume(VolumeCreateRequest {
                    name: Some(name.to_string()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| api_error(&format!("create volume {name}"), e))?;
            Ok(())
        }
    }
}

/// Whether a network exists, and whose it is.
pub(crate) async fn network_owner(
    docker: &Docker,
    name: &str,
    env: &str,
    project: &str,
) -> Result<Option<Ownership>> {
    match docker.inspect_network(name, None).await {
        Ok(n) => Ok(Some(ownership(n.labels.as_ref(), env, project))),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(api_error(&format!("inspect network {name}"), e)),
    }
}

/// Splits an image reference into what the pull API wants: the name and the tag (or
/// digest), `latest` when neither is given.
pub(crate) fn split_reference(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            image[last_slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Makes sure `image` is on the engine: present, or pulled.
pub(crate) async fn ensure_image(
    docker: &Docker,
    image: &str,
    progress: &dyn Progress,
) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(api_error(&format!("inspect image {image}"), e)),
    }
    progress.message(&format!("image {image} is not on the engine; pulling it"));
    let (name, tag) = split_reference(image);
    let opts = CreateImageOptionsBuilder::new()
        .from_image(&name)
        .tag(&tag)
        .build();
    let mut pull = docker.create_image(Some(opts), None, None);
    let mut failure: Option<String> = None;
    let mut last_status = String::new();
    while let Some(item) = pull.next().await {
        match item {
            Ok(info) => {
                if let Some(msg) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(msg);
                }
                if let Some(status) = info.status
                    && status != last_status
                {
                    progress.message(&status);
                    last_status = status;
                }
            }
            Err(e) => {
                failure = Some(match &e {
                    bollard::errors::Error::DockerResponseServerError { message, .. } => {
                        message.trim().to_string()
                    }
                    bollard::errors::Error::DockerStreamError { error } => error.trim().to_string(),
                    other => other.to_string(),
                });
                break;
            }
        }
    }
    match failure {
        None => Ok(()),
        Some(why) => Err(Error::not_found(format!(
            "image `{image}` is not on the Docker Engine, and pulling it failed: {why}"
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint(
            "build it from a Dockerfile with `deployment.build` in sindri.yaml, load it with `docker load`, or check the image name",
        )),
    }
}

/// Runtimes the engine offers.
pub(crate) async fn runtimes(docker: &Docker) -> Result<Vec<String>> {
    let info = docker
        .info()
        .await
        .map_err(|e| api_error("read the engine's info", e))?;
    let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
    names.sort();
    Ok(names)
}

/// Refuses a runtime the engine lacks, naming the ones it has.
pub(crate) async fn require_runtime(docker: &Docker, runtime: &str) -> Result<()> {
    let have = runtimes(docker).await?;
    if have.iter().any(|r| r == runtime) {
        return Ok(());
    }
    let hint = if runtime == super::request::SYSBOX_RUNTIME {
        "install Sysbox on the Docker host (https://github.com/nestybox/sysbox), or use `dind: privileged` or `dind: socket`".to_string()
    } else {
        "register the runtime in the engine's /etc/docker/daemon.json (`runtimes`), or remove providers.docker.runtime".to_string()
    };
    Err(Error::invalid(format!(
        "the Docker Engine has no `{runtime}` runtime (it has: {})",
        have.join(", ")
    ))
    .with_provider(ProviderKind::Docker)
    .with_hint(hint))
}

/// Everything labelled for one environment of one project, for destroy and for tests'
/// leak checks: container ids, volume names, network names, image ids.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Labelled {
    pub containers: Vec<(String, String)>,
    pub volumes: Vec<String>,
    pub networks: Vec<(String, String)>,
    pub images: Vec<(String, Vec<String>)>,
}

/// Lists the objects whose labels match `filter`. The four lists are independent, so
/// they are asked for at once: `destroy` and every leak check wait on the slowest,
/// not on the sum.
pub(crate) async fn labelled(
    docker: &Docker,
    filter: &HashMap<String, Vec<String>>,
) -> Result<Labelled> {
    let containers = async {
        let list = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(filter)
                    .build(),
            ))
            .await
            .map_err(|e| api_error("list containers", e))?;
        Ok::<_, Error>(
            list.into_iter()
                .map(|c| {
                    let name = c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default();
                    (c.id.unwrap_or_default(), name)
                })
                .collect(),
        )
    };
    let volumes = async {
        let list = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(filter).build(),
            ))
            .await
            .map_err(|e| api_error("list volumes", e))?;
        Ok::<_, Error>(
            list.volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.name)
                .collect(),
        )
    };
    let networks = async {
        let list = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(filter).build(),
            ))
            .await
            .map_err(|e| api_error("list networks", e))?;
        Ok::<_, Error>(
            list.into_iter()
                .map(|n| (n.id.unwrap_or_default(), n.name.unwrap_or_default()))
                .collect(),
        )
    };
    let images = async {
        let list = docker
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .all(true)
                    .filters(filter)
                    .build(),
            ))
            .await
            .map_err(|e| api_error("list images", e))?;
        Ok::<_, Error>(list.into_iter().map(|i| (i.id, i.repo_tags)).collect())
    };
    let (containers, volumes, networks, images) =
        tokio::try_join!(containers, volumes, networks, images)?;
    Ok(Labelled {
        containers,
        volumes,
        networks,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        let s = |r: &str| {
            let (a, b) = split_reference(r);
            (a, b)
        };
        assert_eq!(s("ubuntu"), ("ubuntu".into(), "latest".into()));
        assert_eq!(s("ubuntu:24.04"), ("ubuntu".into(), "24.04".into()));
        assert_eq!(
            s("localhost:5000/team/app"),
            ("localhost:5000/team/app".into(), "latest".into())
        );
        assert_eq!(
            s("localhost:5000/team/app:v1"),
            ("localhost:5000/team/app".into(), "v1".into())
        );
        assert_eq!(
            s("alpine@sha256:abc"),
            ("alpine".into(), "sha256:abc".into())
        );
    }
}
