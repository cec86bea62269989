//! Everything after deploy: finding an environment's instance by its tags, status,
//! start and stop, SSH sessions, destroy, and `list_owned`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sindri_core::{
    Deployment, DeploymentState, DestroyOptions, DestroyReport, Endpoint, Error, ErrorKind,
    Operation, Result, Status, StatusState,
};
use sindri_spec::ProviderKind;

use super::catalog;
use super::client::Api;
use super::deploy::{self, TAG_PORTS, TAG_SSH_USER};
use super::ec2::{Ec2, Instance, tag_map};
use super::{AwsProvider, TAG_ENVIRONMENT, TAG_MANAGED, TAG_PROJECT, TAG_SPEC_HASH, userdata};
use crate::ssh::{LogSource, SshSession, SshTarget};

/// One provider, its client, and the region to act in.
pub(crate) struct Ctx<'a> {
    pub p: &'a AwsProvider,
    pub api: &'a Api,
    pub region: String,
}

impl Ctx<'_> {
    pub(crate) fn ec2(&self) -> Ec2<'_> {
        Ec2 {
            api: self.api,
            region: &self.region,
        }
    }
}

/// True when `tags` say sindri created the resource for this environment.
pub(crate) fn owned_by(tags: &BTreeMap<String, String>, env: &str, project: &str) -> bool {
    tags.get(TAG_MANAGED).map(String::as_str) == Some("true")
        && tags.get(TAG_ENVIRONMENT).map(String::as_str) == Some(env)
        && tags.get(TAG_PROJECT).map(String::as_str) == Some(project)
}

const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// The environment's instances that are not terminated or terminating.
pub(crate) async fn find_instances(
    ctx: &Ctx<'_>,
    env: &str,
    project: &str,
) -> Result<Vec<Instance>> {
    let mut filters = deploy::owner_filters(Some(env), Some(project));
    filters.push((
        "instance-state-name",
        LIVE_STATES.iter().map(|s| s.to_string()).collect(),
    ));
    let found = ctx.ec2().describe_instances(&filters).await?;
    // Filters are AWS's; ownership is checked here too, so nothing else is touched.
    Ok(found
        .into_iter()
        .filter(|i| i.is_live() && owned_by(&i.tags(), env, project))
        .collect())
}

/// The deployment's live instance: its recorded id when that instance is still ours
/// and alive, else the one its tags find (running first).
pub(crate) async fn find_one(ctx: &Ctx<'_>, d: &Deployment) -> Result<Option<Instance>> {
    if let Some(id) = &d.resource_id
        && let Some(i) = ctx.ec2().instance(id).await?
        && i.is_live()
        && owned_by(&i.tags(), &d.name, &d.project)
    {
        return Ok(Some(i));
    }
    let mut found = find_instances(ctx, &d.name, &d.project).await?;
    found.sort_by_key(|i| i.state() != "running");
    Ok(found.into_iter().next())
}

fn missing(d: &Deployment) -> Error {
    Error::not_found(format!("environment `{}` has no instance on AWS", d.name))
        .with_provider(ProviderKind::Aws)
        .with_hint("deploy it with `sindri deploy`")
}

/// `status`, live from DescribeInstances.
pub(crate) async fn status(ctx: &Ctx<'_>, d: &Deployment) -> Result<Status> {
    let Some(i) = find_one(ctx, d).await? else {
        return Ok(Status::new(StatusState::Missing));
    };
    let state = match i.state() {
        "running" => StatusState::Running,
        "pending" => StatusState::Starting,
        "stopping" | "stopped" => StatusState::Stopped,
        _ => StatusState::Missing,
    };
    let mut s = Status::new(state);
    let tags = i.tags();
    let market = if i.is_spot() { "spot" } else { "on-demand" };
    let instance_type = i.instance_type.clone().unwrap_or_default();
    s.message = match (
        state,
        i.state_reason.as_ref().and_then(|r| r.message.clone()),
    ) {
        (StatusState::Starting, _) => Some("booting".into()),
        (StatusState::Stopped, Some(reason)) => {
            Some(format!("stopped ({reason}); the EBS root volume is kept"))
        }
        (StatusState::Stopped, None) => Some("stopped; the EBS root volume is kept".into()),
        _ => None,
    };
    if state == StatusState::Running {
        if let Some(target) = target_of(ctx, &i, None, None) {
            s.endpoints.push(Endpoint {
                name: "ssh".into(),
                address: target.url(),
            });
        }
        if let Some(ip) = i.public_ip() {
            for p in tags
                .get(TAG_PORTS)
                .map(String::as_str)
                .unwrap_or("")
                .split(',')
                .filter(|p| !p.is_empty())
            {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let scheme = if proto == "udp" { "udp" } else { "tcp" };
                s.endpoints.push(Endpoint {
                    name: format!("port {port}/{proto}"),
                    address: format!("{scheme}://{ip}:{port}"),
                });
            }
        }
        if !i.is_spot()
            && let Some(price) = catalog::on_demand_price(&instance_type)
        {
            s.cost_per_hour = Some(price);
            s.details.insert(
                "cost_source".into(),
                "embedded us-east-1 on-demand list price (an estimate; other regions differ)"
                    .into(),
            );
        }
        if i.is_spot() {
            s.details.insert(
                "cost_source".into(),
                "spot prices vary; not estimated".into(),
            );
        }
    }
    s.details
        .insert("instance_id".into(), i.instance_id.clone());
    s.details.insert("instance_type".into(), instance_type);
    s.details.insert("market".into(), market.into());
    s.details.insert("region".into(), ctx.region.clone());
    for (k, v) in [
        ("availability_zone", i.placement.availability_zone.clone()),
        ("image", i.image_id.clone()),
        ("public_ip", i.public_ip().map(str::to_string)),
        ("public_dns", i.public_dns().map(str::to_string)),
    ] {
        if let Some(v) = v {
            s.details.insert(k.into(), v);
        }
    }
    if tags.get(TAG_SPEC_HASH) != Some(&d.spec_hash) && !d.spec_hash.is_empty() {
        s.details.insert(
            "spec".into(),
            "differs from the recorded deploy; `sindri deploy` updates it".into(),
        );
    }
    Ok(s)
}

/// Polls until the instance is in one of `want`, failing if it leaves for
/// termination; `None` while AWS does not know the id yet (eventual consistency).
async fn wait_for(ctx: &Ctx<'_>, id: &str, want: &[&str]) -> Result<Instance> {
    let tuning = ctx.api.tuning;
    let mut last = String::from("unknown");
    for _ in 0..tuning.max_polls {
        if let Some(i) = ctx.ec2().instance(id).await? {
            if want.contains(&i.state()) {
                return Ok(i);
            }
            if matches!(i.state(), "shutting-down" | "terminated") && !want.contains(&"terminated")
            {
                let reason = i.state_reason.clone().unwrap_or_default();
                let code = reason.code.unwrap_or_default();
                let text = reason.message.unwrap_or_else(|| code.clone());
                let kind = if code.contains("Spot") || code.contains("InsufficientInstanceCapacity")
                {
                    ErrorKind::Capacity
                } else {
                    ErrorKind::Platform
                };
                return Err(
                    Error::new(kind, format!("instance {id} was terminated: {text}"))
                        .with_provider(ProviderKind::Aws),
                );
            }
            last = i.state().to_string();
        }
        tokio::time::sleep(tuning.poll_interval).await;
    }
    Err(Error::new(
        ErrorKind::Transient,
        format!(
            "instance {id} did not become {} (still {last}) after {} checks",
            want.join(" or "),
            tuning.max_polls
        ),
    )
    .with_provider(ProviderKind::Aws)
    .with_hint("EC2 may be slow right now; `sindri status` shows where it is"))
}

pub(crate) async fn wait_running(ctx: &Ctx<'_>, id: &str) -> Result<Instance> {
    wait_for(ctx, id, &["running"]).await
}

/// Starts a stopped (or stopping) instance and waits until it runs.
pub(crate) async fn start_instance(ctx: &Ctx<'_>, i: &Instance) -> Result<()> {
    if i.state() == "stopping" {
        wait_for(ctx, &i.instance_id, &["stopped"]).await?;
    }
    ctx.ec2()
        .instances_action("StartInstances", std::slice::from_ref(&i.instance_id))
        .await
        .map_err(|f| ctx.api.error("StartInstances", f))?;
    wait_running(ctx, &i.instance_id).await.map(|_| ())
}

/// `start`.
pub(crate) async fn start(ctx: &Ctx<'_>, d: &Deployment) -> Result<()> {
    let i = find_one(ctx, d).await?.ok_or_else(|| missing(d))?;
    match i.state() {
        "running" => Ok(()),
        "pending" => wait_running(ctx, &i.instance_id).await.map(|_| ()),
        _ => start_instance(ctx, &i).await,
    }
}

/// `stop`: stops compute, keeps the EBS volume, waits until stopped. One-time spot
/// instances cannot stop.
pub(crate) async fn stop(ctx: &Ctx<'_>, d: &Deployment) -> Result<()> {
    let i = find_one(ctx, d).await?.ok_or_else(|| missing(d))?;
    match i.state() {
        "stopped" => return Ok(()),
        "stopping" => {
            return wait_for(ctx, &i.instance_id, &["stopped"])
                .await
                .map(|_| ());
        }
        _ => {}
    }
    if i.is_spot() {
        return Err(spot_stop_refused(&i.instance_id));
    }
    match ctx
        .ec2()
        .instances_action("StopInstances", std::slice::from_ref(&i.instance_id))
        .await
    {
        Ok(()) => {}
        Err(super::client::Failure::Api(a)) if a.is("UnsupportedOperation") => {
            // Instance-store root volumes cannot stop either.
            return Err(Error::new(
                ErrorKind::Unsupported(Operation::Stop),
                format!("EC2 cannot stop instance {}: {}", i.instance_id, a.message),
            )
            .with_provider(ProviderKind::Aws)
            .with_hint("destroy it with `sindri destroy` when done"));
        }
        Err(f) => return Err(ctx.api.error("StopInstances", f)),
    }
    wait_for(ctx, &i.instance_id, &["stopped"])
        .await
        .map(|_| ())
}

fn spot_stop_refused(id: &str) -> Error {
    let message = format!("instance {id} is a one-time spot instance, which EC2 cannot stop");
    Error::new(ErrorKind::Unsupported(Operation::Stop), message)
        .with_provider(ProviderKind::Aws)
        .with_hint("destroy it with `sindri destroy` when done, or deploy with providers.aws.spot: never for a machine you can stop")
}

/// Terminates instances (cancelling their spot requests first) and waits until they
/// are gone.
pub(crate) async fn terminate_and_wait(ctx: &Ctx<'_>, instances: &[Instance]) -> Result<()> {
    if instances.is_empty() {
        return Ok(());
    }
    let ec2 = ctx.ec2();
    for i in instances {
        if let Some(req) = &i.spot_instance_request_id {
            ec2.cancel_spot_request(req).await?;
        }
    }
    let ids: Vec<String> = instances.iter().map(|i| i.instance_id.clone()).collect();
    match ec2.instances_action("TerminateInstances", &ids).await {
        Ok(()) => {}
        Err(f) if f.code() == Some("InvalidInstanceID.NotFound") => {}
        Err(f) => return Err(ctx.api.error("TerminateInstances", f)),
    }
    for id in &ids {
        wait_for(ctx, id, &["terminated"]).await?;
    }
    Ok(())
}

/// `destroy`: the instances (and with them their root volumes), then the security
/// group and the key pair, each found by this environment's tags. Already gone is
/// success.
pub(crate) async fn destroy(
    ctx: &Ctx<'_>,
    d: &Deployment,
    _opts: DestroyOptions,
) -> Result<DestroyReport> {
    let ec2 = ctx.ec2();
    let mut report = DestroyReport::default();
    let mut instances = find_instances(ctx, &d.name, &d.project).await?;
    if let Some(id) = &d.resource_id
        && !instances.iter().any(|i| &i.instance_id == id)
        && let Some(i) = ec2.instance(id).await?
        && i.is_live()
        && owned_by(&i.tags(), &d.name, &d.project)
    {
        instances.push(i);
    }
    terminate_and_wait(ctx, &instances).await?;
    for i in &instances {
        let market = if i.is_spot() { "spot" } else { "on-demand" };
        report.removed.push(format!(
            "instance {} ({}, {market}) and its root volume",
            i.instance_id,
            i.instance_type.as_deref().unwrap_or("?")
        ));
        // Best effort: a master connection to a terminated machine ends by itself.
        if let Some(target) = target_of(ctx, i, None, None)
            && let Ok(session) =
                session_for_target(ctx, &d.name, &d.project, target, &i.instance_id)
        {
            session.disconnect().await;
        }
    }

    let filters = deploy::owner_filters(Some(&d.name), Some(&d.project));
    for g in ec2.describe_security_groups(&filters).await? {
        if !owned_by(&tag_map(&g.tag_set), &d.name, &d.project) {
            continue;
        }
        if delete_group(ctx, &g.group_id).await? {
            report
                .removed
                .push(format!("security group {} ({})", g.group_name, g.group_id));
        }
    }
    for k in ec2.describe_key_pairs(&filters).await? {
        if !owned_by(&tag_map(&k.tag_set), &d.name, &d.project) {
            continue;
        }
        ec2.delete_key_pair(&k.key_name).await?;
        report.removed.push(format!("key pair {}", k.key_name));
    }
    Ok(report)
}

/// Deletes a security group, waiting out `DependencyViolation` while network
/// interfaces of a terminated instance detach. False when it was already gone.
async fn delete_group(ctx: &Ctx<'_>, id: &str) -> Result<bool> {
    let tuning = ctx.api.tuning;
    for _ in 0..tuning.max_polls {
        match ctx.ec2().delete_security_group(id).await {
            Ok(()) => return Ok(true),
            Err(f) if f.code() == Some("InvalidGroup.NotFound") => return Ok(false),
            Err(f) if f.code() == Some("DependencyViolation") => {
                tokio::time::sleep(tuning.poll_interval).await
            }
            Err(f) => return Err(ctx.api.error("DeleteSecurityGroup", f)),
        }
    }
    Err(Error::new(
        ErrorKind::Transient,
        format!(
            "security group {id} is still in use after {} checks",
            tuning.max_polls
        ),
    )
    .with_provider(ProviderKind::Aws)
    .with_hint("something outside sindri may use it; run `sindri destroy` again later"))
}

/// `list_owned`: every environment with sindri's tags in the configured region, from
/// its instances, and from a security group or key pair an interrupted deploy or
/// destroy left without an instance.
pub(crate) async fn list_owned(ctx: &Ctx<'_>) -> Result<Vec<Deployment>> {
    let ec2 = ctx.ec2();
    let mut filters = deploy::owner_filters(None, None);
    filters.push((
        "instance-state-name",
        LIVE_STATES.iter().map(|s| s.to_string()).collect(),
    ));
    let mut found: BTreeMap<(String, String), Deployment> = BTreeMap::new();
    for i in ec2.describe_instances(&filters).await? {
        let tags = i.tags();
        let (Some(env), Some(project)) = (tags.get(TAG_ENVIRONMENT), tags.get(TAG_PROJECT)) else {
            continue;
        };
        if !i.is_live() || !owned_by(&tags, env, project) {
            continue;
        }
        let mut d = Deployment::creating(
            env,
            ProviderKind::Aws,
            project,
            tags.get(TAG_SPEC_HASH).map(String::as_str).unwrap_or(""),
        );
        d.resource_id = Some(i.instance_id.clone());
        d.state = match i.state() {
            "running" => DeploymentState::Ready,
            "pending" => DeploymentState::Creating,
            _ => DeploymentState::Stopped,
        };
        if let Some(t) = i
            .launch_time
            .as_deref()
            .and_then(super::time::parse_iso8601)
        {
            d.created_at = t;
            d.updated_at = t;
        }
        d.details.insert("region".into(), ctx.region.clone());
        d.details.insert(
            "market".into(),
            if i.is_spot() { "spot" } else { "on-demand" }.into(),
        );
        if i.is_spot() {
            d.details.insert(
                deploy::RUN_INTERRUPTION_CHECK.into(),
                super::userdata::INTERRUPTION_CHECK.into(),
            );
        }
        for (k, v) in [
            ("instance_type", i.instance_type.clone()),
            ("image", i.image_id.clone()),
            ("public_ip", i.public_ip().map(str::to_string)),
            ("ssh_user", tags.get(TAG_SSH_USER).cloned()),
            ("availability_zone", i.placement.availability_zone.clone()),
            ("key_pair", i.key_name.clone()),
        ] {
            if let Some(v) = v {
                d.details.insert(k.into(), v);
            }
        }
        found.insert((env.clone(), project.clone()), d);
    }
    let mut leftovers: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let managed = deploy::owner_filters(None, None);
    for g in ec2.describe_security_groups(&managed).await? {
        let tags = tag_map(&g.tag_set);
        if let (Some(env), Some(project)) = (tags.get(TAG_ENVIRONMENT), tags.get(TAG_PROJECT))
            && owned_by(&tags, env, project)
        {
            leftovers
                .entry((env.clone(), project.clone()))
                .or_default()
                .push(format!("security group {}", g.group_id));
        }
    }
    for k in ec2.describe_key_pairs(&managed).await? {
        let tags = tag_map(&k.tag_set);
        if let (Some(env), Some(project)) = (tags.get(TAG_ENVIRONMENT), tags.get(TAG_PROJECT))
            && owned_by(&tags, env, project)
        {
            leftovers
                .entry((env.clone(), project.clone()))
                .or_default()
                .push(format!("key pair {}", k.key_name));
        }
    }
    for ((env, project), what) in leftovers {
        if found.contains_key(&(env.clone(), project.clone())) {
            continue;
        }
        let mut d = Deployment::creating(&env, ProviderKind::Aws, &project, "");
        d.state = DeploymentState::Failed;
        d.details.insert("region".into(), ctx.region.clone());
        d.details.insert("leftovers".into(), what.join(", "));
        found.insert((env, project), d);
    }
    Ok(found.into_values().collect())
}

/// Where SSH reaches an instance: the provider's endpoint override, else its public
/// address on port 22. `None` when it has no public address.
fn target_of(
    ctx: &Ctx<'_>,
    i: &Instance,
    user: Option<&str>,
    identity: Option<PathBuf>,
) -> Option<SshTarget> {
    let tags = i.tags();
    let user = ctx
        .p
        .ssh_user
        .clone()
        .or_else(|| user.map(str::to_string))
        .or_else(|| tags.get(TAG_SSH_USER).cloned())
        .unwrap_or_else(|| "ubuntu".to_string());
    let (host, port) = match &ctx.p.ssh_endpoint {
        Some((h, p)) => (h.clone(), *p),
        None => (i.public_ip()?.to_string(), 22),
    };
    let mut t = SshTarget::new(user, host).with_port(port);
    t.identity = identity;
    Some(t)
}

fn session_for_target(
    ctx: &Ctx<'_>,
    env: &str,
    project: &str,
    target: SshTarget,
    instance_id: &str,
) -> Result<SshSession> {
    let secrets_env = format!("{}/env", ctx.p.secrets_dir.trim_end_matches('/'));
    Ok(SshSession::new(
        &format!("aws/{project}/{env}"),
        target,
        ctx.p.ssh_options()?,
    )
    .host_key_alias(instance_id.to_string())
    .env_files(vec![userdata::ENV_FILE.to_string(), secrets_env]))
}

/// An SSH session to a running instance.
pub(crate) fn session_of(
    ctx: &Ctx<'_>,
    env: &str,
    project: &str,
    i: &Instance,
    user: Option<&str>,
    identity: Option<PathBuf>,
) -> Result<SshSession> {
    let target = target_of(ctx, i, user, identity).ok_or_else(|| {
        Error::new(
            ErrorKind::Unavailable,
            format!("instance {} has no public IP address, so SSH cannot reach it", i.instance_id),
        )
        .with_provider(ProviderKind::Aws)
        .with_hint("launch in a subnet that assigns public addresses (providers.aws.subnet_id), or reach it through a VPN")
    })?;
    session_for_target(ctx, env, project, target, &i.instance_id)
}

/// The session for a deployment's running instance; `NotFound` without one.
pub(crate) async fn session(ctx: &Ctx<'_>, d: &Deployment) -> Result<SshSession> {
    let i = find_one(ctx, d).await?.ok_or_else(|| missing(d))?;
    if i.state() != "running" {
        return Err(Error::invalid(format!(
            "environment `{}` is not running (instance state: {})",
            d.name,
            i.state()
        ))
        .with_provider(ProviderKind::Aws)
        .with_hint("start it with `sindri start`, or `sindri deploy`"));
    }
    let identity = match d.detail("ssh_identity") {
        Some(p) => Some(PathBuf::from(p)),
        None => deploy::public_key(&ctx.p.env, &ctx.p.settings, None)
            .ok()
            .and_then(|k| k.identity),
    };
    session_of(ctx, &d.name, &d.project, &i, d.detail("ssh_user"), identity)
}

/// Where an instance's logs are: the journal, else cloud-init's output.
pub(crate) fn log_sources() -> Vec<LogSource> {
    vec![
        LogSource::Journal { unit: None },
        LogSource::File("/var/log/cloud-init-output.log".into()),
        LogSource::File("/var/log/syslog".into()),
    ]
}
