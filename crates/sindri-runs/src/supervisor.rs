//! The supervisor: a POSIX sh script that runs the job in the environment and records
//! how it ended, so that nothing about the run depends on sindri staying connected.
//!
//! The script body is fixed ([`SCRIPT`], `supervisor.sh` next to this file); rendering
//! prepends the run's settings as shell-quoted assignments and the job's argument
//! vector as `set -- ...`, so no value can change what the script does. See the script
//! for the files it writes under the run directory.

use std::time::Duration;

use sindri_core::provider::SelfEnd;
use sindri_core::{Error, Result};

use crate::shell::{FUNCTIONS, sh_quote};

/// The fixed body of the supervisor.
pub const SCRIPT: &str = include_str!("supervisor.sh");

/// How often the supervisor rewrites the heartbeat file.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How often checkpoints are uploaded while the job runs (and once more at the end).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(300);

/// How long the job's process group has between SIGTERM and SIGKILL when
/// `max_duration` (or an interruption notice) stops it.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(10);

/// How often the supervisor asks the platform whether it reclaims the machine (AWS
/// suggests every 5 s; a spot notice comes about two minutes ahead).
pub const INTERRUPTION_EVERY: Duration = Duration::from_secs(5);

/// How long a sindri that follows a run holds the machine's own `on_finish` after its
/// last sign of life (see `end_hold` in the script): it renews the hold while it
/// follows the log and copies artifacts, so a lost laptop delays the end by at most
/// this much.
pub const END_HOLD: Duration = Duration::from_secs(60);

/// Everything the supervisor of one run needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// The run's id.
    pub run_id: String,
    /// Absolute path of the run directory in the environment.
    pub run_dir: String,
    /// Absolute path of the workdir in the environment; the job starts there.
    pub workdir: String,
    /// The job's argument vector, run without a shell.
    pub argv: Vec<String>,
    /// Hard limit on the job's run time, enforced by the supervisor.
    pub max_duration: Option<Duration>,
    /// SIGTERM-to-SIGKILL grace when the limit is reached.
    pub grace: Duration,
    /// Heartbeat interval.
    pub heartbeat_every: Duration,
    /// Absolute path of the checkpoint directory in the environment, if any.
    pub checkpoint_dir: Option<String>,
    /// Where checkpoints go: `s3://bucket/prefix`, `file:///path` or `/path`.
    pub checkpoint_store: Option<String>,
    /// Upload interval while the job runs.
    pub checkpoint_every: Duration,
    /// What the machine runs to apply `on_finish` to itself once the job ended (see
    /// `sindri_core::Provider::self_end`); `None`: it never ends itself.
    pub self_end: Option<SelfEnd>,
    /// A command that exits 0, printing the notice, when the platform is about to
    /// reclaim the machine (`run_interruption_check` of the deployment); `None`: no
    /// polling.
    pub interruption_check: Option<String>,
    /// How often `interruption_check` runs.
    pub interruption_every: Duration,
}

impl SupervisorConfig {
    /// The complete script for this run.
    pub fn render(&self) -> String {
        let mut s =
            String::from("#!/bin/sh\n# Rendered by sindri for one run; the settings come first.\n");
        let mut set = |k: &str, v: &str| s.push_str(&format!("{k}={}\n", sh_quote(v)));
        set("RUN_ID", &self.run_id);
        set("RUN_DIR", &self.run_dir);
        set("WORKDIR", &self.workdir);
        set(
            "MAX_DURATION",
            &self
                .max_duration
                .map_or(0, |d| d.as_secs().max(1))
                .to_string(),
        );
        set("GRACE", &self.grace.as_secs().to_string());
        set(
            "HEARTBEAT_EVERY",
            &self.heartbeat_every.as_secs().max(1).to_string(),
        );
        set(
            "CHECKPOINT_DIR",
            self.checkpoint_dir.as_deref().unwrap_or(""),
        );
        set(
            "CHECKPOINT_STORE",
            self.checkpoint_store.as_deref().unwrap_or(""),
        );
        set(
            "CHECKPOINT_EVERY",
            &self.checkpoint_every.as_secs().max(1).to_string(),
        );
        set(
            "END_COMMAND",
            self.self_end.as_ref().map_or("", |e| e.command.as_str()),
        );
        set(
            "END_ACTION",
            self.self_end
                .as_ref()
                .map_or("", |e| crate::request::on_finish_name(e.action)),
        );
        set(
            "INTERRUPTION_CHECK",
            self.interruption_check.as_deref().unwrap_or(""),
        );
        set(
            "INTERRUPTION_EVERY",
            &self.interruption_every.as_secs().max(1).to_string(),
        );
        s.push_str("set --");
        for a in &self.argv {
            s.push(' ');
            s.push_str(&sh_quote(a));
        }
        s.push('\n');
        s.push_str(FUNCTIONS);
        s.push_str(SCRIPT);
        s
    }
}

/// Checks a `run.checkpoint_store` value before anything runs; the supervisor can copy
/// to an S3 URL (with the `aws` CLI in the environment) or to a path in the
/// environment (`file:///path` or `/path`).
pub fn check_store(store: &str) -> Result<()> {
    let ok = store
        .strip_prefix("s3://")
        .map(|rest| !rest.is_empty() && !rest.starts_with('/'))
        .unwrap_or(false)
        || store
            .strip_prefix("file://")
            .is_some_and(|p| p.starts_with('/'))
        || store.starts_with('/');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "run.checkpoint_store: found `{store}`; expected `s3://bucket/prefix`, `file:///absolute/path` or `/absolute/path`"
        ))
        .with_hint("paths are inside the environment; S3 needs the `aws` CLI installed there"))
    }
}

/// Writes the supervisor into `$1` (the run directory) as `$2` and starts it in a
/// session of its own, detached from the exec that started it. With `$3` > 0 the
/// launching sindri follows the run: it holds the machine's own end for `$3` seconds
/// (renewed while it follows), so a job that ends at once cannot stop the machine
/// before its artifacts are copied back.
pub(crate) const LAUNCH: &str = r#"
mkdir -p "$1" || exit 1
printf '%s' "$2" > "$1/supervisor.sh" || exit 1
# A relaunch on the same machine starts from a clean record; the earlier log is kept.
for f in exit_code ended_at reason interruption self_end self_end_skipped end_handled end_hold pid started_at heartbeat checkpoint_error; do rm -f "$1/$f"; done
if [ -f "$1/log" ]; then mv -f "$1/log" "$1/log.previous"; fi
if [ "${3:-0}" -gt 0 ]; then printf '%s\n' "$(( $(date +%s) + $3 ))" > "$1/end_hold"; fi
command -v setsid >/dev/null 2>&1 || { echo "setsid is not installed in the environment (util-linux or busybox provide it)" >&2; exit 127; }
cd "$1" || exit 1
setsid sh "$1/supervisor.sh" < /dev/null >> "$1/supervisor.log" 2>&1 &
echo "$!" > "$1/supervisor_pid"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SupervisorConfig {
        SupervisorConfig {
            run_id: "r1".into(),
            run_dir: "/tmp/r 1".into(),
            workdir: "/w".into(),
            argv: vec!["python".into(), "train.py".into(), "it's".into()],
            max_duration: Some(Duration::from_secs(7200)),
            grace: TIMEOUT_GRACE,
            heartbeat_every: HEARTBEAT_EVERY,
            checkpoint_dir: None,
            checkpoint_store: None,
            checkpoint_every: CHECKPOINT_EVERY,
            self_end: Some(SelfEnd {
                command: "sudo -n shutdown -h now".into(),
                action: sindri_spec::OnFinish::Stop,
            }),
            interruption_check: Some("/usr/local/bin/sindri-interruption-check".into()),
            interruption_every: INTERRUPTION_EVERY,
        }
    }

    #[test]
    fn settings_are_quoted_and_the_command_is_an_argv() {
        let s = config().render();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("RUN_DIR='/tmp/r 1'\n"), "{s}");
        assert!(s.contains("MAX_DURATION=7200\n"));
        assert!(s.contains("set -- python train.py 'it'\\''s'\n"), "{s}");
        assert!(s.contains("END_COMMAND='sudo -n shutdown -h now'\n"), "{s}");
        assert!(s.contains("END_ACTION=stop\n"), "{s}");
    }

    #[test]
    fn the_rendered_script_parses_in_every_shell_we_target() {
        let script = config().render();
        for shell in ["sh", "dash", "busybox"] {
            let mut cmd = std::process::Command::new(shell);
            if shell == "busybox" {
                cmd.arg("sh");
            }
            let out = match cmd.args(["-n", "-c", &script]).output() {
                Ok(o) => o,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && shell != "sh" => {
                    panic!("{shell} is not installed: apt-get install -y dash busybox-static")
                }
                Err(e) => panic!("running {shell}: {e}"),
            };
            assert!(
                out.status.success(),
                "{shell} rejects the supervisor: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn checkpoint_stores_are_s3_or_absolute_paths() {
        for ok in ["s3://bucket/prefix", "s3://b", "file:///ckpt", "/data/ckpt"] {
            assert!(check_store(ok).is_ok(), "{ok}");
        }
        for bad in ["s3://", "gs://b/p", "relative/dir", "file://relative"] {
            let err = check_store(bad).expect_err(bad);
            assert_eq!(err.kind(), sindri_core::ErrorKind::Invalid);
        }
    }
}
