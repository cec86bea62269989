//! The shared HTTP client: retries (429 with Retry-After, 5xx, dropped connections),
//! the one status-to-kind table, timeouts and redaction, against a local server.
#![cfg(feature = "http")]

#[path = "support/spec_server/server.rs"]
#[allow(dead_code)]
mod server;

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use server::{Exchange, Fault, FnFake, Reply, TestServer};
use sindri_core::{ErrorKind, SecretValue};
use sindri_providers::http::{Auth, ClientOptions, HttpClient, RetryPolicy, Url};
use sindri_spec::ProviderKind;

const TOKEN: &str = "tok_super_secret_7c1d";

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
        },
        auth_hint: Some("set TEST_TOKEN".into()),
    }
}

fn client(url: &str) -> HttpClient {
    HttpClient::new(
        ProviderKind::Fly,
        "Test API",
        Url::parse(url).expect("url"),
        Auth::bearer(SecretValue::new(TOKEN)),
        options(),
    )
    .expect("client")
}

/// A server answering each request with the next reply of `script` (the last one
/// repeats), counting requests.
/// One scripted answer: status, JSON body, headers.
type Step = (u16, serde_json::Value, Vec<(&'static str, &'static str)>);

async fn scripted(script: Vec<Step>) -> (TestServer, Arc<AtomicU32>) {
    let n = Arc::new(AtomicU32::new(0));
    let count = n.clone();
    let script = Arc::new(script);
    let fake = FnFake(move |_ex: Exchange| {
        let i = count.fetch_add(1, Ordering::SeqCst) as usize;
        let script = script.clone();
        async move {
            let (status, body, headers) = script[i.min(script.len() - 1)].clone();
            Reply::json_with(
                status,
                body,
                headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        }
    });
    (TestServer::start(None, Arc::new(fake)).await, n)
}

#[tokio::test]
async fn a_429_is_retried_after_the_delay_retry_after_asks_for() {
    let (srv, n) = scripted(vec![
        (
            429,
            json!({"error": "slow down"}),
            vec![("Retry-After", "1")],
        ),
        (200, json!({"ok": true}), vec![]),
    ])
    .await;
    let logs = capture_logs();
    let c = client(&srv.url);
    let v: serde_json::Value = {
        let _g = logs.install();
        c.json(c.get("/things"))
            .await
            .expect("succeeds after the retry")
    };
    assert_eq!(v, json!({"ok": true}));
    assert_eq!(n.load(Ordering::SeqCst), 2, "one retry");
    let text = logs.text();
    assert!(
        text.contains("HTTP 429: slow down; retrying in 1.0s (as Retry-After asks)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_5xx_is_retried_for_gets_and_reported_as_transient_when_it_persists() {
    let (srv, n) = scripted(vec![
        (503, json!({"message": "down"}), vec![]),
        (502, json!({}), vec![]),
        (200, json!(1), vec![]),
    ])
    .await;
    let c = client(&srv.url);
    let v: i32 = c.json(c.get("/x")).await.expect("third attempt succeeds");
    assert_eq!((v, n.load(Ordering::SeqCst)), (1, 3));

    let (srv, n) = scripted(vec![(500, json!({"message": "boom"}), vec![])]).await;
    let c = client(&srv.url);
    let e = c
        .send(c.get("/x").what("read the thing"))
        .await
        .expect_err("fails");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(n.load(Ordering::SeqCst), 4, "max_attempts in all");
    assert!(
        e.message().contains(
            "read the thing (Test API): HTTP 500 Internal Server Error: boom (after 4 attempts)"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_post_is_not_repeated_after_a_500_but_is_after_a_429_or_503() {
    let (srv, n) = scripted(vec![
        (500, json!({"message": "boom"}), vec![]),
        (200, json!(1), vec![]),
    ])
    .await;
    let c = client(&srv.url);
    let e = c
        .send(c.post("/create").json(&json!({})))
        .await
        .expect_err("not retried");
    assert_eq!(
        n.load(Ordering::SeqCst),
        1,
        "a POST that may have taken effect is sent once"
    );
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(
        e.hint()
            .unwrap()
            .contains("may or may not have taken effect"),
        "{:?}",
        e.hint()
    );

    let (srv, n) = scripted(vec![
        (429, json!({}), vec![]),
        (503, json!({}), vec![]),
        (201, json!(7), vec![]),
    ])
    .await;
    let c = client(&srv.url);
    let v: i32 = c
        .json(c.post("/create").json(&json!({})))
        .await
        .expect("429 and 503 mean not processed");
    assert_eq!((v, n.load(Ordering::SeqCst)), (7, 3));

    let (srv, n) = scripted(vec![(500, json!({}), vec![]), (200, json!(2), vec![])]).await;
    let c = client(&srv.url);
    let v: i32 = c
        .json(c.post("/stop").idempotent(true))
        .await
        .expect("an idempotent POST is retried");
    assert_eq!((v, n.load(Ordering::SeqCst)), (2, 2));
}

#[tokio::test]
async fn statuses_map_to_kinds_with_the_apis_own_message() {
    for (status, kind) in [
        (400, ErrorKind::Invalid),
        (422, ErrorKind::Invalid),
        (401, ErrorKind::Auth),
        (403, ErrorKind::Auth),
        (404, ErrorKind::NotFound),
        (409, ErrorKind::Conflict),
        (402, ErrorKind::Quota),
        (412, ErrorKind::Platform),
    ] {
        let (srv, n) = scripted(vec![(
            status,
            json!({"error": format!("reason {status}")}),
            vec![],
        )])
        .await;
        let c = client(&srv.url);
        let e = c.send(c.get("/x")).await.expect_err("fails");
        assert_eq!(e.kind(), kind, "status {status}");
        assert!(e.message().contains(&format!("reason {status}")), "{e}");
        assert_eq!(e.provider(), Some(ProviderKind::Fly));
        assert_eq!(n.load(Ordering::SeqCst), 1, "{status} is not retried");
        if kind == ErrorKind::Auth {
            assert_eq!(
                e.hint(),
                Some("set TEST_TOKEN"),
                "auth errors say how to fix the credential"
            );
        }
    }
}

#[tokio::test]
async fn accepted_statuses_come_back_to_the_caller() {
    let (srv, _) = scripted(vec![(404, json!({"error": "nope"}), vec![])]).await;
    let c = client(&srv.url);
    let r = c.send(c.get("/x").accept(404)).await.expect("accepted");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_classifier_overrides_the_table_and_stops_retries() {
    let (srv, n) = scripted(vec![(
        500,
        json!({"error": "no room", "status": "insufficient_capacity"}),
        vec![],
    )])
    .await;
    let c = client(&srv.url).with_classifier(|f| {
        (f.json
            .and_then(|j| j.get("status"))
            .and_then(|s| s.as_str())
            == Some("insufficient_capacity"))
        .then_some(ErrorKind::Capacity)
    });
    let e = c.send(c.get("/x")).await.expect_err("fails");
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert_eq!(
        n.load(Ordering::SeqCst),
        1,
        "capacity errors are not retried in place"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_sindri_waits_fails_at_once_with_a_hint() {
    let (srv, n) = scripted(vec![(429, json!({}), vec![("Retry-After", "3600")])]).await;
    let c = client(&srv.url);
    let e = c.send(c.get("/x")).await.expect_err("fails");
    assert_eq!(
        (e.kind(), n.load(Ordering::SeqCst)),
        (ErrorKind::Transient, 1)
    );
    assert!(
        e.hint().unwrap().contains("asked to wait 3600s"),
        "{:?}",
        e.hint()
    );
}

#[tokio::test]
async fn dropped_connections_are_retried_for_idempotent_requests_only() {
    let fake = FnFake(|_ex: Exchange| async { Reply::Json(200, json!({"fine": 1})) });
    let srv = TestServer::start(None, Arc::new(fake)).await;
    srv.inject("GET /x", 2, Fault::Drop);
    let c = client(&srv.url);
    let v: serde_json::Value = c.json(c.get("/x")).await.expect("retried past two drops");
    assert_eq!(v, json!({"fine": 1}));
    assert_eq!(srv.count("GET /x"), 3);

    srv.inject("POST /x", 1, Fault::Drop);
    let e = c
        .send(c.post("/x").json(&json!({"a": 1})))
        .await
        .expect_err("a dropped POST is not repeated");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(srv.count("POST /x"), 1);
    assert!(
        e.hint().unwrap().contains("run the command again"),
        "{:?}",
        e.hint()
    );
}

#[tokio::test]
async fn an_unreachable_api_is_unavailable_after_retries() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"));
    let e = c
        .send(c.get("/x").what("list things"))
        .await
        .expect_err("fails");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.message().contains(&format!(
            "list things: cannot reach Test API at 127.0.0.1:{port} (after 4 attempts)"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_request_that_outlives_its_timeout_fails_as_transient() {
    let fake = FnFake(|_ex: Exchange| async {
        server::pause(Duration::from_secs(30)).await;
        Reply::Json(200, json!(1))
    });
    let srv = TestServer::start(None, Arc::new(fake)).await;
    let mut o = options();
    o.retry = RetryPolicy::none();
    let c = HttpClient::new(
        ProviderKind::E2b,
        "Slow API",
        Url::parse(&srv.url).unwrap(),
        Auth::None,
        o,
    )
    .unwrap();
    let e = c
        .send(c.get("/slow").timeout(Duration::from_millis(200)))
        .await
        .expect_err("times out");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.message().contains("did not answer in time"), "{e}");
}

#[tokio::test]
async fn tokens_never_appear_in_errors_hints_or_logs_even_when_echoed() {
    // The server echoes the Authorization header in its error message and sets it as
    // the Retry-After reason; the client sends it as `Bearer <token>`.
    let fake = FnFake(|ex: Exchange| async move {
        let auth = ex.h("authorization").unwrap_or("").to_string();
        let status = if ex.path.ends_with("/retry") {
            500
        } else {
            401
        };
        Reply::Json(
            status,
            json!({"message": format!("bad credential `{auth}` for {}", ex.path)}),
        )
    });
    let srv = TestServer::start(None, Arc::new(fake)).await;
    let mut c = client(&srv.url);
    c.add_secret("body-secret-value");
    let logs = capture_logs();
    let (e1, e2) = {
        let _g = logs.install();
        let e1 = c.send(c.get("/auth")).await.expect_err("401");
        let e2 = c
            .send(c.get(&format!("/{TOKEN}/body-secret-value/retry")))
            .await
            .expect_err("500");
        (e1, e2)
    };
    assert_eq!(e1.kind(), ErrorKind::Auth);
    let text = format!("{e1} {:?} {e2} {:?} {e1:?} {e2:?}", e1.hint(), e2.hint());
    assert!(
        text.contains("bad credential `Bearer ***`"),
        "the echo is kept, redacted: {text}"
    );
    assert!(
        !text.contains(TOKEN),
        "a token leaked into an error: {text}"
    );
    assert!(
        !text.contains("body-secret-value"),
        "a registered secret leaked: {text}"
    );
    let logged = logs.text();
    assert!(
        logged.contains("retrying"),
        "the retries were logged: {logged}"
    );
    assert!(
        logged.contains("GET http://127.0.0.1"),
        "requests were logged: {logged}"
    );
    assert!(
        !logged.contains(TOKEN),
        "a token leaked into a log line: {logged}"
    );
    assert!(
        !logged.contains("body-secret-value"),
        "a secret leaked into a log line: {logged}"
    );
    assert!(!format!("{c:?}").contains(TOKEN));
}

/// Collects tracing output of the current thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

fn capture_logs() -> Logs {
    Logs::default()
}

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
