//! HTTP status codes to [`ErrorKind`], in one place for every API provider.

use serde_json::Value;
use sindri_core::ErrorKind;

/// A failed response, as a provider's [`Classifier`](super::Classifier) sees it.
#[derive(Debug, Clone, Copy)]
pub struct ApiFailure<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The body as text (at most the first 64 KiB).
    pub body: &'a str,
    /// The body as JSON, when it is JSON.
    pub json: Option<&'a Value>,
    /// The API's own explanation, found in the usual places of an error body.
    pub message: Option<&'a str>,
}

/// What a status means when the provider has nothing more specific to say:
/// 400/422 (and 413-415) are [`ErrorKind::Invalid`], 401/403 [`ErrorKind::Auth`], 402
/// [`ErrorKind::Quota`], 404/410 [`ErrorKind::NotFound`], 409 [`ErrorKind::Conflict`],
/// 408/425/429 and every 5xx [`ErrorKind::Transient`], anything else
/// [`ErrorKind::Platform`].
pub fn status_kind(status: u16) -> ErrorKind {
    match status {
        400 | 413 | 414 | 415 | 422 => ErrorKind::Invalid,
        401 | 403 => ErrorKind::Auth,
        402 => ErrorKind::Quota,
        404 | 410 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        408 | 425 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Platform,
    }
}

/// True when a failed request certainly did nothing on the server, so even a request
/// that is not safe to repeat may be sent again: 429 (rate limited) and 503 (not
/// served).
pub fn not_processed(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The human-readable message in an API error body: `message`, `error` (a string, or
/// an object with a `message`), `error_description`, `detail`, `msg`, or the first
/// entry of `errors`.
pub fn api_message(json: &Value) -> Option<String> {
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Object(o) => ["message", "msg", "detail"]
                .iter()
                .find_map(|k| o.get(*k).and_then(text)),
            _ => None,
        }
    }
    let o = json.as_object()?;
    for key in ["message", "error", "error_description", "detail", "msg"] {
        if let Some(m) = o.get(key).and_then(text) {
            return Some(m);
        }
    }
    o.get("errors")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(text)
}

/// The standard reason phrase of a status, for messages.
pub fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_documented_status_maps_to_its_kind() {
        assert_eq!(status_kind(400), ErrorKind::Invalid);
        assert_eq!(status_kind(422), ErrorKind::Invalid);
        assert_eq!(status_kind(401), ErrorKind::Auth);
        assert_eq!(status_kind(403), ErrorKind::Auth);
        assert_eq!(status_kind(404), ErrorKind::NotFound);
        assert_eq!(status_kind(409), ErrorKind::Conflict);
        assert_eq!(status_kind(429), ErrorKind::Transient);
        assert_eq!(status_kind(500), ErrorKind::Transient);
        assert_eq!(status_kind(503), ErrorKind::Transient);
        assert_eq!(status_kind(412), ErrorKind::Platform);
    }

    #[test]
    fn finds_the_message_where_apis_put_it() {
        assert_eq!(
            api_message(&json!({"message": " bad "})).as_deref(),
            Some("bad")
        );
        assert_eq!(
            api_message(&json!({"error": "nope", "status": "x"})).as_deref(),
            Some("nope")
        );
        assert_eq!(
            api_message(&json!({"error": {"code": 3, "message": "deep"}})).as_deref(),
            Some("deep")
        );
        assert_eq!(
            api_message(&json!({"errors": [{"msg": "first"}]})).as_deref(),
            Some("first")
        );
        assert_eq!(api_message(&json!({"code": 3})), None);
        assert_eq!(api_message(&json!("text")), None);
    }
}
