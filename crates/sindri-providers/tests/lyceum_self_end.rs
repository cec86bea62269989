//! A Lyceum VM deletes itself when a run nobody follows ends: `self_end` places the
//! API key on the VM (over ssh stdin, mode 0600), and the command it returns, run on
//! the VM through `exec`, calls the strict fake Lyceum API (`DELETE /vms/{id}`) with
//! it. The VM is a real local sshd, as in tests/lyceum.rs. With
//! `providers.lyceum.self_destroy: false` nothing is placed and nothing is returned.
#![cfg(feature = "lyceum")]

#[path = "support/spec_server/mod.rs"]
mod spec_server;
#[path = "support/aws/sshd.rs"]
mod sshd;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sindri_core::{DeployOptions, ExecCommand, ResolvedSpec, StatusState, dispatch};
use sindri_providers::conformance::{Recorder, exec_capture};
use sindri_providers::http::RetryPolicy;
use sindri_providers::lyceum::{LyceumConfig, LyceumProvider};
use sindri_providers::ssh::SshOptions;
use sindri_spec::OnFinish;
use spec_server::lyceum::{Lyceum, TOKEN};
use sshd::Sshd;

struct World {
    ly: Lyceum,
    _sshd: Sshd,
    dir: tempfile::TempDir,
    spec: ResolvedSpec,
    user: String,
}

async fn world(name: &str, lyceum_settings: &str) -> World {
    let sshd = Sshd::start();
    let authorized = sshd.dir.path().join("authorized_keys");
    std::fs::write(&authorized, "").expect("authorized_keys");
    let ly = Lyceum::start(&format!("127.0.0.1:{}", sshd.port), Some(authorized)).await;
    let dir = tempfile::tempdir().expect("dir");
    for sub in ["keys", "home", "user"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    let key = dir.path().join("keys/id_ed25519");
    std::fs::copy(&sshd.identity, &key).expect("key");
    std::fs::copy(
        sshd.identity.with_extension("pub"),
        key.with_extension("pub"),
    )
    .expect("public key");
    let yaml = format!(
        "name: {name}\ndeployment:\n  provider: lyceum\n  home: {}\n  resources:\n    gpu: {{count: 1, type: l40s}}\nproviders:\n  lyceum:\n    ssh_public_key: keys/id_ed25519.pub\n{lyceum_settings}",
        dir.path().join("home").display()
    );
    let path = dir.path().join("sindri.yaml");
    std::fs::write(&path, yaml).expect("sindri.yaml");
    let spec = sindri_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let spec = ResolvedSpec::new(spec, &path);
    let user = sshd.user.clone();
    World {
        ly,
        _sshd: sshd,
        dir,
        spec,
        user,
    }
}

impl World {
    fn provider(&self) -> LyceumProvider {
        let (api, home) = (
            self.ly.api(),
            self.dir.path().join("user").display().to_string(),
        );
        let mut c = LyceumConfig::from_lookup(|k| match k {
            "LYCEUM_API_URL" => Some(api.clone()),
            "LYCEUM_API_KEY" => Some(TOKEN.to_string()),
            "HOME" => Some(home.clone()),
            _ => None,
        })
        .expect("config");
        c.http.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
        };
        c.ssh = Some(SshOptions::in_state_dir(&self.dir.path().join("state")));
        c.ssh_user = self.user.clone();
        c.env_dir = self.env_dir().display().to_string();
        c.poll_interval = Duration::from_millis(20);
        c.max_polls = 100;
        LyceumProvider::new(
            self.spec.spec.providers.lyceum.clone().unwrap_or_default(),
            c,
        )
    }

    fn env_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("home/.sindri")
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
async fn a_vm_deletes_itself_with_the_key_sindri_placed_on_it() {
    let w = world("self-destroy", "").await;
    let p = w.provider();
    let d = dispatch::deploy(&p, &w.spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap_or_else(|e| panic!("deploy: {e} ({:?})", e.hint()));
    let id = d.resource_id.clone().expect("vm id");

    let end = dispatch::self_end(&p, &d, OnFinish::Stop)
        .await
        .expect("self_end")
        .expect("Lyceum VMs can delete themselves");
    assert_eq!(
        end.action,
        OnFinish::Destroy,
        "Lyceum cannot stop: ending means deleting"
    );
    assert!(
        !end.command.contains(TOKEN),
        "the key is not in the command: {}",
        end.command
    );
    let auth = w.env_dir().join("lyceum-auth");
    assert_eq!(
        std::fs::read_to_string(&auth).expect("the key is on the VM"),
        format!("Authorization: Bearer {TOKEN}\n")
    );
    assert_eq!(mode(&auth), 0o600, "readable by the VM's user only");
    assert_eq!(mode(&w.env_dir()), 0o700);
    assert!(w.ly.state().deleted.is_empty());

    // What the run supervisor does when the job ends and nobody follows.
    let got = exec_capture(&p, &d, &ExecCommand::shell(&end.command), None)
        .await
        .expect("exec");
    assert_eq!(got.code, 0, "{}", got.err());
    assert_eq!(w.ly.state().deleted, vec![id.clone()]);
    let st = dispatch::status(&p, &d).await.expect("status");
    assert_eq!(st.state, StatusState::Missing, "billing ended");
}

#[tokio::test]
async fn self_destroy_false_keeps_the_key_off_the_vm() {
    let w = world("no-self-destroy", "    self_destroy: false\n").await;
    let p = w.provider();
    let d = dispatch::deploy(&p, &w.spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap_or_else(|e| panic!("deploy: {e} ({:?})", e.hint()));
    assert!(
        dispatch::self_end(&p, &d, OnFinish::Destroy)
            .await
            .expect("self_end")
            .is_none()
    );
    assert!(!w.env_dir().join("lyceum-auth").exists());
    dispatch::destroy(&p, &d, Default::default())
        .await
        .expect("destroy");
}
