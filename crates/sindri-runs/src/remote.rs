//! Reading a run's state from the files its supervisor writes, and the scripts that
//! read, follow, cancel and collect.
//!
//! Completion is decided by the `exit_code` file alone. A run whose supervisor is gone
//! without one was interrupted (the machine restarted, its processes were killed): a
//! dead process is never read as "finished", and logs are never searched for an
//! answer.

use std::collections::BTreeMap;

use serde::Serialize;
use sindri_state::RunState;

/// Prints `key=value` lines describing run directory `$1`. Liveness is checked before
/// `exit_code` is read: a supervisor that writes its exit code and exits in between is
/// then seen as finished, never as lost.
pub(crate) const STATUS: &str = r#"
d=$1
if [ ! -d "$d" ]; then echo missing=1; exit 0; fi
sp=$(cat "$d/supervisor_pid" 2>/dev/null)
if [ -n "$sp" ] && alive "$sp"; then echo supervisor_alive=1; fi
pg=$(cat "$d/pid" 2>/dev/null)
if [ -n "$pg" ] && group_alive "$pg"; then echo job_alive=1; fi
for f in exit_code ended_at started_at heartbeat reason checkpoint_error checkpoint_uploaded_at pid interruption self_end self_end_skipped; do
  if [ -f "$d/$f" ]; then printf '%s=' "$f"; head -n 1 "$d/$f"; fi
done
printf 'now=%s\n' "$(date +%s)"
if [ -f "$d/log" ]; then printf 'log_bytes=%s\n' "$(wc -c < "$d/log")"; fi
exit 0
"#;

/// Streams run directory `$1`'s log from byte offset `$2` until the run ends: exits 0
/// once `exit_code` exists (after the last bytes), 3 when the supervisor and the job
/// are both gone without one, 4 when the run directory is missing. While it streams it
/// holds the machine's own `on_finish` for `$3` seconds past now (`end_hold`): the
/// sindri that follows applies it after copying the artifacts back.
pub(crate) const FOLLOW: &str = r#"
d=$1; off=$2; hold=${3:-0}
[ -d "$d" ] || exit 4
while :; do
  if [ "$hold" -gt 0 ]; then
    printf '%s\n' "$(( $(date +%s) + hold ))" > "$d/.end_hold.tmp" && mv -f "$d/.end_hold.tmp" "$d/end_hold"
  fi
  live=0
  sp=$(cat "$d/supervisor_pid" 2>/dev/null)
  if [ -n "$sp" ] && alive "$sp"; then live=1; fi
  if [ "$live" = 0 ]; then
    pg=$(cat "$d/pid" 2>/dev/null)
    if [ -n "$pg" ] && group_alive "$pg"; then live=1; fi
  fi
  finished=0
  [ -f "$d/exit_code" ] && finished=1
  size=$( (wc -c < "$d/log") 2>/dev/null || echo 0)
  size=$((size + 0))
  if [ "$size" -gt "$off" ]; then
    tail -c +$((off + 1)) "$d/log" | head -c $((size - off)) || exit 1
    off=$size
  fi
  [ "$finished" = 1 ] && exit 0
  [ "$live" = 0 ] && exit 3
  sleep 1
done
"#;

/// Prints run directory `$1`'s log, or its last `$2` lines when `$2` is not empty.
pub(crate) const LOG: &str = r#"
[ -f "$1/log" ] || { echo "no log in $1" >&2; exit 4; }
if [ -n "$2" ]; then tail -n "$2" "$1/log"; else cat "$1/log"; fi
"#;

/// Cancels the run in `$1`: records `reason=cancelled`, SIGTERM to the job's process
/// group, SIGKILL after `$2` seconds, then waits briefly for the supervisor to record
/// the exit code. Prints one word: `finished` (it had already ended), `missing`,
/// `not-started`, `terminated` or `killed`.
pub(crate) const CANCEL: &str = r#"
d=$1; grace=$2
[ -d "$d" ] || { echo missing; exit 0; }
[ -f "$d/exit_code" ] && { echo finished; exit 0; }
n=0
while [ ! -f "$d/pid" ] && [ "$n" -lt 10 ]; do
  sp=$(cat "$d/supervisor_pid" 2>/dev/null)
  { [ -n "$sp" ] && alive "$sp"; } || break
  sleep 1; n=$((n + 1))
done
pg=$(cat "$d/pid" 2>/dev/null)
[ -n "$pg" ] || { echo not-started; exit 0; }
# The machine may end itself once the job is gone: not before this sindri has read
# how it ended.
printf '%s\n' "$(( $(date +%s) + grace + 60 ))" > "$d/end_hold"
if [ ! -f "$d/reason" ]; then printf 'cancelled\n' > "$d/.reason.tmp" && mv -f "$d/.reason.tmp" "$d/reason"; fi
kill -TERM -"$pg" 2>/dev/null
n=0
while group_alive "$pg" && [ "$n" -lt "$grace" ]; do sleep 1; n=$((n + 1)); done
outcome=terminated
if group_alive "$pg"; then kill -KILL -"$pg" 2>/dev/null; outcome=killed; fi
n=0
while [ ! -f "$d/exit_code" ] && [ "$n" -lt 30 ]; do
  sp=$(cat "$d/supervisor_pid" 2>/dev/null)
  { [ -n "$sp" ] && alive "$sp"; } || break
  sleep 1; n=$((n + 1))
done
echo "$outcome"
"#;

/// Expands artifact patterns `$2...` in workdir `$1`. Prints `+PATH\0` for each match
/// and `!PATTERN\0` for a pattern that matches nothing. With `IFS` empty, an unquoted
/// pattern undergoes pathname expansion and nothing else: no splitting, no command
/// substitution.
pub(crate) const ARTIFACTS: &str = r#"
cd "$1" || exit 4
shift
IFS=
for pat in "$@"; do
  n=0
  for p in $pat; do
    if [ -e "$p" ] || [ -L "$p" ]; then printf '+%s\0' "$p"; n=1; fi
  done
  [ "$n" = 1 ] || printf '!%s\0' "$pat"
done
"#;

/// Prints the environment's `$HOME`, and takes the machine for a new run `$2` under
/// run root `$1` (default `$HOME/.sindri/runs`): every finished run there is marked
/// `end_handled`, so its supervisor, perhaps about to stop the machine, leaves it to
/// the new run.
pub(crate) const PREPARE: &str = r#"
printf '%s' "$HOME"
root=${1:-$HOME/.sindri/runs}
[ -d "$root" ] || exit 0
for d in "$root"/*/; do
  d=${d%/}
  [ "${d##*/}" = "$2" ] && continue
  if [ -f "$d/exit_code" ] && [ ! -f "$d/end_handled" ]; then
    printf 'superseded by run %s\n' "$2" > "$d/end_handled" 2>/dev/null
  fi
done
exit 0
"#;

/// Holds the machine's own `on_finish` of run directory `$1` for `$2` seconds past now.
pub(crate) const HOLD: &str = r#"
[ -d "$1" ] || exit 4
printf '%s\n' "$(( $(date +%s) + $2 ))" > "$1/.end_hold.tmp" && mv -f "$1/.end_hold.tmp" "$1/end_hold"
"#;

/// Records in run directory `$1` that sindri applies `on_finish` itself (`$2` says
/// which), so the supervisor does not.
pub(crate) const HANDLED: &str = r#"
[ -d "$1" ] || exit 4
printf '%s\n' "$2" > "$1/end_handled"
"#;

/// Copies the checkpoints of run `$2` from store `$1` into directory `$3`; prints how
/// many files it restored (0 when the store has none).
pub(crate) const RESTORE: &str = r#"
store=${1%/}; id=$2; dir=$3
mkdir -p "$dir" || exit 1
case "$store" in
  s3://*)
    command -v aws >/dev/null 2>&1 || { echo "the aws CLI is not installed in the environment; cannot read $store" >&2; exit 127; }
    out=$(aws s3 sync --no-progress "$store/$id" "$dir") || exit 1
    printf '%s\n' "$out" | grep -c '^download:' || true
    ;;
  *)
    src="${store#file://}/$id"
    if [ -d "$src" ]; then
      cp -R "$src/." "$dir/" || exit 1
      find "$src" -type f | wc -l
    else
      echo 0
    fi
    ;;
esac
"#;

/// What the run directory says, read in one exec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoteStatus {
    /// The run directory does not exist.
    pub missing: bool,
    /// The supervisor process runs.
    pub supervisor_alive: bool,
    /// A process of the job's group runs.
    pub job_alive: bool,
    /// The recorded exit code: the run is over.
    pub exit_code: Option<i32>,
    /// Unix seconds when the job started.
    pub started_at: Option<i64>,
    /// Unix seconds when the job ended.
    pub ended_at: Option<i64>,
    /// Unix seconds of the last heartbeat.
    pub heartbeat: Option<i64>,
    /// The environment's clock when read.
    pub now: Option<i64>,
    /// Why the job was stopped early: `timeout` or `cancelled`.
    pub reason: Option<String>,
    /// Why the last checkpoint upload failed.
    pub checkpoint_error: Option<String>,
    /// Unix seconds of the last successful checkpoint upload.
    pub checkpoint_uploaded_at: Option<i64>,
    /// The job's process group id.
    pub pgid: Option<i64>,
    /// The platform's notice that it reclaims the machine (spot interruption).
    pub interruption: Option<String>,
    /// `stop` or `destroy` once the machine started to end itself after the run.
    pub self_end: Option<String>,
    /// Why the machine did not end itself after the run.
    pub self_end_skipped: Option<String>,
    /// Size of the log so far.
    pub log_bytes: u64,
}

impl RemoteStatus {
    /// Parses the output of [`STATUS`].
    pub fn parse(text: &str) -> RemoteStatus {
        let map: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let int = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok());
        let text = |k: &str| map.get(k).map(|v| v.to_string()).filter(|v| !v.is_empty());
        RemoteStatus {
            missing: map.contains_key("missing"),
            supervisor_alive: map.contains_key("supervisor_alive"),
            job_alive: map.contains_key("job_alive"),
            exit_code: int("exit_code").and_then(|c| i32::try_from(c).ok()),
            started_at: int("started_at"),
            ended_at: int("ended_at"),
            heartbeat: int("heartbeat"),
            now: int("now"),
            reason: text("reason"),
            checkpoint_error: text("checkpoint_error"),
            checkpoint_uploaded_at: int("checkpoint_uploaded_at"),
            pgid: int("pid"),
            interruption: text("interruption"),
            self_end: text("self_end"),
            self_end_skipped: text("self_end_skipped"),
            log_bytes: int("log_bytes")
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        }
    }

    /// The run's state, and why when that is not plain from the state.
    pub fn verdict(&self) -> (RunState, Option<String>) {
        if self.missing {
            return (
                RunState::Interrupted,
                Some("the run directory is gone from the environment (was it destroyed or recreated?)".into()),
            );
        }
        if let Some(code) = self.exit_code {
            return match self.reason.as_deref() {
                Some("cancelled") => (RunState::Cancelled, Some("cancelled".into())),
                Some("timeout") => (
                    RunState::Interrupted,
                    Some(
                        "timeout: run.max_duration was reached; the supervisor stopped the job"
                            .into(),
                    ),
                ),
                Some("interrupted") => (
                    RunState::Interrupted,
                    Some(format!(
                        "interrupted: the platform reclaims the machine ({}); the supervisor saved the checkpoints and stopped the job",
                        self.interruption
                            .as_deref()
                            .unwrap_or("interruption notice")
                    )),
                ),
                _ if code == 0 => (RunState::Succeeded, None),
                _ => (RunState::Failed, None),
            };
        }
        if self.supervisor_alive {
            return (RunState::Running, None);
        }
        if self.job_alive {
            return (
                RunState::Running,
                Some("the supervisor is gone but the job still runs, unsupervised: no exit code will be recorded; `sindri runs cancel` stops it".into()),
            );
        }
        (
            RunState::Interrupted,
            Some("the supervisor stopped without recording an exit code (the machine restarted, or its processes were killed)".into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_code_decides_completion_whatever_else_is_seen() {
        let s = RemoteStatus::parse("supervisor_alive=1\nexit_code=3\nended_at=20\nnow=21\n");
        assert_eq!(s.exit_code, Some(3));
        assert_eq!(s.verdict().0, RunState::Failed);
        let ok = RemoteStatus::parse("exit_code=0\n");
        assert_eq!(ok.verdict().0, RunState::Succeeded);
    }

    #[test]
    fn a_dead_supervisor_without_an_exit_code_is_an_interruption_not_an_ending() {
        let s = RemoteStatus::parse("started_at=10\nheartbeat=15\nnow=100\n");
        let (state, why) = s.verdict();
        assert_eq!(state, RunState::Interrupted);
        assert!(
            why.unwrap_or_default()
                .contains("without recording an exit code")
        );
    }

    #[test]
    fn reasons_map_to_cancelled_and_timeout() {
        let c = RemoteStatus::parse("exit_code=143\nreason=cancelled\n");
        assert_eq!(c.verdict().0, RunState::Cancelled);
        let t = RemoteStatus::parse("exit_code=143\nreason=timeout\n");
        let (state, why) = t.verdict();
        assert_eq!(state, RunState::Interrupted);
        assert!(why.unwrap_or_default().starts_with("timeout"));
        let i = RemoteStatus::parse(
            "exit_code=143\nreason=interrupted\ninterruption={\"action\":\"terminate\"}\n",
        );
        let (state, why) = i.verdict();
        assert_eq!(state, RunState::Interrupted);
        let why = why.unwrap_or_default();
        assert!(
            why.starts_with("interrupted") && why.contains("terminate"),
            "{why}"
        );
    }

    #[test]
    fn a_live_supervisor_means_running_and_a_missing_directory_means_interrupted() {
        assert_eq!(
            RemoteStatus::parse("supervisor_alive=1\njob_alive=1\n")
                .verdict()
                .0,
            RunState::Running
        );
        assert_eq!(
            RemoteStatus::parse("missing=1\n").verdict().0,
            RunState::Interrupted
        );
    }
}
