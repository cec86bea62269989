//! The Connect RPC protocol with JSON, as envd speaks it.
//!
//! Unary calls are plain `POST /<package>.<Service>/<Method>` with a JSON body and a
//! `Connect-Protocol-Version: 1` header; errors come back as a non-200 status with
//! `{"code": "...", "message": "..."}`. Server-streaming calls send and receive
//! `application/connect+json` envelopes: one flag byte, a 4-byte big-endian length,
//! then the JSON message. The last envelope has flag `0x02` (end of stream) and holds
//! `{}` or `{"error": {"code", "message"}}`.

use serde_json::Value;
use sindri_core::{Error, ErrorKind};
use sindri_spec::ProviderKind;

use crate::http::ApiFailure;

/// Envelope flag: the message is compressed (never requested by sindri).
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Envelope flag: the end-of-stream message.
pub const FLAG_END_STREAM: u8 = 0x02;
/// The content type of streaming calls with JSON.
pub const STREAM_CONTENT_TYPE: &str = "application/connect+json";

/// One envelope: flags, length, message.
pub fn envelope(flags: u8, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flags);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits a byte stream into envelopes as pieces of it arrive.
#[derive(Debug, Default)]
pub struct EnvelopeReader {
    buf: Vec<u8>,
}

impl EnvelopeReader {
    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete envelope (flags, message), if one has arrived.
    pub fn next_envelope(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let flags = self.buf[0];
        let msg = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Some((flags, msg))
    }

    /// Bytes received that do not yet form an envelope.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The kind of a Connect error code.
pub fn code_kind(code: &str) -> ErrorKind {
    match code {
        "not_found" => ErrorKind::NotFound,
        "unauthenticated" | "permission_denied" => ErrorKind::Auth,
        "invalid_argument" | "failed_precondition" | "out_of_range" => ErrorKind::Invalid,
        "already_exists" | "aborted" => ErrorKind::Conflict,
        "resource_exhausted" => ErrorKind::Quota,
        "unavailable" | "deadline_exceeded" => ErrorKind::Transient,
        _ => ErrorKind::Platform,
    }
}

/// Reads a unary error body's Connect code for the shared HTTP client.
pub fn classify(f: &ApiFailure<'_>) -> Option<ErrorKind> {
    let code = f.json?.get("code")?.as_str()?;
    Some(code_kind(code))
}

/// The error an end-of-stream message carries, if any.
pub fn end_stream_error(message: &[u8], what: &str) -> Option<Error> {
    let v: Value = serde_json::from_slice(message).ok()?;
    let err = v.get("error")?;
    let code = err.get("code").and_then(Value::as_str).unwrap_or("unknown");
    let msg = err.get("message").and_then(Value::as_str).unwrap_or(code);
    Some(
        Error::new(
            code_kind(code),
            format!("{what}: envd answered {code}: {msg}"),
        )
        .with_provider(ProviderKind::E2b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_across_arbitrary_splits() {
        let mut wire = envelope(0, br#"{"a":1}"#);
        wire.extend(envelope(FLAG_END_STREAM, b"{}"));
        for split in 0..wire.len() {
            let mut r = EnvelopeReader::default();
            r.push(&wire[..split]);
            let mut got = Vec::new();
            while let Some(e) = r.next_envelope() {
                got.push(e);
            }
            r.push(&wire[split..]);
            while let Some(e) = r.next_envelope() {
                got.push(e);
            }
            assert_eq!(
                got,
                vec![
                    (0, br#"{"a":1}"#.to_vec()),
                    (FLAG_END_STREAM, b"{}".to_vec())
                ],
                "split at {split}"
            );
            assert_eq!(r.pending(), 0);
        }
        assert_eq!(&envelope(2, b"xy")[..5], &[2, 0, 0, 0, 2]);
    }

    #[test]
    fn end_stream_errors_carry_their_code() {
        let e = end_stream_error(
            br#"{"error":{"code":"not_found","message":"process 7 not found"}}"#,
            "run",
        )
        .expect("an error");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("process 7 not found"));
        assert!(end_stream_error(b"{}", "run").is_none());
    }
}
