//! What sindri knows about EC2 without asking: which instance type fits
//! `deployment.resources`, what it costs, and where the official images are published.
//!
//! # Instance types from `deployment.resources`
//! `providers.aws.instance_type` always wins. Otherwise:
//!
//! | request                         | choice                                                     |
//! |---------------------------------|------------------------------------------------------------|
//! | nothing                         | `t3.medium` (2 vCPU, 4 GiB)                                |
//! | CPU/memory, no GPU              | the cheapest of `t3` (up to 2 vCPU / 8 GiB, burstable), `c7i` (2 GiB per vCPU), `m7i` (4 GiB), `r7i` (8 GiB) that has at least the cores and memory asked |
//! | GPU, no type or `a10g`          | `g5` (NVIDIA A10G): 1 GPU `g5.xlarge`…`g5.16xlarge` by CPU/memory, 4 `g5.12xlarge`/`g5.24xlarge`, 8 `g5.48xlarge` |
//! | `t4`                            | `g4dn` (1: `g4dn.xlarge`…`g4dn.16xlarge`, 4: `g4dn.12xlarge`, 8: `g4dn.metal`) |
//! | `l4`                            | `g6` (1: `g6.xlarge`…`g6.16xlarge`, 4: `g6.12xlarge`/`g6.24xlarge`, 8: `g6.48xlarge`) |
//! | `l40s`                          | `g6e` (1: `g6e.xlarge`…`g6e.16xlarge`, 4: `g6e.12xlarge`/`g6e.24xlarge`, 8: `g6e.48xlarge`) |
//! | `a100`                          | `p4d.24xlarge` (8 GPUs; fewer are rounded up)               |
//! | `h100`                          | `p5.48xlarge` (8 GPUs; fewer are rounded up)                |
//!
//! # Prices
//! [`on_demand_price`] is a small embedded table of **us-east-1 Linux on-demand list
//! prices** (USD per hour, 2025) for exactly the types above. Other regions cost
//! somewhat more; spot prices vary by the minute and are not estimated. Status and
//! `runs` use it for an estimate and say so.

use sindri_core::{Error, Result};
use sindri_spec::{ProviderKind, Resources};

/// One instance type sindri may choose: vCPUs, memory (GiB), GPUs, and price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TypeInfo {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: u32,
    pub gpus: u32,
    pub usd_per_hour: f64,
}

const fn t(
    name: &'static str,
    vcpus: u32,
    memory_gib: u32,
    gpus: u32,
    usd_per_hour: f64,
) -> TypeInfo {
    TypeInfo {
        name,
        vcpus,
        memory_gib,
        gpus,
        usd_per_hour,
    }
}

/// us-east-1 Linux on-demand list prices (USD/hour), 2025.
const TYPES: &[TypeInfo] = &[
    t("t3.micro", 2, 1, 0, 0.0104),
    t("t3.small", 2, 2, 0, 0.0208),
    t("t3.medium", 2, 4, 0, 0.0416),
    t("t3.large", 2, 8, 0, 0.0832),
    t("c7i.large", 2, 4, 0, 0.08925),
    t("c7i.xlarge", 4, 8, 0, 0.1785),
    t("c7i.2xlarge", 8, 16, 0, 0.357),
    t("c7i.4xlarge", 16, 32, 0, 0.714),
    t("c7i.8xlarge", 32, 64, 0, 1.428),
    t("c7i.12xlarge", 48, 96, 0, 2.142),
    t("c7i.16xlarge", 64, 128, 0, 2.856),
    t("c7i.24xlarge", 96, 192, 0, 4.284),
    t("c7i.48xlarge", 192, 384, 0, 8.568),
    t("m7i.large", 2, 8, 0, 0.1008),
    t("m7i.xlarge", 4, 16, 0, 0.2016),
    t("m7i.2xlarge", 8, 32, 0, 0.4032),
    t("m7i.4xlarge", 16, 64, 0, 0.8064),
    t("m7i.8xlarge", 32, 128, 0, 1.6128),
    t("m7i.12xlarge", 48, 192, 0, 2.4192),
    t("m7i.16xlarge", 64, 256, 0, 3.2256),
    t("m7i.24xlarge", 96, 384, 0, 4.8384),
    t("m7i.48xlarge", 192, 768, 0, 9.6768),
    t("r7i.large", 2, 16, 0, 0.1323),
    t("r7i.xlarge", 4, 32, 0, 0.2646),
    t("r7i.2xlarge", 8, 64, 0, 0.5292),
    t("r7i.4xlarge", 16, 128, 0, 1.0584),
    t("r7i.8xlarge", 32, 256, 0, 2.1168),
    t("r7i.12xlarge", 48, 384, 0, 3.1752),
    t("r7i.16xlarge", 64, 512, 0, 4.2336),
    t("r7i.24xlarge", 96, 768, 0, 6.3504),
    t("r7i.48xlarge", 192, 1536, 0, 12.7008),
    t("g5.xlarge", 4, 16, 1, 1.006),
    t("g5.2xlarge", 8, 32, 1, 1.212),
    t("g5.4xlarge", 16, 64, 1, 1.624),
    t("g5.8xlarge", 32, 128, 1, 2.448),
    t("g5.16xlarge", 64, 256, 1, 4.096),
    t("g5.12xlarge", 48, 192, 4, 5.672),
    t("g5.24xlarge", 96, 384, 4, 8.144),
    t("g5.48xlarge", 192, 768, 8, 16.288),
    t("g4dn.xlarge", 4, 16, 1, 0.526),
    t("g4dn.2xlarge", 8, 32, 1, 0.752),
    t("g4dn.4xlarge", 16, 64, 1, 1.204),
    t("g4dn.8xlarge", 32, 128, 1, 2.176),
    t("g4dn.16xlarge", 64, 256, 1, 4.352),
    t("g4dn.12xlarge", 48, 192, 4, 3.912),
    t("g4dn.metal", 96, 384, 8, 7.824),
    t("g6.xlarge", 4, 16, 1, 0.8048),
    t("g6.2xlarge", 8, 32, 1, 0.9776),
    t("g6.4xlarge", 16, 64, 1, 1.3232),
    t("g6.8xlarge", 32, 128, 1, 2.0144),
    t("g6.16xlarge", 64, 256, 1, 3.3968),
    t("g6.12xlarge", 48, 192, 4, 4.6016),
    t("g6.24xlarge", 96, 384, 4, 6.6752),
    t("g6.48xlarge", 192, 768, 8, 13.3504),
    t("g6e.xlarge", 4, 32, 1, 1.861),
    t("g6e.2xlarge", 8, 64, 1, 2.24208),
    t("g6e.4xlarge", 16, 128, 1, 3.00424),
    t("g6e.8xlarge", 32, 256, 1, 4.52856),
    t("g6e.16xlarge", 64, 512, 1, 7.57719),
    t("g6e.12xlarge", 48, 384, 4, 10.49264),
    t("g6e.24xlarge", 96, 768, 4, 15.06559),
    t("g6e.48xlarge", 192, 1536, 8, 30.13118),
    t("p4d.24xlarge", 96, 1152, 8, 21.957_642),
    t("p5.48xlarge", 192, 2048, 8, 55.04),
];

/// The on-demand price of `instance_type` from the embedded table, if it is there.
pub(crate) fn on_demand_price(instance_type: &str) -> Option<f64> {
    TYPES
        .iter()
        .find(|t| t.name == instance_type)
        .map(|t| t.usd_per_hour)
}

fn family_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The instance type for `resources`, per the table in the module docs.
pub(crate) fn choose_instance_type(resources: &Resources) -> Result<&'static str> {
    let cpus = resources.cpus.map(|c| c.whole()).unwrap_or(0);
    let mem_gib = resources.memory.map(|m| m.gib_ceil()).unwrap_or(0);
    let too_big = |what: String| {
        Error::invalid(format!("no instance type sindri knows fits {what}"))
            .with_provider(ProviderKind::Aws)
            .with_hint("name one with providers.aws.instance_type")
    };
    match &resources.gpu {
        Some(gpu) => {
            let kind = gpu.kind.as_deref().unwrap_or("a10g").to_ascii_lowercase();
            let kind = kind
                .trim_start_matches("nvidia-")
                .trim_start_matches("tesla-");
            let families: &[&str] = match kind {
                "a10g" | "a10" => &["g5"],
                "t4" => &["g4dn"],
                "l4" => &["g6"],
                "l40s" => &["g6e"],
                "a100" => &["p4d"],
                "h100" => &["p5"],
                other => {
                    return Err(Error::invalid(format!(
                        "deployment.resources.gpu.type `{other}` is not a GPU sindri maps to EC2"
                    ))
                    .with_provider(ProviderKind::Aws)
                    .with_hint("use a10g, t4, l4, l40s, a100 or h100, or name an instance type with providers.aws.instance_type"));
                }
            };
            let count = gpu.count.max(1);
            TYPES
                .iter()
                .filter(|t| families.contains(&family_of(t.name)))
                .filter(|t| {
                    t.gpus >= count && t.vcpus >= cpus && u64::from(t.memory_gib) >= mem_gib
                })
                .min_by(|a, b| {
                    a.gpus
                        .cmp(&b.gpus)
                        .then(a.usd_per_hour.total_cmp(&b.usd_per_hour))
                })
                .map(|t| t.name)
                .ok_or_else(|| {
                    too_big(format!(
                        "{count} × {kind} with {cpus} vCPUs and {mem_gib} GiB"
                    ))
                })
        }
        None if cpus == 0 && mem_gib == 0 => Ok("t3.medium"),
        None => TYPES
            .iter()
            .filter(|t| t.gpus == 0 && matches!(family_of(t.name), "t3" | "c7i" | "m7i" | "r7i"))
            .filter(|t| t.vcpus >= cpus.max(1) && u64::from(t.memory_gib) >= mem_gib)
            .min_by(|a, b| a.usd_per_hour.total_cmp(&b.usd_per_hour))
            .map(|t| t.name)
            .ok_or_else(|| too_big(format!("{cpus} vCPUs and {mem_gib} GiB"))),
    }
}

/// The public SSM parameter naming the current official image for an architecture
/// (`x86_64` or `arm64`): Canonical's Ubuntu 24.04, or AWS's Deep Learning Base AMI
/// (Ubuntu 22.04, NVIDIA driver and CUDA) when a GPU is requested.
pub(crate) fn image_parameter(arch: &str, gpu: bool, ubuntu_release: &str) -> String {
    let (ubuntu_arch, dl_arch) = if arch == "arm64" {
        ("arm64", "arm64")
    } else {
        ("amd64", "x86_64")
    };
    if gpu {
        format!(
            "/aws/service/deeplearning/ami/{dl_arch}/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
        )
    } else {
        let volume = if ubuntu_release == "22.04" {
            "ebs-gp2"
        } else {
            "ebs-gp3"
        };
        format!(
            "/aws/service/canonical/ubuntu/server/{ubuntu_release}/stable/current/{ubuntu_arch}/hvm/{volume}/ami-id"
        )
    }
}

/// The login user of an image, from its name: `ubuntu` for Ubuntu (and the Ubuntu
/// Deep Learning AMIs), `ec2-user` for Amazon Linux, RHEL and SUSE, `admin` for
/// Debian; `ubuntu` when the name says nothing.
pub(crate) fn login_user(image_name: &str) -> &'static str {
    let n = image_name.to_ascii_lowercase();
    if n.contains("ubuntu") {
        "ubuntu"
    } else if n.contains("debian") {
        "admin"
    } else if ["amzn", "amazon linux", "al2023", "rhel", "suse", "sles"]
        .iter()
        .any(|k| n.contains(k))
    {
        "ec2-user"
    } else if n.contains("fedora") {
        "fedora"
    } else if n.contains("centos") {
        "centos"
    } else {
        "ubuntu"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sindri_spec::{ByteSize, Cpus, GpuSpec};

    fn res(cpus: Option<f64>, mem_gib: Option<u64>, gpu: Option<(u32, Option<&str>)>) -> Resources {
        Resources {
            cpus: cpus.map(|c| Cpus::new(c).unwrap()),
            memory: mem_gib.map(|m| ByteSize(m << 30)),
            disk: None,
            gpu: gpu.map(|(count, kind)| GpuSpec {
                count,
                kind: kind.map(str::to_string),
            }),
        }
    }

    #[test]
    fn resources_map_to_the_cheapest_fitting_type() {
        assert_eq!(
            choose_instance_type(&res(None, None, None)).unwrap(),
            "t3.medium"
        );
        assert_eq!(
            choose_instance_type(&res(Some(0.5), Some(1), None)).unwrap(),
            "t3.micro"
        );
        assert_eq!(
            choose_instance_type(&res(Some(2.0), Some(8), None)).unwrap(),
            "t3.large"
        );
        assert_eq!(
            choose_instance_type(&res(Some(4.0), Some(8), None)).unwrap(),
            "c7i.xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(Some(4.0), Some(16), None)).unwrap(),
            "m7i.xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(Some(4.0), Some(32), None)).unwrap(),
            "r7i.xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(Some(16.0), None, None)).unwrap(),
            "c7i.4xlarge"
        );
        assert!(choose_instance_type(&res(Some(500.0), None, None)).is_err());
    }

    #[test]
    fn gpus_map_to_their_families() {
        assert_eq!(
            choose_instance_type(&res(None, None, Some((1, None)))).unwrap(),
            "g5.xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(Some(16.0), None, Some((1, None)))).unwrap(),
            "g5.4xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(None, None, Some((4, Some("a10g"))))).unwrap(),
            "g5.12xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(None, None, Some((1, Some("nvidia-tesla-t4"))))).unwrap(),
            "g4dn.xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(None, None, Some((1, Some("L40S"))))).unwrap(),
            "g6e.xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(None, None, Some((2, Some("a100"))))).unwrap(),
            "p4d.24xlarge"
        );
        assert_eq!(
            choose_instance_type(&res(None, None, Some((8, Some("h100"))))).unwrap(),
            "p5.48xlarge"
        );
        assert!(choose_instance_type(&res(None, None, Some((16, None)))).is_err());
        assert!(choose_instance_type(&res(None, None, Some((1, Some("tpu"))))).is_err());
    }

    #[test]
    fn every_type_sindri_chooses_has_a_price() {
        for t in TYPES {
            assert!(t.usd_per_hour > 0.0, "{}", t.name);
            assert_eq!(on_demand_price(t.name), Some(t.usd_per_hour));
        }
        assert_eq!(on_demand_price("x9.huge"), None);
    }

    #[test]
    fn image_parameters_follow_architecture_and_gpu() {
        assert_eq!(
            image_parameter("x86_64", false, "24.04"),
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
        );
        assert!(image_parameter("arm64", false, "24.04").contains("/arm64/"));
        assert!(
            image_parameter("x86_64", true, "24.04")
                .starts_with("/aws/service/deeplearning/ami/x86_64/")
        );
        assert_eq!(
            login_user("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101"),
            "ubuntu"
        );
        assert_eq!(login_user("al2023-ami-2023.6"), "ec2-user");
        assert_eq!(login_user("debian-12-amd64"), "admin");
    }
}
