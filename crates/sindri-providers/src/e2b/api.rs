//! The calls sindri makes to E2B's control plane (`https://api.e2b.app`), typed after
//! its published OpenAPI description (e2b-dev/infra `spec/openapi.yml`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sindri_core::{ErrorKind, Result};

use crate::http::{ApiFailure, HttpClient};

/// A sandbox as create, connect and resume return it.
#[derive(Debug, Clone, Deserialize)]
pub struct Sandbox {
    /// Id.
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// The template it came from.
    #[serde(rename = "templateID", default)]
    pub template_id: String,
    /// envd's version.
    #[serde(rename = "envdVersion", default)]
    pub envd_version: String,
    /// The token envd requires (secure sandboxes).
    #[serde(rename = "envdAccessToken", default)]
    pub envd_access_token: Option<String>,
    /// The sandbox's domain, when not the default.
    #[serde(default)]
    pub domain: Option<String>,
}

/// A sandbox as `GET /sandboxes/{id}` and the list describe it.
#[derive(Debug, Clone, Deserialize)]
pub struct SandboxDetail {
    /// Id.
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// Template.
    #[serde(rename = "templateID", default)]
    pub template_id: String,
    /// Template alias.
    #[serde(default)]
    pub alias: Option<String>,
    /// `running` or `paused`.
    #[serde(default)]
    pub state: String,
    /// When it started (RFC 3339).
    #[serde(rename = "startedAt", default)]
    pub started_at: String,
    /// When it expires (RFC 3339).
    #[serde(rename = "endAt", default)]
    pub end_at: String,
    /// CPUs.
    #[serde(rename = "cpuCount", default)]
    pub cpu_count: u32,
    /// Memory in MiB.
    #[serde(rename = "memoryMB", default)]
    pub memory_mb: u32,
    /// Metadata set at creation.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// envd's version.
    #[serde(rename = "envdVersion", default)]
    pub envd_version: String,
    /// The token envd requires (only in the detail answer).
    #[serde(rename = "envdAccessToken", default)]
    pub envd_access_token: Option<String>,
    /// The sandbox's domain.
    #[serde(default)]
    pub domain: Option<String>,
}

/// One structured log entry.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    /// RFC 3339.
    pub timestamp: String,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// `debug`, `info`, `warn` or `error`.
    #[serde(default)]
    pub level: String,
}

#[derive(Deserialize)]
struct Logs {
    #[serde(default)]
    logs: Vec<LogEntry>,
}

/// E2B's own reading of errors: a capacity `error_code`, and the concurrent-sandbox
/// limit (a 429 that waiting does not fix).
pub fn classify(f: &ApiFailure<'_>) -> Option<ErrorKind> {
    let code = f
        .json
        .and_then(|j| j.get("error_code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match code {
        "sandbox_capacity_unavailable" | "sandbox_no_compatible_node" => {
            return Some(ErrorKind::Capacity);
        }
        _ => {}
    }
    let msg = f.message.unwrap_or("").to_ascii_lowercase();
    if f.status == 429 && msg.contains("concurrent") {
        return Some(ErrorKind::Quota);
    }
    None
}

/// E2B's control plane, through the shared HTTP client.
#[derive(Debug, Clone)]
pub struct E2bApi {
    http: HttpClient,
}

impl E2bApi {
    /// Wraps a client of the control plane.
    pub fn new(http: HttpClient) -> E2bApi {
        E2bApi { http }
    }

    /// The client, to derive envd clients from.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Creates a sandbox (`POST /sandboxes`).
    pub async fn create(&self, body: &Value, template: &str) -> Result<Sandbox> {
        self.http
            .json(
                self.http
                    .post("/sandboxes")
                    .json(body)
                    .timeout(Duration::from_secs(120))
                    .what(format!("create a sandbox from template `{template}`")),
            )
            .await
    }

    /// A sandbox, or `None` when it does not exist (killed, or expired).
    pub async fn get(&self, id: &str) -> Result<Option<SandboxDetail>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/sandboxes/{id}"))
                    .accept(404)
                    .what(format!("read sandbox {id}")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        r.json().await.map(Some)
    }

    /// Running and paused sandboxes whose metadata has every pair of `filter`,
    /// following the pagination.
    pub async fn list(&self, filter: &[(&str, &str)]) -> Result<Vec<SandboxDetail>> {
        let metadata = filter
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut req = self
                .http
                .get("/v2/sandboxes")
                .query("metadata", &metadata)
                .query("state", "running,paused")
                .query("limit", "100")
                .what("list sandboxes");
            if let Some(t) = &next {
                req = req.query("nextToken", t);
            }
            let r = self.http.send(req).await?;
            next = r.header("x-next-token").filter(|t| !t.is_empty());
            let page: Vec<SandboxDetail> = r.json().await?;
            let empty = page.is_empty();
            out.extend(page);
            if next.is_none() || empty {
                return Ok(out);
            }
        }
    }

    /// Kills a sandbox. False when it was already gone.
    pub async fn kill(&self, id: &str) -> Result<bool> {
        let r = self
            .http
            .send(
                self.http
                    .delete(&format!("/sandboxes/{id}"))
                    .accept(404)
                    .what(format!("kill sandbox {id}")),
            )
            .await?;
        Ok(r.status() != 404)
    }

    /// Pauses a sandbox. Returns the status: 204 paused, 409 already paused (or
    /// pausing), 404 gone.
    pub async fn pause(&self, id: &str) -> Result<u16> {
        let r = self
            .http
            .send(
                self.http
                    .post(&format!("/sandboxes/{id}/pause"))
                    .accept(409)
                    .accept(404)
                    .idempotent(true)
                    .timeout(Duration::from_secs(120))
                    .what(format!("pause sandbox {id}")),
            )
            .await?;
        Ok(r.status())
    }

    /// Connects to a sandbox, resuming it when paused, and sets its timeout.
    pub async fn connect(&self, id: &str, timeout_secs: u64) -> Result<Sandbox> {
        self.http
            .json(
                self.http
                    .post(&format!("/sandboxes/{id}/connect"))
                    .json(&json!({"timeout": timeout_secs}))
                    .idempotent(true)
                    .timeout(Duration::from_secs(120))
                    .what(format!("resume sandbox {id}")),
            )
            .await
    }

    /// Log entries: `direction` `forward` from `cursor` (Unix ms), or `backward` from
    /// now.
    pub async fn logs(
        &self,
        id: &str,
        cursor: Option<i64>,
        limit: u32,
        direction: &str,
    ) -> Result<Vec<LogEntry>> {
        let mut req = self
            .http
            .get(&format!("/v2/sandboxes/{id}/logs"))
            .query("limit", &limit.min(1000).to_string())
            .query("direction", direction)
            .what(format!("read the logs of sandbox {id}"));
        if let Some(c) = cursor {
            req = req.query("cursor", &c.max(0).to_string());
        }
        let l: Logs = self.http.json(req).await?;
        Ok(l.logs)
    }
}

/// Percent-encodes a metadata key or value for the list filter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Unix milliseconds of an RFC 3339 timestamp (`2024-05-01T12:00:00.123Z`, with an
/// optional offset).
pub fn rfc3339_millis(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &ts[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        rest = &frac[digits.len()..];
        let padded = format!("{digits:0<3}");
        millis = padded[..3].parse().ok()?;
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_unix_millis() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2015-10-21T07:28:00.5Z"),
            Some(1_445_412_480_500)
        );
        assert_eq!(
            rfc3339_millis("2015-10-21T09:28:00.123456+02:00"),
            Some(1_445_412_480_123)
        );
        assert_eq!(rfc3339_millis("yesterday"), None);
    }

    #[test]
    fn metadata_filters_are_encoded() {
        assert_eq!(encode("sindri.environment"), "sindri.environment");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }

    #[test]
    fn capacity_and_concurrency_limits_are_recognised() {
        let j = serde_json::json!({"code": 503, "message": "no", "error_code": "sandbox_capacity_unavailable"});
        let f = ApiFailure {
            status: 503,
            body: "",
            json: Some(&j),
            message: Some("no"),
        };
        assert_eq!(classify(&f), Some(ErrorKind::Capacity));
        let j = serde_json::json!({"code": 429, "message": "You have reached the maximum number of concurrent E2B sandboxes"});
        let m = "You have reached the maximum number of concurrent E2B sandboxes";
        let f = ApiFailure {
            status: 429,
            body: "",
            json: Some(&j),
            message: Some(m),
        };
        assert_eq!(classify(&f), Some(ErrorKind::Quota));
    }
}
