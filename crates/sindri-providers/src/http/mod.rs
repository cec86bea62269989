//! The one HTTP client of every API provider (Fly and E2B today, RunPod and Lyceum
//! next), so that timeouts, retries, error kinds and redaction behave the same
//! everywhere.
//!
//! # What it does for a provider
//! - **Timeouts.** A connection must be made within [`ClientOptions::connect_timeout`]
//!   and an answer must arrive within [`ClientOptions::request_timeout`], unless the
//!   request sets its own ([`Request::timeout`]) or none ([`Request::no_timeout`],
//!   for streams that live as long as a command).
//! - **Retries.** 429 and 503 are retried for every request, other 5xx only for
//!   requests that are safe to repeat ([`Request::idempotent`]; GET, HEAD, PUT and
//!   DELETE are by default), connection failures before anything was sent always,
//!   and dropped connections for idempotent requests. Delays are exponential with
//!   jitter ([`RetryPolicy`]); a `Retry-After` header (seconds or HTTP date) replaces
//!   the computed delay.
//! - **Error kinds in one place.** A failed response becomes an [`Error`] whose
//!   kind comes from the request's or else the provider's [`Classifier`] (say, Fly's
//!   capacity errors) or
//!   else [`status_kind`]: 400/422 `Invalid` with the API's own message, 401/403
//!   `Auth`, 404 `NotFound`, 409 `Conflict`, 429 and 5xx `Transient` once retries are
//!   exhausted. [`Request::accept`] lets a caller handle a status itself (404 on a
//!   lookup, 408 from a long poll).
//! - **Redaction.** Tokens travel only in headers marked sensitive and are scrubbed,
//!   with any value registered through [`HttpClient::add_secret`], from every error
//!   message, hint and log line the client produces, including what a server echoes
//!   back.
//!
//! # Use
//! ```ignore
//! let api = HttpClient::new(
//!     ProviderKind::Fly, "Fly Machines API", base, Auth::bearer(token), ClientOptions::default(),
//! )?;
//! let app: App = api.send(api.get("/apps/my-app").what("read app `my-app`")).await?.json().await?;
//! let found = api.send(api.get("/apps/x").accept(404)).await?;
//! if found.status() == 404 { /* missing */ }
//! ```

mod redact;
mod retry;
mod status;

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sindri_core::{Error, ErrorKind, Result, SecretValue};
use sindri_spec::ProviderKind;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use redact::{REDACTED, Redactor};
pub use reqwest::{Method, Url};
pub use retry::{RetryPolicy, parse_retry_after};
pub use status::{ApiFailure, api_message, not_processed, reason, status_kind};

/// How much of an error body is read, for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A provider's own reading of a failed response, consulted before [`status_kind`]:
/// `Some(kind)` overrides the default. A kind other than [`ErrorKind::Transient`] is
/// never retried (a capacity error is not worth repeating in the same region).
pub type Classifier = fn(&ApiFailure<'_>) -> Option<ErrorKind>;

/// How a client proves who it is.
#[derive(Clone)]
pub enum Auth {
    /// No credentials.
    None,
    /// `Authorization: <scheme> <token>`, e.g. `Bearer`.
    Authorization {
        /// The scheme, e.g. `Bearer` or `FlyV1`.
        scheme: String,
        /// The token.
        token: SecretValue,
    },
    /// A header of its own, e.g. `X-API-Key: <value>`.
    Header {
        /// The header name.
        name: &'static str,
        /// The value.
        value: SecretValue,
    },
}

impl Auth {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: SecretValue) -> Auth {
        Auth::Authorization {
            scheme: "Bearer".to_string(),
            token,
        }
    }

    /// The header this credential is sent in, marked sensitive so that no debug
    /// output of the HTTP stack shows it.
    fn header(&self) -> std::result::Result<Option<(HeaderName, HeaderValue)>, &'static str> {
        let (name, text) = match self {
            Auth::None => return Ok(None),
            Auth::Authorization { scheme, token } => (
                reqwest::header::AUTHORIZATION,
                format!("{scheme} {}", token.expose().trim()),
            ),
            Auth::Header { name, value } => (
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| "the credential's header name is not valid")?,
                value.expose().trim().to_string(),
            ),
        };
        let mut value = HeaderValue::from_str(&text).map_err(
            |_| "the credential contains characters that cannot be sent in an HTTP header",
        )?;
        value.set_sensitive(true);
        Ok(Some((name, value)))
    }

    fn secrets(&self) -> Vec<&str> {
        match self {
            Auth::None => Vec::new(),
            Auth::Authorization { token, .. } => vec![token.expose()],
            Auth::Header { value, .. } => vec![value.expose()],
        }
    }
}

/// Timeouts, retries and the hint shown with authentication errors.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long a request may take in all, unless it says otherwise.
    pub request_timeout: Duration,
    /// When to retry.
    pub retry: RetryPolicy,
    /// Shown with `Auth` errors: how to get or set a valid credential.
    pub auth_hint: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            auth_hint: None,
        }
    }
}

/// A client for one API: a base URL, a credential, options. Cheap to clone; clones
/// and [`HttpClient::derive`]d clients share one connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    provider: ProviderKind,
    service: String,
    base: Url,
    auth: Option<(HeaderName, HeaderValue)>,
    redactor: Redactor,
    options: ClientOptions,
    classifier: Option<Classifier>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.provider)
            .field("service", &self.service)
            .field("base", &self.redactor.redact(self.base.as_str()))
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client for `service` (its name in messages, e.g. "Fly Machines API") at
    /// `base`. Does no I/O. Fails only on a credential that cannot be a header value.
    pub fn new(
        provider: ProviderKind,
        service: &str,
        base: Url,
        auth: Auth,
        options: ClientOptions,
    ) -> Result<HttpClient> {
        // reqwest is built with `rustls-no-provider` (no aws-lc-rs): ring is the
        // provider, installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("sindri/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::internal(format!("cannot set up an HTTP client for {service}: {e}"))
                    .with_provider(provider)
            })?;
        let mut client = HttpClient {
            inner,
            provider,
            service: service.to_string(),
            base,
            auth: None,
            redactor: Redactor::new(),
            options,
            classifier: None,
        };
        client.set_auth(&auth)?;
        Ok(client)
    }

    /// A client for another service of the same provider (E2B's in-sandbox daemon),
    /// sharing this one's connection pool, options, classifier and redactions.
    pub fn derive(&self, service: &str, base: Url, auth: Auth) -> Result<HttpClient> {
        let mut c = self.clone();
        c.service = service.to_string();
        c.base = base;
        c.set_auth(&auth)?;
        Ok(c)
    }

    fn set_auth(&mut self, auth: &Auth) -> Result<()> {
        for s in auth.secrets() {
            self.redactor.add(s);
        }
        self.auth = auth.header().map_err(|why| {
            let e = Error::new(ErrorKind::Auth, format!("{}: {why}", self.service))
                .with_provider(self.provider);
            match &self.options.auth_hint {
                Some(h) => e.with_hint(h.clone()),
                None => e,
            }
        })?;
        Ok(())
    }

    /// Sets the provider's reading of failed responses.
    pub fn with_classifier(mut self, classifier: Classifier) -> HttpClient {
        self.classifier = Some(classifier);
        self
    }

    /// Scrubs `secret` from every message this client (and clients derived from it
    /// afterwards) produces; for secret values sent in request bodies.
    pub fn add_secret(&mut self, secret: &str) {
        self.redactor.add(secret);
    }

    /// `text` with every token and registered secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The service's name, as used in messages.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The provider this client works for.
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// A request to `path` (absolute, e.g. `/apps/x`, appended to the base URL's path).
    /// GET, HEAD, PUT and DELETE are idempotent by default, POST and PATCH are not.
    pub fn request(&self, method: Method, path: &str) -> Request {
        let mut url = self.base.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
            timeout: RequestTimeout::Default,
            accept: Vec::new(),
            idempotent,
            what: None,
            classifier: None,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Request {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> Request {
        self.request(Method::POST, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Request {
        self.request(Method::DELETE, path)
    }

    /// Sends `req`, retrying per the policy. A 2xx answer, or one whose status the
    /// request [accepts](Request::accept), is returned; anything else becomes an
    /// [`Error`] with a redacted message naming what was attempted.
    pub async fn send(&self, req: Request) -> Result<Response> {
        let what = req
            .what
            .clone()
            .unwrap_or_else(|| format!("{} {}", req.method, self.redact(req.url.path())));
        let body = match &req.body {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                return Err(
                    Error::internal(format!("{what}: cannot encode the request: {e}"))
                        .with_provider(self.provider),
                );
            }
            None => None,
        };
        let policy = &self.options.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut rb = self.inner.request(req.method.clone(), req.url.clone());
            if let Some((k, v)) = &self.auth {
                rb = rb.header(k.clone(), v.clone());
            }
            let mut headers = HeaderMap::new();
            for (k, v) in &req.headers {
                headers.append(k.clone(), v.clone());
            }
            rb = rb.headers(headers);
            if let Some((bytes, content_type)) = body {
                rb = rb
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone());
            }
            rb = match req.timeout {
                RequestTimeout::Default => rb.timeout(self.options.request_timeout),
                RequestTimeout::After(d) => rb.timeout(d),
                RequestTimeout::None => rb,
            };
            tracing::debug!(
                target: "sindri::http",
                "{} {} {} (attempt {attempt})",
                self.service,
                req.method,
                self.redact(req.url.as_str())
            );
            let resp = match rb.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    let retry = (e.is_connect() || req.idempotent) && attempt < policy.max_attempts;
                    let failure = self.transport_error(&what, &e, attempt);
                    if retry {
                        let delay = policy.backoff(attempt);
                        tracing::info!(
                            target: "sindri::http",
                            "{}; retrying in {:.1}s",
                            failure.message(),
                            delay.as_secs_f64()
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(failure);
                }
            };
            let status = resp.status().as_u16();
            tracing::debug!(target: "sindri::http", "{} {} -> {status}", self.service, req.method);
            if resp.status().is_success() || req.accept.contains(&status) {
                return Ok(Response {
                    inner: resp,
                    what,
                    provider: self.provider,
                    service: self.service.clone(),
                    redactor: self.redactor.clone(),
                });
            }
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let text = read_limited(resp).await;
            let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
            let message = json.as_ref().and_then(api_message);
            let failure = ApiFailure {
                status,
                body: &text,
                json: json.as_ref(),
                message: message.as_deref(),
            };
            let kind = req
                .classifier
                .or(self.classifier)
                .and_then(|c| c(&failure))
                .unwrap_or_else(|| status_kind(status));
            let may_retry = kind == ErrorKind::Transient
                && (status == 429 || status >= 500)
                && (req.idempotent || not_processed(status));
            if may_retry && attempt < policy.max_attempts {
                let delay = retry_after.unwrap_or_else(|| policy.backoff(attempt));
                if delay <= policy.max_retry_after {
                    tracing::info!(
                        target: "sindri::http",
                        "{what}: HTTP {status}{}; retrying in {:.1}s{}",
                        message
                            .as_deref()
                            .map(|m| format!(": {}", self.redact(m)))
                            .unwrap_or_default(),
                        delay.as_secs_f64(),
                        if retry_after.is_some() { " (as Retry-After asks)" } else { "" }
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            return Err(self.status_error(&what, &failure, kind, attempt, retry_after, may_retry));
        }
    }

    /// Sends `req` and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, req: Request) -> Result<T> {
        self.send(req).await?.json().await
    }

    fn status_error(
        &self,
        what: &str,
        f: &ApiFailure<'_>,
        kind: ErrorKind,
        attempts: u32,
        retry_after: Option<Duration>,
        retryable: bool,
    ) -> Error {
        let detail = match f.message {
            Some(m) => format!(": {m}"),
            None if !f.body.trim().is_empty() && f.json.is_none() && f.body.len() <= 300 => {
                format!(": {}", f.body.trim())
            }
            None => String::new(),
        };
        let mut message = format!(
            "{what} ({}): HTTP {} {}{detail}",
            self.service,
            f.status,
            reason(f.status)
        );
        if attempts > 1 {
            message.push_str(&format!(" (after {attempts} attempts)"));
        }
        let message = self.redact(&message);
        let hint = match kind {
            ErrorKind::Auth => self.options.auth_hint.clone(),
            ErrorKind::Quota => {
                Some("an account limit was reached; check your plan with the provider".into())
            }
            ErrorKind::Transient => Some(match retry_after {
                Some(d) if retryable && d > self.options.retry.max_retry_after => format!(
                    "the service asked to wait {}s before trying again; try again later",
                    d.as_secs()
                ),
                _ if !retryable && f.status >= 500 => {
                    "the service failed; the request may or may not have taken effect, so \
                     run the command again (sindri finds what it already created)"
                        .to_string()
                }
                _ => "the service is busy or failing; try again in a minute".to_string(),
            }),
            _ => None,
        };
        let e = Error::new(kind, message).with_provider(self.provider);
        match hint {
            Some(h) => e.with_hint(self.redact(&h)),
            None => e,
        }
    }

    fn transport_error(&self, what: &str, e: &reqwest::Error, attempts: u32) -> Error {
        let mut chain = Vec::new();
        let mut src: Option<&dyn std::error::Error> = e.source();
        while let Some(s) = src {
            let text = s.to_string();
            if !chain.contains(&text) {
                chain.push(text);
            }
            src = s.source();
        }
        let cause = if chain.is_empty() {
            "the connection failed".to_string()
        } else {
            chain.join(": ")
        };
        let host = self
            .base
            .host_str()
            .map(|h| match self.base.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .unwrap_or_default();
        let tries = if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        };
        let (kind, message, hint) = if e.is_connect() {
            (
                ErrorKind::Unavailable,
                format!(
                    "{what}: cannot reach {} at {host}{tries}: {cause}",
                    self.service
                ),
                "check the network connection and the API address".to_string(),
            )
        } else if e.is_timeout() {
            (
                ErrorKind::Transient,
                format!(
                    "{what}: {} at {host} did not answer in time{tries}",
                    self.service
                ),
                "the service is slow or unreachable; try again".to_string(),
            )
        } else {
            (
                ErrorKind::Transient,
                format!(
                    "{what}: the connection to {} at {host} failed{tries}: {cause}",
                    self.service
                ),
                "the request may or may not have taken effect; run the command again \
                 (sindri finds what it already created)"
                    .to_string(),
            )
        };
        Error::new(kind, self.redact(&message))
            .with_provider(self.provider)
            .with_hint(hint)
    }
}

/// Reads at most [`ERROR_BODY_LIMIT`] bytes of a body, as text.
async fn read_limited(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_LIMIT {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(ERROR_BODY_LIMIT);
    String::from_utf8_lossy(&buf).into_owned()
}

#[derive(Debug, Clone, Copy)]
enum RequestTimeout {
    Default,
    After(Duration),
    None,
}

/// One request, built with [`HttpClient::request`] and sent with [`HttpClient::send`].
/// Its `Debug` output leaves out the body, which may hold secret values.
pub struct Request {
    method: Method,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<std::result::Result<(Vec<u8>, String), String>>,
    timeout: RequestTimeout,
    accept: Vec<u16>,
    idempotent: bool,
    what: Option<String>,
    classifier: Option<Classifier>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.url.path())
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Adds a query parameter (encoded).
    pub fn query(mut self, key: &str, value: &str) -> Request {
        self.url.query_pairs_mut().append_pair(key, value);
        self
    }

    /// Adds a header. Invalid values are dropped with a debug log (callers pass
    /// constants and ids).
    pub fn header(mut self, name: &'static str, value: &str) -> Request {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => self.headers.push((n, v)),
            _ => tracing::debug!(target: "sindri::http", "dropped an invalid header {name}"),
        }
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Request {
        self.body = Some(
            serde_json::to_vec(body)
                .map(|b| (b, "application/json".to_string()))
                .map_err(|e| e.to_string()),
        );
        self
    }

    /// A raw body with its content type.
    pub fn body(mut self, bytes: Vec<u8>, content_type: &str) -> Request {
        self.body = Some(Ok((bytes, content_type.to_string())));
        self
    }

    /// This request may take up to `d` (long polls, commands).
    pub fn timeout(mut self, d: Duration) -> Request {
        self.timeout = RequestTimeout::After(d);
        self
    }

    /// No overall timeout: for streams that last as long as a command.
    pub fn no_timeout(mut self) -> Request {
        self.timeout = RequestTimeout::None;
        self
    }

    /// Hands an answer with this status back to the caller instead of failing.
    pub fn accept(mut self, status: u16) -> Request {
        self.accept.push(status);
        self
    }

    /// Whether sending this request twice does no more than sending it once, so
    /// that a 5xx or a dropped connection may be retried.
    pub fn idempotent(mut self, yes: bool) -> Request {
        self.idempotent = yes;
        self
    }

    /// Reads this request's failures with `classifier` instead of the client's: for
    /// an answer that means something else on one endpoint (Lyceum's 500 "could not
    /// be provisioned" is a capacity error on create only).
    pub fn classifier(mut self, classifier: Classifier) -> Request {
        self.classifier = Some(classifier);
        self
    }

    /// What the request does, for messages (e.g. "create machine in app `x`").
    pub fn what(mut self, what: impl Into<String>) -> Request {
        self.what = Some(what.into());
        self
    }

    /// The URL it goes to.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// A successful (or accepted) answer.
pub struct Response {
    inner: reqwest::Response,
    what: String,
    provider: ProviderKind,
    service: String,
    redactor: Redactor,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status())
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn body_error(&self, e: &reqwest::Error) -> Error {
        let cause = e
            .source()
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string());
        Error::new(
            ErrorKind::Transient,
            self.redactor.redact(&format!(
                "{}: the connection to {} dropped while reading the answer: {cause}",
                self.what, self.service
            )),
        )
        .with_provider(self.provider)
        .with_hint("try again")
    }

    /// This answer as the error the client makes of a failed one (redacted, naming
    /// what was attempted, with the API's own message), for a status the caller
    /// [accepted](Request::accept) to look at and then found to be a failure.
    pub async fn into_error(self, kind: ErrorKind) -> Error {
        let (status, what, service, provider, redactor) = (
            self.status(),
            self.what.clone(),
            self.service.clone(),
            self.provider,
            self.redactor.clone(),
        );
        let body = self.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .as_ref()
            .and_then(api_message)
            .or_else(|| {
                (!text.trim().is_empty() && text.len() <= 300).then(|| text.trim().to_string())
            })
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        Error::new(
            kind,
            redactor.redact(&format!(
                "{what} ({service}): HTTP {status} {}{detail}",
                reason(status)
            )),
        )
        .with_provider(provider)
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        while let Some(c) = self.chunk().await? {
            buf.extend_from_slice(&c);
        }
        Ok(buf)
    }

    /// The body decoded as JSON. An empty body decodes as `null`, so `Option` and
    /// unit targets accept empty answers.
    pub async fn json<T: DeserializeOwned>(mut self) -> Result<T> {
        let mut buf = Vec::new();
        while let Some(c) = self.chunk().await? {
            buf.extend_from_slice(&c);
        }
        let text = if buf.iter().all(u8::is_ascii_whitespace) {
            &b"null"[..]
        } else {
            &buf[..]
        };
        serde_json::from_slice(text).map_err(|e| {
            Error::platform(
                self.provider,
                self.redactor.redact(&format!(
                    "{}: unexpected answer from {}: {e}",
                    self.what, self.service
                )),
            )
        })
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        match self.inner.chunk().await {
            Ok(c) => Ok(c.map(|b| b.to_vec())),
            Err(e) => Err(self.body_error(&e)),
        }
    }

    /// Streams the body into `out`; returns the number of bytes written.
    pub async fn write_to(mut self, out: &mut (dyn AsyncWrite + Send + Unpin)) -> Result<u64> {
        let mut n = 0u64;
        while let Some(c) = self.chunk().await? {
            out.write_all(&c).await?;
            n += c.len() as u64;
        }
        out.flush().await?;
        Ok(n)
    }
}
