//! The user-data script an instance runs once at first boot (cloud-init runs it as
//! root). It installs nothing: it writes `deployment.env`, creates the directories of
//! `deployment.volumes` and `deployment.home`, prepares the run supervisor's state
//! directory, and installs `sindri-interruption-check` (see below). `sindri plan`
//! shows it as the artifact `user-data.sh`.
//!
//! Secrets are never in user-data: any process on the machine can read user-data
//! through the metadata service. sindri delivers them over SSH into a tmpfs instead.
//!
//! # Spot interruption, for the run supervisor
//! `/usr/local/bin/sindri-interruption-check` asks IMDSv2 (a token `PUT` to
//! `http://169.254.169.254/latest/api/token`, then `GET
//! /latest/meta-data/spot/instance-action`) whether EC2 has scheduled this instance's
//! interruption. It prints the notice (`{"action":"terminate","time":"..."}`, about
//! two minutes ahead) and exits 0 when one is scheduled, exits 1 when none is (404),
//! and 2 when the metadata service cannot be reached. The run supervisor polls it
//! every 5 s (what AWS suggests) on spot instances, whose deployment records it as
//! `run_interruption_check`, so the supervisor stays provider-neutral.

use sindri_core::ResolvedSpec;

use crate::ssh::quote;

/// Where `deployment.env` is written on the instance; sourced by every sindri exec.
pub(crate) const ENV_FILE: &str = "/etc/sindri/env";
/// The interruption check installed for the run supervisor.
pub(crate) const INTERRUPTION_CHECK: &str = "/usr/local/bin/sindri-interruption-check";

/// The interruption check's script (installed at [`INTERRUPTION_CHECK`]).
/// `SINDRI_IMDS_ENDPOINT` moves the metadata service, for tests only.
pub(crate) const CHECK_SCRIPT: &str = r#"#!/bin/sh
# Installed by sindri. Exit 0 and print the notice when EC2 has scheduled this
# instance's interruption; exit 1 when not; exit 2 when IMDS cannot be reached.
IMDS=${SINDRI_IMDS_ENDPOINT:-http://169.254.169.254}/latest
if command -v curl >/dev/null 2>&1; then
  token=$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/api/token") || exit 2
  out=$(curl -s -m 2 -w '\n%{http_code}' -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/spot/instance-action") || exit 2
  code=$(printf '%s\n' "$out" | tail -n 1)
  body=$(printf '%s\n' "$out" | sed '$d')
else
  token=$(wget -q -T 2 -O - --method=PUT --header='X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/api/token") || exit 2
  if body=$(wget -q -T 2 -O - --header="X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/spot/instance-action"); then code=200; else code=404; fi
fi
if [ "$code" = 200 ]; then printf '%s\n' "$body"; exit 0; fi
[ "$code" = 404 ] && exit 1
exit 2
"#;

/// A heredoc delimiter that is no line of `content`.
fn delimiter(base: &str, content: &str) -> String {
    let mut d = base.to_string();
    let mut n = 0;
    while content.lines().any(|l| l == d) {
        n += 1;
        d = format!("{base}_{n}");
    }
    d
}

/// The user-data script for `spec`, with `user` as the login user.
pub(crate) fn render(spec: &ResolvedSpec, user: &str) -> String {
    let d = &spec.spec.deployment;
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Written by sindri for environment `{}` (project {}). cloud-init runs it once, as root.\n",
        spec.name(),
        spec.project
    ));
    s.push_str("# It installs nothing. Secrets are not here: sindri sends them over SSH into /run/sindri.\n");
    s.push_str("set -eu\n\n");

    let mut env = String::new();
    for (k, v) in &d.env {
        env.push_str(&format!("export {k}={}\n", quote(v)));
    }
    let delim = delimiter("SINDRI_ENV", &env);
    s.push_str("# deployment.env, sourced by every command sindri runs and by login shells.\n");
    s.push_str("mkdir -p /etc/sindri\n");
    s.push_str(&format!("cat > {ENV_FILE} <<'{delim}'\n{env}{delim}\n"));
    s.push_str(&format!("chmod 0644 {ENV_FILE}\n"));
    s.push_str(&format!(
        "ln -sf {ENV_FILE} /etc/profile.d/sindri-env.sh\n\n"
    ));

    let mut dirs: Vec<&str> = d.volumes.iter().map(|v| v.path.as_str()).collect();
    if d.home != "/root" {
        dirs.push(d.home.as_str());
    }
    if !dirs.is_empty() {
        s.push_str("# deployment.volumes and deployment.home: directories on the EBS root volume, kept across stop/start.\n");
        for dir in dirs {
            s.push_str(&format!(
                "mkdir -p {q} && chown {u}: {q}\n",
                q = quote(dir),
                u = quote(user)
            ));
        }
        s.push('\n');
    }

    s.push_str("# The run supervisor's state directory.\n");
    s.push_str(&format!(
        "mkdir -p /var/lib/sindri && chown {}: /var/lib/sindri\n\n",
        quote(user)
    ));

    let cdelim = delimiter("SINDRI_CHECK", CHECK_SCRIPT);
    s.push_str("# Spot interruption notices from IMDSv2, for the run supervisor.\n");
    s.push_str(&format!(
        "cat > {INTERRUPTION_CHECK} <<'{cdelim}'\n{CHECK_SCRIPT}{cdelim}\n"
    ));
    s.push_str(&format!("chmod 0755 {INTERRUPTION_CHECK}\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> ResolvedSpec {
        let spec: sindri_spec::Spec = serde_json::from_value(v).unwrap();
        ResolvedSpec::new(spec, std::path::Path::new("/p/sindri.yaml"))
    }

    #[test]
    fn env_volumes_and_the_check_are_written_and_parse_as_shell() {
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {
                "provider": "aws",
                "env": {"GREETING": "it's here"},
                "volumes": [{"name": "data", "path": "/data"}]
            }
        }));
        let script = render(&s, "ubuntu");
        assert!(
            script.contains("export GREETING='it'\\''s here'"),
            "{script}"
        );
        assert!(script.contains("mkdir -p /data && chown ubuntu: /data"));
        assert!(script.contains(INTERRUPTION_CHECK));
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sh -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_value_equal_to_the_delimiter_cannot_end_the_heredoc() {
        assert_eq!(delimiter("SINDRI_ENV", "a\nSINDRI_ENV\n"), "SINDRI_ENV_1");
    }
}
