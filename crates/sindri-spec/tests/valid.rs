//! Valid configurations load to the typed values a provider will use, the starter of
//! every provider loads cleanly, and a loaded spec survives a round trip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sindri_spec::{
    AutoStop, CommandLine, DindMode, OnFinish, PortMapping, Protocol, ProviderKind, SecretSource,
    Spec, SpotPolicy, load_file, load_str, starter,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> Spec {
    match load_file(&fixture(name)) {
        Ok(spec) => spec,
        Err(d) => panic!("{name} should load:\n{d}"),
    }
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[test]
fn docker_fixture_loads_to_typed_values() {
    let s = load("docker.yaml");
    assert_eq!(s.name, "web-dev");
    let d = &s.deployment;
    assert_eq!(d.provider, ProviderKind::Docker);
    assert_eq!(d.image, None);
    let build = d.build.as_ref().unwrap();
    assert_eq!(build.dockerfile, "docker/Dockerfile.dev");
    assert_eq!(build.args["PYTHON_VERSION"], "3.12");
    assert_eq!(build.target.as_deref(), Some("dev"));
    assert_eq!(d.resources.cpus.unwrap().millis(), 2500);
    assert_eq!(d.resources.memory.unwrap().bytes(), 4 * GIB);
    assert_eq!(d.resources.disk.unwrap().bytes(), 20 * GIB);
    assert_eq!(
        d.ports,
        vec![
            PortMapping {
                container: 8080,
                host: 8080,
                protocol: Protocol::Tcp
            },
            PortMapping {
                container: 443,
                host: 8443,
                protocol: Protocol::Tcp
            },
            PortMapping {
                container: 53,
                host: 5353,
                protocol: Protocol::Udp
            },
            PortMapping {
                container: 5432,
                host: 15432,
                protocol: Protocol::Tcp
            },
        ]
    );
    // YAML 1.2: `yes` and `on` are text, kept as written.
    assert_eq!(d.env["FEATURE_FLAGS"], "yes");
    assert_eq!(d.env["ENABLE_CACHE"], "on");
    assert_eq!(d.volumes[0].size.unwrap().bytes(), 10 * GIB);
    assert_eq!(d.volumes[1].size, None);
    assert_eq!(d.home, "/home/dev");
    assert_eq!(s.secrets.len(), 4);
    assert_eq!(s.secrets[1].var.as_deref(), Some("LOCAL_DB_PASSWORD"));
    assert!(!s.secrets[1].required);
    assert!(s.secrets[0].required);
    assert_eq!(s.secrets[2].source, SecretSource::File);
    assert_eq!(s.secrets[3].key.as_deref(), Some("api_key"));
    assert_eq!(s.extensions.active, ["git", "node", "postgres-client"]);
    let docker = s.providers.docker.as_ref().unwrap();
    assert_eq!(docker.dind, DindMode::Socket);
    let run = s.run.as_ref().unwrap();
    assert_eq!(
        run.command,
        CommandLine::Argv(vec!["pytest".into(), "-x".into(), "tests/".into()])
    );
    assert_eq!(run.workdir, ".");
    assert_eq!(run.on_finish, Some(OnFinish::Keep));
    assert_eq!(run.max_duration.unwrap().get(), Duration::from_secs(5400));
}

#[test]
fn kubernetes_fixture_loads_to_typed_values() {
    let s = load("kubernetes.yaml");
    let r = &s.deployment.resources;
    assert_eq!(r.cpus.unwrap().millis(), 500);
    assert_eq!(r.memory.unwrap().bytes(), 1536 * MIB);
    assert_eq!(r.disk.unwrap().to_k8s_quantity(), "50Gi");
    let gpu = r.gpu.as_ref().unwrap();
    assert_eq!(
        (gpu.count, gpu.kind.as_deref()),
        (2, Some("nvidia-tesla-t4"))
    );
    let k = s.providers.kubernetes.as_ref().unwrap();
    assert_eq!(k.node_selector["nvidia.com/gpu.present"], "true");
    assert_eq!(k.tolerations[0].effect.as_deref(), Some("NoSchedule"));
    assert_eq!(s.deployment.home, "/root");
}

#[test]
fn fly_fixture_loads_to_typed_values() {
    let s = load("fly.yaml");
    assert_eq!(s.deployment.resources.memory.unwrap().mib_ceil(), 512);
    assert_eq!(s.deployment.ports[0].host, 443);
    assert_eq!(s.deployment.ports[0].container, 8080);
    let f = s.providers.fly.as_ref().unwrap();
    assert_eq!(f.regions, ["ams", "fra", "cdg"]);
    assert_eq!(f.auto_stop, AutoStop::Suspend);
}

#[test]
fn e2b_fixture_loads_to_typed_values() {
    let s = load("e2b.yaml");
    assert_eq!(s.deployment.provider, ProviderKind::E2b);
    assert_eq!(s.deployment.resources.memory.unwrap().bytes(), 2048 * MIB);
    let e = s.providers.e2b.as_ref().unwrap();
    assert_eq!(e.template.as_deref(), Some("code-interpreter-v1"));
    assert_eq!(e.timeout.unwrap().get(), Duration::from_secs(45 * 60));
    assert!(e.auto_pause);
    assert_eq!(
        s.run.as_ref().unwrap().command.to_argv(),
        ["sh", "-c", "python agent.py"]
    );
}

#[test]
fn devpod_fixture_loads_to_typed_values() {
    let s = load("devpod.yaml");
    // Decimal units are decimal.
    assert_eq!(
        s.deployment.resources.memory.unwrap().bytes(),
        8_000_000_000
    );
    let d = s.providers.devpod.as_ref().unwrap();
    assert_eq!(d.options["AWS_INSTANCE_TYPE"], "m7i.xlarge");
    assert_eq!(s.deployment.build.as_ref().unwrap().context, ".");
}

#[test]
fn aws_fixture_loads_to_typed_values() {
    let s = load("aws.yaml");
    assert_eq!(s.deployment.image, None);
    assert_eq!(s.deployment.resources.cpus.unwrap().whole(), 8);
    let a = s.providers.aws.as_ref().unwrap();
    assert_eq!(a.spot, SpotPolicy::Auto);
    assert_eq!(a.instance_type.as_deref(), Some("g5.2xlarge"));
    let run = s.run.as_ref().unwrap();
    assert_eq!(run.max_restarts, 5);
    assert_eq!(
        run.max_duration.unwrap().get(),
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(
        run.command.to_argv(),
        ["python", "train.py", "--epochs", "3"]
    );
}

#[test]
fn runpod_fixture_loads_to_typed_values() {
    let s = load("runpod.yaml");
    assert_eq!(s.deployment.resources.cpus, None);
    assert_eq!(s.deployment.resources.gpu.as_ref().unwrap().count, 4);
    assert_eq!(s.deployment.ports[1].host, 22);
    let r = s.providers.runpod.as_ref().unwrap();
    assert_eq!(r.gpu_types[0], "NVIDIA H100 80GB HBM3");
    assert_eq!(r.container_disk.unwrap().gib_ceil(), 40);
    assert!(r.spot);
}

#[test]
fn lyceum_fixture_loads_to_typed_values() {
    let s = load("lyceum.yaml");
    assert_eq!(s.deployment.resources.gpu.as_ref().unwrap().kind, None);
    let l = s.providers.lyceum.as_ref().unwrap();
    assert_eq!(l.hardware_profile.as_deref(), Some("b200"));
    assert_eq!(
        s.run.as_ref().unwrap().max_duration.unwrap().get(),
        Duration::from_secs(3600)
    );
}

#[test]
fn local_fixture_loads_to_typed_values() {
    let s = load("local.yaml");
    assert!(s.providers.local.as_ref().unwrap().in_place);
    assert_eq!(s.run.as_ref().unwrap().on_finish, Some(OnFinish::Keep));
}

#[test]
fn anchors_and_merge_keys_work() {
    let src = "\
name: dev
deployment:
  provider: docker
  image: ubuntu:24.04
  env:
    <<: &base {LOG_LEVEL: info, TZ: UTC}
    LOG_LEVEL: debug
  volumes:
    - &vol {name: data, path: /data}
providers:
  kubernetes:
    node_selector: *base
";
    let s = load_str(src, "sindri.yaml").unwrap();
    assert_eq!(s.deployment.env["LOG_LEVEL"], "debug");
    assert_eq!(s.deployment.env["TZ"], "UTC");
    let k = s.providers.kubernetes.unwrap();
    assert_eq!(k.node_selector["LOG_LEVEL"], "info");
}

#[test]
fn the_starter_of_every_provider_loads_cleanly() {
    for kind in ProviderKind::ALL {
        let text = starter(kind);
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=.sindri/sindri.schema.json"),
            "{kind}"
        );
        let spec = match load_str(&text, &format!("{kind}.yaml")) {
            Ok(spec) => spec,
            Err(d) => panic!("starter for {kind} does not load:\n{d}\n---\n{text}"),
        };
        assert_eq!(spec.deployment.provider, kind);
        // The selected provider's section is there to edit.
        let section = serde_json::to_value(&spec.providers).unwrap();
        assert!(
            section.get(kind.as_str()).is_some(),
            "{kind}: no providers.{kind}"
        );
    }
}

#[test]
fn starters_teach_with_comments() {
    let text = starter(ProviderKind::Docker);
    let comments = text
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert!(comments > 30, "only {comments} comment lines");
    for key in [
        "name:",
        "provider:",
        "image:",
        "resources:",
        "secrets:",
        "run:",
        "dind:",
    ] {
        assert!(text.contains(key), "starter does not mention {key}");
    }
}

fn all_specs() -> Vec<(String, Spec)> {
    let mut specs: Vec<(String, Spec)> = [
        "docker.yaml",
        "kubernetes.yaml",
        "fly.yaml",
        "e2b.yaml",
        "devpod.yaml",
        "aws.yaml",
        "runpod.yaml",
        "lyceum.yaml",
        "local.yaml",
    ]
    .into_iter()
    .map(|f| (f.to_string(), load(f)))
    .collect();
    for kind in ProviderKind::ALL {
        specs.push((
            format!("starter {kind}"),
            load_str(&starter(kind), "starter").unwrap(),
        ));
    }
    specs
}

#[test]
fn a_loaded_spec_round_trips_through_yaml() {
    for (name, spec) in all_specs() {
        let yaml = serde_yaml::to_string(&spec).unwrap();
        let again = load_str(&yaml, "roundtrip.yaml")
            .unwrap_or_else(|d| panic!("{name}: serialised YAML does not load:\n{d}\n---\n{yaml}"));
        assert_eq!(again, spec, "{name}");
    }
}

#[test]
fn a_loaded_spec_round_trips_through_json() {
    for (name, spec) in all_specs() {
        let json = serde_json::to_string_pretty(&spec).unwrap();
        let again = load_str(&json, "roundtrip.json")
            .unwrap_or_else(|d| panic!("{name}: serialised JSON does not load:\n{d}\n---\n{json}"));
        assert_eq!(again, spec, "{name}");
    }
}
