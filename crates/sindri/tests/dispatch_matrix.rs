//! The architecture rule: every command reaches a provider only through
//! `sindri_core::dispatch`, and every registered provider either receives each
//! operation or has it refused up front, from its declared capabilities, with a typed
//! `Unsupported` error.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sindri_core::{
    Capabilities, Check, DeployOptions, Deployment, DestroyOptions, DestroyReport, Error,
    ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, NoProgress, Operation, Plan, Provider,
    ResolvedSpec, Result, Status, TransferStats, dispatch,
};
use sindri_spec::{ProviderKind, ProvidersSpec};

/// Stands in for a real provider with the same kind and capabilities, records which
/// methods the dispatcher called, and never contacts a platform.
struct Spy {
    kind: ProviderKind,
    caps: Capabilities,
    calls: Mutex<Vec<Operation>>,
}

impl Spy {
    fn called(&self, op: Operation) -> Error {
        self.calls.lock().unwrap().push(op);
        Error::platform(self.kind, "spy: reached the provider")
    }
}

#[async_trait]
impl Provider for Spy {
    fn kind(&self) -> ProviderKind {
        self.kind
    }
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
    async fn check(&self) -> Vec<Check> {
        Vec::new()
    }
    async fn plan(&self, _: &ResolvedSpec, _: Option<&Deployment>) -> Result<Plan> {
        Err(self.called(Operation::Plan))
    }
    async fn deploy(
        &self,
        _: &ResolvedSpec,
        _: DeployOptions,
        _: &dyn sindri_core::Progress,
    ) -> Result<Deployment> {
        Err(self.called(Operation::Deploy))
    }
    async fn status(&self, _: &Deployment) -> Result<Status> {
        Err(self.called(Operation::Status))
    }
    async fn start(&self, _: &Deployment) -> Result<()> {
        Err(self.called(Operation::Start))
    }
    async fn stop(&self, _: &Deployment) -> Result<()> {
        Err(self.called(Operation::Stop))
    }
    async fn suspend(&self, _: &Deployment) -> Result<()> {
        Err(self.called(Operation::Suspend))
    }
    async fn exec(&self, _: &Deployment, _: &ExecCommand, _: ExecIo) -> Result<i32> {
        Err(self.called(Operation::Exec))
    }
    async fn connect(&self, _: &Deployment, _: ExecIo) -> Result<i32> {
        Err(self.called(Operation::Connect))
    }
    async fn logs(&self, _: &Deployment, _: LogOptions, _: LogSink<'_>) -> Result<()> {
        Err(self.called(Operation::Logs))
    }
    async fn copy_in(&self, _: &Deployment, _: &Path, _: &str) -> Result<TransferStats> {
        Err(self.called(Operation::CopyIn))
    }
    async fn copy_out(&self, _: &Deployment, _: &str, _: &Path) -> Result<TransferStats> {
        Err(self.called(Operation::CopyOut))
    }
    async fn destroy(&self, _: &Deployment, _: DestroyOptions) -> Result<DestroyReport> {
        Err(self.called(Operation::Destroy))
    }
    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        Err(self.called(Operation::ListOwned))
    }
}

fn spec_for(kind: ProviderKind) -> ResolvedSpec {
    let yaml = format!("name: matrix\ndeployment:\n  provider: {kind}\n  image: busybox\n");
    let spec = sindri_spec::load_str(&yaml, "matrix.yaml").expect("minimal spec loads");
    ResolvedSpec::new(spec, Path::new("matrix.yaml"))
}

async fn call(p: &dyn Provider, op: Operation, spec: &ResolvedSpec, d: &Deployment) -> Result<()> {
    let tmp = std::env::temp_dir();
    match op {
        Operation::Plan => dispatch::plan(p, spec, None).await.map(drop),
        Operation::Deploy => dispatch::deploy(p, spec, DeployOptions::default(), &NoProgress)
            .await
            .map(drop),
        Operation::Status => dispatch::status(p, d).await.map(drop),
        Operation::Start => dispatch::start(p, d).await,
        Operation::Stop => dispatch::stop(p, d).await,
        Operation::Suspend => dispatch::suspend(p, d).await,
        Operation::Exec => dispatch::exec(p, d, &ExecCommand::new(["true"]), ExecIo::null())
            .await
            .map(drop),
        Operation::Connect => dispatch::connect(p, d, ExecIo::null()).await.map(drop),
        Operation::Logs => {
            dispatch::logs(p, d, LogOptions::default(), &mut tokio::io::sink()).await
        }
        Operation::CopyIn => dispatch::copy_in(p, d, &tmp, "/tmp").await.map(drop),
        Operation::CopyOut => dispatch::copy_out(p, d, "/tmp", &tmp).await.map(drop),
        Operation::Destroy => dispatch::destroy(p, d, DestroyOptions::default())
            .await
            .map(drop),
        Operation::ListOwned => dispatch::list_owned(p).await.map(drop),
    }
}

#[tokio::test]
async fn every_registered_provider_dispatches_or_refuses_every_operation() {
    let registry = sindri_providers::registry();
    assert!(
        !registry.kinds().is_empty(),
        "the registry must hold at least one provider"
    );
    for kind in registry.kinds() {
        let real = registry
            .create(kind, &ProvidersSpec::default())
            .expect("factories do no I/O and cannot fail on defaults");
        assert_eq!(
            real.kind(),
            kind,
            "registry entry {kind} builds a provider that says it is {}",
            real.kind()
        );
        let spy = Arc::new(Spy {
            kind,
            caps: real.capabilities(),
            calls: Mutex::new(Vec::new()),
        });
        let spec = spec_for(kind);
        let d = Deployment::creating("matrix", kind, &spec.project, "0");
        for op in Operation::ALL {
            let before = spy.calls.lock().unwrap().len();
            let result = call(&*spy, op, &spec, &d).await;
            let reached = spy.calls.lock().unwrap().len() > before;
            if spy.caps.supports(op) {
                assert!(
                    reached,
                    "{kind}: `{op}` is declared supported but was not dispatched"
                );
            } else {
                assert!(
                    !reached,
                    "{kind}: `{op}` is unsupported but reached the provider"
                );
                let e = result.expect_err("an unsupported operation must fail");
                assert_eq!(
                    e.kind(),
                    ErrorKind::Unsupported(op),
                    "{kind}: `{op}` refused with the wrong kind: {e}"
                );
                assert!(
                    e.to_string().contains(kind.as_str()),
                    "the refusal names the provider: {e}"
                );
                assert_eq!(e.exit_code(), 2, "a refusal is a usage error: {e}");
            }
        }
    }
}

#[tokio::test]
async fn a_gpu_request_is_refused_before_the_provider_when_it_has_no_gpus() {
    let mut caps = Capabilities::all();
    caps.gpu = false;
    let spy = Spy {
        kind: ProviderKind::E2b,
        caps,
        calls: Mutex::new(Vec::new()),
    };
    let yaml = "name: gpu\ndeployment:\n  provider: e2b\n  resources:\n    gpu:\n      count: 1\n";
    let spec = ResolvedSpec::new(
        sindri_spec::load_str(yaml, "gpu.yaml").unwrap(),
        Path::new("gpu.yaml"),
    );
    let e = dispatch::deploy(&spy, &spec, DeployOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("gpu"), "{e}");
    assert!(
        spy.calls.lock().unwrap().is_empty(),
        "nothing may reach the provider"
    );
}

/// Commands must not reach around the registry to a provider module.
#[test]
fn no_command_names_a_provider_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for kind in ProviderKind::ALL {
                    let needle = format!("sindri_providers::{kind}");
                    if text.contains(&needle) {
                        offenders.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "commands must go through the registry: {offenders:?}"
    );
}
