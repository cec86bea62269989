//! The EC2, SSM and STS calls sindri makes, typed: request parameters in, parsed
//! answers out. Every Describe call that AWS paginates is read to its last page
//! (`NextToken`); `DescribeKeyPairs` is not paginated by AWS.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::ProviderKind;

use super::client::{Api, Failure, Params, Service};

/// A list of `<item>` elements, as EC2 writes every list.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Items<T> {
    #[serde(rename = "item", default = "Vec::new")]
    pub item: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items { item: Vec::new() }
    }
}

/// A resource tag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Tag {
    pub key: String,
    pub value: String,
}

/// The tags of a resource as a map.
pub(crate) fn tag_map(tags: &Items<Tag>) -> BTreeMap<String, String> {
    tags.item
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct InstanceState {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Placement {
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct StateReason {
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct InstanceEbs {
    pub volume_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct InstanceBlockDevice {
    pub device_name: String,
    pub ebs: InstanceEbs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GroupRef {
    pub group_id: String,
}

/// An EC2 instance, as DescribeInstances and RunInstances describe it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Instance {
    pub instance_id: String,
    pub image_id: Option<String>,
    pub instance_state: InstanceState,
    pub dns_name: Option<String>,
    pub ip_address: Option<String>,
    pub key_name: Option<String>,
    pub instance_type: Option<String>,
    pub launch_time: Option<String>,
    pub placement: Placement,
    pub architecture: Option<String>,
    pub instance_lifecycle: Option<String>,
    pub spot_instance_request_id: Option<String>,
    pub tag_set: Items<Tag>,
    pub state_reason: Option<StateReason>,
    pub block_device_mapping: Items<InstanceBlockDevice>,
    pub group_set: Items<GroupRef>,
}

impl Instance {
    pub(crate) fn tags(&self) -> BTreeMap<String, String> {
        tag_map(&self.tag_set)
    }

    pub(crate) fn state(&self) -> &str {
        &self.instance_state.name
    }

    /// `pending`, `running`, `stopping` or `stopped`: not on its way out.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.state(), "pending" | "running" | "stopping" | "stopped")
    }

    pub(crate) fn is_spot(&self) -> bool {
        self.instance_lifecycle.as_deref() == Some("spot")
    }

    pub(crate) fn public_ip(&self) -> Option<&str> {
        self.ip_address.as_deref().filter(|s| !s.is_empty())
    }

    pub(crate) fn public_dns(&self) -> Option<&str> {
        self.dns_name.as_deref().filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Reservation {
    instances_set: Items<Instance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DescribeInstancesResponse {
    reservation_set: Items<Reservation>,
    next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RunInstancesResponse {
    instances_set: Items<Instance>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct IpRange {
    pub cidr_ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Ipv6Range {
    pub cidr_ipv6: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct IpPermission {
    pub ip_protocol: String,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub ip_ranges: Items<IpRange>,
    pub ipv6_ranges: Items<Ipv6Range>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SecurityGroup {
    pub group_id: String,
    pub group_name: String,
    pub vpc_id: Option<String>,
    pub ip_permissions: Items<IpPermission>,
    pub tag_set: Items<Tag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DescribeSecurityGroupsResponse {
    security_group_info: Items<SecurityGroup>,
    next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateSecurityGroupResponse {
    group_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct KeyPair {
    pub key_pair_id: Option<String>,
    pub key_name: String,
    pub tag_set: Items<Tag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DescribeKeyPairsResponse {
    key_set: Items<KeyPair>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ProcessorInfo {
    pub supported_architectures: Items<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct InstanceTypeInfo {
    pub instance_type: String,
    pub processor_info: ProcessorInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DescribeInstanceTypesResponse {
    instance_type_set: Items<InstanceTypeInfo>,
    next_token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ImageEbs {
    pub volume_size: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ImageBlockDevice {
    pub device_name: String,
    pub ebs: Option<ImageEbs>,
}

/// An AMI.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Image {
    pub image_id: String,
    pub name: Option<String>,
    pub architecture: Option<String>,
    pub root_device_name: Option<String>,
    pub block_device_mapping: Items<ImageBlockDevice>,
}

impl Image {
    /// The root volume's size in GiB as the image defines it.
    pub(crate) fn root_size_gib(&self) -> Option<u64> {
        let root = self.root_device_name.as_deref()?;
        self.block_device_mapping
            .item
            .iter()
            .find(|b| b.device_name == root)
            .and_then(|b| b.ebs.as_ref())
            .and_then(|e| e.volume_size)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DescribeImagesResponse {
    images_set: Items<Image>,
    next_token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Subnet {
    vpc_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DescribeSubnetsResponse {
    subnet_set: Items<Subnet>,
}

/// Who the credentials belong to (STS GetCallerIdentity).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct GetCallerIdentityResponse {
    get_caller_identity_result: CallerIdentity,
}

fn parse<T: DeserializeOwned>(action: &str, xml: &str) -> Result<T> {
    quick_xml::de::from_str(xml).map_err(|e| {
        Error::new(
            ErrorKind::Platform,
            format!("{action}: cannot read AWS's answer: {e}"),
        )
        .with_provider(ProviderKind::Aws)
    })
}

/// The typed calls, in one region.
pub(crate) struct Ec2<'a> {
    pub api: &'a Api,
    pub region: &'a str,
}

impl Ec2<'_> {
    async fn call(&self, action: &str, p: &Params) -> std::result::Result<String, Failure> {
        self.api.query(Service::Ec2, self.region, action, p).await
    }

    async fn call_ok(&self, action: &str, p: &Params) -> Result<String> {
        self.call(action, p)
            .await
            .map_err(|f| self.api.error(action, f))
    }

    /// Reads every page of a paginated Describe call.
    async fn paginate<R, T>(
        &self,
        action: &str,
        base: &Params,
        max_page: u32,
        split: impl Fn(R) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>>
    where
        R: DeserializeOwned,
    {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut p = base.clone();
            p.set(
                "MaxResults",
                self.api.tuning.page_size.clamp(5, max_page).to_string(),
            );
            if let Some(t) = &token {
                p.set("NextToken", t.clone());
            }
            let xml = self.call_ok(action, &p).await?;
            let (items, next) = split(parse::<R>(action, &xml)?);
            out.extend(items);
            match next.filter(|t| !t.is_empty()) {
                Some(t) if !seen.insert(t.clone()) => {
                    return Err(Error::new(
                        ErrorKind::Platform,
                        format!("{action}: AWS returned the same page token twice"),
                    )
                    .with_provider(ProviderKind::Aws));
                }
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Instances matching `filters`, every page.
    pub(crate) async fn describe_instances(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<Instance>> {
        let mut p = Params::new();
        p.filters(filters);
        self.paginate(
            "DescribeInstances",
            &p,
            1000,
            |r: DescribeInstancesResponse| {
                (
                    r.reservation_set
                        .item
                        .into_iter()
                        .flat_map(|r| r.instances_set.item)
                        .collect(),
                    r.next_token,
                )
            },
        )
        .await
    }

    /// One instance by id; `None` when AWS does not know it.
    pub(crate) async fn instance(&self, id: &str) -> Result<Option<Instance>> {
        let mut p = Params::new();
        p.set("InstanceId.1", id);
        match self.call("DescribeInstances", &p).await {
            Ok(xml) => {
                let r: DescribeInstancesResponse = parse("DescribeInstances", &xml)?;
                Ok(r.reservation_set
                    .item
                    .into_iter()
                    .flat_map(|r| r.instances_set.item)
                    .next())
            }
            Err(f)
                if matches!(
                    f.code(),
                    Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
                ) =>
            {
                Ok(None)
            }
            Err(f) => Err(self.api.error("DescribeInstances", f)),
        }
    }

    /// Launches one instance; the failure is returned raw so callers can react to
    /// capacity errors.
    pub(crate) async fn run_instances(&self, p: &Params) -> std::result::Result<Instance, Failure> {
        let xml = self.call("RunInstances", p).await?;
        let r: RunInstancesResponse = parse("RunInstances", &xml).map_err(Failure::Local)?;
        r.instances_set.item.into_iter().next().ok_or_else(|| {
            Failure::Local(
                Error::new(
                    ErrorKind::Platform,
                    "RunInstances answered without an instance",
                )
                .with_provider(ProviderKind::Aws),
            )
        })
    }

    pub(crate) async fn instances_action(
        &self,
        action: &str,
        ids: &[String],
    ) -> std::result::Result<(), Failure> {
        let mut p = Params::new();
        for (i, id) in ids.iter().enumerate() {
            p.set(format!("InstanceId.{}", i + 1), id.clone());
        }
        self.call(action, &p).await.map(|_| ())
    }

    /// Sets what a shutdown from inside instance `id` does: `stop` or `terminate`.
    pub(crate) async fn set_shutdown_behavior(&self, id: &str, behavior: &str) -> Result<()> {
        let mut p = Params::new();
        p.set("InstanceId", id)
            .set("Attribute", "instanceInitiatedShutdownBehavior")
            .set("Value", behavior);
        self.call_ok("ModifyInstanceAttribute", &p)
            .await
            .map(|_| ())
    }

    pub(crate) async fn cancel_spot_request(&self, id: &str) -> Result<()> {
        let mut p = Params::new();
        p.set("SpotInstanceRequestId.1", id);
        match self.call("CancelSpotInstanceRequests", &p).await {
            Ok(_) => Ok(()),
            Err(f) if f.code().is_some_and(|c| c.ends_with(".NotFound")) => Ok(()),
            Err(f) => Err(self.api.error("CancelSpotInstanceRequests", f)),
        }
    }

    /// Security groups matching `filters`, every page.
    pub(crate) async fn describe_security_groups(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<SecurityGroup>> {
        let mut p = Params::new();
        p.filters(filters);
        self.paginate(
            "DescribeSecurityGroups",
            &p,
            1000,
            |r: DescribeSecurityGroupsResponse| (r.security_group_info.item, r.next_token),
        )
        .await
    }

    pub(crate) async fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<String> {
        let mut p = Params::new();
        p.set("GroupName", name)
            .set("GroupDescription", description);
        if let Some(v) = vpc_id {
            p.set("VpcId", v);
        }
        p.tag_spec(1, "security-group", tags);
        let xml = self.call_ok("CreateSecurityGroup", &p).await.map_err(|e| {
            if e.message().contains("VPCIdNotSpecified") {
                e.with_hint("this account has no default VPC: set providers.aws.subnet_id to a subnet to launch in")
            } else {
                e
            }
        })?;
        Ok(parse::<CreateSecurityGroupResponse>("CreateSecurityGroup", &xml)?.group_id)
    }

    /// Adds (`Authorize…`) or removes (`Revoke…`) one ingress rule.
    pub(crate) async fn ingress(
        &self,
        action: &str,
        group_id: &str,
        rule: &Rule,
    ) -> std::result::Result<(), Failure> {
        let mut p = Params::new();
        p.set("GroupId", group_id)
            .set("IpPermissions.1.IpProtocol", rule.protocol.clone())
            .set("IpPermissions.1.FromPort", rule.port.to_string())
            .set("IpPermissions.1.ToPort", rule.port.to_string());
        if rule.cidr.contains(':') {
            p.set("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", rule.cidr.clone());
        } else {
            p.set("IpPermissions.1.IpRanges.1.CidrIp", rule.cidr.clone());
        }
        if action.starts_with("Authorize") {
            let key = if rule.cidr.contains(':') {
                "Ipv6Ranges"
            } else {
                "IpRanges"
            };
            p.set(
                format!("IpPermissions.1.{key}.1.Description"),
                rule.description.clone(),
            );
        }
        self.call(action, &p).await.map(|_| ())
    }

    pub(crate) async fn delete_security_group(
        &self,
        group_id: &str,
    ) -> std::result::Result<(), Failure> {
        let mut p = Params::new();
        p.set("GroupId", group_id);
        self.call("DeleteSecurityGroup", &p).await.map(|_| ())
    }

    /// Key pairs matching `filters` (AWS does not paginate this call).
    pub(crate) async fn describe_key_pairs(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<KeyPair>> {
        let mut p = Params::new();
        p.filters(filters);
        let xml = self.call_ok("DescribeKeyPairs", &p).await?;
        Ok(parse::<DescribeKeyPairsResponse>("DescribeKeyPairs", &xml)?
            .key_set
            .item)
    }

    pub(crate) async fn import_key_pair(
        &self,
        name: &str,
        public_key: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        use base64::Engine;
        let mut p = Params::new();
        p.set("KeyName", name).set(
            "PublicKeyMaterial",
            base64::engine::general_purpose::STANDARD.encode(public_key.trim().as_bytes()),
        );
        p.tag_spec(1, "key-pair", tags);
        self.call_ok("ImportKeyPair", &p).await.map(|_| ())
    }

    pub(crate) async fn delete_key_pair(&self, name: &str) -> Result<()> {
        let mut p = Params::new();
        p.set("KeyName", name);
        match self.call("DeleteKeyPair", &p).await {
            Ok(_) => Ok(()),
            Err(f) if f.code() == Some("InvalidKeyPair.NotFound") => Ok(()),
            Err(f) => Err(self.api.error("DeleteKeyPair", f)),
        }
    }

    /// The architectures an instance type runs (`x86_64`, `arm64`).
    pub(crate) async fn architectures(&self, instance_type: &str) -> Result<Vec<String>> {
        let mut p = Params::new();
        p.set("InstanceType.1", instance_type);
        let found = self
            .paginate("DescribeInstanceTypes", &p, 100, |r: DescribeInstanceTypesResponse| {
                (r.instance_type_set.item, r.next_token)
            })
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::Invalid || e.message().contains("InvalidInstanceType") {
                    Error::invalid(format!("`{instance_type}` is not an EC2 instance type in this region"))
                        .with_provider(ProviderKind::Aws)
                        .with_hint("check providers.aws.instance_type against `aws ec2 describe-instance-types`")
                } else {
                    e
                }
            })?;
        let t = found
            .into_iter()
            .find(|t| t.instance_type == instance_type)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "`{instance_type}` is not an EC2 instance type in this region"
                ))
                .with_provider(ProviderKind::Aws)
                .with_hint(
                    "check providers.aws.instance_type against `aws ec2 describe-instance-types`",
                )
            })?;
        Ok(t.processor_info.supported_architectures.item)
    }

    /// One AMI by id.
    pub(crate) async fn image(&self, id: &str) -> Result<Image> {
        let mut p = Params::new();
        p.set("ImageId.1", id);
        let not_found = || {
            Error::invalid(format!("the AMI `{id}` does not exist in this region or is not visible to this account"))
                .with_provider(ProviderKind::Aws)
                .with_hint("AMI ids are per region: check deployment.image, or leave it out for the latest Ubuntu")
        };
        let xml = match self.call("DescribeImages", &p).await {
            Ok(x) => x,
            Err(f) if f.code().is_some_and(|c| c.starts_with("InvalidAMIID.")) => {
                return Err(not_found());
            }
            Err(f) => return Err(self.api.error("DescribeImages", f)),
        };
        let r: DescribeImagesResponse = parse("DescribeImages", &xml)?;
        let _ = r.next_token;
        r.images_set
            .item
            .into_iter()
            .find(|i| i.image_id == id)
            .ok_or_else(not_found)
    }

    /// The VPC of a subnet.
    pub(crate) async fn subnet_vpc(&self, subnet_id: &str) -> Result<String> {
        let mut p = Params::new();
        p.set("SubnetId.1", subnet_id);
        let xml = self.call_ok("DescribeSubnets", &p).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::invalid(format!(
                    "providers.aws.subnet_id: `{subnet_id}` does not exist in this region"
                ))
                .with_provider(ProviderKind::Aws)
            } else {
                e
            }
        })?;
        let r: DescribeSubnetsResponse = parse("DescribeSubnets", &xml)?;
        r.subnet_set
            .item
            .into_iter()
            .find_map(|s| s.vpc_id)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "providers.aws.subnet_id: `{subnet_id}` does not exist"
                ))
                .with_provider(ProviderKind::Aws)
            })
    }

    /// An SSM parameter's value (public `/aws/service/...` parameters included).
    pub(crate) async fn ssm_parameter(&self, name: &str) -> std::result::Result<String, Failure> {
        let v = self
            .api
            .json(
                Service::Ssm,
                self.region,
                "AmazonSSM",
                "GetParameter",
                &serde_json::json!({ "Name": name }),
            )
            .await?;
        v.pointer("/Parameter/Value")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::Local(
                    Error::new(
                        ErrorKind::Platform,
                        format!("GetParameter {name}: the answer has no value"),
                    )
                    .with_provider(ProviderKind::Aws),
                )
            })
    }

    /// The account and identity behind the credentials.
    pub(crate) async fn caller_identity(&self) -> Result<CallerIdentity> {
        let xml = self
            .api
            .query(
                Service::Sts,
                self.region,
                "GetCallerIdentity",
                &Params::new(),
            )
            .await
            .map_err(|f| self.api.error("GetCallerIdentity", f))?;
        Ok(
            parse::<GetCallerIdentityResponse>("GetCallerIdentity", &xml)?
                .get_caller_identity_result,
        )
    }
}

/// One ingress rule sindri manages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rule {
    pub protocol: String,
    pub port: u16,
    pub cidr: String,
    pub description: String,
}

impl Rule {
    pub(crate) fn key(&self) -> (String, u16, String) {
        (self.protocol.clone(), self.port, self.cidr.clone())
    }
}

/// The single-port rules a group has now, as (protocol, port, cidr).
pub(crate) fn existing_rules(g: &SecurityGroup) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for perm in &g.ip_permissions.item {
        let (Some(from), Some(to)) = (perm.from_port, perm.to_port) else {
            continue;
        };
        if from != to || !(1..=65535).contains(&from) {
            continue;
        }
        for r in &perm.ip_ranges.item {
            if let Some(c) = &r.cidr_ip {
                out.push((perm.ip_protocol.clone(), from as u16, c.clone()));
            }
        }
        for r in &perm.ipv6_ranges.item {
            if let Some(c) = &r.cidr_ipv6 {
                out.push((perm.ip_protocol.clone(), from as u16, c.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_instances_answers_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-0abc</instanceId>
          <imageId>ami-1</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <dnsName>ec2-1-2-3-4.compute-1.amazonaws.com</dnsName>
          <instanceType>t3.medium</instanceType>
          <launchTime>2026-11-23T07:47:31.000Z</launchTime>
          <placement><availabilityZone>us-east-1a</availabilityZone></placement>
          <ipAddress>1.2.3.4</ipAddress>
          <instanceLifecycle>spot</instanceLifecycle>
          <networkInterfaceSet><item><groupSet><item><groupId>sg-9</groupId></item></groupSet></item></networkInterfaceSet>
          <groupSet><item><groupId>sg-1</groupId><groupName>x</groupName></item></groupSet>
          <tagSet>
            <item><key>sindri.managed</key><value>true</value></item>
            <item><key>sindri.environment</key><value>dev</value></item>
          </tagSet>
          <blockDeviceMapping><item><deviceName>/dev/sda1</deviceName><ebs><volumeId>vol-1</volumeId></ebs></item></blockDeviceMapping>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>page-2</nextToken>
</DescribeInstancesResponse>"#;
        let r: DescribeInstancesResponse = parse("DescribeInstances", xml).unwrap();
        assert_eq!(r.next_token.as_deref(), Some("page-2"));
        let i = &r.reservation_set.item[0].instances_set.item[0];
        assert_eq!(i.instance_id, "i-0abc");
        assert_eq!(i.state(), "running");
        assert_eq!(i.public_ip(), Some("1.2.3.4"));
        assert!(i.is_spot());
        assert_eq!(i.tags()["sindri.environment"], "dev");
        assert_eq!(i.group_set.item[0].group_id, "sg-1");
        assert_eq!(
            i.block_device_mapping.item[0].ebs.volume_id.as_deref(),
            Some("vol-1")
        );
        let empty: DescribeInstancesResponse = parse(
            "DescribeInstances",
            "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>",
        )
        .unwrap();
        assert!(empty.reservation_set.item.is_empty());
        assert!(empty.next_token.is_none());
    }

    #[test]
    fn security_group_rules_are_read_per_port_and_cidr() {
        let xml = "<DescribeSecurityGroupsResponse><securityGroupInfo><item><groupId>sg-1</groupId><groupName>n</groupName>\
            <ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>\
            <ipRanges><item><cidrIp>1.2.3.4/32</cidrIp></item></ipRanges><ipv6Ranges/></item></ipPermissions>\
            <tagSet/></item></securityGroupInfo></DescribeSecurityGroupsResponse>";
        let r: DescribeSecurityGroupsResponse = parse("DescribeSecurityGroups", xml).unwrap();
        let rules = existing_rules(&r.security_group_info.item[0]);
        assert_eq!(
            rules,
            vec![("tcp".to_string(), 22, "1.2.3.4/32".to_string())]
        );
    }

    #[test]
    fn instance_type_architectures_parse() {
        let xml = "<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>t4g.small</instanceType>\
            <processorInfo><supportedArchitectures><item>arm64</item></supportedArchitectures></processorInfo>\
            </item></instanceTypeSet></DescribeInstanceTypesResponse>";
        let r: DescribeInstanceTypesResponse = parse("DescribeInstanceTypes", xml).unwrap();
        assert_eq!(
            r.instance_type_set.item[0]
                .processor_info
                .supported_architectures
                .item,
            vec!["arm64"]
        );
    }
}
