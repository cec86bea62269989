//! The AWS credential and region chain, end to end: each test gives the provider its
//! own environment (a temporary HOME with `~/.aws` files, a fake instance metadata
//! service on loopback) and checks, through a recording proxy in front of moto, which
//! access key actually signed the requests.
#![cfg(feature = "aws")]

#[path = "support/aws/mod.rs"]
mod aws_support;

use std::collections::BTreeMap;

use aws_support::{self as s, Home, Imds, Moto, Proxy};
use sindri_core::{CheckStatus, ErrorKind, Provider, dispatch};
use sindri_spec::AwsSettings;

/// The access key id in the `Authorization` header of every request the proxy saw.
fn signing_keys(proxy: &Proxy) -> Vec<String> {
    proxy
        .seen()
        .iter()
        .filter_map(|s| s.headers.get("authorization"))
        .filter_map(|a| a.split("Credential=").nth(1))
        .filter_map(|c| c.split('/').next())
        .map(str::to_string)
        .collect()
}

/// The region in the credential scope of every request.
fn signing_regions(proxy: &Proxy) -> Vec<String> {
    proxy
        .seen()
        .iter()
        .filter_map(|s| s.headers.get("authorization"))
        .filter_map(|a| a.split("Credential=").nth(1))
        .filter_map(|c| c.split('/').nth(2))
        .map(str::to_string)
        .collect()
}

/// An environment with only HOME, the endpoint, the CIDR and IMDS off.
fn bare_env(endpoint: &str, home: &Home) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("AWS_ENDPOINT_URL".into(), endpoint.to_string()),
        ("HOME".into(), home.path().display().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("SINDRI_AWS_SSH_CIDR".into(), s::CIDR.into()),
    ])
}

fn write(home: &Home, rel: &str, text: &str) {
    let p = home.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[tokio::test]
async fn a_profile_from_the_shared_files_signs_and_sets_the_region() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let home = Home::new();
    write(
        &home,
        ".aws/credentials",
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n[dev]\naws_access_key_id = AKIDDEVPROFILE\naws_secret_access_key = dev-secret\n",
    );
    write(
        &home,
        ".aws/config",
        "[default]\nregion = us-east-1\n\n[profile dev]\nregion = eu-west-1\n",
    );
    let mut env = bare_env(&proxy.url(), &home);
    env.insert("AWS_PROFILE".into(), "dev".into());
    let p = s::provider(AwsSettings::default(), env);
    dispatch::list_owned(&p)
        .await
        .expect("list_owned with the profile");
    assert_eq!(
        signing_keys(&proxy),
        vec!["AKIDDEVPROFILE"; signing_keys(&proxy).len()]
    );
    assert!(
        signing_regions(&proxy).iter().all(|r| r == "eu-west-1"),
        "{:?}",
        signing_regions(&proxy)
    );
    let checks = p.check().await;
    let creds = checks.iter().find(|c| c.name == "aws credentials").unwrap();
    assert!(
        creds.detail.contains("profile `dev`") && creds.detail.contains(".aws/credentials"),
        "{creds:?}"
    );
    assert!(creds.detail.contains("eu-west-1"));
    assert!(!format!("{checks:?}").contains("dev-secret"));
}

#[tokio::test]
async fn environment_keys_win_unless_the_spec_names_a_profile() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let home = Home::new();
    write(
        &home,
        ".aws/credentials",
        "[dev]\naws_access_key_id = AKIDDEVPROFILE\naws_secret_access_key = x\n",
    );
    let mut env = bare_env(&proxy.url(), &home);
    env.insert("AWS_PROFILE".into(), "dev".into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDFROMENV".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "env-secret".into());
    env.insert("AWS_REGION".into(), "us-west-2".into());
    let p = s::provider(AwsSettings::default(), env.clone());
    dispatch::list_owned(&p).await.expect("list_owned");
    assert!(
        signing_keys(&proxy).iter().all(|k| k == "AKIDFROMENV"),
        "{:?}",
        signing_keys(&proxy)
    );
    assert!(signing_regions(&proxy).iter().all(|r| r == "us-west-2"));

    let proxy2 = Proxy::start(moto.port).await;
    env.insert("AWS_ENDPOINT_URL".into(), proxy2.url());
    let named = AwsSettings {
        profile: Some("dev".into()),
        region: Some("ap-south-1".into()),
        ..Default::default()
    };
    let p = s::provider(named, env);
    dispatch::list_owned(&p).await.expect("list_owned");
    assert!(
        signing_keys(&proxy2).iter().all(|k| k == "AKIDDEVPROFILE"),
        "providers.aws.profile wins: {:?}",
        signing_keys(&proxy2)
    );
    assert!(
        signing_regions(&proxy2).iter().all(|r| r == "ap-south-1"),
        "providers.aws.region wins"
    );
}

#[tokio::test]
async fn custom_file_locations_and_credential_process_work() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let home = Home::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let script = elsewhere.path().join("creds.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"process-token\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = elsewhere.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile proc]\nregion = eu-central-1\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let mut env = bare_env(&proxy.url(), &home);
    env.insert("AWS_CONFIG_FILE".into(), config.display().to_string());
    env.insert(
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        elsewhere.path().join("none").display().to_string(),
    );
    env.insert("AWS_PROFILE".into(), "proc".into());
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    let p = s::provider(AwsSettings::default(), env);
    dispatch::list_owned(&p).await.expect("list_owned");
    assert!(
        signing_keys(&proxy).iter().all(|k| k == "AKIDPROCESS"),
        "{:?}",
        signing_keys(&proxy)
    );
    let tokens: Vec<_> = proxy
        .seen()
        .iter()
        .filter_map(|s| s.headers.get("x-amz-security-token").cloned())
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t == "process-token"),
        "the session token is sent"
    );
    assert!(signing_regions(&proxy).iter().all(|r| r == "eu-central-1"));
}

#[tokio::test]
async fn unusable_profiles_fail_with_what_to_do() {
    let home = Home::new();
    write(
        &home,
        ".aws/config",
        "[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n",
    );
    let mut env = bare_env("http://127.0.0.1:9", &home);
    env.insert("AWS_PROFILE".into(), "role".into());
    let p = s::provider(AwsSettings::default(), env.clone());
    let e = dispatch::list_owned(&p)
        .await
        .expect_err("role profiles are not supported");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(
        e.hint()
            .unwrap_or("")
            .contains("aws configure export-credentials --profile role"),
        "{:?}",
        e.hint()
    );

    env.insert("AWS_PROFILE".into(), "missing".into());
    let p = s::provider(AwsSettings::default(), env.clone());
    let e = dispatch::list_owned(&p).await.expect_err("no such profile");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("`missing`"));

    env.remove("AWS_PROFILE");
    let p = s::provider(AwsSettings::default(), env);
    let e = dispatch::list_owned(&p)
        .await
        .expect_err("nothing configured");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    for tried in [
        "AWS_ACCESS_KEY_ID",
        "profile `default`",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        assert!(
            e.message().contains(tried),
            "the message lists {tried}: {e}"
        );
    }
    let checks = s::provider(
        AwsSettings::default(),
        BTreeMap::from([
            ("HOME".to_string(), home.path().display().to_string()),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "1".to_string()),
        ]),
    )
    .check()
    .await;
    assert_eq!(checks[0].status, CheckStatus::Fail, "{checks:?}");
}

#[tokio::test]
async fn the_instance_metadata_service_supplies_credentials_and_region_with_imdsv2() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let imds = Imds::start("eu-north-1").await;
    let home = Home::new();
    let mut env = bare_env(&proxy.url(), &home);
    env.remove("AWS_EC2_METADATA_DISABLED");
    env.insert("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.url());
    let p = s::provider(AwsSettings::default(), env);
    dispatch::list_owned(&p)
        .await
        .expect("list_owned with IMDS credentials");
    assert!(
        signing_keys(&proxy).iter().all(|k| k == s::IMDS_KEY),
        "{:?}",
        signing_keys(&proxy)
    );
    assert!(
        signing_regions(&proxy).iter().all(|r| r == "eu-north-1"),
        "the region from IMDS"
    );
    let tokens: Vec<_> = proxy
        .seen()
        .iter()
        .filter_map(|s| s.headers.get("x-amz-security-token").cloned())
        .collect();
    assert!(tokens.iter().all(|t| t == "imds-session-token") && !tokens.is_empty());
    let hits = imds.hits();
    assert_eq!(hits[0].method, "PUT", "IMDSv2: a token first: {hits:?}");
    assert_eq!(hits[0].path, "/latest/api/token");
    assert!(
        hits[1..]
            .iter()
            .all(|h| h.method == "GET" && h.token.as_deref() == Some(s::IMDS_TOKEN)),
        "every read carries the token: {hits:?}"
    );
}

#[tokio::test]
async fn service_endpoints_override_the_general_one() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let home = Home::new();
    let mut env = s::test_env(&format!("http://127.0.0.1:{}", s::free_port()), home.path());
    env.insert("AWS_ENDPOINT_URL_EC2".into(), proxy.url());
    let p = s::provider(AwsSettings::default(), env.clone());
    dispatch::list_owned(&p)
        .await
        .expect("EC2 calls go to AWS_ENDPOINT_URL_EC2");
    assert!(!proxy.calls("DescribeInstances").is_empty());

    // SSM still uses AWS_ENDPOINT_URL, where nothing listens: Unavailable, after retries.
    let t = s::TestSpec::new(&s::unique_name("endpoints"), serde_json::json!({}));
    let e = dispatch::plan(&p, &t.spec, None)
        .await
        .expect_err("SSM unreachable");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("GetParameter"), "{e}");
}
