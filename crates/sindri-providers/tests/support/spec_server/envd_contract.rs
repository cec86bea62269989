//! envd's contract: its OpenAPI description (`/files`, `/health`...) plus the Connect
//! RPC services of process.proto and filesystem.proto.

use std::path::Path;

use serde_json::Value;

use super::openapi::OpenApi;
use super::proto::Protos;
use super::server::{Contract, Matched, RawRequest, Violation};

/// The Connect error codes (connectrpc.com/docs/protocol#error-codes).
const CONNECT_CODES: [&str; 16] = [
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

/// envd.yaml + process.proto + filesystem.proto.
pub struct EnvdContract {
    openapi: OpenApi,
    /// The RPC message schemas, also used by the fake to check what it streams.
    pub protos: Protos,
}

impl EnvdContract {
    /// Loads the three files from the E2B spec directory.
    pub fn load(dir: &Path) -> EnvdContract {
        EnvdContract {
            openapi: OpenApi::load(&dir.join("envd.yaml"), "", |_| {}).declared_statuses_only(&[]),
            protos: Protos::load(&[&dir.join("process.proto"), &dir.join("filesystem.proto")]),
        }
    }
}

/// Splits a Connect streaming body into envelopes.
pub fn envelopes(body: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body.len() - i < 5 {
            return Err("a truncated envelope header".into());
        }
        let len = u32::from_be_bytes([body[i + 1], body[i + 2], body[i + 3], body[i + 4]]) as usize;
        if body.len() - i - 5 < len {
            return Err(format!("an envelope declares {len} bytes but fewer follow"));
        }
        out.push((body[i], body[i + 5..i + 5 + len].to_vec()));
        i += 5 + len;
    }
    Ok(out)
}

impl Contract for EnvdContract {
    fn check(&self, req: &RawRequest<'_>) -> Result<Matched, Violation> {
        let bad = |status: u16, m: String| Violation {
            status,
            message: format!("envd {}: {m}", req.path),
        };
        let Some(rpc) = self.protos.rpc(req.path) else {
            if req.path.starts_with("/process.") || req.path.starts_with("/filesystem.") {
                return Err(bad(
                    404,
                    "no such RPC in process.proto or filesystem.proto".into(),
                ));
            }
            return self.openapi.check(req);
        };
        if req.method != "POST" {
            return Err(bad(
                405,
                format!("Connect RPCs are POSTed, not {}", req.method),
            ));
        }
        let ct = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let message: Value = if rpc.client_streaming || rpc.server_streaming {
            if ct != "application/connect+json" {
                return Err(bad(
                    415,
                    format!("a streaming RPC with JSON takes application/connect+json, not `{ct}`"),
                ));
            }
            if rpc.client_streaming {
                return Err(bad(
                    400,
                    "client-streaming RPCs need HTTP/2 bidirectional streams; not used by sindri"
                        .into(),
                ));
            }
            let env = envelopes(req.body).map_err(|e| bad(400, e))?;
            match env.as_slice() {
                [(0, m)] => serde_json::from_slice(m)
                    .map_err(|e| bad(400, format!("the request message is not JSON: {e}")))?,
                [(f, _)] => {
                    return Err(bad(
                        400,
                        format!("the request envelope has flags {f:#x}; expected 0"),
                    ));
                }
                _ => {
                    return Err(bad(
                        400,
                        format!(
                            "a server-streaming request has exactly one message, not {}",
                            env.len()
                        ),
                    ));
                }
            }
        } else {
            if ct.split(';').next().unwrap_or("").trim() != "application/json" {
                return Err(bad(
                    415,
                    format!("a unary RPC with JSON takes application/json, not `{ct}`"),
                ));
            }
            let version = req
                .headers
                .get("connect-protocol-version")
                .and_then(|v| v.to_str().ok());
            if version != Some("1") {
                return Err(bad(
                    400,
                    "the Connect-Protocol-Version: 1 header is missing".into(),
                ));
            }
            serde_json::from_slice(req.body)
                .map_err(|e| bad(400, format!("the request is not JSON: {e}")))?
        };
        let errs = self.protos.errors(&rpc.input, &message);
        if !errs.is_empty() {
            return Err(bad(400, format!("invalid_argument: {}", errs.join("; "))));
        }
        Ok(Matched {
            op: rpc.path.clone(),
            path: req.path.to_string(),
            params: Default::default(),
        })
    }

    fn check_reply(&self, op: &str, status: u16, content_type: &str, body: &[u8]) -> Vec<String> {
        let Some(rpc) = self.protos.rpc(op) else {
            return self.openapi.check_reply(op, status, content_type, body);
        };
        if rpc.server_streaming {
            // Streamed messages are checked by the fake as it sends them.
            return Vec::new();
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return vec![format!("status {status}: the body is not JSON")];
        };
        if status == 200 {
            return self.protos.errors(&rpc.output, &v);
        }
        match v.get("code").and_then(Value::as_str) {
            Some(c) if CONNECT_CODES.contains(&c) => Vec::new(),
            other => vec![format!(
                "status {status}: a Connect error needs a known `code`, found {other:?}"
            )],
        }
    }
}
