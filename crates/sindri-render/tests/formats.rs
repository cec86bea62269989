//! Every format, for several specs, checked with the platforms' own validators and
//! read back field by field.

mod common;

use common::*;
use serde_json::{Value, json};
use sindri_core::{ErrorKind, ResolvedSecret, SecretValue};
use sindri_render::{ExportFormat, Renderer, fly, kubernetes};

fn labels_of(spec: &sindri_core::ResolvedSpec) -> Value {
    json!({
        "sindri.managed": "true",
        "sindri.environment": spec.name(),
        "sindri.project": spec.project,
    })
}

#[test]
fn compose_files_validate_against_the_compose_spec() {
    let validator = schema("compose/compose-spec.json");
    for (label, yaml) in all_specs() {
        let dir = tempfile::tempdir().unwrap();
        let spec = resolved(yaml, dir.path());
        let out = render(ExportFormat::Compose, &spec);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "docker-compose.yml");
        let docs = yaml_docs(&out[0].content);
        assert_eq!(docs.len(), 1, "{label}: one compose document");
        let doc = &docs[0];
        assert_schema_valid(&validator, doc, &format!("{label} docker-compose.yml"));

        let svc = &doc["services"][spec.name()];
        assert_eq!(svc["labels"], labels_of(&spec), "{label}: service labels");
        for (_, vol) in doc["volumes"].as_object().unwrap() {
            assert_eq!(vol["labels"], labels_of(&spec), "{label}: volume labels");
        }
        assert_eq!(svc["volumes"][0]["source"], "home");
        assert_eq!(
            svc["volumes"][0]["target"],
            spec.spec.deployment.home.as_str()
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let spec = resolved(FULL, dir.path());
    let doc = &yaml_docs(&render(ExportFormat::Compose, &spec)[0].content)[0];
    let svc = &doc["services"]["full-env"];
    assert_eq!(svc["image"], "ghcr.io/acme/dev:1.2");
    assert_eq!(
        svc["build"],
        json!({"context": ".", "dockerfile": "docker/Dockerfile", "args": {"PY_VERSION": "3.12"}, "target": "dev"})
    );
    assert_eq!(
        svc["ports"],
        json!([
            {"target": 8080, "published": "8080", "protocol": "tcp"},
            {"target": 90, "published": "9000", "protocol": "udp"},
            {"target": 5432, "published": "15432", "protocol": "tcp"},
        ])
    );
    assert_eq!(
        svc["deploy"]["resources"]["limits"],
        json!({"cpus": "2.5", "memory": "6g"})
    );
    assert_eq!(
        svc["deploy"]["resources"]["reservations"]["devices"],
        json!([{"driver": "nvidia", "count": 2, "capabilities": ["gpu"]}])
    );
    // Secrets: Compose reads each value itself; env-exposed ones are interpolated.
    assert_eq!(
        doc["secrets"],
        json!({
            "API_TOKEN": {"environment": "HOST_API_TOKEN"},
            "TLS_CERT": {"file": "certs/tls.pem"},
            "DB_PASSWORD": {"environment": "DB_PASSWORD"},
            "SSH_KEY": {"environment": "SSH_KEY"},
        })
    );
    assert_eq!(svc["environment"]["API_TOKEN"], "${HOST_API_TOKEN:?}");
    assert_eq!(svc["environment"]["DB_PASSWORD"], "${DB_PASSWORD:-}");
    assert!(
        svc["environment"].get("TLS_CERT").is_none(),
        "mounted secrets are files, not variables"
    );
    assert_eq!(
        svc["secrets"],
        json!([
            {"source": "API_TOKEN"},
            {"source": "TLS_CERT", "target": "/etc/tls/tls.pem"},
            {"source": "DB_PASSWORD"},
            {"source": "SSH_KEY", "target": "/home/dev/.ssh/id_ed25519"},
        ])
    );
    // Compose reads the Dockerfile relative to the build context.
    let built =
        &yaml_docs(&render(ExportFormat::Compose, &resolved(BUILD_ONLY, dir.path()))[0].content)[0];
    assert_eq!(
        built["services"]["builder"]["build"],
        json!({"context": "app", "dockerfile": "../Dockerfile", "args": {"MODE": "release"}})
    );
    assert!(built["services"]["builder"].get("image").is_none());
    assert_eq!(
        svc["volumes"],
        json!([
            {"type": "volume", "source": "home", "target": "/home/dev"},
            {"type": "volume", "source": "data", "target": "/data"},
            {"type": "volume", "source": "cache", "target": "/var/cache/app"},
            {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"},
        ])
    );
}

#[test]
fn devcontainer_files_validate_against_the_devcontainer_schema() {
    let validator = schema("devcontainer/devContainer.base.schema.json");
    for (label, yaml) in all_specs() {
        let dir = tempfile::tempdir().unwrap();
        let spec = resolved(yaml, dir.path());
        let out = render(ExportFormat::Devcontainer, &spec);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, ".devcontainer/devcontainer.json");
        let doc = json_doc(&out[0].content);
        assert_schema_valid(&validator, &doc, &format!("{label} devcontainer.json"));
        assert_eq!(doc["name"], spec.name());
        let args: Vec<&str> = doc["runArgs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for label_arg in [
            "sindri.managed=true",
            &format!("sindri.environment={}", spec.name()),
            &format!("sindri.project={}", spec.project),
        ] {
            assert!(
                args.contains(&label_arg),
                "{label}: runArgs label {label_arg}"
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let full =
        json_doc(&render(ExportFormat::Devcontainer, &resolved(FULL, dir.path()))[0].content);
    // A build wins over the image (the schema allows only one), paths are seen from .devcontainer/.
    assert!(full.get("image").is_none());
    assert_eq!(
        full["build"],
        json!({"dockerfile": "../docker/Dockerfile", "context": "..", "args": {"PY_VERSION": "3.12"}, "target": "dev"})
    );
    assert_eq!(full["forwardPorts"], json!([8080, 90, 5432]));
    assert_eq!(
        full["containerEnv"],
        json!({"EDITOR": "vim", "GREETING": "hello world"})
    );
    assert_eq!(
        full["remoteEnv"],
        json!({"API_TOKEN": "${localEnv:HOST_API_TOKEN}", "DB_PASSWORD": "${localEnv:DB_PASSWORD}"})
    );
    assert_eq!(
        full["hostRequirements"],
        json!({"cpus": 3, "memory": "6gb", "storage": "40gb", "gpu": true})
    );
    assert_eq!(
        full["mounts"],
        json!([
            {"type": "volume", "source": "full-env-home", "target": "/home/dev"},
            {"type": "volume", "source": "full-env-data", "target": "/data"},
            {"type": "volume", "source": "full-env-cache", "target": "/var/cache/app"},
            {"type": "bind", "source": "${localWorkspaceFolder}/certs/tls.pem", "target": "/etc/tls/tls.pem"},
        ])
    );
    let minimal =
        json_doc(&render(ExportFormat::Devcontainer, &resolved(MINIMAL, dir.path()))[0].content);
    assert_eq!(minimal["image"], "ubuntu:24.04");
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    for (label, yaml) in all_specs() {
        let dir = tempfile::tempdir().unwrap();
        let spec = resolved(yaml, dir.path());
        let out = render(ExportFormat::Kubernetes, &spec);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "kubernetes.yaml");
        kubernetes_validate(&out[0].content);

        let docs = yaml_docs(&out[0].content);
        let has_ports = !spec.spec.deployment.ports.is_empty();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            if has_ports {
                vec!["StatefulSet", "Service"]
            } else {
                vec!["StatefulSet"]
            },
            "{label}: objects"
        );
        let labels = labels_of(&spec);
        for doc in &docs {
            assert_eq!(
                doc["metadata"]["labels"], labels,
                "{label}: {} labels",
                doc["kind"]
            );
            assert_eq!(doc["metadata"]["name"], spec.name());
        }
        let sts = &docs[0]["spec"];
        assert_eq!(sts["replicas"], 1);
        assert_eq!(
            sts["template"]["metadata"]["labels"], labels,
            "{label}: pod template labels"
        );
        assert_eq!(sts["selector"]["matchLabels"], labels);
        for claim in sts["volumeClaimTemplates"].as_array().unwrap() {
            assert_eq!(claim["metadata"]["labels"], labels, "{label}: claim labels");
        }
        assert_eq!(sts["volumeClaimTemplates"][0]["metadata"]["name"], "home");
        let c = &sts["template"]["spec"]["containers"][0];
        assert_eq!(
            c["volumeMounts"][0],
            json!({"name": "home", "mountPath": spec.spec.deployment.home})
        );
    }

    // Minimal: the home volume has the default size and the cluster's default class.
    let dir = tempfile::tempdir().unwrap();
    let minimal =
        yaml_docs(&render(ExportFormat::Kubernetes, &resolved(MINIMAL, dir.path()))[0].content);
    let claim = &minimal[0]["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "10Gi");
    assert!(claim.get("storageClassName").is_none());

    let full = yaml_docs(&render(ExportFormat::Kubernetes, &resolved(FULL, dir.path()))[0].content);
    let sts = &full[0];
    assert_eq!(sts["metadata"]["namespace"], "team-a");
    let claims = sts["spec"]["volumeClaimTemplates"].as_array().unwrap();
    let sizes: Vec<(&str, &str, &str)> = claims
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap(),
                c["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap(),
                c["spec"]["storageClassName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("home", "40Gi", "fast-ssd"),
            ("data", "5Gi", "fast-ssd"),
            ("cache", "10Gi", "fast-ssd")
        ]
    );
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        json!({"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"})
    );
    assert_eq!(
        pod["tolerations"],
        json!([
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ])
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["resources"],
        json!({
            "requests": {"cpu": "2500m", "memory": "6Gi"},
            "limits": {"cpu": "2500m", "memory": "6Gi", "nvidia.com/gpu": "2"},
        })
    );
    // Secrets: env through secretKeyRef on <name>-secrets, files through a secret volume.
    let env = c["env"].as_array().unwrap();
    let token = env.iter().find(|e| e["name"] == "API_TOKEN").unwrap();
    assert_eq!(
        token["valueFrom"]["secretKeyRef"],
        json!({"name": "full-env-secrets", "key": "API_TOKEN"})
    );
    let db = env.iter().find(|e| e["name"] == "DB_PASSWORD").unwrap();
    assert_eq!(
        db["valueFrom"]["secretKeyRef"],
        json!({"name": "full-env-secrets", "key": "DB_PASSWORD", "optional": true})
    );
    assert!(
        env.iter()
            .all(|e| e["name"] != "TLS_CERT" && e["name"] != "SSH_KEY")
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "sindri-secrets", "secret": {"secretName": "full-env-secrets", "items": [
            {"key": "TLS_CERT", "path": "TLS_CERT"}, {"key": "SSH_KEY", "path": "SSH_KEY"}]}}])
    );
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.contains(&json!({"name": "sindri-secrets", "mountPath": "/etc/tls/tls.pem", "subPath": "TLS_CERT", "readOnly": true})));
    let svc = &full[1]["spec"];
    assert_eq!(svc["type"], "LoadBalancer");
    assert_eq!(svc["selector"], labels_of(&resolved(FULL, dir.path())));
    assert_eq!(
        svc["ports"],
        json!([
            {"name": "tcp-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
            {"name": "udp-9000", "port": 9000, "targetPort": 90, "protocol": "UDP"},
            {"name": "tcp-15432", "port": 15432, "targetPort": 5432, "protocol": "TCP"},
        ])
    );
    // The header says how to create the Secret, naming only references.
    let text = &render(ExportFormat::Kubernetes, &resolved(FULL, dir.path()))[0].content;
    assert!(
        text.contains("#   kubectl create secret generic full-env-secrets --namespace team-a \\")
    );
    assert!(text.contains("#     --from-literal=API_TOKEN=\"$HOST_API_TOKEN\" \\"));
    assert!(text.contains("#     --from-file=TLS_CERT=certs/tls.pem \\"));

    // Build only: the built image's tag, pulled only if not present.
    let built =
        yaml_docs(&render(ExportFormat::Kubernetes, &resolved(BUILD_ONLY, dir.path()))[0].content);
    let c = &built[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "sindri-builder:latest");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "1", "memory": "1536Mi"})
    );
}

#[test]
fn kubernetes_objects_are_what_the_file_holds() {
    for (label, yaml) in all_specs() {
        let dir = tempfile::tempdir().unwrap();
        let spec = resolved(yaml, dir.path());
        let from_file = yaml_docs(&render(ExportFormat::Kubernetes, &spec)[0].content);
        let objects = kubernetes::objects(&spec).unwrap();
        assert_eq!(objects, from_file, "{label}");
    }
}

#[test]
fn fly_toml_parses_and_carries_the_spec() {
    for (label, yaml) in all_specs() {
        let dir = tempfile::tempdir().unwrap();
        let spec = resolved(yaml, dir.path());
        let out = render(ExportFormat::Fly, &spec);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "fly.toml");
        let doc = toml_doc(&out[0].content);
        assert_eq!(
            doc["app"].as_str(),
            Some(fly::app_name(&spec.spec).as_str()),
            "{label}"
        );
        // The [[vm]] section is exactly what the Fly provider will ask for.
        let g = fly::guest(&spec.spec);
        let vm = doc["vm"].as_array().unwrap()[0].as_table().unwrap();
        assert_eq!(
            vm["cpu_kind"].as_str(),
            Some(g.cpu_kind.as_str()),
            "{label}"
        );
        assert_eq!(vm["cpus"].as_integer(), Some(i64::from(g.cpus)), "{label}");
        assert_eq!(
            vm["memory_mb"].as_integer(),
            Some(g.memory_mb as i64),
            "{label}"
        );
        assert_eq!(
            vm.get("gpu_kind").and_then(|v| v.as_str()),
            g.gpu_kind.as_deref(),
            "{label}"
        );
        assert_eq!(
            vm.get("gpus").and_then(|v| v.as_integer()),
            g.gpus.map(i64::from),
            "{label}"
        );
        let mount = doc["mounts"].as_array().unwrap()[0].as_table().unwrap();
        assert_eq!(mount["source"].as_str(), Some("home"));
        assert_eq!(
            mount["destination"].as_str(),
            Some(spec.spec.deployment.home.as_str())
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let full = resolved(FULL, dir.path());
    let text = render(ExportFormat::Fly, &full)[0].content.clone();
    let doc = toml_doc(&text);
    assert_eq!(doc["app"].as_str(), Some("full-app"));
    assert_eq!(doc["primary_region"].as_str(), Some("ord"));
    assert_eq!(doc["build"]["image"].as_str(), Some("ghcr.io/acme/dev:1.2"));
    assert_eq!(doc["env"]["GREETING"].as_str(), Some("hello world"));
    assert_eq!(doc["mounts"][0]["initial_size"].as_str(), Some("40gb"));
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    assert_eq!(services[1]["internal_port"].as_integer(), Some(90));
    assert_eq!(services[1]["protocol"].as_str(), Some("udp"));
    assert_eq!(services[1]["ports"][0]["port"].as_integer(), Some(9000));
    assert_eq!(services[0]["auto_stop_machines"].as_str(), Some("stop"));
    assert_eq!(services[0]["auto_start_machines"].as_bool(), Some(true));
    let vm = &doc["vm"][0];
    assert_eq!(vm["cpu_kind"].as_str(), Some("performance"));
    assert_eq!(vm["cpus"].as_integer(), Some(3));
    assert_eq!(vm["memory_mb"].as_integer(), Some(6144));
    assert_eq!(vm["gpu_kind"].as_str(), Some("a100-pcie-40gb"));
    assert_eq!(vm["gpus"].as_integer(), Some(2));
    assert!(text.contains(
        "#   fly secrets set --app full-app API_TOKEN=\"$HOST_API_TOKEN\" TLS_CERT=\"$(cat certs/tls.pem)\" DB_PASSWORD=\"$DB_PASSWORD\" SSH_KEY=\"$SSH_KEY\""
    ), "{text}");

    let minimal = toml_doc(&render(ExportFormat::Fly, &resolved(MINIMAL, dir.path()))[0].content);
    assert!(minimal.get("services").is_none(), "no ports, no services");
    assert!(minimal.get("primary_region").is_none());
    assert_eq!(minimal["vm"][0]["memory_mb"].as_integer(), Some(1024));

    let built = toml_doc(&render(ExportFormat::Fly, &resolved(BUILD_ONLY, dir.path()))[0].content);
    assert_eq!(built["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert_eq!(built["build"]["args"]["MODE"].as_str(), Some("release"));
    assert_eq!(
        built["services"][0]["auto_stop_machines"].as_str(),
        Some("off")
    );
    assert_eq!(
        built["services"][0]["auto_start_machines"].as_bool(),
        Some(false)
    );
}

#[test]
fn e2b_files_name_the_template_and_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let full = render(ExportFormat::E2b, &resolved(FULL, dir.path()));
    let names: Vec<&str> = full.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["e2b.toml", "e2b.Dockerfile"]);
    let doc = toml_doc(artifact(&full, "e2b.toml"));
    assert_eq!(doc["template_name"].as_str(), Some("full-template"));
    assert_eq!(doc["dockerfile"].as_str(), Some("e2b.Dockerfile"));
    assert_eq!(doc["cpu_count"].as_integer(), Some(3));
    assert_eq!(doc["memory_mb"].as_integer(), Some(6144));
    let dockerfile = artifact(&full, "e2b.Dockerfile");
    assert!(
        dockerfile.lines().any(|l| l == "FROM ghcr.io/acme/dev:1.2"),
        "{dockerfile}"
    );

    let minimal = render(ExportFormat::E2b, &resolved(MINIMAL, dir.path()));
    let doc = toml_doc(artifact(&minimal, "e2b.toml"));
    assert_eq!(doc["template_name"].as_str(), Some("dev"));
    assert!(doc.get("cpu_count").is_none() && doc.get("memory_mb").is_none());

    // A build: the project's Dockerfile, copied byte for byte.
    let built = render(ExportFormat::E2b, &resolved(BUILD_ONLY, dir.path()));
    assert_eq!(artifact(&built, "e2b.Dockerfile"), BUILD_ONLY_DOCKERFILE);
    assert_eq!(
        toml_doc(artifact(&built, "e2b.toml"))["memory_mb"].as_integer(),
        Some(1536)
    );
}

#[test]
fn secret_values_never_appear_in_any_artifact() {
    const VALUES: [&str; 4] = [
        "tok-9f8e7d6c5b4a-VALUE",
        "-----BEGIN CERT-----\nZmFrZS1jZXJ0\n-----END CERT-----",
        "db-pass-0x5EC12E7",
        "ssh-ed25519 AAAAC3Nza-secret-key",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut spec = resolved(FULL, dir.path());
    let names: Vec<(String, Option<String>)> = spec
        .spec
        .secrets
        .iter()
        .map(|s| (s.name.clone(), s.mount.clone()))
        .collect();
    for ((name, mount), value) in names.into_iter().zip(VALUES) {
        spec.secrets.push(ResolvedSecret {
            name,
            value: SecretValue::new(value),
            mount,
        });
    }
    let renderer = Renderer::new(None).unwrap();
    for format in ExportFormat::ALL {
        for a in renderer.render(format, &spec).unwrap() {
            for value in VALUES {
                for fragment in value.lines() {
                    assert!(
                        !a.content.contains(fragment),
                        "{} contains a secret value ({fragment:?}):\n{}",
                        a.name,
                        a.content
                    );
                }
            }
            // The references are there instead (the e2b files pass secrets at sandbox creation).
            if format != ExportFormat::E2b {
                assert!(
                    a.content.contains("API_TOKEN"),
                    "{} references API_TOKEN",
                    a.name
                );
            }
        }
    }
}

#[test]
fn export_format_names_parse_and_print() {
    for f in ExportFormat::ALL {
        assert_eq!(f.to_string().parse::<ExportFormat>(), Ok(f));
    }
    let names: Vec<String> = ExportFormat::ALL.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        names,
        ["compose", "kubernetes", "fly", "e2b", "devcontainer"]
    );
    let err = "docker-compose".parse::<ExportFormat>().unwrap_err();
    assert!(
        err.contains("docker-compose")
            && err.contains("compose, kubernetes, fly, e2b, devcontainer"),
        "{err}"
    );
}

#[test]
fn a_spec_with_nothing_to_run_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let spec = resolved("name: dev\ndeployment: {provider: docker}\n", dir.path());
    let renderer = Renderer::new(None).unwrap();
    for format in ExportFormat::ALL {
        let err = renderer.render(format, &spec).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{format}");
        assert!(
            err.message().contains("neither `image` nor `build`"),
            "{format}: {err}"
        );
        assert!(
            err.hint().unwrap_or_default().contains("deployment.image"),
            "{format}"
        );
    }
}

#[test]
fn colliding_names_are_refused_before_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let renderer = Renderer::new(None).unwrap();
    let cases = [
        (
            "name: dev\ndeployment: {provider: docker, image: x, volumes: [{name: home, path: /h}]}\n",
            "reserved",
        ),
        (
            "name: dev\ndeployment: {provider: docker, image: x, ports: [8080, \"8080:80\"]}\n",
            "published twice",
        ),
        (
            "name: dev\ndeployment: {provider: docker, image: x, env: {TOKEN: a}}\nsecrets: [{name: TOKEN, source: env}]\n",
            "same name as a variable",
        ),
        (
            "name: dev\ndeployment: {provider: docker, image: x}\nsecrets: [{name: T, source: env, var: \"NOT A VAR\"}]\n",
            "not a valid environment variable name",
        ),
    ];
    for (yaml, expected) in cases {
        let spec = resolved(yaml, dir.path());
        for format in ExportFormat::ALL {
            let err = renderer.render(format, &spec).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid);
            assert!(err.message().contains(expected), "{format}: {err}");
        }
    }
    let spec = resolved(
        "name: dev\ndeployment: {provider: docker, image: x}\nproviders: {kubernetes: {service_type: Ingress}}\n",
        dir.path(),
    );
    let err = renderer
        .render(ExportFormat::Kubernetes, &spec)
        .unwrap_err();
    assert!(
        err.message().contains("ClusterIP, NodePort, LoadBalancer"),
        "{err}"
    );
}
