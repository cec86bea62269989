//! The download step's script, run by a real `sh` on this machine: the file is used
//! only when its SHA-256 matches the pinned one. (`file://` URLs stand in for https,
//! which the manifest loader requires; the script itself does not care.)

use std::path::Path;
use std::process::Command;

use sindri_extensions::manifest::{
    Arch, DownloadFile, DownloadInstall, DownloadStep, ExtractTarget,
};
use sindri_extensions::script;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("sha256sum is needed for this test (Debian: coreutils): {e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn run(step: &DownloadStep) -> (i32, String) {
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg("command -v curl || command -v wget")
            .output()
            .is_ok_and(|o| o.status.success()),
        "curl or wget is needed for this test: sudo apt-get install -y curl"
    );
    // The preamble sources /etc/sindri/env.d, which does not exist here: harmless.
    let s = format!("{}{}", script::preamble(), script::download(step));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&s)
        .output()
        .expect("sh runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(url: &str, sha: &str) -> Vec<DownloadFile> {
    [Arch::Amd64, Arch::Arm64]
        .into_iter()
        .map(|arch| DownloadFile {
            arch,
            url: url.into(),
            sha256: sha.into(),
        })
        .collect()
}

#[test]
fn a_binary_is_installed_only_when_its_checksum_matches() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("tool");
    std::fs::write(&src, "#!/bin/sh\necho tool 1.0\n").expect("write");
    let url = format!("file://{}", src.display());
    let dest = dir.path().join("bin/tool");

    let wrong = DownloadStep {
        files: files(&url, &"0".repeat(64)),
        install: DownloadInstall::Binary(dest.display().to_string()),
    };
    let (code, err) = run(&wrong);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        err.contains(&sha256(&src)),
        "the actual checksum is shown: {err}"
    );
    assert!(
        !dest.exists(),
        "a file that failed verification is never installed"
    );

    let right = DownloadStep {
        files: files(&url, &sha256(&src)),
        install: wrong.install.clone(),
    };
    let (code, err) = run(&right);
    assert_eq!(code, 0, "{err}");
    let out = Command::new(&dest)
        .output()
        .expect("the installed tool runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tool 1.0\n");
}

#[test]
fn an_archive_is_extracted_after_verification() {
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("src/pkg-1.0/bin");
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join("hello"), "hi\n").expect("write");
    let archive = dir.path().join("pkg.tar.gz");
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path().join("src"))
        .arg("pkg-1.0")
        .status()
        .expect("tar runs");
    assert!(ok.success());
    let into = dir.path().join("opt");
    let step = DownloadStep {
        files: files(&format!("file://{}", archive.display()), &sha256(&archive)),
        install: DownloadInstall::Extract(ExtractTarget {
            dir: into.display().to_string(),
            strip_components: 1,
        }),
    };
    let (code, err) = run(&step);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(into.join("bin/hello")).expect("extracted"),
        "hi\n"
    );
}
