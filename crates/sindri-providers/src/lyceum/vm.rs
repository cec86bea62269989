//! A sindri spec as a Lyceum VM: the create body and the display name that is the
//! VM's only identity.
//!
//! Lyceum keeps no labels or tags: `display_name` is all a client can set. sindri
//! writes `sindri-<environment>-<project id>` there (letters, digits and `-` only, at
//! most 100 characters), so `list_owned` and `resources cleanup` tell sindri's VMs from
//! others and two projects' environments of the same name apart. The project id is
//! fixed-length hex, so the name parses back from the right even though an environment
//! name may contain `-`. No spec hash is kept in it: Lyceum cannot rename a VM, so a
//! hash would go stale with the first in-place update (docs/adr/0008).
//! Names of the older form `sindri-<environment>-<project id>-<spec hash>` are still
//! recognised, so VMs rented before are found (and never billed unseen).

use serde_json::{Value, json};
use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::{ProviderKind, Spec};

use super::api::{GPU_COUNTS, Vm};

/// The hardware profiles Lyceum rents (its 400 for an unknown profile lists these).
pub const PROFILES: [&str; 6] = ["a100", "b200", "b300", "h100", "h200", "l40s"];

/// The prefix of every display name sindri sets.
pub const PREFIX: &str = "sindri-";

/// The VM a spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Hardware profile.
    pub profile: String,
    /// GPUs: 1, 2, 4 or 8.
    pub count: u32,
    /// `on-demand` or `spot`.
    pub instance_type: String,
    /// See the module docs.
    pub display_name: String,
}

impl VmSpec {
    /// The create body.
    pub fn body(&self, public_key: &str) -> Value {
        json!({
            "user_public_key": public_key,
            "hardware_profile": self.profile,
            "instance_specs": {"gpu_count": self.count},
            "instance_type": self.instance_type,
            "display_name": self.display_name,
        })
    }

    /// E.g. `on-demand h100 x2`.
    pub fn describe(&self) -> String {
        format!("{} {} x{}", self.instance_type, self.profile, self.count)
    }

    /// Whether `vm` is this hardware (same profile, count and instance type).
    pub fn same_hardware(&self, vm: &Vm) -> bool {
        vm.profile().as_deref() == Some(self.profile.as_str())
            && vm.count() == Some(self.count)
            && vm
                .instance_type
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
                == Some(self.instance_type.as_str())
    }
}

/// The display name of environment `name` of `project`.
pub fn display_name(name: &str, project: &str) -> String {
    format!("{PREFIX}{name}-{project}")
}

/// Environment and project from a display name sindri set (either form, see the
/// module docs); `None` for any other VM.
pub fn parse_display_name(display: &str) -> Option<(String, String)> {
    let rest = display.strip_prefix(PREFIX)?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let split = |s: &str| {
        s.rsplit_once('-')
            .filter(|(env, project)| !env.is_empty() && hex(project, 12))
            .map(|(env, project)| (env.to_string(), project.to_string()))
    };
    match rest.rsplit_once('-') {
        Some((before, hash)) if hex(hash, 16) => split(before),
        _ => split(rest),
    }
}

/// `providers.lyceum.hardware_profile`, else the profile `resources.gpu.type` names
/// (`H100`, `nvidia-h100-80gb` → `h100`).
pub fn profile(spec: &Spec) -> Result<String> {
    let configured = spec
        .providers
        .lyceum
        .as_ref()
        .and_then(|l| l.hardware_profile.clone());
    let (raw, from) = match (
        configured,
        spec.deployment
            .resources
            .gpu
            .as_ref()
            .and_then(|g| g.kind.clone()),
    ) {
        (Some(p), _) => (p, "providers.lyceum.hardware_profile"),
        (None, Some(t)) => (t, "deployment.resources.gpu.type"),
        (None, None) => {
            return Err(Error::invalid(
                "Lyceum needs to know which GPU to rent, and neither providers.lyceum.hardware_profile nor deployment.resources.gpu.type says",
            )
            .with_provider(ProviderKind::Lyceum)
            .with_hint(format!(
                "set providers.lyceum.hardware_profile to one of: {}",
                PROFILES.join(", ")
            )));
        }
    };
    let key = raw.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    let key = key.trim_start_matches("nvidia-");
    let found = PROFILES.iter().find(|p| {
        key == **p
            || key
                .strip_prefix(**p)
                .is_some_and(|rest| rest.starts_with('-'))
    });
    match found {
        Some(p) => Ok(p.to_string()),
        None => Err(
            Error::invalid(format!("{from} `{raw}` is not a Lyceum hardware profile"))
                .with_provider(ProviderKind::Lyceum)
                .with_hint(format!("use one of: {}", PROFILES.join(", "))),
        ),
    }
}

/// The VM for `spec`.
pub fn build(spec: &ResolvedSpec) -> Result<VmSpec> {
    let s = &spec.spec;
    let profile = profile(s)?;
    let count = s
        .deployment
        .resources
        .gpu
        .as_ref()
        .map(|g| g.count)
        .unwrap_or(1);
    if !GPU_COUNTS.contains(&count) {
        // Lyceum turns 0 into 1 and answers other counts with an unhelpful 400.
        return Err(Error::invalid(format!(
            "deployment.resources.gpu.count is {count}, and Lyceum VMs have 1, 2, 4 or 8 GPUs"
        ))
        .with_provider(ProviderKind::Lyceum)
        .with_hint("set deployment.resources.gpu.count to 1, 2, 4 or 8"));
    }
    let spot = s.providers.lyceum.as_ref().is_some_and(|l| l.spot);
    let display_name = display_name(spec.name(), &spec.project);
    // A name that does not parse back would make the VM invisible to the next
    // deploy, which would rent another.
    if parse_display_name(&display_name).is_none() {
        return Err(Error::internal(format!(
            "project id `{}` cannot be encoded in a Lyceum display name (expected 12 hex digits)",
            spec.project
        ))
        .with_provider(ProviderKind::Lyceum));
    }
    Ok(VmSpec {
        profile,
        count,
        instance_type: if spot { "spot" } else { "on-demand" }.to_string(),
        display_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ResolvedSpec {
        let s: Spec = sindri_spec::load_str(yaml, "sindri.yaml").unwrap_or_else(|d| panic!("{d}"));
        ResolvedSpec::new(s, std::path::Path::new("/p/sindri.yaml"))
    }

    #[test]
    fn display_names_round_trip_and_reject_strangers() {
        let d = display_name("my-env-2", "0123456789ab");
        assert_eq!(d, "sindri-my-env-2-0123456789ab");
        assert_eq!(
            parse_display_name(&d),
            Some(("my-env-2".into(), "0123456789ab".into()))
        );
        // The form with a spec hash, written by earlier versions.
        assert_eq!(
            parse_display_name("sindri-my-env-2-0123456789ab-0011223344556677"),
            Some(("my-env-2".into(), "0123456789ab".into()))
        );
        // An environment whose name ends in 12 hex digits is still itself.
        assert_eq!(
            parse_display_name("sindri-a-0123456789ab-ba9876543210"),
            Some(("a-0123456789ab".into(), "ba9876543210".into()))
        );
        for other in [
            "sky-cluster-abc",
            "sindri-x",
            "sindri-x-0123456789",
            "sindri--0123456789ab",
            "sindri--0123456789ab-0011223344556677",
        ] {
            assert_eq!(parse_display_name(other), None, "{other}");
        }
    }

    #[test]
    fn profiles_and_counts_are_checked_before_any_call() {
        let s = spec(
            "name: a\ndeployment:\n  provider: lyceum\n  resources:\n    gpu: {count: 2, type: NVIDIA-H100-80GB}\nproviders:\n  lyceum:\n    spot: true\n",
        );
        let v = build(&s).unwrap();
        assert_eq!(
            (v.profile.as_str(), v.count, v.instance_type.as_str()),
            ("h100", 2, "spot")
        );
        assert_eq!(v.body("ssh-ed25519 K")["instance_specs"]["gpu_count"], 2);
        assert!(parse_display_name(&v.display_name).is_some());
        let s = spec(
            "name: a\ndeployment:\n  provider: lyceum\n  resources:\n    gpu: {count: 3, type: h100}\n",
        );
        assert!(build(&s).unwrap_err().message().contains("1, 2, 4 or 8"));
        let s = spec(
            "name: a\ndeployment:\n  provider: lyceum\n  resources:\n    gpu: {count: 1, type: l40}\n",
        );
        assert!(build(&s).unwrap_err().hint().unwrap().contains("l40s"));
        let s = spec("name: a\ndeployment:\n  provider: lyceum\n");
        assert!(
            build(&s)
                .unwrap_err()
                .hint()
                .unwrap()
                .contains("hardware_profile")
        );
        let s = spec(
            "name: a\ndeployment:\n  provider: lyceum\nproviders:\n  lyceum:\n    hardware_profile: L40S\n",
        );
        let v = build(&s).unwrap();
        assert_eq!(
            (v.profile.as_str(), v.count, v.instance_type.as_str()),
            ("l40s", 1, "on-demand")
        );
    }
}
