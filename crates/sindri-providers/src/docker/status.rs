//! `status` and `list_owned`: read live from the engine, explained in words.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummaryStateEnum,
};
use bollard::query_parameters::ListContainersOptionsBuilder;
use sindri_core::{Deployment, DeploymentState, Endpoint, Result, Status, StatusState, unix_now};
use sindri_spec::ProviderKind;

use super::engine::{EngineHost, api_error};
use super::objects::{self, Found};
use super::request::{
    LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_SPEC_HASH, container_name, home_volume_name,
    managed_filter,
};
use super::secrets;

/// The state of a container in sindri's words, with an explanation when it is not
/// simply running or stopped.
pub(crate) fn explain(c: &ContainerInspectResponse) -> (StatusState, Option<String>) {
    let Some(state) = c.state.as_ref() else {
        return (
            StatusState::Failed,
            Some("the engine reports no state".into()),
        );
    };
    let code = state.exit_code.unwrap_or(0);
    let error = state.error.clone().filter(|e| !e.is_empty());
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => (StatusState::Running, None),
        Some(ContainerStateStatusEnum::RESTARTING) => {
            (StatusState::Starting, Some("restarting".into()))
        }
        Some(ContainerStateStatusEnum::PAUSED) => (
            StatusState::Suspended,
            Some("paused with `docker pause`; `docker unpause` resumes it".into()),
        ),
        Some(ContainerStateStatusEnum::CREATED) => match error {
            Some(e) => (StatusState::Failed, Some(format!("could not start: {e}"))),
            None => (
                StatusState::Stopped,
                Some(
                    "created but never started (an interrupted deploy?); `sindri deploy` starts it"
                        .into(),
                ),
            ),
        },
        Some(ContainerStateStatusEnum::EXITED) => {
            if state.oom_killed == Some(true) {
                let limit = c
                    .host_config
                    .as_ref()
                    .and_then(|h| h.memory)
                    .filter(|m| *m > 0)
                    .map(|m| format!(" (limit {} MiB)", m / (1024 * 1024)))
                    .unwrap_or_default();
                (
                    StatusState::Failed,
                    Some(format!(
                        "killed: out of memory{limit}; raise deployment.resources.memory"
                    )),
                )
            } else if code == 0 {
                (StatusState::Stopped, None)
            } else {
                let mut m = format!("exited with code {code}");
                if code == 137 {
                    m.push_str(" (killed)");
                }
                if let Some(e) = error {
                    m.push_str(": ");
                    m.push_str(&e);
                }
                (StatusState::Failed, Some(m))
            }
        }
        Some(ContainerStateStatusEnum::DEAD) => (
            StatusState::Failed,
            Some(format!(
                "dead{}",
                error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
        ),
        Some(ContainerStateStatusEnum::REMOVING) => {
            (StatusState::Stopped, Some("being removed".into()))
        }
        Some(ContainerStateStatusEnum::STOPPING) => (StatusState::Stopped, Some("stopping".into())),
        Some(ContainerStateStatusEnum::EMPTY) | None => (
            StatusState::Failed,
            Some("the engine reports no state".into()),
        ),
    }
}

/// Published ports of a running container, reachable at the engine's host.
pub(crate) fn endpoints(c: &ContainerInspectResponse, host: &EngineHost) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let Some(ports) = c.network_settings.as_ref().and_then(|n| n.ports.as_ref()) else {
        return out;
    };
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort();
    let addr_host = host.published_host();
    for key in keys {
        let proto = key.split('/').nth(1).unwrap_or("tcp");
        let Some(bindings) = ports.get(key).and_then(|b| b.as_ref()) else {
            continue;
        };
        let mut seen = Vec::new();
        for b in bindings {
            let Some(port) = b.host_port.as_deref().filter(|p| !p.is_empty()) else {
                continue;
            };
            if seen.contains(&port) {
                continue;
            }
            seen.push(port);
            out.push(Endpoint {
                name: format!("port {key}"),
                address: format!("{proto}://{addr_host}:{port}"),
            });
        }
    }
    out
}

/// The environment's live status.
pub(crate) async fn status(docker: &Docker, host: &EngineHost, d: &Deployment) -> Result<Status> {
    let name = container_name(&d.name);
    let c = match objects::find(docker, &d.name, &d.project).await? {
        Found::Ours(c) => *c,
        Found::Missing => {
            let mut s = Status::new(StatusState::Missing);
            let home = home_volume_name(&d.name);
            if let Some(super::request::Ownership::Ours) =
                objects::volume_owner(docker, &home, &d.name, &d.project).await?
            {
                s.message = Some(format!(
                    "no container; the home volume {home} is kept and `sindri deploy` reuses it"
                ));
            }
            return Ok(s);
        }
        Found::NotOurs(_) => {
            let mut s = Status::new(StatusState::Missing);
            s.message = Some(format!(
                "a container named {name} exists but is not this environment's; sindri leaves it alone"
            ));
            return Ok(s);
        }
    };
    let (state, mut message) = explain(&c);
    if state == StatusState::Running
        && d.detail("secrets")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
            > 0
        && !secrets::delivered(docker, &objects::id_of(&c)).await?
    {
        message = Some(
            "running, but its secrets are missing (a stopped container loses its /run/sindri tmpfs); `sindri deploy` delivers them again"
                .into(),
        );
    }
    let mut details = BTreeMap::new();
    details.insert("container".to_string(), name);
    let id = objects::id_of(&c);
    details.insert("container_id".to_string(), id.chars().take(12).collect());
    if let Some(image) = c.config.as_ref().and_then(|c| c.image.clone()) {
        details.insert("image".to_string(), image);
    }
    if let Some(net) = c.host_config.as_ref().and_then(|h| h.network_mode.clone()) {
        details.insert("network".to_string(), net);
    }
    if let Some(started) = c
        .state
        .as_ref()
        .and_then(|s| s.started_at.clone())
        .filter(|s| !s.starts_with("0001"))
    {
        details.insert("started_at".to_string(), started);
    }
    if let Some(h) = objects::label(&c, LABEL_SPEC_HASH) {
        details.insert("spec_hash".to_string(), h.to_string());
    }
    details.insert("engine".to_string(), host.url.clone());
    Ok(Status {
        state,
        message,
        endpoints: if state == StatusState::Running {
            endpoints(&c, host)
        } else {
            Vec::new()
        },
        cost_per_hour: None,
        details,
    })
}

fn deployment_state(s: Option<ContainerSummaryStateEnum>) -> DeploymentState {
    match s {
        Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING) => {
            DeploymentState::Ready
        }
        Some(ContainerSummaryStateEnum::PAUSED) => DeploymentState::Suspended,
        Some(ContainerSummaryStateEnum::DEAD) => DeploymentState::Failed,
        Some(ContainerSummaryStateEnum::REMOVING) => DeploymentState::Destroying,
        _ => DeploymentState::Stopped,
    }
}

/// Every environment carrying sindri's labels on this engine, rebuilt from the labels.
/// Environments with no container but kept volumes or network (an interrupted deploy,
/// or a destroy that kept the home volume) are listed as `creating`: `deploy` resumes
/// them and `destroy --volumes` removes them.
pub(crate) async fn list_owned(docker: &Docker, host: &EngineHost) -> Result<Vec<Deployment>> {
    let filter = managed_filter();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .map_err(|e| api_error("list containers", e))?;
    let mut found: BTreeMap<(String, String), Deployment> = BTreeMap::new();
    for c in containers {
        let labels = c.labels.clone().unwrap_or_default();
        let (Some(env), Some(project)) = (labels.get(LABEL_ENVIRONMENT), labels.get(LABEL_PROJECT))
        else {
            continue;
        };
        let mut d = Deployment::creating(
            env,
            ProviderKind::Docker,
            project,
            labels
                .get(LABEL_SPEC_HASH)
                .map(String::as_str)
                .unwrap_or(""),
        );
        d.resource_id = c.id.clone();
        d.state = deployment_state(c.state);
        if let Some(t) = c.created {
            d.created_at = t;
            d.updated_at = t;
        }
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| container_name(env));
        d.details.insert("container".into(), name);
        if let Some(image) = c.image {
            d.details.insert("image".into(), image);
        }
        d.details.insert("engine".into(), host.url.clone());
        found.insert((env.clone(), project.clone()), d);
    }
    let mut leftovers: HashMap<(String, String), (String, Vec<String>)> = HashMap::new();
    let volume_labels = docker
        .list_volumes(Some(
            bollard::query_parameters::ListVolumesOptionsBuilder::new()
                .filters(&filter)
                .build(),
        ))
        .await
        .map_err(|e| api_error("list volumes", e))?
        .volumes
        .unwrap_or_default();
    for v in volume_labels {
        if let (Some(env), Some(project)) =
            (v.labels.get(LABEL_ENVIRONMENT), v.labels.get(LABEL_PROJECT))
        {
            let hash = v.labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default();
            leftovers
                .entry((env.clone(), project.clone()))
                .or_insert_with(|| (hash, Vec::new()))
                .1
                .push(format!("volume {}", v.name));
        }
    }
    let networks = docker
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::new()
                .filters(&filter)
                .build(),
        ))
        .await
        .map_err(|e| api_error("list networks", e))?;
    for n in networks {
        let labels = n.labels.unwrap_or_default();
        if let (Some(env), Some(project)) =
            (labels.get(LABEL_ENVIRONMENT), labels.get(LABEL_PROJECT))
        {
            let hash = labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default();
            leftovers
                .entry((env.clone(), project.clone()))
                .or_insert_with(|| (hash, Vec::new()))
                .1
                .push(format!("network {}", n.name.unwrap_or_default()));
        }
    }
    for ((env, project), (hash, objects)) in leftovers {
        if found.contains_key(&(env.clone(), project.clone())) {
            continue;
        }
        let mut d = Deployment::creating(&env, ProviderKind::Docker, &project, &hash);
        d.details.insert("container".into(), "missing".into());
        let mut objects = objects;
        objects.sort();
        d.details.insert("kept".into(), objects.join(", "));
        d.details.insert("engine".into(), host.url.clone());
        d.updated_at = unix_now();
        found.insert((env, project), d);
    }
    Ok(found.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerState, HostConfig, NetworkSettings, PortBinding};

    fn with_state(state: ContainerState) -> ContainerInspectResponse {
        ContainerInspectResponse {
            state: Some(state),
            host_config: Some(HostConfig {
                memory: Some(64 * 1024 * 1024),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn failures_are_explained_in_words() {
        let exited = |code, oom| {
            explain(&with_state(ContainerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(code),
                oom_killed: Some(oom),
                ..Default::default()
            }))
        };
        assert_eq!(exited(0, false), (StatusState::Stopped, None));
        assert_eq!(
            exited(3, false),
            (StatusState::Failed, Some("exited with code 3".into()))
        );
        let (s, m) = exited(137, true);
        assert_eq!(s, StatusState::Failed);
        assert!(m.unwrap().contains("out of memory (limit 64 MiB)"));
        let (s, m) = explain(&with_state(ContainerState {
            status: Some(ContainerStateStatusEnum::CREATED),
            ..Default::default()
        }));
        assert_eq!(s, StatusState::Stopped);
        assert!(m.unwrap().contains("never started"));
    }

    #[test]
    fn endpoints_use_the_engine_host_and_skip_duplicates() {
        let c = ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                ports: Some(HashMap::from([
                    (
                        "80/tcp".to_string(),
                        Some(vec![
                            PortBinding {
                                host_ip: Some("0.0.0.0".into()),
                                host_port: Some("8080".into()),
                            },
                            PortBinding {
                                host_ip: Some("::".into()),
                                host_port: Some("8080".into()),
                            },
                        ]),
                    ),
                    ("53/udp".to_string(), None),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let host = EngineHost {
            url: "tcp://10.0.0.5:2375".into(),
            source: super::super::engine::HostSource::Env,
        };
        assert_eq!(
            endpoints(&c, &host),
            vec![Endpoint {
                name: "port 80/tcp".into(),
                address: "tcp://10.0.0.5:8080".into()
            }]
        );
    }
}
