//! An in-process HTTP/1.1 server for provider tests: every request is checked
//! against a [`Contract`] (a published API description) before a fake answers it,
//! every violation is recorded (and answered 400/404/405 as the real service
//! would), and faults can be injected per operation.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A request as the fake sees it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `GET`, `POST`...
    pub method: String,
    /// The path, percent-decoded segments joined by `/` (without the API's base path).
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// The operation the contract matched (operationId, or the RPC path).
    pub op: String,
    /// Path parameters by name.
    pub params: BTreeMap<String, String>,
}

impl Exchange {
    /// A query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A path parameter.
    pub fn p(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// A header as text.
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What the fake answers.
pub enum Reply {
    /// A JSON body.
    Json(u16, Value),
    /// No body.
    Empty(u16),
    /// Raw bytes with a content type and extra headers.
    Bytes(u16, String, Vec<u8>, Vec<(String, String)>),
    /// A streamed body: each received chunk is sent as it comes; the stream ends
    /// when the sender is dropped.
    Stream(u16, String, tokio::sync::mpsc::Receiver<Vec<u8>>),
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    /// A JSON answer with extra headers.
    pub fn json_with(status: u16, body: Value, headers: Vec<(String, String)>) -> Reply {
        Reply::Bytes(
            status,
            "application/json".into(),
            serde_json::to_vec(&body).unwrap_or_default(),
            headers,
        )
    }
}

/// A request that breaks the published API: what the real service would answer,
/// and why.
#[derive(Debug, Clone)]
pub struct Violation {
    /// 400, 401, 404, 405...
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

/// A raw request for a contract to check.
pub struct RawRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// Path as received (percent-encoded).
    pub path: &'a str,
    /// Decoded query pairs.
    pub query: &'a [(String, String)],
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body.
    pub body: &'a [u8],
}

/// The operation a contract matched.
#[derive(Debug, Clone)]
pub struct Matched {
    /// operationId (or RPC path).
    pub op: String,
    /// The path without the API's base path, decoded.
    pub path: String,
    /// Path parameters.
    pub params: BTreeMap<String, String>,
}

/// A published API description a request must satisfy.
pub trait Contract: Send + Sync + 'static {
    /// Matches and validates a request.
    fn check(&self, req: &RawRequest<'_>) -> Result<Matched, Violation>;
    /// Problems with what the fake answered (a bug in the fake): status and body.
    fn check_reply(&self, op: &str, status: u16, content_type: &str, body: &[u8]) -> Vec<String>;
}

/// A fake service behind the contract.
pub trait Fake: Send + Sync + 'static {
    /// Answers a request that passed the contract.
    fn call(self: Arc<Self>, ex: Exchange, log: Log)
    -> Pin<Box<dyn Future<Output = Reply> + Send>>;
}

/// What a fault does to an exchange.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status, JSON body and headers instead of the fake.
    Status(u16, Value, Vec<(String, String)>),
    /// Close the connection without answering.
    Drop,
    /// Let the fake answer, then close the connection part way through the body:
    /// after this many pieces of a streamed answer (envd's event stream), or after
    /// half the bytes of any other answer.
    Truncate(usize),
}

#[derive(Debug)]
struct Injected {
    op: String,
    remaining: u32,
    fault: Fault,
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The operation (or `?` when it matched none).
    pub op: String,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// The server's record: requests, violations, and faults waiting to fire.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Default)]
struct LogInner {
    requests: Vec<Logged>,
    violations: Vec<String>,
    faults: Vec<Injected>,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a violation found by a fake (e.g. in a streamed message).
    pub fn violation(&self, v: impl Into<String>) {
        self.lock().violations.push(v.into());
    }
}

/// A running server. Dropping it stops it, and fails the test when requests broke the
/// contract and the test neither asserted [`TestServer::assert_clean`] nor took them
/// with [`TestServer::take_violations`]: a wrong path answered 404 must not pass for
/// "not found" in a test that never looked.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The address.
    pub addr: SocketAddr,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            return;
        }
        let left = std::mem::take(&mut self.log.lock().violations);
        if !left.is_empty() {
            panic!(
                "the test server at {} saw requests that the real service would reject, \
                 and the test never checked them:\n{}",
                self.url,
                left.join("\n")
            );
        }
    }
}

type Body = BoxBody<Bytes, Dropped>;

impl TestServer {
    /// Starts a server on a free local port: requests are checked by `contract`
    /// (none: anything goes) and answered by `fake`.
    pub async fn start(contract: Option<Arc<dyn Contract>>, fake: Arc<dyn Fake>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        let log = Log::default();
        let l2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (contract, fake, log) = (contract.clone(), fake.clone(), l2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(contract.clone(), fake.clone(), log.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestServer {
            url: format!("http://{addr}"),
            addr,
            log,
            task,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().requests.clone()
    }

    /// How many requests matched operation `op`.
    pub fn count(&self, op: &str) -> usize {
        self.log
            .lock()
            .requests
            .iter()
            .filter(|r| r.op == op)
            .count()
    }

    /// The violations recorded so far.
    pub fn violations(&self) -> Vec<String> {
        self.log.lock().violations.clone()
    }

    /// The violations recorded so far, which the test now owns: they no longer fail
    /// the test when the server is dropped. For tests that break the contract on
    /// purpose.
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.log.lock().violations)
    }

    /// Fails the test when any request broke the API's contract (or the fake broke
    /// its own).
    pub fn assert_clean(&self) {
        let v = self.take_violations();
        assert!(
            v.is_empty(),
            "requests that the real service would reject:\n{}",
            v.join("\n")
        );
    }

    /// The next `times` requests matching operation `op` get `fault` instead of the
    /// fake's answer.
    pub fn inject(&self, op: &str, times: u32, fault: Fault) {
        self.log.lock().faults.push(Injected {
            op: op.to_string(),
            remaining: times,
            fault,
        });
    }

    /// The record, for fakes that need it.
    pub fn log(&self) -> Log {
        self.log.clone()
    }
}

/// Marks a connection to be closed without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    contract: Option<Arc<dyn Contract>>,
    fake: Arc<dyn Fake>,
    log: Log,
    req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let raw_path = parts.uri.path().to_string();
    let query: Vec<(String, String)> = parts.uri.query().map(parse_query).unwrap_or_default();
    let raw = RawRequest {
        method: &method,
        path: &raw_path,
        query: &query,
        headers: &parts.headers,
        body: &body,
    };
    let checked = match &contract {
        Some(c) => c.check(&raw),
        None => Ok(Matched {
            op: format!("{method} {raw_path}"),
            path: raw_path.clone(),
            params: BTreeMap::new(),
        }),
    };
    let op = checked
        .as_ref()
        .map(|m| m.op.clone())
        .unwrap_or_else(|_| "?".into());
    {
        let mut l = log.lock();
        l.requests.push(Logged {
            op: op.clone(),
            method: method.clone(),
            path: raw_path.clone(),
            query: query.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    let matched = match checked {
        Ok(m) => m,
        Err(v) => {
            log.violation(format!("{method} {raw_path}: {}", v.message));
            return Ok(json_response(
                v.status,
                &json!({"error": v.message, "message": v.message, "code": v.status}),
            ));
        }
    };
    let fault = {
        let mut l = log.lock();
        let found = l.faults.iter_mut().find(|f| f.op == op && f.remaining > 0);
        found.map(|f| {
            f.remaining -= 1;
            f.fault.clone()
        })
    };
    // A fault's answer stands for something other than the service (a proxy, a
    // limiter) and is not held to the service's description.
    let from_fake = !matches!(fault, Some(Fault::Status(..)));
    let (reply, cut) = match fault {
        Some(Fault::Drop) => return Err(Dropped),
        Some(Fault::Status(status, body, headers)) => {
            (Reply::json_with(status, body, headers), None)
        }
        other => {
            let ex = Exchange {
                method: method.clone(),
                path: matched.path.clone(),
                query,
                headers: parts.headers.clone(),
                body,
                op: op.clone(),
                params: matched.params,
            };
            let cut = match other {
                Some(Fault::Truncate(n)) => Some(n),
                _ => None,
            };
            (fake.call(ex, log.clone()).await, cut)
        }
    };
    let (status, content_type, headers, body) = match reply {
        Reply::Drop => return Err(Dropped),
        Reply::Json(status, v) => {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            (
                status,
                "application/json".to_string(),
                Vec::new(),
                Content::Whole(bytes),
            )
        }
        Reply::Empty(status) => (
            status,
            String::new(),
            Vec::new(),
            Content::Whole(Vec::new()),
        ),
        Reply::Bytes(status, ct, bytes, headers) => (status, ct, headers, Content::Whole(bytes)),
        Reply::Stream(status, ct, rx) => (status, ct, Vec::new(), Content::Stream(rx)),
    };
    if let (Content::Whole(bytes), true) = (&body, from_fake) {
        check_reply(&contract, &log, &op, status, &content_type, bytes);
    }
    let body = match (body, cut) {
        (Content::Whole(bytes), None) => Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed(),
        (Content::Whole(bytes), Some(_)) => {
            // Half the bytes, then the connection goes: a body that ends early.
            let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
            let pieces = vec![Ok(Frame::data(half)), Err(Dropped)];
            StreamBody::new(futures_util::stream::iter(pieces)).boxed()
        }
        (Content::Stream(rx), cut) => {
            let stream =
                futures_util::stream::unfold((rx, 0usize), move |(mut rx, sent)| async move {
                    if sent == usize::MAX {
                        return None;
                    }
                    if cut.is_some_and(|n| sent >= n) {
                        // The connection goes instead of the next piece (waiting
                        // for it lets the pieces before it reach the client).
                        return rx.recv().await.map(|_| (Err(Dropped), (rx, usize::MAX)));
                    }
                    rx.recv()
                        .await
                        .map(|chunk| (Ok(Frame::data(Bytes::from(chunk))), (rx, sent + 1)))
                });
            StreamBody::new(stream).boxed()
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !content_type.is_empty() {
        set_header(r.headers_mut(), "content-type", &content_type);
    }
    for (k, v) in headers {
        set_header(r.headers_mut(), &k, &v);
    }
    Ok(r)
}

/// A fake's answer body: whole, or streamed as the fake produces it.
enum Content {
    Whole(Vec<u8>),
    Stream(tokio::sync::mpsc::Receiver<Vec<u8>>),
}

fn check_reply(
    contract: &Option<Arc<dyn Contract>>,
    log: &Log,
    op: &str,
    status: u16,
    ct: &str,
    body: &[u8],
) {
    if let Some(c) = contract {
        for p in c.check_reply(op, status, ct, body) {
            log.violation(format!(
                "the fake's answer to {op} breaks the API description: {p}"
            ));
        }
    }
}

fn set_header(h: &mut HeaderMap, k: &str, v: &str) {
    if let (Ok(k), Ok(v)) = (
        HeaderName::from_bytes(k.as_bytes()),
        HeaderValue::from_str(v),
    ) {
        h.insert(k, v);
    }
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_header(r.headers_mut(), "content-type", "application/json");
    r
}

/// A fake made of a closure, for tests of the HTTP client itself.
pub struct FnFake<F>(pub F);

impl<F, Fut> Fake for FnFake<F>
where
    F: Fn(Exchange) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    fn call(
        self: Arc<Self>,
        ex: Exchange,
        _log: Log,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin((self.0)(ex))
    }
}

/// Sleeps, for fakes that answer late.
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Decodes `a=1&b=x%20y` (with `+` as a space, as forms encode it).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` when `plus_is_space`).
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
