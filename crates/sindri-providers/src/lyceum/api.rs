//! The calls sindri makes to Lyceum's VM API, typed after the responses recorded
//! from the real service (Lyceum publishes no description; see
//! shared/api-specs/lyceum and its README), with the service's quirks handled here:
//! - capacity exhaustion is HTTP 500 "could not be provisioned" on create
//!   ([`classify_create`]);
//! - `ip_address` is `null`, a bare host, or `host:port` ([`parse_ip_address`]);
//! - the create answer has `hardware_profile` and `gpu_count` null at the top level,
//!   the real values under `instance_specs` ([`Vm::profile`], [`Vm::count`]);
//! - `/vms/list` includes terminated and failed VMs unless told not to, and a
//!   terminated VM keeps its `display_name` ([`LyceumApi::list`] asks without them
//!   and filters again);
//! - `unit_price_per_hour` in `/pricing` is a string ([`price_of`]).

use serde::Deserialize;
use serde_json::Value;
use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::ProviderKind;

use crate::http::{ApiFailure, HttpClient};

/// The GPU sizes Lyceum accepts (`instance_specs.gpu_count`).
pub const GPU_COUNTS: [u32; 4] = [1, 2, 4, 8];

/// Statuses of a VM that is gone or unusable for good.
const TERMINAL: [&str; 3] = ["terminated", "failed", "error"];

/// `instance_specs` of a VM.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstanceSpecs {
    /// The hardware profile (`l40s`, `h100`, ...).
    #[serde(default)]
    pub gpu_type: Option<String>,
    /// GPUs.
    #[serde(default)]
    pub gpu_count: Option<u32>,
}

/// A VM, as create, status and list describe it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vm {
    /// Opaque id (hex or a dashed UUID; never parsed).
    pub vm_id: String,
    /// `pending`, `provisioning`, `ready`, `running`, `terminated`, `failed`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// `null`, `203.0.113.10` or `198.51.100.20:22`.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// The hardware actually rented.
    #[serde(default)]
    pub instance_specs: Option<InstanceSpecs>,
    /// Top-level profile (null in the create answer).
    #[serde(default)]
    pub hardware_profile: Option<String>,
    /// Top-level count (null in the create answer).
    #[serde(default)]
    pub gpu_count: Option<u32>,
    /// `on-demand` or `spot`.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// The name a client chose: sindri's only identity on Lyceum.
    #[serde(default)]
    pub display_name: Option<String>,
    /// When created (several timestamp shapes occur).
    #[serde(default)]
    pub created_at: Option<String>,
    /// USD billed so far.
    #[serde(default)]
    pub billed: Option<f64>,
    /// Seconds since ready.
    #[serde(default)]
    pub uptime_seconds: Option<f64>,
}

impl Vm {
    /// The status, lower case.
    pub fn state(&self) -> String {
        self.status
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// Gone for good; an unknown status is not terminal (a live VM taken for dead
    /// would bill unseen).
    pub fn is_terminal(&self) -> bool {
        TERMINAL.contains(&self.state().as_str())
    }

    /// Provisioning finished (the IP may still be missing).
    pub fn is_ready(&self) -> bool {
        matches!(self.state().as_str(), "ready" | "running")
    }

    /// The hardware profile: `instance_specs` first, then the top level.
    pub fn profile(&self) -> Option<String> {
        self.instance_specs
            .as_ref()
            .and_then(|s| s.gpu_type.clone())
            .or_else(|| self.hardware_profile.clone())
            .map(|p| p.to_ascii_lowercase())
    }

    /// GPUs: `instance_specs` first, then the top level.
    pub fn count(&self) -> Option<u32> {
        self.instance_specs
            .as_ref()
            .and_then(|s| s.gpu_count)
            .or(self.gpu_count)
    }

    /// Host and SSH port once Lyceum says; an address sindri cannot read is an error,
    /// never a guess.
    pub fn address(&self) -> Result<Option<(String, u16)>> {
        parse_ip_address(self.ip_address.as_deref())
    }
}

/// Splits `ip_address` into host and SSH port: `null`/empty is `None`, a bare host or
/// IPv6 literal is port 22, `host:port` and `[v6]:port` carry their port. A port that
/// is not 1-65535 is an error.
pub fn parse_ip_address(value: Option<&str>) -> Result<Option<(String, u16)>> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = |why: &str| {
        Error::platform(
            ProviderKind::Lyceum,
            format!(
                "Lyceum reported the VM's address as `{text}`, which sindri cannot read: {why}"
            ),
        )
        .with_hint("report this to Lyceum support; `sindri status` shows the address as given")
    };
    let port = |p: &str| match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n as u16),
        _ => Err(bad(&format!("`{p}` is not a port (1-65535)"))),
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        return match after {
            "" => Ok(Some((host.to_string(), 22))),
            a => match a.strip_prefix(':') {
                Some(p) => Ok(Some((host.to_string(), port(p)?))),
                None => Err(bad("expected `:port` after `]`")),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok(Some((text.to_string(), 22))),
        1 => {
            let (host, p) = text.split_once(':').ok_or_else(|| bad("no port"))?;
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            Ok(Some((host.to_string(), port(p)?)))
        }
        _ => match text.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(Some((text.to_string(), 22))),
            Err(_) => Err(bad("neither host, host:port nor an IPv6 address")),
        },
    }
}

/// Lyceum's reading of a failed create: running out of capacity is HTTP 500 whose
/// `detail` says "could not be provisioned"; retrying it is pointless. Only create
/// is read this way (as the skypilot-lyceum client does): the same words on another
/// call are an ordinary server error, retried where the call is safe to repeat, so a
/// delete answered so is not taken for a final failure.
pub fn classify_create(f: &ApiFailure<'_>) -> Option<ErrorKind> {
    let text = f.message.unwrap_or(f.body).to_ascii_lowercase();
    (f.status >= 500 && text.contains("could not be provisioned")).then_some(ErrorKind::Capacity)
}

/// One offer of `/vms/availability`'s `available_instance_variants`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Variant {
    /// Hardware profile.
    #[serde(default)]
    pub hardware_profile: String,
    /// `on-demand` or `spot`.
    #[serde(default)]
    pub instance_type: String,
    /// USD per hour per GPU.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// GPU counts offered at all.
    #[serde(default)]
    pub allowed_gpus_per_instance: Vec<u32>,
    /// GPU counts free right now (empty: none).
    #[serde(default)]
    pub available_gpus_per_instance: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct AvailabilityBody {
    #[serde(default)]
    available_instance_variants: Vec<Variant>,
}

#[derive(Debug, Default, Deserialize)]
struct ListBody {
    #[serde(default)]
    vms: Vec<Vm>,
}

/// The hourly price of `instance_type.profile.{count}x` in a `/pricing` answer.
pub fn price_of(pricing: &Value, instance_type: &str, profile: &str, count: u32) -> Option<f64> {
    let key = format!("{instance_type}.{profile}.{count}x");
    pricing.get("prices")?.as_array()?.iter().find_map(|row| {
        if row.get("meter_slug").and_then(Value::as_str) != Some("vm_running") {
            return None;
        }
        let holder = row
            .get("applies_to")
            .filter(|h| h.as_object().is_some_and(|o| !o.is_empty()))
            .or_else(|| row.get("group_by"))?;
        if holder.get("hardware_profile").and_then(Value::as_str) != Some(key.as_str()) {
            return None;
        }
        match row.get("unit_price_per_hour")? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    })
}

/// The VM API, through the shared HTTP client.
#[derive(Debug, Clone)]
pub struct LyceumApi {
    http: HttpClient,
}

impl LyceumApi {
    /// Wraps a client whose base URL ends in `/api/v2/external`.
    pub fn new(http: HttpClient) -> LyceumApi {
        LyceumApi { http }
    }

    /// The base URL, for messages.
    pub fn base(&self) -> String {
        self.http.base().to_string()
    }

    /// Rents a VM.
    pub async fn create(&self, body: &Value, what: &str) -> Result<Vm> {
        self.http
            .json(
                self.http
                    .post("/vms/create")
                    .json(body)
                    .classifier(classify_create)
                    .what(what.to_string()),
            )
            .await
    }

    /// The VM, or `None` when Lyceum does not know it.
    pub async fn status(&self, id: &str) -> Result<Option<Vm>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/vms/{id}/status"))
                    .accept(404)
                    .what(format!("read the status of VM {id}")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        r.json().await
    }

    /// Live VMs: terminated and failed ones are left out (asked of the API and
    /// filtered again).
    pub async fn list(&self) -> Result<Vec<Vm>> {
        let body: Option<ListBody> = self
            .http
            .json(
                self.http
                    .get("/vms/list")
                    .query("include_terminated", "false")
                    .query("include_failed", "false")
                    .what("list VMs"),
            )
            .await?;
        Ok(body
            .unwrap_or_default()
            .vms
            .into_iter()
            .filter(|v| !v.is_terminal())
            .collect())
    }

    /// Terminates a VM; false when it was already gone.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let r = self
            .http
            .send(
                self.http
                    .delete(&format!("/vms/{id}"))
                    .accept(404)
                    .what(format!("terminate VM {id}")),
            )
            .await?;
        Ok(r.status() != 404)
    }

    /// What can be rented now.
    pub async fn availability(&self) -> Result<Vec<Variant>> {
        let body: Option<AvailabilityBody> = self
            .http
            .json(
                self.http
                    .get("/vms/availability")
                    .what("read VM availability"),
            )
            .await?;
        Ok(body.unwrap_or_default().available_instance_variants)
    }

    /// The price list, as sent.
    pub async fn pricing(&self) -> Result<Value> {
        self.http
            .json(self.http.get("/pricing").what("read prices"))
            .await
    }

    /// The account behind the key.
    pub async fn user(&self) -> Result<Value> {
        self.http
            .json(self.http.get("/user/status").what("read the account"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_are_bare_host_port_or_ipv6() {
        assert_eq!(parse_ip_address(None).unwrap(), None);
        assert_eq!(parse_ip_address(Some(" ")).unwrap(), None);
        assert_eq!(
            parse_ip_address(Some("203.0.113.10")).unwrap(),
            Some(("203.0.113.10".into(), 22))
        );
        assert_eq!(
            parse_ip_address(Some("198.51.100.20:2222")).unwrap(),
            Some(("198.51.100.20".into(), 2222))
        );
        assert_eq!(
            parse_ip_address(Some("2a01:4f8:c17::1")).unwrap(),
            Some(("2a01:4f8:c17::1".into(), 22))
        );
        assert_eq!(
            parse_ip_address(Some("[2a01::1]:2200")).unwrap(),
            Some(("2a01::1".into(), 2200))
        );
        for bad in [
            "host:", "host:ssh", "h:0", "h:70000", ":22", "a:b:c", "[x", "[]:1",
        ] {
            let e = parse_ip_address(Some(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Platform, "{bad}");
        }
    }

    #[test]
    fn vms_read_hardware_from_instance_specs_first() {
        let v: Vm = serde_json::from_value(json!({
            "vm_id": "x", "status": "Pending", "ip_address": null,
            "instance_specs": {"gpu_type": "l40s", "gpu_count": 2},
            "hardware_profile": null, "gpu_count": null
        }))
        .unwrap();
        assert_eq!((v.profile().as_deref(), v.count()), (Some("l40s"), Some(2)));
        assert!(!v.is_ready() && !v.is_terminal());
        let t: Vm = serde_json::from_value(json!({"vm_id": "y", "status": "terminated"})).unwrap();
        assert!(t.is_terminal());
        let odd: Vm = serde_json::from_value(json!({"vm_id": "z", "status": "rebooting"})).unwrap();
        assert!(
            !odd.is_terminal(),
            "an unknown status is not taken for dead"
        );
    }

    #[test]
    fn prices_are_per_hour_strings_keyed_by_variant() {
        let p = json!({"prices": [
            {"meter_slug": "storage", "applies_to": {"hardware_profile": "on-demand.h100.1x"}, "unit_price_per_hour": "9"},
            {"meter_slug": "vm_running", "applies_to": {"hardware_profile": "on-demand.h100.1x"}, "unit_price": "0.000775", "unit_price_per_hour": "2.790000"},
            {"meter_slug": "vm_running", "applies_to": {}, "group_by": {"hardware_profile": "spot.h100.2x"}, "unit_price_per_hour": 2.2}
        ]});
        assert_eq!(price_of(&p, "on-demand", "h100", 1), Some(2.79));
        assert_eq!(price_of(&p, "spot", "h100", 2), Some(2.2));
        assert_eq!(price_of(&p, "spot", "h100", 1), None);
    }

    #[test]
    fn capacity_is_a_500_that_says_so() {
        let f = ApiFailure {
            status: 500,
            body: "",
            json: None,
            message: Some(
                "The instance could not be provisioned right now. Please try again in a moment.",
            ),
        };
        assert_eq!(classify_create(&f), Some(ErrorKind::Capacity));
        assert_eq!(classify_create(&ApiFailure { status: 400, ..f }), None);
        assert_eq!(
            classify_create(&ApiFailure {
                message: Some("boom"),
                ..f
            }),
            None
        );
    }
}
