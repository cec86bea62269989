//! `env` and `file` secrets, required/optional handling and error aggregation,
//! against real files and environments.

use std::path::Path;

use sindri_core::ErrorKind;
use sindri_secrets::{Resolved, Resolver};
use sindri_spec::{SecretSource, SecretSpec};

fn secret(name: &str, source: SecretSource) -> SecretSpec {
    SecretSpec {
        name: name.to_string(),
        source,
        var: None,
        path: None,
        key: None,
        mount: None,
        required: true,
    }
}

fn env_secret(name: &str, var: Option<&str>) -> SecretSpec {
    SecretSpec {
        var: var.map(str::to_string),
        ..secret(name, SecretSource::Env)
    }
}

fn file_secret(name: &str, path: &str) -> SecretSpec {
    SecretSpec {
        path: Some(path.to_string()),
        ..secret(name, SecretSource::File)
    }
}

fn values(r: &Resolved) -> Vec<(&str, &str)> {
    r.secrets
        .iter()
        .map(|s| (s.name.as_str(), s.value.expose()))
        .collect()
}

async fn resolve_with(
    vars: &[(&str, &str)],
    secrets: &[SecretSpec],
    base: &Path,
) -> sindri_core::Result<Resolved> {
    Resolver::with_env(vars.iter().copied())
        .resolve(secrets, base)
        .await
}

#[tokio::test]
async fn env_secrets_are_read_exactly_as_set() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("API_TOKEN", "tok en\n"), ("OTHER_NAME", "from-var")];
    let secrets = [
        env_secret("API_TOKEN", None),
        env_secret("RENAMED", Some("OTHER_NAME")),
    ];
    let r = resolve_with(&vars, &secrets, dir.path()).await.unwrap();
    // Env values are not trimmed: only file secrets lose a trailing newline.
    assert_eq!(
        values(&r),
        [("API_TOKEN", "tok en\n"), ("RENAMED", "from-var")]
    );
    assert!(r.warnings.is_empty());
}

#[tokio::test]
async fn resolve_reads_the_process_environment() {
    // PATH is set for every test process; resolve() must see the real environment.
    let path = std::env::var("PATH").expect("PATH is set for tests");
    let dir = tempfile::tempdir().unwrap();
    let r = sindri_secrets::resolve(&[env_secret("MY_PATH", Some("PATH"))], dir.path())
        .await
        .unwrap();
    assert_eq!(values(&r), [("MY_PATH", path.as_str())]);
}

#[tokio::test]
async fn missing_env_var_is_named_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("PRESENT", "present-value-123")];
    let err = resolve_with(
        &vars,
        &[
            env_secret("PRESENT", None),
            env_secret("DB_PASSWORD", Some("PROD_DB_PASSWORD")),
        ],
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let text = err.to_string();
    assert!(text.contains("DB_PASSWORD"), "{text}");
    assert!(
        text.contains("environment variable `PROD_DB_PASSWORD` is not set"),
        "{text}"
    );
    assert!(err.hint().unwrap_or("").contains("export PROD_DB_PASSWORD"));
    assert!(!format!("{err:?}").contains("present-value-123"));
}

#[tokio::test]
async fn file_secrets_lose_exactly_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir(base.join("secrets")).unwrap();
    let files = [
        ("secrets/editor.txt", "token-abc\n"),
        ("secrets/windows.txt", "token-crlf\r\n"),
        ("secrets/two.txt", "keep-one\n\n"),
        ("secrets/none.txt", "no-newline"),
        ("secrets/spaces.txt", "  padded  "),
        ("secrets/pem.txt", "line1\nline2\n"),
    ];
    for (path, content) in files {
        std::fs::write(base.join(path), content).unwrap();
    }
    let secrets: Vec<SecretSpec> = files
        .iter()
        .enumerate()
        .map(|(i, (path, _))| file_secret(&format!("S{i}"), path))
        .collect();
    let r = resolve_with(&[], &secrets, base).await.unwrap();
    assert_eq!(
        values(&r),
        [
            ("S0", "token-abc"),
            ("S1", "token-crlf"),
            ("S2", "keep-one\n"),
            ("S3", "no-newline"),
            ("S4", "  padded  "),
            ("S5", "line1\nline2"),
        ]
    );
}

#[tokio::test]
async fn file_paths_are_relative_to_base_dir_absolute_or_home() {
    let project = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("rel.txt"), "relative\n").unwrap();
    std::fs::write(home.path().join("home.txt"), "in-home\n").unwrap();
    let abs = elsewhere.path().join("abs.txt");
    std::fs::write(&abs, "absolute\n").unwrap();

    let home_str = home.path().to_str().unwrap();
    let secrets = [
        file_secret("REL", "rel.txt"),
        file_secret("ABS", abs.to_str().unwrap()),
        file_secret("HOME_FILE", "~/home.txt"),
    ];
    let r = resolve_with(&[("HOME", home_str)], &secrets, project.path())
        .await
        .unwrap();
    assert_eq!(
        values(&r),
        [
            ("REL", "relative"),
            ("ABS", "absolute"),
            ("HOME_FILE", "in-home")
        ]
    );
}

#[tokio::test]
async fn missing_file_is_named_with_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let err = resolve_with(
        &[],
        &[file_secret("TLS_KEY", "certs/missing.pem")],
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let expected = dir.path().join("certs/missing.pem");
    let text = err.to_string();
    assert!(text.contains("TLS_KEY"), "{text}");
    assert!(
        text.contains(&format!("file `{}` does not exist", expected.display())),
        "{text}"
    );
    assert!(
        err.hint()
            .unwrap_or("")
            .contains(&dir.path().display().to_string())
    );
}

#[tokio::test]
async fn unreadable_files_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("binary.bin"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let err = resolve_with(
        &[],
        &[file_secret("BIN", "binary.bin"), file_secret("DIR", "adir")],
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let text = err.to_string();
    assert!(text.contains("binary.bin` is not UTF-8 text"), "{text}");
    assert!(text.contains("adir` is a directory"), "{text}");
}

#[tokio::test]
async fn optional_secrets_that_cannot_be_read_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("HAVE_IT", "value-1")];
    let secrets = [
        env_secret("HAVE_IT", None),
        SecretSpec {
            required: false,
            ..env_secret("OPTIONAL_TOKEN", None)
        },
        SecretSpec {
            required: false,
            ..file_secret("OPTIONAL_FILE", "nope.txt")
        },
    ];
    let r = resolve_with(&vars, &secrets, dir.path()).await.unwrap();
    assert_eq!(values(&r), [("HAVE_IT", "value-1")]);
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("OPTIONAL_TOKEN"));
    assert!(r.warnings[0].contains("is not set"));
    assert!(r.warnings[1].contains("OPTIONAL_FILE"));
    assert!(r.warnings[1].contains("nope.txt"));
    assert!(r.warnings.iter().all(|w| !w.contains("value-1")));
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.txt"), "fine-value\n").unwrap();
    let secrets = [
        env_secret("FIRST_MISSING", None),
        file_secret("OK_FILE", "ok.txt"),
        file_secret("SECOND_MISSING", "absent.txt"),
        SecretSpec {
            path: Some("secret/data/app".into()),
            ..secret("NO_KEY", SecretSource::Vault)
        },
        env_secret("FIRST_MISSING", Some("SOMETHING_ELSE")),
    ];
    let err = resolve_with(&[], &secrets, dir.path()).await.unwrap_err();
    // Mixed kinds (not found, misconfigured) fold into Invalid.
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let text = err.to_string();
    assert!(text.starts_with("4 of 5 secrets cannot be read:"), "{text}");
    assert!(
        text.contains("`FIRST_MISSING` (env:FIRST_MISSING)"),
        "{text}"
    );
    assert!(
        text.contains("`SECOND_MISSING` (file:absent.txt)"),
        "{text}"
    );
    assert!(
        text.contains("`NO_KEY` (vault:secret/data/app#?): `source: vault` needs `key`"),
        "{text}"
    );
    assert!(
        text.contains("the name is used by another secret"),
        "{text}"
    );
    assert!(!text.contains("OK_FILE"), "{text}");
    assert!(!text.contains("fine-value"));
    let hint = err.hint().unwrap_or("");
    assert!(hint.contains("export FIRST_MISSING"), "{hint}");
    assert!(hint.contains("key: password"), "{hint}");
}

#[tokio::test]
async fn failures_of_one_kind_keep_that_kind() {
    let dir = tempfile::tempdir().unwrap();
    let err = resolve_with(
        &[],
        &[env_secret("A", None), file_secret("B", "b.txt")],
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.exit_code(), 1);
}

#[tokio::test]
async fn misconfigured_secrets_fail_even_when_optional() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        SecretSpec {
            required: false,
            key: Some("password".into()),
            ..env_secret("ENV_WITH_KEY", None)
        },
        SecretSpec {
            required: false,
            ..secret("FILE_WITHOUT_PATH", SecretSource::File)
        },
        SecretSpec {
            mount: Some("relative/path".into()),
            ..env_secret("BAD_MOUNT", None)
        },
    ];
    let err = resolve_with(&[("BAD_MOUNT", "x")], &secrets, dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(
        text.contains("`key` is not used with `source: env`"),
        "{text}"
    );
    assert!(text.contains("`source: file` needs `path`"), "{text}");
    assert!(
        text.contains("`mount: relative/path` is not an absolute path"),
        "{text}"
    );
}

#[tokio::test]
async fn mount_paths_are_carried_through() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [SecretSpec {
        mount: Some("/run/secrets/token".into()),
        ..env_secret("TOKEN", None)
    }];
    let r = resolve_with(&[("TOKEN", "t")], &secrets, dir.path())
        .await
        .unwrap();
    assert_eq!(r.secrets[0].mount.as_deref(), Some("/run/secrets/token"));
}

#[test]
fn resolve_blocking_works_without_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.txt"), "blocking\n").unwrap();
    let r = Resolver::with_env([("X", "y")])
        .resolve_blocking(
            &[file_secret("T", "t.txt"), env_secret("X", None)],
            dir.path(),
        )
        .unwrap();
    assert_eq!(values(&r), [("T", "blocking"), ("X", "y")]);
}

#[tokio::test]
async fn resolve_blocking_refuses_to_block_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let err = sindri_secrets::resolve_blocking(&[], dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.hint().unwrap_or("").contains("resolve(..).await"));
}

#[test]
fn resolver_debug_never_shows_the_environment() {
    let r = Resolver::with_env([("VAULT_TOKEN", "hvs.super-secret-token")]);
    let debug = format!("{r:?}");
    assert!(!debug.contains("super-secret"), "{debug}");
    assert!(debug.contains("<1 variables>"), "{debug}");
}
