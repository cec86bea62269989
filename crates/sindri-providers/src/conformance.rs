//! The provider conformance suite: what every provider must do, checked against the
//! real platform (or its emulator).
//!
//! Each check is a plain `async fn` taking the provider as `&dyn Provider` and a
//! [`ResolvedSpec`] fixture, and calls the provider only through
//! [`sindri_core::dispatch`], exactly as the CLI does. Capability differences are read
//! from [`Provider::capabilities`]: a check skips the parts of the contract that a
//! provider truthfully declares it lacks (and [`unsupported_ops_refused`] proves those
//! are refused). A check panics with a message at the first deviation.
//!
//! # The fixture
//! Every check takes a `spec` that:
//! - names an environment that is **not deployed** and is used by no other test running
//!   at the same time (use a unique name per test);
//! - runs an image with a POSIX `sh`, `echo`, `cat` and `pwd` (the Docker tests use a
//!   busybox image);
//! - can be deployed by the provider as it is (no GPUs unless the platform has them).
//!
//! Every check that deploys ends with `destroy --volumes`, so a passing check leaves
//! nothing behind. A failing check may leave resources: callers should also clean up by
//! label in a drop guard.
//!
//! # Use
//! ```ignore
//! #[tokio::test]
//! async fn lifecycle() {
//!     let (provider, spec, _guard) = fixture("lifecycle");
//!     sindri_providers::conformance::lifecycle(provider.as_ref(), &spec).await;
//! }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sindri_core::{
    DeployOptions, Deployment, DestroyOptions, ErrorKind, ExecCommand, ExecIo, LogOptions,
    Operation, Progress, Provider, ResolvedSpec, StatusState, TransferStats, dispatch,
};
use tokio::io::AsyncWrite;

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The exit code.
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl Captured {
    /// Stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// An in-memory writer that stays readable after being handed to a provider as one of
/// [`ExecIo`]'s boxed streams.
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents()).into_owned()
    }
}

impl AsyncWrite for SharedBuffer {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Runs `cmd` through [`dispatch::exec`], feeding `stdin`, and collects its output.
pub async fn exec_capture(
    p: &dyn Provider,
    d: &Deployment,
    cmd: &ExecCommand,
    stdin: Option<&[u8]>,
) -> sindri_core::Result<Captured> {
    let out = SharedBuffer::default();
    let err = SharedBuffer::default();
    let io = ExecIo {
        stdin: stdin.map(|b| {
            Box::new(std::io::Cursor::new(b.to_vec()))
                as Box<dyn tokio::io::AsyncRead + Send + Unpin>
        }),
        stdout: Box::new(out.clone()),
        stderr: Box::new(err.clone()),
        tty: None,
    };
    let code = dispatch::exec(p, d, cmd, io).await?;
    Ok(Captured {
        code,
        stdout: out.contents(),
        stderr: err.contents(),
    })
}

/// A [`Progress`] that remembers what it was told, for asserting on phases.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<(String, String)>>,
}

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The names of the phases that started, in order.
    pub fn phases(&self) -> Vec<String> {
        self.events("started")
    }

    /// The names of the phases that finished, in order.
    pub fn finished(&self) -> Vec<String> {
        self.events("finished")
    }

    /// The names of the phases that failed, in order.
    pub fn failed(&self) -> Vec<String> {
        self.events("failed")
    }

    /// Every message and warning, in order.
    pub fn messages(&self) -> Vec<String> {
        let mut m = self.events("message");
        m.extend(self.events("warn"));
        m
    }

    /// The warnings, in order.
    pub fn warnings(&self) -> Vec<String> {
        self.events("warn")
    }

    fn events(&self, kind: &str) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn push(&self, kind: &str, text: &str) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((kind.to_string(), text.to_string()));
    }
}

impl Progress for Recorder {
    fn phase_started(&self, phase: &str) {
        self.push("started", phase);
    }
    fn phase_finished(&self, phase: &str, _took: Duration) {
        self.push("finished", phase);
    }
    fn phase_failed(&self, phase: &str, _took: Duration) {
        self.push("failed", phase);
    }
    fn message(&self, text: &str) {
        self.push("message", text);
    }
    fn warn(&self, text: &str) {
        self.push("warn", text);
    }
}

/// A record for an environment that was never deployed, as the CLI would hold it
/// before the first deploy.
pub fn never_deployed(p: &dyn Provider, spec: &ResolvedSpec) -> Deployment {
    Deployment::creating(spec.name(), p.kind(), &spec.project, &spec.spec_hash())
}

/// Polls `status` until it reports `want`; platforms may take a moment to settle.
/// Bounded by a number of attempts, not by a clock.
pub async fn wait_for_state(p: &dyn Provider, d: &Deployment, want: StatusState) {
    let mut last = None;
    let mut delay = Duration::from_millis(50);
    for _ in 0..40 {
        let s = dispatch::status(p, d)
            .await
            .unwrap_or_else(|e| panic!("status of `{}` failed: {e}", d.name));
        if s.state == want {
            return;
        }
        last = Some(s);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    panic!(
        "`{}` never reached state {}; last status: {last:?}",
        d.name,
        want.as_str()
    );
}

async fn deploy(p: &dyn Provider, spec: &ResolvedSpec) -> Deployment {
    let d = dispatch::deploy(p, spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "deploy of `{}` failed: {e} (hint: {:?})",
                spec.name(),
                e.hint()
            )
        });
    assert_eq!(d.name, spec.name(), "the record names the environment");
    assert_eq!(d.provider, p.kind(), "the record names the provider");
    assert_eq!(d.project, spec.project, "the record names the project");
    assert_eq!(
        d.spec_hash,
        spec.spec_hash(),
        "the record holds the deployed spec's hash"
    );
    assert!(
        d.resource_id.is_some(),
        "a deployed environment has a resource id"
    );
    d
}

async fn destroy_all(p: &dyn Provider, d: &Deployment) {
    dispatch::destroy(p, d, DestroyOptions { volumes: true })
        .await
        .unwrap_or_else(|e| panic!("destroy --volumes of `{}` failed: {e}", d.name));
}

fn home(spec: &ResolvedSpec) -> String {
    spec.spec.deployment.home.trim_end_matches('/').to_string()
}

/// A local tree with text, binary (larger than one 64 KiB chunk), empty and nested
/// files, and a name with a space.
fn make_tree(root: &Path) -> TransferStats {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", b"alpha\n".to_vec()),
        ("bin.dat", (0..70_000u32).map(|i| (i % 251) as u8).collect()),
        ("empty", Vec::new()),
        ("sub/deeper/note.md", b"deep\n".to_vec()),
        ("sub/space name.txt", b"spaces are fine\n".to_vec()),
    ];
    let mut stats = TransferStats::default();
    for (rel, data) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create test dirs");
        std::fs::write(&path, &data).expect("write test file");
        stats.files += 1;
        stats.bytes += data.len() as u64;
    }
    stats
}

/// Every regular file under `root`, by relative path, with its bytes.
fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let e = e.expect("dir entry");
            let path = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                go(root, &path, out);
            } else if ft.is_file() {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// The whole life of an environment.
///
/// Contract: `deploy` returns a complete record and the environment is `running`;
/// `exec` returns the command's exit code (0, and a non-zero one unchanged), keeps
/// stdout and stderr apart, passes stdin (closing it at its end), `env` and `workdir`;
/// `logs` answers; `stop` makes it `stopped` and is idempotent, `start` makes it
/// `running` again; `copy_in` of a directory tree and of a single file, then
/// `copy_out`, give back identical bytes, with file and byte counts that match;
/// `destroy --volumes` makes it `missing`.
pub async fn lifecycle(p: &dyn Provider, spec: &ResolvedSpec) {
    let caps = p.capabilities();
    let d = deploy(p, spec).await;
    wait_for_state(p, &d, StatusState::Running).await;

    if caps.exec {
        let hello = exec_capture(p, &d, &ExecCommand::new(["echo", "hello"]), None)
            .await
            .expect("exec echo");
        assert_eq!(hello.code, 0, "echo exits 0: {hello:?}");
        assert_eq!(hello.out(), "hello\n");
        assert_eq!(hello.err(), "", "echo writes nothing to stderr");

        let fail = exec_capture(
            p,
            &d,
            &ExecCommand::shell("echo to-out; echo to-err >&2; exit 3"),
            None,
        )
        .await
        .expect("exec of a failing command still returns its code");
        assert_eq!(
            fail.code, 3,
            "the command's exit code is propagated: {fail:?}"
        );
        assert_eq!(fail.out(), "to-out\n", "stdout carries only stdout");
        assert_eq!(fail.err(), "to-err\n", "stderr is kept apart from stdout");

        let input = b"line one\nline two\n";
        let cat = exec_capture(p, &d, &ExecCommand::new(["cat"]), Some(input))
            .await
            .expect("exec cat with stdin");
        assert_eq!(cat.code, 0, "cat ends when stdin is closed: {cat:?}");
        assert_eq!(cat.stdout, input, "stdin reaches the command");

        let mut with_env = ExecCommand::shell("echo \"$SINDRI_CONFORMANCE\"; pwd");
        with_env.env = vec![("SINDRI_CONFORMANCE".into(), "value with spaces".into())];
        with_env.workdir = Some("/tmp".into());
        let env = exec_capture(p, &d, &with_env, None)
            .await
            .expect("exec with env");
        assert_eq!(
            env.out(),
            "value with spaces\n/tmp\n",
            "env and workdir are applied"
        );
    }

    if caps.logs {
        let mut sink = SharedBuffer::default();
        dispatch::logs(
            p,
            &d,
            LogOptions {
                follow: false,
                tail: Some(10),
            },
            &mut sink,
        )
        .await
        .expect("logs of a running environment");
    }

    if caps.start_stop {
        dispatch::stop(p, &d).await.expect("stop");
        wait_for_state(p, &d, StatusState::Stopped).await;
        dispatch::stop(p, &d)
            .await
            .expect("stop of a stopped environment is fine");
        wait_for_state(p, &d, StatusState::Stopped).await;
        dispatch::start(p, &d).await.expect("start");
        wait_for_state(p, &d, StatusState::Running).await;
        if caps.exec {
            let again = exec_capture(p, &d, &ExecCommand::new(["echo", "back"]), None)
                .await
                .expect("exec after start");
            assert_eq!((again.code, again.out().as_str()), (0, "back\n"));
        }
    }

    if caps.copy {
        let local = tempfile::tempdir().expect("temp dir");
        let src = local.path().join("tree");
        let expected = make_tree(&src);
        let remote = format!("{}/conformance-in", home(spec));
        let sent = dispatch::copy_in(p, &d, &src, &remote)
            .await
            .expect("copy_in of a tree");
        assert_eq!(sent, expected, "copy_in counts files and bytes");
        if caps.exec {
            let cat = exec_capture(
                p,
                &d,
                &ExecCommand::new(["cat", &format!("{remote}/a.txt")]),
                None,
            )
            .await
            .expect("exec cat of a copied file");
            assert_eq!(cat.out(), "alpha\n", "the copied file is where it was sent");
        }
        let back = local.path().join("back");
        let got = dispatch::copy_out(p, &d, &remote, &back)
            .await
            .expect("copy_out of a tree");
        assert_eq!(got, expected, "copy_out counts files and bytes");
        assert_eq!(
            read_tree(&back),
            read_tree(&src),
            "the tree comes back byte for byte"
        );

        let single = local.path().join("single.txt");
        std::fs::write(&single, b"just one file\n").expect("write single");
        let remote_file = format!("{}/conformance-single.txt", home(spec));
        let one = dispatch::copy_in(p, &d, &single, &remote_file)
            .await
            .expect("copy_in of a file");
        assert_eq!(
            one,
            TransferStats {
                files: 1,
                bytes: 14
            }
        );
        let back_file = local.path().join("single-back.txt");
        let one_back = dispatch::copy_out(p, &d, &remote_file, &back_file)
            .await
            .expect("copy_out of a file");
        assert_eq!(
            one_back,
            TransferStats {
                files: 1,
                bytes: 14
            }
        );
        assert_eq!(
            std::fs::read(&back_file).expect("read copied file"),
            b"just one file\n"
        );
    }

    destroy_all(p, &d).await;
    let s = dispatch::status(p, &d).await.expect("status after destroy");
    assert_eq!(
        s.state,
        StatusState::Missing,
        "destroyed means missing: {s:?}"
    );
}

/// Contract: deploying an unchanged spec twice yields the same resource, the
/// environment keeps running, and `plan` then proposes nothing (`Plan::is_noop`).
pub async fn idempotent_deploy(p: &dyn Provider, spec: &ResolvedSpec) {
    let first = deploy(p, spec).await;
    let second = deploy(p, spec).await;
    assert_eq!(
        first.resource_id, second.resource_id,
        "an unchanged spec must not replace the environment"
    );
    wait_for_state(p, &second, StatusState::Running).await;
    let plan = dispatch::plan(p, spec, Some(&second))
        .await
        .expect("plan after deploy");
    assert!(
        plan.is_noop(),
        "plan of a deployed, unchanged spec changes nothing: {:?}",
        plan.steps
    );
    destroy_all(p, &second).await;
}

/// Contract: `destroy` of an environment that is already gone succeeds and removes
/// nothing more; the environment is `missing`.
pub async fn destroy_twice(p: &dyn Provider, spec: &ResolvedSpec) {
    let d = deploy(p, spec).await;
    let first = dispatch::destroy(p, &d, DestroyOptions { volumes: true })
        .await
        .expect("first destroy");
    assert!(
        !first.removed.is_empty(),
        "the first destroy removes something"
    );
    let second = dispatch::destroy(p, &d, DestroyOptions { volumes: true })
        .await
        .expect("second destroy succeeds");
    assert!(
        second.removed.is_empty(),
        "nothing is left to remove: {second:?}"
    );
    let plain = dispatch::destroy(p, &d, DestroyOptions { volumes: false })
        .await
        .expect("destroy without --volumes succeeds too");
    assert!(plain.removed.is_empty(), "{plain:?}");
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Missing);
}

/// Contract: for an environment that was never deployed, `status` is `missing`,
/// `destroy` (with and without volumes) succeeds, and every other supported operation
/// that needs the environment fails with `ErrorKind::NotFound`.
pub async fn not_found(p: &dyn Provider, spec: &ResolvedSpec) {
    let caps = p.capabilities();
    let d = never_deployed(p, spec);
    let s = dispatch::status(p, &d)
        .await
        .expect("status of a never-deployed environment");
    assert_eq!(s.state, StatusState::Missing, "{s:?}");
    for volumes in [false, true] {
        dispatch::destroy(p, &d, DestroyOptions { volumes })
            .await
            .unwrap_or_else(|e| {
                panic!("destroy (volumes: {volumes}) of nothing must succeed: {e}")
            });
    }
    let expect_not_found = |op: &str, r: sindri_core::Result<()>| match r {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => panic!("{op} of a never-deployed environment: expected NotFound, got {other:?}"),
    };
    if caps.exec {
        let r = exec_capture(p, &d, &ExecCommand::new(["true"]), None)
            .await
            .map(|_| ());
        expect_not_found("exec", r);
    }
    if caps.connect {
        expect_not_found(
            "connect",
            dispatch::connect(p, &d, ExecIo::null()).await.map(|_| ()),
        );
    }
    if caps.start_stop {
        expect_not_found("start", dispatch::start(p, &d).await);
        expect_not_found("stop", dispatch::stop(p, &d).await);
    }
    if caps.logs {
        let mut sink = SharedBuffer::default();
        expect_not_found(
            "logs",
            dispatch::logs(p, &d, LogOptions::default(), &mut sink).await,
        );
    }
    if caps.copy {
        let dir = tempfile::tempdir().expect("temp dir");
        expect_not_found(
            "copy_in",
            dispatch::copy_in(p, &d, dir.path(), "/tmp/x")
                .await
                .map(|_| ()),
        );
        expect_not_found(
            "copy_out",
            dispatch::copy_out(p, &d, "/etc/hostname", &dir.path().join("x"))
                .await
                .map(|_| ()),
        );
    }
    let owned = dispatch::list_owned(p).await.expect("list_owned");
    assert!(
        !owned
            .iter()
            .any(|o| o.name == d.name && o.project == d.project),
        "a never-deployed environment is not listed"
    );
}

/// Contract: every operation the provider does not declare is refused by the
/// dispatcher with `ErrorKind::Unsupported(op)` and a note saying what to do instead;
/// and a spec asking for a feature the provider lacks (GPU, ports, volumes, build) is
/// refused with `ErrorKind::Invalid` by `plan` and `deploy` before anything is created.
pub async fn unsupported_ops_refused(p: &dyn Provider, spec: &ResolvedSpec) {
    let caps = p.capabilities();
    let d = never_deployed(p, spec);
    for op in Operation::ALL {
        if caps.supports(op) {
            continue;
        }
        let note = caps.note(op);
        assert!(
            note.is_some_and(|n| !n.is_empty()),
            "unsupported `{op}` has no note explaining it"
        );
        let r = call(p, op, spec, &d).await;
        match r {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Unsupported(op), "{op}: {e}");
                assert_eq!(
                    e.hint(),
                    note,
                    "{op}: the refusal carries the provider's note"
                );
            }
            Ok(()) => panic!("unsupported `{op}` was not refused"),
        }
    }
    let d_spec = &spec.spec.deployment;
    let mut variants: Vec<(&str, ResolvedSpec)> = Vec::new();
    if !caps.gpu {
        let mut s = spec.clone();
        s.spec.deployment.resources.gpu = Some(sindri_spec::GpuSpec {
            count: 1,
            kind: None,
        });
        variants.push(("gpu", s));
    }
    if !caps.ports {
        let mut s = spec.clone();
        s.spec.deployment.ports = vec!["8080".parse().expect("port")];
        variants.push(("ports", s));
    }
    if !caps.volumes {
        let mut s = spec.clone();
        s.spec.deployment.volumes = vec![sindri_spec::VolumeSpec {
            name: "data".into(),
            path: "/data".into(),
            size: None,
        }];
        variants.push(("volumes", s));
    }
    if !caps.build && d_spec.build.is_none() {
        let mut s = spec.clone();
        s.spec.deployment.build =
            Some(serde_json::from_value(serde_json::json!({})).expect("default build spec"));
        variants.push(("build", s));
    }
    for (feature, s) in variants {
        let e = dispatch::plan(p, &s, None).await.expect_err(feature);
        assert_eq!(e.kind(), ErrorKind::Invalid, "plan with {feature}: {e}");
        let e = dispatch::deploy(p, &s, DeployOptions::default(), &Recorder::new())
            .await
            .expect_err(feature);
        assert_eq!(e.kind(), ErrorKind::Invalid, "deploy with {feature}: {e}");
    }
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Missing, "refusals created nothing");
}

/// Calls the dispatcher for `op` with placeholder arguments.
async fn call(
    p: &dyn Provider,
    op: Operation,
    spec: &ResolvedSpec,
    d: &Deployment,
) -> sindri_core::Result<()> {
    match op {
        Operation::Plan => dispatch::plan(p, spec, None).await.map(|_| ()),
        Operation::Deploy => dispatch::deploy(p, spec, DeployOptions::default(), &Recorder::new())
            .await
            .map(|_| ()),
        Operation::Status => dispatch::status(p, d).await.map(|_| ()),
        Operation::Start => dispatch::start(p, d).await,
        Operation::Stop => dispatch::stop(p, d).await,
        Operation::Suspend => dispatch::suspend(p, d).await,
        Operation::Exec => dispatch::exec(p, d, &ExecCommand::new(["true"]), ExecIo::null())
            .await
            .map(|_| ()),
        Operation::Connect => dispatch::connect(p, d, ExecIo::null()).await.map(|_| ()),
        Operation::Logs => {
            let mut sink = SharedBuffer::default();
            dispatch::logs(p, d, LogOptions::default(), &mut sink).await
        }
        Operation::CopyIn => dispatch::copy_in(p, d, Path::new("."), "/tmp")
            .await
            .map(|_| ()),
        Operation::CopyOut => dispatch::copy_out(p, d, "/tmp", Path::new("./x"))
            .await
            .map(|_| ()),
        Operation::Destroy => dispatch::destroy(p, d, DestroyOptions::default())
            .await
            .map(|_| ()),
        Operation::ListOwned => dispatch::list_owned(p).await.map(|_| ()),
    }
}

/// Contract: `list_owned` finds a deployed environment from the platform alone (name,
/// project, spec hash and resource id rebuilt from labels or tags), and no longer
/// lists it after `destroy --volumes`.
pub async fn list_owned(p: &dyn Provider, spec: &ResolvedSpec) {
    list_owned_keeping(p, spec, true).await;
}

/// [`list_owned`] for a platform that may keep no spec hash (Lyceum keeps only a
/// display name, docs/adr/0008): with `keeps_spec_hash` false, the rebuilt record's
/// hash must be empty, meaning unknown, never a stale one.
pub async fn list_owned_keeping(p: &dyn Provider, spec: &ResolvedSpec, keeps_spec_hash: bool) {
    let d = deploy(p, spec).await;
    let owned = dispatch::list_owned(p).await.expect("list_owned");
    let found = owned
        .iter()
        .find(|o| o.name == d.name && o.project == d.project)
        .unwrap_or_else(|| panic!("list_owned misses `{}`: {owned:?}", d.name));
    assert_eq!(found.provider, p.kind());
    if keeps_spec_hash {
        assert_eq!(
            found.spec_hash, d.spec_hash,
            "the spec hash is rebuilt from the platform"
        );
    } else {
        assert_eq!(found.spec_hash, "", "an unknown spec hash is empty");
    }
    assert_eq!(
        found.resource_id, d.resource_id,
        "the resource id is rebuilt from the platform"
    );
    destroy_all(p, &d).await;
    let after = dispatch::list_owned(p)
        .await
        .expect("list_owned after destroy");
    assert!(
        !after
            .iter()
            .any(|o| o.name == d.name && o.project == d.project),
        "a destroyed environment is no longer listed: {after:?}"
    );
}

/// Contract: `plan` of a never-deployed spec proposes creating something, renders at
/// least one artifact, never shows a secret value, and changes nothing (the
/// environment stays `missing` and unlisted).
pub async fn plan_changes_nothing(p: &dyn Provider, spec: &ResolvedSpec) {
    let plan = dispatch::plan(p, spec, None).await.expect("plan");
    assert_eq!(plan.environment, spec.name());
    assert!(
        plan.steps
            .iter()
            .any(|s| s.action == sindri_core::PlanAction::Create),
        "a first plan creates something: {:?}",
        plan.steps
    );
    assert!(!plan.is_noop());
    assert!(
        !plan.artifacts.is_empty(),
        "plan renders the platform's artifacts"
    );
    let text = serde_json::to_string(&plan).expect("plan serialises");
    for s in &spec.secrets {
        assert!(
            !text.contains(s.value.expose()),
            "plan output contains the value of secret {}",
            s.name
        );
    }
    let d = never_deployed(p, spec);
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(
        s.state,
        StatusState::Missing,
        "plan must not create anything"
    );
    let owned = dispatch::list_owned(p).await.expect("list_owned");
    assert!(
        !owned
            .iter()
            .any(|o| o.name == d.name && o.project == d.project)
    );
}
