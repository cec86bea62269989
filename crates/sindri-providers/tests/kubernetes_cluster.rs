//! Local clusters (`sindri k8s create|destroy|list|load`): which tool is chosen, what
//! happens when neither kind nor k3d is installed, and the exact command lines run.
//! kind and k3d are not installed here: stand-in scripts on a private PATH record the
//! arguments they are run with.
#![cfg(feature = "kubernetes")]

use std::ffi::OsString;
use std::path::Path;

use sindri_core::ErrorKind;
use sindri_providers::kubernetes::cluster::{self, ClusterTool};

/// A directory with a stand-in `tool` that appends its arguments to `calls` and prints
/// `stdout`.
fn stand_in(dir: &Path, tool: &str, stdout: &str) -> OsString {
    let calls = dir.join(format!("{tool}.calls"));
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\ncat <<'EOF'\n{stdout}\nEOF\n",
        calls.display()
    );
    let path = dir.join(tool);
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.as_os_str().to_os_string()
}

fn calls(dir: &Path, tool: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{tool}.calls")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn without_kind_or_k3d_the_error_says_how_to_install_them() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().as_os_str().to_os_string();
    let e = cluster::choose(None, Some(&path)).expect_err("nothing installed");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        e.message(),
        "kind or k3d is not installed (not found on PATH)"
    );
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("go install sigs.k8s.io/kind@latest") && hint.contains("https://k3d.io"),
        "{hint}"
    );
    assert!(hint.contains("Docker"), "{hint}");

    let e = cluster::choose(Some(ClusterTool::K3d), Some(&path)).expect_err("k3d asked for");
    assert_eq!(e.message(), "k3d is not installed (not found on PATH)");
    assert!(
        !e.hint().unwrap().contains("kind"),
        "only the asked tool's hint"
    );
}

#[test]
fn the_installed_tool_is_chosen_kind_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = stand_in(dir.path(), "k3d", "[]");
    let (tool, program) = cluster::choose(None, Some(&path)).unwrap();
    assert_eq!((tool, program), (ClusterTool::K3d, dir.path().join("k3d")));
    stand_in(dir.path(), "kind", "");
    assert_eq!(
        cluster::choose(None, Some(&path)).unwrap().0,
        ClusterTool::Kind
    );
    assert_eq!(
        cluster::choose(Some(ClusterTool::K3d), Some(&path))
            .unwrap()
            .0,
        ClusterTool::K3d
    );
}

#[test]
fn the_command_lines_are_the_tools_own() {
    let kind = ClusterTool::Kind;
    assert_eq!(
        kind.create_argv("dev"),
        [
            "kind", "create", "cluster", "--name", "dev", "--wait", "120s"
        ]
    );
    assert_eq!(
        kind.delete_argv("dev"),
        ["kind", "delete", "cluster", "--name", "dev"]
    );
    assert_eq!(kind.list_argv(), ["kind", "get", "clusters"]);
    assert_eq!(
        kind.load_argv("dev", "sindri-app:latest"),
        [
            "kind",
            "load",
            "docker-image",
            "sindri-app:latest",
            "--name",
            "dev"
        ]
    );
    assert_eq!(kind.context("dev"), "kind-dev");
    let k3d = ClusterTool::K3d;
    assert_eq!(
        k3d.create_argv("dev"),
        ["k3d", "cluster", "create", "dev", "--wait"]
    );
    assert_eq!(k3d.delete_argv("dev"), ["k3d", "cluster", "delete", "dev"]);
    assert_eq!(k3d.list_argv(), ["k3d", "cluster", "list", "-o", "json"]);
    assert_eq!(
        k3d.load_argv("dev", "app:1"),
        ["k3d", "image", "import", "app:1", "--cluster", "dev"]
    );
    assert_eq!(k3d.context("dev"), "k3d-dev");
}

#[tokio::test]
async fn create_runs_the_tool_with_those_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = stand_in(dir.path(), "kind", "Creating cluster \"dev\" ...");
    let (tool, program) = cluster::choose(None, Some(&path)).unwrap();
    let out = cluster::run(&program, &tool.create_argv("dev"))
        .await
        .expect("create");
    assert!(out.stdout.contains("Creating cluster"));
    cluster::run(&program, &tool.load_argv("dev", "app:1"))
        .await
        .expect("load");
    assert_eq!(
        calls(dir.path(), "kind"),
        [
            "create cluster --name dev --wait 120s",
            "load docker-image app:1 --name dev"
        ]
    );
}

#[tokio::test]
async fn a_failing_tool_reports_its_own_error_lines() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kind");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'ERROR: failed to create cluster: docker is not running' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = cluster::run(&script, &ClusterTool::Kind.create_argv("dev"))
        .await
        .expect_err("fails");
    assert_eq!(e.kind(), ErrorKind::Platform);
    assert!(
        e.message()
            .contains("`kind create cluster --name dev --wait 120s` failed"),
        "{e}"
    );
    assert!(e.message().contains("docker is not running"), "{e}");
}

#[tokio::test]
async fn list_reads_both_tools() {
    let dir = tempfile::tempdir().unwrap();
    stand_in(dir.path(), "kind", "dev\nci");
    let path = stand_in(dir.path(), "k3d", r#"[{"name":"edge","serversRunning":1}]"#);
    let clusters = cluster::list(Some(&path)).await.expect("list");
    let names: Vec<(ClusterTool, &str, &str)> = clusters
        .iter()
        .map(|c| (c.tool, c.name.as_str(), c.context.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (ClusterTool::Kind, "dev", "kind-dev"),
            (ClusterTool::Kind, "ci", "kind-ci"),
            (ClusterTool::K3d, "edge", "k3d-edge")
        ]
    );
    assert_eq!(
        ClusterTool::Kind
            .parse_list("No kind clusters found.\n")
            .unwrap(),
        Vec::<String>::new()
    );

    let empty = tempfile::tempdir().unwrap();
    let e = cluster::list(Some(&empty.path().as_os_str().to_os_string()))
        .await
        .expect_err("none installed");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}
