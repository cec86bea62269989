//! The AWS EC2 provider against moto (`pip install 'moto[server]'`), started by each
//! test on a free loopback port, usually behind a proxy that records requests and
//! injects faults. Moto's instances are not machines: the full lifecycle test reaches
//! "the instance" over SSH at a real local sshd instead of the instance's address.
#![cfg(feature = "aws")]

#[path = "support/aws/mod.rs"]
mod aws_support;

use std::time::Duration;

use aws_support::{self as s, Fault, Home, Moto, Proxy, TestSpec};
use sindri_core::{
    DeployOptions, DestroyOptions, ErrorKind, Operation, Provider, StatusState, dispatch,
};
use sindri_providers::aws::AwsProvider;
use sindri_providers::conformance::{self, Recorder};
use sindri_spec::{AwsSettings, OnFinish, SpotPolicy};

const NO_WAIT: DeployOptions = DeployOptions { wait: false };

fn settings() -> AwsSettings {
    AwsSettings::default()
}

/// moto + proxy + a home with a key + a provider pointed at the proxy.
struct World {
    moto: Moto,
    proxy: Proxy,
    home: Home,
}

impl World {
    async fn new() -> World {
        let moto = Moto::start();
        let proxy = Proxy::start(moto.port).await;
        World {
            moto,
            proxy,
            home: Home::new(),
        }
    }

    fn provider(&self, settings: AwsSettings) -> AwsProvider {
        s::provider(settings, s::test_env(&self.proxy.url(), self.home.path()))
    }
}

// ---- The conformance suite --------------------------------------------------------

/// The whole lifecycle: the AWS verbs go to moto; exec, copy and logs go over real SSH
/// to a local sshd standing in for the instance.
#[tokio::test]
async fn lifecycle() {
    let moto = Moto::start();
    let sshd = s::sshd::Sshd::start();
    let home = Home::with_key(&sshd.identity);
    let remote_home = tempfile::tempdir().expect("remote home");
    let secrets = tempfile::tempdir().expect("secrets dir");
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&moto.url(), home.path()))
        .polling(Duration::from_millis(20), 300)
        .ssh_endpoint("127.0.0.1", sshd.port)
        .ssh_user(sshd.user.clone())
        .secrets_dir(secrets.path().display().to_string())
        .build();
    let mut t = TestSpec::new(
        &s::unique_name("lifecycle"),
        serde_json::json!({"home": remote_home.path().display().to_string()}),
    );
    t.spec.secrets.push(sindri_core::ResolvedSecret {
        name: "API_TOKEN".into(),
        value: sindri_core::SecretValue::new("lifecycle-secret-value"),
        mount: None,
    });
    conformance::lifecycle(&p, &t.spec).await;
}

#[tokio::test]
async fn lifecycle_delivers_secrets_over_ssh_only() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let sshd = s::sshd::Sshd::start();
    let home = Home::with_key(&sshd.identity);
    let secrets = tempfile::tempdir().expect("secrets dir");
    let mounted = secrets.path().join("mounted/token.txt");
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&proxy.url(), home.path()))
        .polling(Duration::from_millis(20), 300)
        .ssh_endpoint("127.0.0.1", sshd.port)
        .ssh_user(sshd.user.clone())
        .secrets_dir(secrets.path().display().to_string())
        .build();
    let mut t = TestSpec::new(&s::unique_name("secrets"), serde_json::json!({}));
    for (name, value, mount) in [
        ("API_TOKEN", "token with 'quotes' and spaces", None),
        (
            "FILE_TOKEN",
            "file-secret-value",
            Some(mounted.display().to_string()),
        ),
    ] {
        t.spec.secrets.push(sindri_core::ResolvedSecret {
            name: name.into(),
            value: sindri_core::SecretValue::new(value),
            mount,
        });
    }
    let d = dispatch::deploy(&p, &t.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect("deploy");
    let got = conformance::exec_capture(
        &p,
        &d,
        &sindri_core::ExecCommand::shell("printf '%s' \"$API_TOKEN\""),
        None,
    )
    .await
    .expect("exec");
    assert_eq!(
        got.out(),
        "token with 'quotes' and spaces",
        "the secret is in the environment of exec"
    );
    assert_eq!(
        std::fs::read_to_string(&mounted).expect("mounted secret"),
        "file-secret-value"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(secrets.path().join("env"))
            .expect("env")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the secrets file is private to its owner");
    for seen in proxy.seen() {
        for value in ["token with", "file-secret-value"] {
            assert!(
                !seen.body.contains(value),
                "{} carried a secret value",
                seen.action
            );
        }
        assert!(
            !seen.body.contains("API_TOKEN"),
            "{} carried a secret name",
            seen.action
        );
    }
    let ser = serde_json::to_string(&d).expect("record");
    assert!(!ser.contains("file-secret-value") && !ser.contains("token with"));
    dispatch::destroy(&p, &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy");
}

#[tokio::test]
async fn idempotent_deploy() {
    let moto = Moto::start();
    let sshd = s::sshd::Sshd::start();
    let home = Home::with_key(&sshd.identity);
    let secrets = tempfile::tempdir().expect("secrets dir");
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&moto.url(), home.path()))
        .polling(Duration::from_millis(20), 300)
        .ssh_endpoint("127.0.0.1", sshd.port)
        .ssh_user(sshd.user.clone())
        .secrets_dir(secrets.path().display().to_string())
        .build();
    let mut t = TestSpec::new(
        &s::unique_name("idempotent"),
        serde_json::json!({"ports": [8080]}),
    );
    t.spec.secrets.push(sindri_core::ResolvedSecret {
        name: "IDEMPOTENT_TOKEN".into(),
        value: sindri_core::SecretValue::new("idempotent-secret-value"),
        mount: None,
    });
    conformance::idempotent_deploy(&p, &t.spec).await;
}

#[tokio::test]
async fn destroy_twice() {
    let w = World::new().await;
    let sshd = s::sshd::Sshd::start();
    let home = Home::with_key(&sshd.identity);
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&w.proxy.url(), home.path()))
        .polling(Duration::from_millis(20), 300)
        .ssh_endpoint("127.0.0.1", sshd.port)
        .ssh_user(sshd.user.clone())
        .build();
    let t = TestSpec::new(&s::unique_name("destroy-twice"), serde_json::json!({}));
    conformance::destroy_twice(&p, &t.spec).await;
}

#[tokio::test]
async fn not_found() {
    let w = World::new().await;
    let t = TestSpec::new(&s::unique_name("not-found"), serde_json::json!({}));
    conformance::not_found(&w.provider(settings()), &t.spec).await;
}

#[tokio::test]
async fn unsupported_ops_refused() {
    let w = World::new().await;
    let t = TestSpec::new(&s::unique_name("unsupported"), serde_json::json!({}));
    conformance::unsupported_ops_refused(&w.provider(settings()), &t.spec).await;
    assert!(
        w.proxy.calls("RunInstances").is_empty(),
        "refusals reach no AWS API"
    );
}

#[tokio::test]
async fn list_owned() {
    let moto = Moto::start();
    let sshd = s::sshd::Sshd::start();
    let home = Home::with_key(&sshd.identity);
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&moto.url(), home.path()))
        .polling(Duration::from_millis(20), 300)
        .ssh_endpoint("127.0.0.1", sshd.port)
        .ssh_user(sshd.user.clone())
        .build();
    let t = TestSpec::new(&s::unique_name("list-owned"), serde_json::json!({}));
    conformance::list_owned(&p, &t.spec).await;
}

#[tokio::test]
async fn plan_changes_nothing() {
    let w = World::new().await;
    let mut t = TestSpec::new(&s::unique_name("plan"), serde_json::json!({}));
    t.spec.secrets.push(sindri_core::ResolvedSecret {
        name: "PLAN_SECRET".into(),
        value: sindri_core::SecretValue::new("plan-secret-value-must-not-show"),
        mount: None,
    });
    conformance::plan_changes_nothing(&w.provider(settings()), &t.spec).await;
    for action in [
        "RunInstances",
        "CreateSecurityGroup",
        "ImportKeyPair",
        "AuthorizeSecurityGroupIngress",
    ] {
        assert!(w.proxy.calls(action).is_empty(), "plan called {action}");
    }
}

// ---- What deploy creates ------------------------------------------------------------

#[tokio::test]
async fn deploy_tags_everything_at_creation() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(
        &s::unique_name("tags"),
        serde_json::json!({"resources": {"disk": "30GiB"}, "ports": ["8080", "5353:53/udp"], "volumes": [{"name": "data", "path": "/data", "size": "3GiB"}]}),
    );
    let progress = Recorder::new();
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &progress)
        .await
        .expect("deploy --no-wait");
    let id = d.resource_id.clone().expect("instance id");
    assert_eq!(
        d.detail("instance_type"),
        Some("t3.medium"),
        "nothing asked: the default type"
    );
    assert_eq!(d.detail("market"), Some("on-demand"));
    assert_eq!(d.detail("region"), Some(s::REGION));

    // Tags are part of RunInstances (TagSpecifications), never added afterwards.
    let runs = w.proxy.calls("RunInstances");
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0]
            .body
            .contains("TagSpecification.1.ResourceType=instance"),
        "{}",
        runs[0].body
    );
    assert!(
        runs[0]
            .body
            .contains("TagSpecification.2.ResourceType=volume")
    );
    assert!(
        runs[0].body.contains("MetadataOptions.HttpTokens=required"),
        "IMDSv2 only"
    );
    assert!(
        w.proxy.calls("CreateTags").is_empty(),
        "no tagging after creation"
    );

    let inst = s::instances(&w.moto, &[("instance-id", &id)]);
    assert_eq!(inst.len(), 1);
    assert_eq!(s::tag(&inst[0], "sindri.managed").as_deref(), Some("true"));
    assert_eq!(
        s::tag(&inst[0], "sindri.environment").as_deref(),
        Some(t.spec.name())
    );
    assert_eq!(
        s::tag(&inst[0], "sindri.project").as_deref(),
        Some(t.spec.project.as_str())
    );
    assert_eq!(
        s::tag(&inst[0], "sindri.spec-hash"),
        Some(t.spec.spec_hash())
    );
    assert_eq!(
        s::tag(&inst[0], "Name"),
        Some(format!("sindri-{}", t.spec.name()))
    );
    assert_eq!(
        s::texts(&inst[0], "imageId"),
        vec!["ami-1e749f67"],
        "Ubuntu 24.04 amd64 from SSM"
    );

    // The root volume: disk + volume sizes, tagged.
    let vols = w.moto.ec2(
        "DescribeVolumes",
        &[
            ("Filter.1.Name", "attachment.instance-id"),
            ("Filter.1.Value.1", &id),
        ],
    );
    let vols = s::items(&vols, "volumeSet");
    assert_eq!(vols.len(), 1, "one root volume");
    assert_eq!(
        s::texts(&vols[0], "size").first().map(String::as_str),
        Some("33"),
        "30 GiB disk + 3 GiB volume"
    );
    assert_eq!(
        s::tag(&vols[0], "sindri.environment").as_deref(),
        Some(t.spec.name())
    );

    // The security group: tagged, SSH and the ports from the one CIDR.
    let name = format!("sindri-{}-{}", t.spec.name(), t.spec.project);
    let sgs = w.moto.ec2(
        "DescribeSecurityGroups",
        &[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", &name)],
    );
    let sg = s::items(&sgs, "securityGroupInfo");
    assert_eq!(sg.len(), 1, "{sgs}");
    assert_eq!(s::tag(&sg[0], "sindri.managed").as_deref(), Some("true"));
    assert_eq!(
        s::tag(&sg[0], "sindri.project").as_deref(),
        Some(t.spec.project.as_str())
    );
    let perms = s::items(&sg[0], "ipPermissions");
    let mut rules: Vec<(String, String, Vec<String>)> = perms
        .iter()
        .map(|p| {
            (
                s::texts(p, "ipProtocol")[0].clone(),
                s::texts(p, "fromPort")[0].clone(),
                s::texts(p, "cidrIp"),
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        vec![
            ("tcp".into(), "22".into(), vec![s::CIDR.to_string()]),
            ("tcp".into(), "8080".into(), vec![s::CIDR.to_string()]),
            ("udp".into(), "53".into(), vec![s::CIDR.to_string()]),
        ],
        "SSH and the ports, from the caller's CIDR only"
    );
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("5353:53") && w.contains("does not remap")),
        "a remapped port is explained: {:?}",
        progress.warnings()
    );

    // The key pair: the user's public key, tagged.
    let kps = w.moto.ec2("DescribeKeyPairs", &[("KeyName.1", &name)]);
    let kp = s::items(&kps, "keySet");
    assert_eq!(kp.len(), 1);
    assert_eq!(
        s::tag(&kp[0], "sindri.environment").as_deref(),
        Some(t.spec.name())
    );
    let sent = w.proxy.calls("ImportKeyPair");
    assert_eq!(sent.len(), 1);
    use base64::Engine;
    let material = sent[0]
        .body
        .split('&')
        .find_map(|kv| kv.strip_prefix("PublicKeyMaterial="))
        .expect("key material");
    let material = material
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(material)
        .expect("base64");
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        w.home.public_key().trim()
    );

    // status: live from AWS.
    let st = dispatch::status(&p, &d).await.expect("status");
    assert_eq!(st.state, StatusState::Running);
    let ip = st.details.get("public_ip").cloned().expect("a public IP");
    assert_eq!(st.endpoints[0].address, format!("ssh://ubuntu@{ip}:22"));
    assert!(
        st.endpoints
            .iter()
            .any(|e| e.address == format!("tcp://{ip}:8080"))
    );
    assert_eq!(st.cost_per_hour, Some(0.0416), "t3.medium's list price");
    assert_eq!(
        st.details.get("instance_type").map(String::as_str),
        Some("t3.medium")
    );
    assert_eq!(
        st.details.get("market").map(String::as_str),
        Some("on-demand")
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn stop_and_start_keep_the_instance() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(&s::unique_name("stop-start"), serde_json::json!({}));
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    dispatch::stop(&p, &d).await.expect("stop");
    let st = dispatch::status(&p, &d).await.expect("status");
    assert_eq!(st.state, StatusState::Stopped, "{st:?}");
    assert!(
        st.message
            .unwrap_or_default()
            .contains("EBS root volume is kept")
    );
    assert_eq!(
        st.cost_per_hour, None,
        "a stopped instance bills no compute"
    );
    let id = d.resource_id.clone().unwrap();
    assert_eq!(
        s::texts(&s::instances(&w.moto, &[("instance-id", &id)])[0], "name")[0],
        "stopped"
    );
    dispatch::stop(&p, &d)
        .await
        .expect("stopping a stopped instance is fine");
    dispatch::start(&p, &d).await.expect("start");
    let inst = s::instances(&w.moto, &[("instance-id", &id)]);
    assert_eq!(s::texts(&inst[0], "name")[0], "running");
    // A redeploy of the stopped environment starts the same instance.
    dispatch::stop(&p, &d).await.expect("stop again");
    let again = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("redeploy");
    assert_eq!(
        again.resource_id, d.resource_id,
        "the stopped instance is started, not replaced"
    );
    assert_eq!(
        s::texts(&s::instances(&w.moto, &[("instance-id", &id)])[0], "name")[0],
        "running"
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn destroy_removes_the_instance_security_group_and_key_pair() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(&s::unique_name("destroy"), serde_json::json!({}));
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    let id = d.resource_id.clone().unwrap();
    let report = dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert!(report.removed[0].starts_with(&format!("instance {id}")));
    assert!(
        report
            .removed
            .iter()
            .any(|r| r.starts_with("security group"))
    );
    assert!(report.removed.iter().any(|r| r.starts_with("key pair")));
    let inst = s::instances(&w.moto, &[("instance-id", &id)]);
    assert_eq!(s::texts(&inst[0], "name")[0], "terminated");
    let name = format!("sindri-{}-{}", t.spec.name(), t.spec.project);
    let sgs = w.moto.ec2(
        "DescribeSecurityGroups",
        &[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", &name)],
    );
    assert!(
        s::items(&sgs, "securityGroupInfo").is_empty(),
        "the security group is gone"
    );
    let kps = w.moto.ec2(
        "DescribeKeyPairs",
        &[("Filter.1.Name", "key-name"), ("Filter.1.Value.1", &name)],
    );
    assert!(s::items(&kps, "keySet").is_empty(), "the key pair is gone");
    let again = dispatch::destroy(&p, &d, DestroyOptions { volumes: true })
        .await
        .expect("second destroy");
    assert!(again.removed.is_empty(), "{again:?}");
    assert_eq!(
        dispatch::status(&p, &d).await.expect("status").state,
        StatusState::Missing
    );
}

#[tokio::test]
async fn resources_without_sindri_tags_are_never_listed_or_touched() {
    let w = World::new().await;
    let p = w.provider(settings());
    // Someone else's instance, and a security group squatting sindri's name.
    let foreign = w.moto.ec2(
        "RunInstances",
        &[
            ("ImageId", "ami-1e749f67"),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    );
    let foreign_id = s::texts(&foreign, "instanceId")[0].clone();

    let t = TestSpec::new(&s::unique_name("foreign"), serde_json::json!({}));
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    let owned = dispatch::list_owned(&p).await.expect("list_owned");
    assert_eq!(owned.len(), 1, "only sindri's environment: {owned:?}");
    assert_eq!(owned[0].name, t.spec.name());
    assert!(
        owned
            .iter()
            .all(|o| o.resource_id.as_deref() != Some(foreign_id.as_str()))
    );
    dispatch::destroy(&p, &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy");
    let inst = s::instances(&w.moto, &[("instance-id", &foreign_id)]);
    assert_eq!(
        s::texts(&inst[0], "name")[0],
        "running",
        "the foreign instance is untouched"
    );
    for seen in w.proxy.seen() {
        assert!(
            !seen.body.contains(&foreign_id),
            "{} named the foreign instance",
            seen.action
        );
    }

    let squat = TestSpec::new(&s::unique_name("squat"), serde_json::json!({}));
    let name = format!("sindri-{}-{}", squat.spec.name(), squat.spec.project);
    w.moto.ec2(
        "CreateSecurityGroup",
        &[("GroupName", &name), ("GroupDescription", "not sindri's")],
    );
    let e = dispatch::deploy(&p, &squat.spec, NO_WAIT, &Recorder::new())
        .await
        .expect_err("a foreign group of that name");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        w.proxy.calls("RunInstances").len() == 1,
        "no instance was launched for the squatted name"
    );
    assert!(
        w.proxy.calls("ImportKeyPair").len() == 1,
        "the conflict is found before anything is created"
    );
    let e = dispatch::destroy(&p, &squat.record(), DestroyOptions { volumes: true })
        .await
        .expect("destroy of nothing");
    assert!(
        e.removed.is_empty(),
        "the foreign group is not removed: {e:?}"
    );
    let sgs = w.moto.ec2(
        "DescribeSecurityGroups",
        &[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", &name)],
    );
    assert_eq!(s::items(&sgs, "securityGroupInfo").len(), 1);
}

#[tokio::test]
async fn list_owned_reads_every_page() {
    let w = World::new().await;
    let project = "pagesproject";
    for n in 0..12 {
        let env = format!("page-{n}");
        w.moto.ec2(
            "RunInstances",
            &[
                ("ImageId", "ami-1e749f67"),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "sindri.managed"),
                ("TagSpecification.1.Tag.1.Value", "true"),
                ("TagSpecification.1.Tag.2.Key", "sindri.environment"),
                ("TagSpecification.1.Tag.2.Value", &env),
                ("TagSpecification.1.Tag.3.Key", "sindri.project"),
                ("TagSpecification.1.Tag.3.Value", project),
                ("TagSpecification.1.Tag.4.Key", "sindri.spec-hash"),
                ("TagSpecification.1.Tag.4.Value", "abc"),
            ],
        );
    }
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&w.proxy.url(), w.home.path()))
        .page_size(5)
        .build();
    let owned = dispatch::list_owned(&p).await.expect("list_owned");
    let mut names: Vec<String> = owned.iter().map(|d| d.name.clone()).collect();
    names.sort();
    let mut want: Vec<String> = (0..12).map(|n| format!("page-{n}")).collect();
    want.sort();
    assert_eq!(names, want, "every instance on every page");
    let pages = w.proxy.calls("DescribeInstances");
    assert_eq!(pages.len(), 3, "12 instances in pages of 5");
    assert!(pages.iter().all(|s| s.body.contains("MaxResults=5")));
    assert_eq!(
        pages
            .iter()
            .filter(|s| s.body.contains("NextToken="))
            .count(),
        2,
        "pages 2 and 3 ask with the token"
    );
    assert!(
        owned
            .iter()
            .all(|d| d.spec_hash == "abc" && d.project == project)
    );
}

#[tokio::test]
async fn security_groups_are_read_on_every_page() {
    let w = World::new().await;
    let project = "sgpagesproject";
    // What interrupted deploys leave: a tagged group and no instance, twelve times.
    for n in 0..12 {
        let env = format!("sg-page-{n}");
        let name = format!("sindri-{env}-{project}");
        w.moto.ec2(
            "CreateSecurityGroup",
            &[
                ("GroupName", &name),
                ("GroupDescription", "left by an interrupted deploy"),
                ("TagSpecification.1.ResourceType", "security-group"),
                ("TagSpecification.1.Tag.1.Key", "sindri.managed"),
                ("TagSpecification.1.Tag.1.Value", "true"),
                ("TagSpecification.1.Tag.2.Key", "sindri.environment"),
                ("TagSpecification.1.Tag.2.Value", &env),
                ("TagSpecification.1.Tag.3.Key", "sindri.project"),
                ("TagSpecification.1.Tag.3.Value", project),
            ],
        );
    }
    let p = AwsProvider::builder(settings())
        .env_vars(s::test_env(&w.proxy.url(), w.home.path()))
        .page_size(1)
        .build();
    let owned = dispatch::list_owned(&p).await.expect("list_owned");
    let mut names: Vec<String> = owned.iter().map(|d| d.name.clone()).collect();
    names.sort();
    let mut want: Vec<String> = (0..12).map(|n| format!("sg-page-{n}")).collect();
    want.sort();
    assert_eq!(names, want, "every group on every page");
    assert!(
        owned.iter().all(|d| d
            .detail("leftovers")
            .is_some_and(|l| l.contains("security group"))),
        "{owned:?}"
    );
    let pages = w.proxy.calls("DescribeSecurityGroups");
    assert_eq!(pages.len(), 3, "12 groups in pages of 5");
    assert!(
        pages.iter().all(|s| s.body.contains("MaxResults=5")),
        "a page size of 1 is raised to EC2's minimum of 5"
    );
    assert_eq!(
        pages
            .iter()
            .filter(|s| s.body.contains("NextToken="))
            .count(),
        2,
        "pages 2 and 3 ask with the token"
    );
}

#[tokio::test]
async fn instance_types_are_looked_up_through_every_page() {
    let w = World::new().await;
    // The moto in front pages the whole catalogue and filters each page afterwards, as
    // EC2 may: c4.large is on the fourth page, the pages before it are empty.
    let p = AwsProvider::builder(AwsSettings {
        instance_type: Some("c4.large".into()),
        ..settings()
    })
    .env_vars(s::test_env(&w.proxy.url(), w.home.path()))
    .page_size(1)
    .build();
    let t = TestSpec::new(&s::unique_name("types"), serde_json::json!({}));
    let plan = dispatch::plan(&p, &t.spec, None).await.expect("plan");
    let request = plan
        .artifacts
        .iter()
        .find(|a| a.content.contains("InstanceType=c4.large"))
        .expect("the RunInstances request is shown");
    assert!(
        request.content.contains("ImageId=ami-1e749f67"),
        "c4.large was found to run x86_64: {}",
        request.content
    );
    let pages = w.proxy.calls("DescribeInstanceTypes");
    assert!(
        pages.len() > 4,
        "read past the page that held it: {}",
        pages.len()
    );
    assert!(pages.iter().all(|s| s.body.contains("MaxResults=5")));
    assert!(
        pages
            .iter()
            .all(|s| s.body.contains("InstanceType.1=c4.large"))
    );
    assert_eq!(
        pages
            .iter()
            .filter(|s| !s.body.contains("NextToken="))
            .count(),
        1,
        "every page after the first asks with the token"
    );

    // A type EC2 does not know is refused, not searched for forever.
    let p = AwsProvider::builder(AwsSettings {
        instance_type: Some("c4.enormous".into()),
        ..settings()
    })
    .env_vars(s::test_env(&w.proxy.url(), w.home.path()))
    .page_size(1)
    .build();
    let e = dispatch::plan(&p, &t.spec, None)
        .await
        .expect_err("no such type");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("c4.enormous"), "{e}");
}

// ---- The machine ends itself after a run ----------------------------------------------

/// `instanceInitiatedShutdownBehavior` of instance `id`, as moto holds it.
fn shutdown_behavior(moto: &Moto, id: &str) -> String {
    let xml = moto.ec2(
        "DescribeInstanceAttribute",
        &[
            ("InstanceId", id),
            ("Attribute", "instanceInitiatedShutdownBehavior"),
        ],
    );
    s::texts(&xml, "value")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no value in {xml}"))
}

#[tokio::test]
async fn a_shutdown_from_inside_stops_or_terminates_as_the_run_asks() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(&s::unique_name("shutdown"), serde_json::json!({}));
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    let id = d.resource_id.clone().expect("instance id");
    let run = &w.proxy.calls("RunInstances")[0];
    assert!(
        run.body.contains("InstanceInitiatedShutdownBehavior=stop"),
        "{}",
        run.body
    );
    assert_eq!(shutdown_behavior(&w.moto, &id), "stop");
    assert_eq!(
        d.detail("run_interruption_check"),
        None,
        "on-demand instances get no spot notices"
    );

    let end = dispatch::self_end(&p, &d, OnFinish::Destroy)
        .await
        .expect("self_end")
        .expect("EC2 machines can end themselves");
    assert_eq!(end.command, sindri_providers::aws::SHUTDOWN_COMMAND);
    assert_eq!(end.action, OnFinish::Destroy);
    assert_eq!(shutdown_behavior(&w.moto, &id), "terminate");
    let modified = w.proxy.calls("ModifyInstanceAttribute");
    assert_eq!(modified.len(), 1);
    assert!(
        modified[0]
            .body
            .contains("Attribute=instanceInitiatedShutdownBehavior")
            && modified[0].body.contains("Value=terminate")
            && modified[0].body.contains(&format!("InstanceId={id}")),
        "{}",
        modified[0].body
    );

    let end = dispatch::self_end(&p, &d, OnFinish::Stop)
        .await
        .expect("self_end")
        .expect("a command");
    assert_eq!(end.action, OnFinish::Stop);
    assert_eq!(shutdown_behavior(&w.moto, &id), "stop");
    assert!(
        dispatch::self_end(&p, &d, OnFinish::Keep)
            .await
            .expect("keep")
            .is_none()
    );
    assert_eq!(
        w.proxy.calls("ModifyInstanceAttribute").len(),
        2,
        "keep asks nothing of EC2"
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");

    // `run.on_finish: destroy` in the spec: terminate from the first boot on.
    let mut t2 = TestSpec::new(&s::unique_name("shutdown-destroy"), serde_json::json!({}));
    t2.spec.spec.run = Some(
        serde_json::from_value(serde_json::json!({"command": "true", "on_finish": "destroy"}))
            .expect("run section"),
    );
    let d2 = dispatch::deploy(&p, &t2.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    let runs = w.proxy.calls("RunInstances");
    assert!(
        runs[1]
            .body
            .contains("InstanceInitiatedShutdownBehavior=terminate"),
        "{}",
        runs[1].body
    );
    assert_eq!(
        shutdown_behavior(&w.moto, d2.resource_id.as_deref().expect("id")),
        "terminate"
    );
    dispatch::destroy(&p, &d2, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn an_instance_that_is_gone_cannot_be_told_how_to_end() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(&s::unique_name("gone"), serde_json::json!({}));
    let e = dispatch::self_end(&p, &t.record(), OnFinish::Stop)
        .await
        .expect_err("no instance");
    assert!(e.is_not_found(), "{e}");
    assert!(w.proxy.calls("ModifyInstanceAttribute").is_empty());
}

// ---- Spot ---------------------------------------------------------------------------

fn spot(policy: SpotPolicy) -> AwsSettings {
    AwsSettings {
        spot: policy,
        ..Default::default()
    }
}

#[tokio::test]
async fn spot_always_launches_spot_and_cannot_stop() {
    let w = World::new().await;
    let p = w.provider(spot(SpotPolicy::Always));
    let t = TestSpec::new(&s::unique_name("spot"), serde_json::json!({}));
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    assert_eq!(d.detail("market"), Some("spot"));
    let run = &w.proxy.calls("RunInstances")[0];
    assert!(
        run.body.contains("InstanceMarketOptions.MarketType=spot"),
        "{}",
        run.body
    );
    assert!(run.body.contains("SpotInstanceType=one-time"));
    let id = d.resource_id.clone().unwrap();
    let inst = s::instances(&w.moto, &[("instance-id", &id)]);
    assert_eq!(s::texts(&inst[0], "instanceLifecycle"), vec!["spot"]);
    let st = dispatch::status(&p, &d).await.expect("status");
    assert_eq!(st.details.get("market").map(String::as_str), Some("spot"));
    assert_eq!(st.cost_per_hour, None, "spot prices are not guessed");
    let run = &w.proxy.calls("RunInstances")[0];
    assert!(
        run.body
            .contains("InstanceInitiatedShutdownBehavior=terminate"),
        "a one-time spot instance cannot stop, so a shutdown from inside terminates it: {}",
        run.body
    );
    assert_eq!(
        d.detail("run_interruption_check"),
        Some(sindri_providers::aws::INTERRUPTION_CHECK),
        "the run supervisor polls for spot notices"
    );
    let owned = dispatch::list_owned(&p).await.expect("list_owned");
    assert!(
        owned.iter().any(|o| o.name == d.name
            && o.detail("run_interruption_check")
                == Some(sindri_providers::aws::INTERRUPTION_CHECK)),
        "{owned:?}"
    );
    let end = dispatch::self_end(&p, &d, OnFinish::Stop)
        .await
        .expect("self_end")
        .expect("a command");
    assert_eq!(
        end.action,
        OnFinish::Destroy,
        "on_finish: stop terminates a spot instance, as sindri's own stop would"
    );
    assert_eq!(shutdown_behavior(&w.moto, &id), "terminate");
    let e = dispatch::stop(&p, &d)
        .await
        .expect_err("one-time spot cannot stop");
    assert_eq!(e.kind(), ErrorKind::Unsupported(Operation::Stop), "{e}");
    assert!(e.hint().unwrap_or("").contains("sindri destroy"));
    assert!(
        w.proxy.calls("StopInstances").is_empty(),
        "refused before asking EC2"
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");
    assert_eq!(
        s::texts(&s::instances(&w.moto, &[("instance-id", &id)])[0], "name")[0],
        "terminated"
    );
}

#[tokio::test]
async fn spot_always_never_falls_back_to_on_demand() {
    let w = World::new().await;
    w.proxy.inject(
        Fault::new("RunInstances", "InsufficientInstanceCapacity", 500)
            .when_body_contains("InstanceMarketOptions.MarketType=spot"),
    );
    let p = w.provider(spot(SpotPolicy::Always));
    let t = TestSpec::new(&s::unique_name("spot-always"), serde_json::json!({}));
    let progress = Recorder::new();
    let e = dispatch::deploy(&p, &t.spec, NO_WAIT, &progress)
        .await
        .expect_err("no spot capacity");
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(
        e.hint().unwrap_or("").contains("spot: auto"),
        "{:?}",
        e.hint()
    );
    let runs = w.proxy.calls("RunInstances");
    assert_eq!(
        runs.len(),
        1,
        "capacity errors are not retried, and there is no on-demand attempt"
    );
    assert!(runs.iter().all(|r| r.body.contains("MarketType=spot")));
    assert!(
        s::instances(&w.moto, &[]).is_empty(),
        "no instance of any kind exists afterwards"
    );
    assert!(progress.warnings().is_empty());
}

#[tokio::test]
async fn spot_auto_falls_back_on_capacity_errors_only_and_says_so() {
    let w = World::new().await;
    w.proxy.inject(
        Fault::new("RunInstances", "InsufficientInstanceCapacity", 500)
            .when_body_contains("InstanceMarketOptions.MarketType=spot"),
    );
    let p = w.provider(spot(SpotPolicy::Auto));
    let t = TestSpec::new(&s::unique_name("spot-auto"), serde_json::json!({}));
    let progress = Recorder::new();
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &progress)
        .await
        .expect("falls back");
    assert_eq!(d.detail("market"), Some("on-demand"));
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("on-demand") && w.contains("InsufficientInstanceCapacity")),
        "{:?}",
        progress.warnings()
    );
    let runs = w.proxy.calls("RunInstances");
    assert_eq!(runs.len(), 2);
    assert!(runs[0].body.contains("MarketType=spot") && !runs[1].body.contains("MarketType"));
    let inst = s::instances(
        &w.moto,
        &[("instance-id", d.resource_id.as_deref().unwrap())],
    );
    assert!(
        s::texts(&inst[0], "instanceLifecycle").is_empty(),
        "an on-demand instance"
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");

    // Not a capacity error: no fall back.
    w.proxy.clear_faults();
    w.proxy.inject(
        Fault::new("RunInstances", "VcpuLimitExceeded", 400).when_body_contains("MarketType=spot"),
    );
    let t2 = TestSpec::new(&s::unique_name("spot-auto-quota"), serde_json::json!({}));
    let e = dispatch::deploy(&p, &t2.spec, NO_WAIT, &Recorder::new())
        .await
        .expect_err("quota");
    assert_eq!(e.kind(), ErrorKind::Quota, "{e}");
    assert_eq!(
        w.proxy.calls("RunInstances").len(),
        3,
        "one more (spot) attempt only"
    );
}

// ---- Images and instance types ------------------------------------------------------

#[tokio::test]
async fn images_come_from_ssm_for_the_architecture_and_gpu() {
    let w = World::new().await;
    let cases = [
        (
            settings(),
            serde_json::json!({}),
            "t3.medium",
            "ami-1e749f67",
        ),
        (
            AwsSettings {
                instance_type: Some("t4g.small".into()),
                ..Default::default()
            },
            serde_json::json!({}),
            "t4g.small",
            "ami-0a1b2c3d4e5f6a7b8",
        ),
        (
            settings(),
            serde_json::json!({"resources": {"gpu": {"count": 1}}}),
            "g5.xlarge",
            "ami-dca37ea5",
        ),
        (
            settings(),
            serde_json::json!({"image": "ubuntu:22.04"}),
            "t3.medium",
            "ami-785db401",
        ),
        (
            settings(),
            serde_json::json!({"image": "ami-760aaa0f"}),
            "t3.medium",
            "ami-760aaa0f",
        ),
    ];
    for (settings, deployment, want_type, want_ami) in cases {
        let p = w.provider(settings);
        let t = TestSpec::new(&s::unique_name("ami"), deployment.clone());
        let plan = dispatch::plan(&p, &t.spec, None).await.expect("plan");
        let request = &plan
            .artifacts
            .iter()
            .find(|a| a.name == "run-instances.txt")
            .expect("request")
            .content;
        assert!(
            request.contains(&format!("ImageId={want_ami}")),
            "{deployment}: {request}"
        );
        assert!(
            request.contains(&format!("InstanceType={want_type}")),
            "{deployment}: {request}"
        );
        let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
            .await
            .expect("deploy");
        assert_eq!(d.detail("image"), Some(want_ami), "{deployment}");
        let inst = s::instances(
            &w.moto,
            &[("instance-id", d.resource_id.as_deref().unwrap())],
        );
        assert_eq!(s::texts(&inst[0], "imageId")[0], want_ami);
        assert_eq!(s::texts(&inst[0], "instanceType")[0], want_type);
        dispatch::destroy(&p, &d, DestroyOptions::default())
            .await
            .expect("destroy");
    }
    let gets: Vec<_> = w.proxy.calls("AmazonSSM.GetParameter");
    assert!(gets.iter().any(|g| {
        g.body
            .contains("/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/")
    }));
    assert!(
        gets.iter()
            .any(|g| g.body.contains("/aws/service/deeplearning/ami/x86_64/"))
    );
    // Amazon Linux's user, from the image name.
    let al = TestSpec::new(
        &s::unique_name("al"),
        serde_json::json!({"image": "ami-760aaa0f"}),
    );
    let p = w.provider(settings());
    let d = dispatch::deploy(&p, &al.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    assert_eq!(d.detail("ssh_user"), Some("ec2-user"));
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");

    for (image, hint) in [
        ("ami-00000000deadbeef", "AMI ids are per region"),
        ("nginx:latest", "AMI id"),
    ] {
        let t = TestSpec::new(
            &s::unique_name("bad-ami"),
            serde_json::json!({"image": image}),
        );
        let e = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
            .await
            .expect_err(image);
        assert_eq!(e.kind(), ErrorKind::Invalid, "{image}: {e}");
        assert!(
            e.hint().unwrap_or("").contains(hint),
            "{image}: {:?}",
            e.hint()
        );
    }
}

// ---- Error mapping ------------------------------------------------------------------

#[tokio::test]
async fn aws_errors_map_to_kinds_with_hints() {
    let w = World::new().await;
    let t = TestSpec::new(&s::unique_name("errors"), serde_json::json!({}));
    let cases = [
        (
            "RunInstances",
            "InsufficientInstanceCapacity",
            500,
            ErrorKind::Capacity,
        ),
        (
            "RunInstances",
            "UnauthorizedOperation",
            403,
            ErrorKind::Auth,
        ),
        ("RunInstances", "VcpuLimitExceeded", 400, ErrorKind::Quota),
        (
            "RunInstances",
            "InstanceLimitExceeded",
            400,
            ErrorKind::Quota,
        ),
        (
            "RunInstances",
            "InvalidParameterValue",
            400,
            ErrorKind::Invalid,
        ),
        ("DescribeInstances", "AuthFailure", 401, ErrorKind::Auth),
        ("DescribeInstances", "ExpiredToken", 400, ErrorKind::Auth),
    ];
    for (action, code, status, kind) in cases {
        w.proxy.clear_faults();
        w.proxy.inject(Fault::new(action, code, status));
        let p = w.provider(settings());
        let e = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
            .await
            .expect_err(code);
        assert_eq!(e.kind(), kind, "{code}: {e}");
        assert!(
            e.message().contains(code),
            "{code}: the AWS code is in the message: {e}"
        );
        let text = format!("{e} {:?}", e.hint());
        assert!(
            !text.contains(s::SECRET_KEY),
            "{code}: the secret leaked: {text}"
        );
        if kind == ErrorKind::Auth {
            assert!(
                e.hint().unwrap_or("").contains("AWS_ACCESS_KEY_ID"),
                "{code}: the hint names the credential source: {:?}",
                e.hint()
            );
        }
    }
    w.proxy.clear_faults();
    let p = w.provider(settings());
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy once the faults are gone");
    assert_eq!(
        s::instances(&w.moto, &[("tag:sindri.environment", t.spec.name())]).len(),
        1,
        "no leftovers from failed attempts"
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_reported_as_transient() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(&s::unique_name("throttle"), serde_json::json!({}));
    let d = t.record();
    w.proxy
        .inject(Fault::new("DescribeInstances", "RequestLimitExceeded", 503).times(2));
    let st = dispatch::status(&p, &d)
        .await
        .expect("retried past two throttles");
    assert_eq!(st.state, StatusState::Missing);
    let calls = w.proxy.calls("DescribeInstances");
    assert_eq!(calls.iter().filter(|c| c.faulted).count(), 2);
    assert_eq!(
        calls.iter().filter(|c| !c.faulted).count(),
        1,
        "the third attempt got through"
    );

    w.proxy
        .inject(Fault::new("DescribeInstances", "Throttling", 400));
    let before = w.proxy.calls("DescribeInstances").len();
    let e = dispatch::status(&p, &d)
        .await
        .expect_err("always throttled");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(
        w.proxy.calls("DescribeInstances").len() - before,
        4,
        "max attempts, then give up"
    );
}

#[tokio::test]
async fn no_public_address_means_no_deploy() {
    let w = World::new().await;
    let mut env = s::test_env(&w.proxy.url(), w.home.path());
    env.remove("SINDRI_AWS_SSH_CIDR");
    env.insert(
        "SINDRI_CHECKIP_URL".into(),
        format!("http://127.0.0.1:{}/", s::free_port()),
    );
    let p = s::provider(settings(), env.clone());
    let t = TestSpec::new(&s::unique_name("no-ip"), serde_json::json!({}));
    let e = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect_err("no address");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(
        e.hint().unwrap_or("").contains("SINDRI_AWS_SSH_CIDR"),
        "{:?}",
        e.hint()
    );
    assert!(
        w.proxy.calls("CreateSecurityGroup").is_empty(),
        "nothing opened"
    );

    env.insert("SINDRI_AWS_SSH_CIDR".into(), "0.0.0.0/0".into());
    let p = s::provider(settings(), env);
    let progress = Recorder::new();
    let d = dispatch::deploy(&p, &t.spec, NO_WAIT, &progress)
        .await
        .expect("explicitly open");
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("whole internet")),
        "{:?}",
        progress.warnings()
    );
    dispatch::destroy(&p, &d, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn a_changed_address_is_reconciled_on_redeploy() {
    let w = World::new().await;
    let t = TestSpec::new(&s::unique_name("cidr"), serde_json::json!({}));
    let p1 = w.provider(settings());
    let d = dispatch::deploy(&p1, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    let mut env = s::test_env(&w.proxy.url(), w.home.path());
    env.insert("SINDRI_AWS_SSH_CIDR".into(), "198.51.100.9/32".into());
    let p2 = s::provider(settings(), env);
    let plan = dispatch::plan(&p2, &t.spec, Some(&d)).await.expect("plan");
    let sg_step = plan
        .steps
        .iter()
        .find(|s| s.resource.starts_with("security group"))
        .expect("sg step");
    assert_eq!(sg_step.action, sindri_core::PlanAction::Update, "{plan:?}");
    let d2 = dispatch::deploy(&p2, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("redeploy");
    assert_eq!(d2.resource_id, d.resource_id, "same instance");
    let name = format!("sindri-{}-{}", t.spec.name(), t.spec.project);
    let sgs = w.moto.ec2(
        "DescribeSecurityGroups",
        &[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", &name)],
    );
    let cidrs = s::texts(&sgs, "cidrIp");
    assert!(cidrs.contains(&"198.51.100.9/32".to_string()), "{cidrs:?}");
    assert!(
        !cidrs.contains(&s::CIDR.to_string()),
        "the old address is revoked: {cidrs:?}"
    );
    dispatch::destroy(&p2, &d2, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn a_changed_spec_replaces_the_instance_and_no_wait_returns_at_once() {
    let w = World::new().await;
    let p = w.provider(settings());
    let t = TestSpec::new(&s::unique_name("replace"), serde_json::json!({}));
    let d1 = dispatch::deploy(&p, &t.spec, NO_WAIT, &Recorder::new())
        .await
        .expect("deploy");
    assert_eq!(
        d1.state,
        sindri_core::DeploymentState::Creating,
        "--no-wait returns once the instance exists"
    );
    let t2 = TestSpec {
        spec: {
            let mut s2 = t.spec.clone();
            s2.spec.deployment.resources.cpus = Some(sindri_spec::Cpus::new(4.0).unwrap());
            s2
        },
        dir: tempfile::tempdir().unwrap(),
    };
    let progress = Recorder::new();
    let d2 = dispatch::deploy(&p, &t2.spec, NO_WAIT, &progress)
        .await
        .expect("redeploy");
    assert_ne!(d2.resource_id, d1.resource_id, "a new instance");
    assert_eq!(d2.detail("instance_type"), Some("c7i.xlarge"));
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("replacing instance")),
        "{:?}",
        progress.warnings()
    );
    let old = s::instances(
        &w.moto,
        &[("instance-id", d1.resource_id.as_deref().unwrap())],
    );
    assert_eq!(s::texts(&old[0], "name")[0], "terminated");
    let owned = dispatch::list_owned(&p).await.expect("list");
    assert_eq!(owned.len(), 1);
    dispatch::destroy(&p, &d2, DestroyOptions::default())
        .await
        .expect("destroy");
}

#[tokio::test]
async fn check_reports_identity_region_and_key() {
    let w = World::new().await;
    let checks = w.provider(settings()).check().await;
    let by = |n: &str| {
        checks
            .iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("no check {n}: {checks:?}"))
    };
    assert_eq!(
        by("aws credentials").status,
        sindri_core::CheckStatus::Ok,
        "{checks:?}"
    );
    assert!(by("aws credentials").detail.contains("AWS_ACCESS_KEY_ID"));
    assert!(by("aws credentials").detail.contains(s::REGION));
    assert_eq!(
        by("aws identity").status,
        sindri_core::CheckStatus::Ok,
        "{checks:?}"
    );
    assert!(
        by("aws identity").detail.contains("123456789012"),
        "moto's account"
    );
    assert_eq!(by("ssh public key").status, sindri_core::CheckStatus::Ok);
    assert!(by("ssh source address").detail.contains(s::CIDR));
    let text = format!("{checks:?}");
    assert!(!text.contains(s::SECRET_KEY));
}
