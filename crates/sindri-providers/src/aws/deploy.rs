//! `plan` and `deploy`: resolve what the spec asks for (instance type, image, key,
//! source address), find what already exists by tags, and create or reconcile the key
//! pair, the security group and the instance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sindri_core::progress::phase;
use sindri_core::{
    DeployOptions, Deployment, DeploymentState, Error, ErrorKind, Plan, PlanAction, PlanStep,
    Progress, RenderedArtifact, ResolvedSpec, Result,
};
use sindri_spec::{AwsSettings, OnFinish, Protocol, ProviderKind, SpotPolicy};

use super::client::{Failure, Params, classify};
use super::credentials::AwsEnv;
use super::ec2::{Instance, Rule, existing_rules};
use super::manage::{self, Ctx};
use super::{TAG_ENVIRONMENT, TAG_MANAGED, TAG_PROJECT, TAG_SPEC_HASH, catalog, userdata};
use crate::ssh::{SshSession, quote};

/// Tag with the login user, on the instance.
pub(crate) const TAG_SSH_USER: &str = "sindri.ssh-user";
/// Tag with the published ports (`8080/tcp,53/udp`), on the instance.
pub(crate) const TAG_PORTS: &str = "sindri.ports";
/// Tag with a digest of the imported public key, on the key pair.
pub(crate) const TAG_PUBLIC_KEY: &str = "sindri.public-key";

/// The security group's and key pair's name.
pub(crate) fn resource_name(env: &str, project: &str) -> String {
    format!("sindri-{env}-{project}")
}

/// The instance's `Name` tag.
pub(crate) fn instance_name(env: &str) -> String {
    format!("sindri-{env}")
}

/// The tags every resource of an environment carries.
pub(crate) fn base_tags(env: &str, project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_MANAGED.to_string(), "true".to_string()),
        (TAG_ENVIRONMENT.to_string(), env.to_string()),
        (TAG_PROJECT.to_string(), project.to_string()),
    ])
}

/// The tag filters that find an environment's resources (or, with `None`, every
/// sindri resource).
pub(crate) fn owner_filters(
    env: Option<&str>,
    project: Option<&str>,
) -> Vec<(&'static str, Vec<String>)> {
    let mut f = vec![("tag:sindri.managed", vec!["true".to_string()])];
    if let Some(e) = env {
        f.push(("tag:sindri.environment", vec![e.to_string()]));
    }
    if let Some(p) = project {
        f.push(("tag:sindri.project", vec![p.to_string()]));
    }
    f
}

/// The user's SSH public key, and the private key beside it when there is one.
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    pub path: PathBuf,
    pub text: String,
    pub identity: Option<PathBuf>,
}

impl PublicKey {
    fn digest(&self) -> String {
        let key_part: Vec<&str> = self.text.split_whitespace().take(2).collect();
        super::sigv4::hex(&Sha256::digest(key_part.join(" ").as_bytes())[..12])
    }
}

/// Reads `providers.aws.ssh_public_key` (relative to `base_dir` when relative), else
/// `~/.ssh/id_ed25519.pub`, else `~/.ssh/id_rsa.pub`.
pub(crate) fn public_key(
    env: &AwsEnv,
    settings: &AwsSettings,
    base_dir: Option<&Path>,
) -> Result<PublicKey> {
    let candidates: Vec<PathBuf> =
        match settings.ssh_public_key.as_deref().filter(|s| !s.is_empty()) {
            Some(p) => {
                let path = env.expand(p);
                vec![match base_dir {
                    Some(b) if path.is_relative() => b.join(path),
                    _ => path,
                }]
            }
            None => vec![
                env.expand("~/.ssh/id_ed25519.pub"),
                env.expand("~/.ssh/id_rsa.pub"),
            ],
        };
    for path in &candidates {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let ok = ["ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-"]
                    .iter()
                    .any(|p| text.starts_with(p));
                if !ok {
                    return Err(Error::invalid(format!(
                        "{} is not an OpenSSH public key (expected `ssh-ed25519 AAAA...` or `ssh-rsa AAAA...`)",
                        path.display()
                    ))
                    .with_provider(ProviderKind::Aws)
                    .with_hint("point providers.aws.ssh_public_key at the `.pub` file, never the private key"));
                }
                let private = path.with_extension("");
                let identity = (path.extension().is_some_and(|e| e == "pub") && private.is_file())
                    .then_some(private);
                return Ok(PublicKey {
                    path: path.clone(),
                    text,
                    identity,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(
                    Error::internal(format!("cannot read {}: {e}", path.display()))
                        .with_provider(ProviderKind::Aws),
                );
            }
        }
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Error::invalid(format!(
        "no SSH public key found (looked for {})",
        tried.join(", ")
    ))
    .with_provider(ProviderKind::Aws)
    .with_hint("create one with `ssh-keygen -t ed25519`, or set providers.aws.ssh_public_key"))
}

/// The CIDR admitted to SSH and the published ports, and how it was found.
pub(crate) async fn ssh_cidr(ctx: &Ctx<'_>) -> Result<(String, String)> {
    let env = &ctx.p.env;
    // The config file first, then the environment: both name a CIDR explicitly.
    let explicit = ctx
        .p
        .settings
        .ssh_cidr
        .as_deref()
        .map(|c| (c, "providers.aws.ssh_cidr"))
        .or_else(|| {
            env.get("SINDRI_AWS_SSH_CIDR")
                .map(|c| (c, "SINDRI_AWS_SSH_CIDR"))
        });
    if let Some((c, source)) = explicit {
        let c = c.trim();
        if !valid_cidr(c) {
            return Err(Error::invalid(format!("{source} `{c}` is not a CIDR"))
                .with_provider(ProviderKind::Aws)
                .with_hint("write it as `203.0.113.7/32` (one address) or `203.0.113.0/24`"));
        }
        return Ok((c.to_string(), source.into()));
    }
    if let Some(ip) = env.get("SINDRI_PUBLIC_IP") {
        let ip = ip.trim();
        return host_cidr(ip)
            .map(|c| (c, "SINDRI_PUBLIC_IP".into()))
            .ok_or_else(|| {
                Error::invalid(format!("SINDRI_PUBLIC_IP `{ip}` is not an IP address"))
                    .with_provider(ProviderKind::Aws)
            });
    }
    let url = env
        .get("SINDRI_CHECKIP_URL")
        .unwrap_or("https://checkip.amazonaws.com");
    let found = ctx.api.get_text(url, Duration::from_secs(5)).await;
    match found.as_deref().map(str::trim).map(host_cidr) {
        Ok(Some(c)) => Ok((c, format!("this machine's public address, from {url}"))),
        other => {
            let why = match other {
                Err(e) => e.to_string(),
                _ => "it did not answer with an IP address".to_string(),
            };
            Err(Error::invalid(format!(
                "cannot find this machine's public address to limit SSH to it: {url}: {why}"
            ))
            .with_provider(ProviderKind::Aws)
            .with_hint(
                "set providers.aws.ssh_cidr (or SINDRI_AWS_SSH_CIDR) to <your address>/32, or SINDRI_PUBLIC_IP; sindri never opens SSH to 0.0.0.0/0 unless told so",
            ))
        }
    }
}

fn host_cidr(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(format!("{v4}/32")),
        std::net::IpAddr::V6(v6) => Some(format!("{v6}/128")),
    }
}

fn valid_cidr(c: &str) -> bool {
    let Some((ip, bits)) = c.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// Everything `deploy` will ask AWS for, resolved from the spec.
pub(crate) struct Target {
    pub name: String,
    pub instance_type: String,
    pub arch: String,
    pub image_id: String,
    pub image_source: String,
    pub root_device: String,
    pub root_size_gib: Option<u64>,
    pub ssh_user: String,
    pub key: PublicKey,
    pub cidr: String,
    pub cidr_source: String,
    pub rules: Vec<Rule>,
    pub user_data: String,
    pub spec_hash: String,
    pub ports_tag: String,
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
    pub notes: Vec<String>,
}

impl Target {
    pub(crate) async fn resolve(ctx: &Ctx<'_>, spec: &ResolvedSpec) -> Result<Target> {
        let settings = &ctx.p.settings;
        let d = &spec.spec.deployment;
        let ec2 = ctx.ec2();
        let mut notes = Vec::new();
        let instance_type = match settings.instance_type.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => t.to_string(),
            None => catalog::choose_instance_type(&d.resources)?.to_string(),
        };
        let archs = ec2.architectures(&instance_type).await?;
        let arch = ["x86_64", "arm64"]
            .into_iter()
            .find(|a| archs.iter().any(|x| x == a))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "`{instance_type}` runs {}; sindri supports x86_64 and arm64",
                    archs.join(", ")
                ))
                .with_provider(ProviderKind::Aws)
            })?
            .to_string();
        let gpu = d.resources.gpu.is_some();
        let (image_id, image_source) = match d.image.as_deref().map(str::trim) {
            Some(id) if id.starts_with("ami-") => (id.to_string(), "deployment.image".to_string()),
            Some(other) => {
                let release = match other {
                    "ubuntu" | "ubuntu:latest" | "ubuntu:24.04" | "ubuntu:noble" => "24.04",
                    "ubuntu:22.04" | "ubuntu:jammy" => "22.04",
                    _ => {
                        return Err(Error::invalid(format!(
                            "deployment.image `{other}` is not an AMI id: the aws provider boots AMIs, not container images"
                        ))
                        .with_provider(ProviderKind::Aws)
                        .with_hint("give an AMI id (`ami-...`), `ubuntu:24.04`/`ubuntu:22.04`, or leave image out for the latest Ubuntu"));
                    }
                };
                let param = catalog::image_parameter(&arch, false, release);
                (
                    ssm_image(ctx, &param).await?,
                    format!("Ubuntu {release} ({arch}) from the SSM parameter {param}"),
                )
            }
            None => {
                let param = catalog::image_parameter(&arch, gpu, "24.04");
                let what = if gpu {
                    "the Deep Learning Base AMI (Ubuntu 22.04)"
                } else {
                    "Ubuntu 24.04"
                };
                (
                    ssm_image(ctx, &param).await?,
                    format!("{what} ({arch}) from the SSM parameter {param}"),
                )
            }
        };
        let image = ec2.image(&image_id).await?;
        if let Some(a) = &image.architecture
            && a != &arch
        {
            return Err(Error::invalid(format!(
                "the AMI {image_id} is built for {a}, but {instance_type} runs {arch}"
            ))
            .with_provider(ProviderKind::Aws)
            .with_hint(
                "choose an AMI of the instance type's architecture, or another instance type",
            ));
        }
        let root_device = image
            .root_device_name
            .clone()
            .unwrap_or_else(|| "/dev/sda1".to_string());
        let requested: u64 = d.resources.disk.map(|b| b.gib_ceil()).unwrap_or(0)
            + d.volumes
                .iter()
                .map(|v| v.size.map(|s| s.gib_ceil()).unwrap_or(0))
                .sum::<u64>();
        let root_size_gib = if requested == 0 {
            None
        } else {
            match image.root_size_gib() {
                Some(min) if min > requested => {
                    notes.push(format!("the image needs a {min} GiB root volume; using {min} GiB instead of {requested}"));
                    Some(min)
                }
                _ => Some(requested),
            }
        };
        let ssh_user = ctx
            .p
            .ssh_user
            .clone()
            .or_else(|| ctx.p.env.get("SINDRI_AWS_SSH_USER").map(str::to_string))
            .unwrap_or_else(|| {
                catalog::login_user(image.name.as_deref().unwrap_or("")).to_string()
            });
        let key = public_key(&ctx.p.env, settings, Some(&spec.base_dir))?;
        let (cidr, cidr_source) = ssh_cidr(ctx).await?;
        let mut rules = vec![Rule {
            protocol: "tcp".into(),
            port: 22,
            cidr: cidr.clone(),
            description: "sindri: ssh".into(),
        }];
        let mut ports = Vec::new();
        for p in &d.ports {
            if p.host != p.container {
                notes.push(format!(
                    "port {}:{}: EC2 does not remap ports; opening {} (the port the program listens on)",
                    p.host, p.container, p.container
                ));
            }
            let proto = match p.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            rules.push(Rule {
                protocol: proto.into(),
                port: p.container,
                cidr: cidr.clone(),
                description: format!("sindri: port {}", p.container),
            });
            ports.push(format!("{}/{proto}", p.container));
        }
        rules.sort();
        rules.dedup_by(|a, b| a.key() == b.key());
        let vpc_id = match settings.subnet_id.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(ec2.subnet_vpc(s).await?),
            None => None,
        };
        Ok(Target {
            name: resource_name(spec.name(), &spec.project),
            instance_type,
            arch,
            image_id,
            image_source,
            root_device,
            root_size_gib,
            user_data: userdata::render(spec, &ssh_user),
            ssh_user,
            key,
            cidr,
            cidr_source,
            rules,
            spec_hash: spec.spec_hash(),
            ports_tag: ports.join(","),
            subnet_id: settings.subnet_id.clone().filter(|s| !s.is_empty()),
            vpc_id,
            notes,
        })
    }

    fn instance_tags(&self, spec: &ResolvedSpec) -> BTreeMap<String, String> {
        let mut t = base_tags(spec.name(), &spec.project);
        t.insert("Name".into(), instance_name(spec.name()));
        t.insert(TAG_SPEC_HASH.into(), self.spec_hash.clone());
        t.insert(TAG_SSH_USER.into(), self.ssh_user.clone());
        if !self.ports_tag.is_empty() {
            t.insert(TAG_PORTS.into(), self.ports_tag.clone());
        }
        t
    }

    /// The RunInstances parameters; `spot` adds the market options. A shutdown from
    /// inside the instance (how a run's machine ends itself, see `Provider::self_end`)
    /// stops it, or terminates it for `run.on_finish: destroy` and for spot instances,
    /// which cannot stop.
    fn run_params(&self, spec: &ResolvedSpec, sg: &str, spot: bool) -> Params {
        use base64::Engine;
        let mut p = Params::new();
        p.set("ImageId", self.image_id.clone())
            .set("InstanceType", self.instance_type.clone())
            .set("MinCount", "1")
            .set("MaxCount", "1")
            .set("KeyName", self.name.clone())
            .set("ClientToken", client_token(spec, spot))
            .set(
                "UserData",
                base64::engine::general_purpose::STANDARD.encode(self.user_data.as_bytes()),
            )
            .set("MetadataOptions.HttpTokens", "required")
            .set("MetadataOptions.HttpEndpoint", "enabled")
            .set(
                "InstanceInitiatedShutdownBehavior",
                shutdown_behavior(spot, spec_on_finish(spec)),
            );
        match &self.subnet_id {
            Some(subnet) => {
                p.set("NetworkInterface.1.DeviceIndex", "0")
                    .set("NetworkInterface.1.SubnetId", subnet.clone())
                    .set("NetworkInterface.1.AssociatePublicIpAddress", "true")
                    .set("NetworkInterface.1.SecurityGroupId.1", sg);
            }
            None => {
                p.set("SecurityGroupId.1", sg);
            }
        }
        if let Some(size) = self.root_size_gib {
            p.set("BlockDeviceMapping.1.DeviceName", self.root_device.clone())
                .set("BlockDeviceMapping.1.Ebs.VolumeSize", size.to_string())
                .set("BlockDeviceMapping.1.Ebs.VolumeType", "gp3")
                .set("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true");
        }
        let mut volume_tags = base_tags(spec.name(), &spec.project);
        volume_tags.insert("Name".into(), instance_name(spec.name()));
        p.tag_spec(1, "instance", &self.instance_tags(spec));
        p.tag_spec(2, "volume", &volume_tags);
        if spot {
            p.set("InstanceMarketOptions.MarketType", "spot")
                .set(
                    "InstanceMarketOptions.SpotOptions.SpotInstanceType",
                    "one-time",
                )
                .set(
                    "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
                    "terminate",
                );
            p.tag_spec(
                3,
                "spot-instances-request",
                &base_tags(spec.name(), &spec.project),
            );
        }
        p
    }

    /// RunInstances as text, for `plan`.
    fn render_request(&self, spec: &ResolvedSpec, spot: bool) -> String {
        let mut out = String::from("# The RunInstances request sindri sends (EC2 Query API).\n");
        for (k, v) in self
            .run_params(spec, "<security group sindri creates>", spot)
            .0
        {
            let v = match k.as_str() {
                "UserData" => "<user-data.sh, base64>".to_string(),
                "ClientToken" => "<unique per deploy>".to_string(),
                _ => v,
            };
            out.push_str(&format!("{k}={v}\n"));
        }
        out
    }
}

/// `run.on_finish` of the spec, when it says.
fn spec_on_finish(spec: &ResolvedSpec) -> Option<OnFinish> {
    spec.spec.run.as_ref().and_then(|r| r.on_finish)
}

/// What a shutdown from inside the instance does: `terminate` for spot instances (a
/// one-time spot instance cannot stop) and for `on_finish: destroy`, else `stop`.
pub(crate) fn shutdown_behavior(spot: bool, policy: Option<OnFinish>) -> &'static str {
    if spot || policy == Some(OnFinish::Destroy) {
        "terminate"
    } else {
        "stop"
    }
}

/// An idempotency token for one launch attempt: a retried request cannot create a
/// second instance, and a new deploy (or the other market) gets a new token.
fn client_token(spec: &ResolvedSpec, spot: bool) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}/{}/{}/{nanos}/{}/{spot}",
        spec.project,
        spec.name(),
        spec.spec_hash(),
        std::process::id()
    );
    super::sigv4::sha256_hex(seed.as_bytes())[..32].to_string()
}

async fn ssm_image(ctx: &Ctx<'_>, param: &str) -> Result<String> {
    match ctx.ec2().ssm_parameter(param).await {
        Ok(v) if v.starts_with("ami-") => Ok(v.trim().to_string()),
        Ok(v) => Err(Error::new(
            ErrorKind::Platform,
            format!("the SSM parameter {param} holds `{v}`, not an AMI id"),
        )
        .with_provider(ProviderKind::Aws)),
        Err(Failure::Api(a)) if a.is("ParameterNotFound") => Err(Error::new(
            ErrorKind::Platform,
            format!("the public image parameter {param} is not published in region {}", ctx.region),
        )
        .with_provider(ProviderKind::Aws)
        .with_hint("give an AMI id with deployment.image")),
        Err(f) => Err(ctx.api.error("GetParameter", f).with_hint(
            "sindri reads AWS's public SSM parameters for the latest Ubuntu AMI: allow ssm:GetParameter, or give deployment.image",
        )),
    }
}

/// `plan`: the steps deploy would take, and the user-data and RunInstances request.
pub(crate) async fn plan(ctx: &Ctx<'_>, spec: &ResolvedSpec) -> Result<Plan> {
    let t = Target::resolve(ctx, spec).await?;
    let ec2 = ctx.ec2();
    let mut steps = Vec::new();

    let kps = ec2
        .describe_key_pairs(&[("key-name", vec![t.name.clone()])])
        .await?;
    steps.push(match kps.first() {
        None => step(
            PlanAction::Create,
            format!("key pair {}", t.name),
            Some(format!("from {}", t.key.path.display())),
        ),
        Some(k) => {
            let tags = super::ec2::tag_map(&k.tag_set);
            if !manage::owned_by(&tags, spec.name(), &spec.project) {
                return Err(not_ours("key pair", &t.name));
            }
            if tags.get(TAG_PUBLIC_KEY) == Some(&t.key.digest()) {
                step(PlanAction::Keep, format!("key pair {}", t.name), None)
            } else {
                step(
                    PlanAction::Replace,
                    format!("key pair {}", t.name),
                    Some(format!("public key changed: {}", t.key.path.display())),
                )
            }
        }
    });

    let groups = find_groups(ctx, &t).await?;
    steps.push(match groups.first() {
        None => step(
            PlanAction::Create,
            format!("security group {}", t.name),
            Some(format!(
                "{} from {} ({})",
                describe_rules(&t.rules),
                t.cidr,
                t.cidr_source
            )),
        ),
        Some(g) => {
            if !manage::owned_by(&super::ec2::tag_map(&g.tag_set), spec.name(), &spec.project) {
                return Err(not_ours("security group", &t.name));
            }
            let (add, remove) = rule_diff(&existing_rules(g), &t.rules);
            if add.is_empty() && remove.is_empty() {
                step(
                    PlanAction::Keep,
                    format!("security group {} ({})", t.name, g.group_id),
                    None,
                )
            } else {
                let mut why = Vec::new();
                why.extend(
                    add.iter()
                        .map(|r| format!("+{}/{} from {}", r.port, r.protocol, r.cidr)),
                );
                why.extend(
                    remove
                        .iter()
                        .map(|(p, port, c)| format!("-{port}/{p} from {c}")),
                );
                step(
                    PlanAction::Update,
                    format!("security group {} ({})", t.name, g.group_id),
                    Some(why.join(", ")),
                )
            }
        }
    });

    let market = match ctx.p.settings.spot {
        SpotPolicy::Never => "on-demand",
        SpotPolicy::Always => "spot",
        SpotPolicy::Auto => "spot, else on-demand",
    };
    let what = format!(
        "{} ({}), {} ({}), {market}",
        t.instance_type, t.arch, t.image_id, t.image_source
    );
    let live = manage::find_instances(ctx, spec.name(), &spec.project).await?;
    let current = live
        .iter()
        .find(|i| i.tags().get(TAG_SPEC_HASH) == Some(&t.spec_hash));
    match current {
        Some(i) => {
            if matches!(i.state(), "stopped" | "stopping") {
                steps.push(step(
                    PlanAction::Update,
                    format!("instance {}", i.instance_id),
                    Some("start the stopped instance".into()),
                ));
            } else {
                steps.push(step(
                    PlanAction::Keep,
                    format!("instance {}", i.instance_id),
                    None,
                ));
            }
        }
        None if live.is_empty() => steps.push(step(
            PlanAction::Create,
            format!("instance {}", instance_name(spec.name())),
            Some(what.clone()),
        )),
        None => {}
    }
    for i in &live {
        if current.is_some_and(|c| c.instance_id == i.instance_id) {
            continue;
        }
        let reason = if current.is_some() {
            "a duplicate left by an interrupted deploy".to_string()
        } else {
            format!(
                "spec changed; the new one is {what}; the root volume is deleted with the old one"
            )
        };
        steps.push(step(
            PlanAction::Replace,
            format!("instance {}", i.instance_id),
            Some(reason),
        ));
    }
    if !spec.secrets.is_empty() {
        steps.push(step(
            PlanAction::Update,
            format!("{} secrets", spec.secrets.len()),
            Some("sent over SSH into /run/sindri once the machine is reachable".into()),
        ));
    }
    // An unchanged, running environment whose only step would be re-sending secrets
    // is unchanged: the secrets go again on every deploy anyway.
    if steps
        .iter()
        .all(|s| s.action == PlanAction::Keep || s.resource.ends_with(" secrets"))
        && current.is_some()
    {
        steps.retain(|s| !s.resource.ends_with(" secrets"));
    }
    let spot = ctx.p.settings.spot != SpotPolicy::Never;
    Ok(Plan {
        provider: ProviderKind::Aws,
        environment: spec.name().to_string(),
        steps,
        artifacts: vec![
            RenderedArtifact {
                name: "user-data.sh".into(),
                content: t.user_data.clone(),
            },
            RenderedArtifact {
                name: "run-instances.txt".into(),
                content: t.render_request(spec, spot),
            },
        ],
    })
}

fn step(action: PlanAction, resource: String, reason: Option<String>) -> PlanStep {
    PlanStep {
        action,
        resource,
        reason,
    }
}

fn not_ours(what: &str, name: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("a {what} named {name} exists but sindri did not create it for this environment"),
    )
    .with_provider(ProviderKind::Aws)
    .with_hint(format!(
        "sindri will not touch it: rename or delete that {what}, or rename the environment"
    ))
}

fn describe_rules(rules: &[Rule]) -> String {
    let v: Vec<String> = rules
        .iter()
        .map(|r| format!("{}/{}", r.port, r.protocol))
        .collect();
    v.join(", ")
}

/// Rules to add, and existing rules to remove, to reach `want`.
fn rule_diff(
    have: &[(String, u16, String)],
    want: &[Rule],
) -> (Vec<Rule>, Vec<(String, u16, String)>) {
    let add = want
        .iter()
        .filter(|r| !have.contains(&r.key()))
        .cloned()
        .collect();
    let remove = have
        .iter()
        .filter(|h| !want.iter().any(|r| &r.key() == *h))
        .cloned()
        .collect();
    (add, remove)
}

async fn find_groups(ctx: &Ctx<'_>, t: &Target) -> Result<Vec<super::ec2::SecurityGroup>> {
    let mut filters = vec![("group-name", vec![t.name.clone()])];
    if let Some(v) = &t.vpc_id {
        filters.push(("vpc-id", vec![v.clone()]));
    }
    ctx.ec2().describe_security_groups(&filters).await
}

/// Imports the key pair, or keeps it when it holds the same key; replaces it when the
/// key changed.
async fn ensure_key_pair(ctx: &Ctx<'_>, spec: &ResolvedSpec, t: &Target) -> Result<()> {
    let ec2 = ctx.ec2();
    let existing = ec2
        .describe_key_pairs(&[("key-name", vec![t.name.clone()])])
        .await?;
    if let Some(k) = existing.first() {
        let tags = super::ec2::tag_map(&k.tag_set);
        if !manage::owned_by(&tags, spec.name(), &spec.project) {
            return Err(not_ours("key pair", &t.name));
        }
        if tags.get(TAG_PUBLIC_KEY) == Some(&t.key.digest()) {
            return Ok(());
        }
        ec2.delete_key_pair(&t.name).await?;
    }
    let mut tags = base_tags(spec.name(), &spec.project);
    tags.insert(TAG_PUBLIC_KEY.into(), t.key.digest());
    match ec2.import_key_pair(&t.name, &t.key.text, &tags).await {
        Ok(()) => Ok(()),
        // Imported by a concurrent deploy of the same environment: fine.
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the security group, or reconciles its rules; returns its id.
async fn ensure_security_group(
    ctx: &Ctx<'_>,
    spec: &ResolvedSpec,
    t: &Target,
    progress: &dyn Progress,
) -> Result<String> {
    let ec2 = ctx.ec2();
    let groups = find_groups(ctx, t).await?;
    let (id, have) = match groups.first() {
        Some(g) => {
            if !manage::owned_by(&super::ec2::tag_map(&g.tag_set), spec.name(), &spec.project) {
                return Err(not_ours("security group", &t.name));
            }
            (g.group_id.clone(), existing_rules(g))
        }
        None => {
            let description = format!(
                "sindri environment {} (project {})",
                spec.name(),
                spec.project
            );
            let id = ec2
                .create_security_group(
                    &t.name,
                    &description,
                    t.vpc_id.as_deref(),
                    &base_tags(spec.name(), &spec.project),
                )
                .await?;
            (id, Vec::new())
        }
    };
    let (add, remove) = rule_diff(&have, &t.rules);
    for r in &add {
        match ec2.ingress("AuthorizeSecurityGroupIngress", &id, r).await {
            Ok(()) => {}
            Err(f) if f.code() == Some("InvalidPermission.Duplicate") => {}
            Err(f) => return Err(ctx.api.error("AuthorizeSecurityGroupIngress", f)),
        }
    }
    for (protocol, port, cidr) in &remove {
        let r = Rule {
            protocol: protocol.clone(),
            port: *port,
            cidr: cidr.clone(),
            description: String::new(),
        };
        match ec2.ingress("RevokeSecurityGroupIngress", &id, &r).await {
            Ok(()) => {}
            Err(f) if f.code() == Some("InvalidPermission.NotFound") => {}
            Err(f) => return Err(ctx.api.error("RevokeSecurityGroupIngress", f)),
        }
        progress.message(&format!(
            "security group {}: removed {port}/{protocol} from {cidr}",
            t.name
        ));
    }
    Ok(id)
}

/// Launches the instance with the spot policy.
async fn launch(
    ctx: &Ctx<'_>,
    spec: &ResolvedSpec,
    t: &Target,
    sg: &str,
    progress: &dyn Progress,
) -> Result<Instance> {
    let ec2 = ctx.ec2();
    let ec2 = &ec2;
    let run = |spot: bool| async move { ec2.run_instances(&t.run_params(spec, sg, spot)).await };
    let to_error = |f: Failure| ctx.api.error("RunInstances", f);
    match ctx.p.settings.spot {
        SpotPolicy::Never => run(false).await.map_err(to_error),
        SpotPolicy::Always => run(true).await.map_err(|f| {
            let e = to_error(f);
            if e.kind() == ErrorKind::Capacity {
                e.with_hint(format!(
                    "no spot capacity for {} in {}; `spot: always` never falls back to on-demand: \
                     set providers.aws.spot: auto to allow it, or try another instance type or region",
                    t.instance_type, ctx.region
                ))
            } else {
                e
            }
        }),
        SpotPolicy::Auto => match run(true).await {
            Ok(i) => Ok(i),
            Err(Failure::Api(a)) if classify(&a.code, a.status) == ErrorKind::Capacity => {
                progress.warn(&format!(
                    "no spot capacity for {} in {} ({}): launching on-demand instead (providers.aws.spot: auto)",
                    t.instance_type, ctx.region, a.code
                ));
                run(false).await.map_err(to_error)
            }
            Err(f) => Err(to_error(f)),
        },
    }
}

/// `deploy`: see the module docs of `aws`.
pub(crate) async fn deploy(
    ctx: &Ctx<'_>,
    spec: &ResolvedSpec,
    opts: DeployOptions,
    progress: &dyn Progress,
) -> Result<Deployment> {
    let t = phase(
        progress,
        "resolve instance type and image",
        Target::resolve(ctx, spec),
    )
    .await?;
    progress.message(&format!(
        "{} ({}), {} ({}), in {}",
        t.instance_type, t.arch, t.image_id, t.image_source, ctx.region
    ));
    if t.cidr == "0.0.0.0/0" || t.cidr == "::/0" {
        progress.warn(&format!(
            "SSH and published ports are open to the whole internet ({} from {})",
            t.cidr, t.cidr_source
        ));
    } else {
        progress.message(&format!("SSH allowed from {} ({})", t.cidr, t.cidr_source));
    }
    for n in &t.notes {
        progress.warn(n);
    }

    let mut live = manage::find_instances(ctx, spec.name(), &spec.project).await?;
    live.sort_by_key(|i| i.state() != "running");
    let keep = live
        .iter()
        .position(|i| i.tags().get(TAG_SPEC_HASH) == Some(&t.spec_hash))
        .map(|idx| live.remove(idx));
    if !live.is_empty() {
        let ids: Vec<String> = live.iter().map(|i| i.instance_id.clone()).collect();
        let why = if keep.is_some() {
            "duplicates left by an interrupted deploy"
        } else {
            "the spec changed"
        };
        progress.warn(&format!(
            "replacing instance {} ({why}); its root volume is deleted with it",
            ids.join(", ")
        ));
        phase(
            progress,
            "terminate old instance",
            manage::terminate_and_wait(ctx, &live),
        )
        .await?;
    }

    // The group first: a foreign group squatting its name is refused before sindri
    // creates anything.
    let sg = phase(
        progress,
        "security group",
        ensure_security_group(ctx, spec, &t, progress),
    )
    .await?;
    phase(progress, "key pair", ensure_key_pair(ctx, spec, &t)).await?;
    let inst = match keep {
        Some(i) if matches!(i.state(), "stopped" | "stopping") => {
            phase(progress, "start instance", manage::start_instance(ctx, &i)).await?;
            i
        }
        Some(i) => i,
        None => {
            phase(
                progress,
                "launch instance",
                launch(ctx, spec, &t, &sg, progress),
            )
            .await?
        }
    };
    let mut d = record(ctx, spec, &t, &inst, &sg);
    if !opts.wait {
        return Ok(d);
    }
    let inst = phase(
        progress,
        "wait for running",
        manage::wait_running(ctx, &inst.instance_id),
    )
    .await?;
    if let Some(ip) = inst.public_ip() {
        d.details.insert("public_ip".into(), ip.to_string());
    }
    let session = manage::session_of(
        ctx,
        spec.name(),
        &spec.project,
        &inst,
        Some(&t.ssh_user),
        t.key.identity.clone(),
    )?;
    phase(progress, "wait for ssh", wait_ssh(ctx, &session, progress)).await?;
    if !spec.secrets.is_empty() {
        phase(
            progress,
            "deliver secrets",
            deliver_secrets(ctx, &session, spec),
        )
        .await?;
    }
    d.state = DeploymentState::Ready;
    d.updated_at = sindri_core::unix_now();
    Ok(d)
}

fn record(ctx: &Ctx<'_>, spec: &ResolvedSpec, t: &Target, inst: &Instance, sg: &str) -> Deployment {
    let mut d = Deployment::creating(spec.name(), ProviderKind::Aws, &spec.project, &t.spec_hash);
    d.resource_id = Some(inst.instance_id.clone());
    let mut details = BTreeMap::from([
        ("region".to_string(), ctx.region.clone()),
        ("instance_type".to_string(), t.instance_type.clone()),
        ("image".to_string(), t.image_id.clone()),
        (
            "market".to_string(),
            if inst.is_spot() { "spot" } else { "on-demand" }.to_string(),
        ),
        ("security_group".to_string(), sg.to_string()),
        ("key_pair".to_string(), t.name.clone()),
        ("ssh_user".to_string(), t.ssh_user.clone()),
    ]);
    if let Some(id) = &t.key.identity {
        details.insert("ssh_identity".into(), id.display().to_string());
    }
    if let Some(ip) = inst.public_ip() {
        details.insert("public_ip".into(), ip.to_string());
    }
    if let Some(az) = &inst.placement.availability_zone {
        details.insert("availability_zone".into(), az.clone());
    }
    if inst.is_spot() {
        details.insert(
            RUN_INTERRUPTION_CHECK.into(),
            userdata::INTERRUPTION_CHECK.into(),
        );
    }
    d.details = details;
    d
}

/// The deployment detail that tells the run supervisor what to poll for a spot
/// interruption notice (`sindri_runs::deployment_keys::INTERRUPTION_CHECK`).
pub(crate) const RUN_INTERRUPTION_CHECK: &str = "run_interruption_check";

/// Waits until SSH answers. `Unavailable` (still booting) is retried; `Auth` too, a
/// few times, since cloud-init installs the key shortly after sshd starts.
async fn wait_ssh(ctx: &Ctx<'_>, session: &SshSession, progress: &dyn Progress) -> Result<()> {
    let tuning = ctx.api.tuning;
    let mut last = None;
    for attempt in 0..tuning.max_polls {
        match session.connect_check().await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == ErrorKind::Unavailable
                    || (e.kind() == ErrorKind::Auth && attempt < 6) =>
            {
                if attempt % 6 == 5 {
                    progress.message(&format!(
                        "still waiting for SSH on {}",
                        session.target().url()
                    ));
                }
                last = Some(e);
                tokio::time::sleep(tuning.poll_interval).await;
            }
            Err(e) => return Err(e),
        }
    }
    let why = last.map(|e| e.message().to_string()).unwrap_or_default();
    Err(Error::new(
        ErrorKind::Unavailable,
        format!("SSH on {} did not answer after {} checks: {why}", session.target().url(), tuning.max_polls),
    )
    .with_provider(ProviderKind::Aws)
    .with_hint("the security group admits SSH from one address only: if yours changed, run `sindri deploy` again"))
}

/// Sends the secrets over SSH into the secrets directory (a tmpfs on Ubuntu): an env
/// file sourced by every exec, and mounted files. The script travels on stdin, with
/// values base64-encoded, so no value is on a command line or in a log.
async fn deliver_secrets(ctx: &Ctx<'_>, session: &SshSession, spec: &ResolvedSpec) -> Result<()> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let dir = quote(&ctx.p.secrets_dir);
    let mut env = String::new();
    let mut script = format!(
        "set -eu\numask 077\nd={dir}\nif [ \"$(id -u)\" -eq 0 ]; then S=; else S='sudo -n'; fi\n\
         $S mkdir -p \"$d\"\n$S chown \"$(id -u):$(id -g)\" \"$d\"\nchmod 0700 \"$d\"\n"
    );
    for s in &spec.secrets {
        match &s.mount {
            None => env.push_str(&format!("export {}={}\n", s.name, quote(s.value.expose()))),
            Some(path) => script.push_str(&format!(
                "printf '%s' '{}' | base64 -d > \"$d/.mount\"\n\
                 $S install -D -m 0400 -o \"$(id -u)\" -g \"$(id -g)\" \"$d/.mount\" {}\nrm -f \"$d/.mount\"\n",
                b64(s.value.expose()),
                quote(path)
            )),
        }
    }
    script.push_str(&format!(
        "printf '%s' '{}' | base64 -d > \"$d/env.tmp\"\nmv -f \"$d/env.tmp\" \"$d/env\"\n",
        b64(&env)
    ));
    let (code, _, stderr) = session.run("sh -s", Some(script.into_bytes())).await?;
    if code != 0 {
        return Err(Error::new(
            ErrorKind::Platform,
            format!(
                "delivering secrets to {} failed (exit code {code}): {}",
                session.target().host,
                String::from_utf8_lossy(&stderr).trim()
            ),
        )
        .with_provider(ProviderKind::Aws)
        .with_hint("the login user needs passwordless sudo (the default on Ubuntu AMIs)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_checked() {
        assert!(valid_cidr("203.0.113.7/32"));
        assert!(valid_cidr("0.0.0.0/0"));
        assert!(valid_cidr("2001:db8::/64"));
        assert!(!valid_cidr("203.0.113.7"));
        assert!(!valid_cidr("203.0.113.7/33"));
        assert_eq!(host_cidr("203.0.113.7").as_deref(), Some("203.0.113.7/32"));
        assert_eq!(host_cidr("nope"), None);
    }

    #[test]
    fn rule_diffs_add_missing_and_remove_stale() {
        let want = vec![Rule {
            protocol: "tcp".into(),
            port: 22,
            cidr: "1.1.1.1/32".into(),
            description: String::new(),
        }];
        let have = vec![
            ("tcp".to_string(), 22, "1.1.1.1/32".to_string()),
            ("tcp".to_string(), 22, "2.2.2.2/32".to_string()),
        ];
        let (add, remove) = rule_diff(&have, &want);
        assert!(add.is_empty());
        assert_eq!(
            remove,
            vec![("tcp".to_string(), 22, "2.2.2.2/32".to_string())]
        );
    }

    #[test]
    fn public_keys_are_found_and_checked() {
        let home = tempfile_home();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let env = AwsEnv::from_vars([("HOME", home.to_string_lossy().to_string())]);
        let e = public_key(&env, &AwsSettings::default(), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.hint().unwrap().contains("ssh-keygen"));
        std::fs::write(home.join(".ssh/id_rsa.pub"), "ssh-rsa AAAAB3 me@host\n").unwrap();
        std::fs::write(home.join(".ssh/id_rsa"), "private").unwrap();
        let k = public_key(&env, &AwsSettings::default(), None).unwrap();
        assert_eq!(k.path, home.join(".ssh/id_rsa.pub"));
        assert_eq!(k.identity, Some(home.join(".ssh/id_rsa")));
        std::fs::write(
            home.join(".ssh/id_ed25519.pub"),
            "ssh-ed25519 AAAAC3 me@host\n",
        )
        .unwrap();
        let k = public_key(&env, &AwsSettings::default(), None).unwrap();
        assert_eq!(
            k.path,
            home.join(".ssh/id_ed25519.pub"),
            "ed25519 is preferred"
        );
        assert_eq!(k.identity, None, "no private key beside it: ssh chooses");
        let settings = AwsSettings {
            ssh_public_key: Some("~/.ssh/id_rsa".into()),
            ..Default::default()
        };
        std::fs::write(
            home.join(".ssh/id_rsa"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = public_key(&env, &settings, None).unwrap_err();
        assert!(e.message().contains("not an OpenSSH public key"), "{e}");
        std::fs::remove_dir_all(&home).unwrap();
    }

    fn tempfile_home() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sindri-aws-home-{}-{}",
            std::process::id(),
            line!()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
