
# ---------------------------------------------------------------------------------
# sindri run supervisor. POSIX sh; needs date, sleep, kill, mv, head and setsid.
#
# Runs one job in its own session and process group and records, in $RUN_DIR:
#   supervisor_pid  this script's pid
#   pid             the job's pid, which is also its process group id
#   started_at      unix seconds when the job started
#   heartbeat       unix seconds, rewritten every $HEARTBEAT_EVERY s while the job runs
#   log             the job's stdout and stderr, interleaved
#   reason          why the job was stopped early: `timeout` (max_duration),
#                   `interrupted` (a spot notice) or `cancelled` (by `sindri runs cancel`)
#   ended_at        unix seconds when the job ended
#   exit_code       the job's exit status (128+N when killed by signal N), written
#                   once all else about the job is: its presence, and only that,
#                   means the run is over
#   supervisor.log  what this script did (checkpoint uploads, signals sent)
#   interruption    the platform's notice that it reclaims the machine (spot), when
#                   INTERRUPTION_CHECK reported one; `reason` is then `interrupted`
#   self_end        `stop` or `destroy`: this script ran END_COMMAND after the job
#   self_end_skipped  why it did not (sindri applied on_finish itself, another run)
# and reads, when sindri writes them:
#   end_hold        unix seconds until which a sindri following the run holds the
#                   machine (it is copying artifacts back)
#   end_handled     sindri applied on_finish itself, or a newer run took the machine
# The watchdog below enforces MAX_DURATION here, on the machine, so the limit holds
# with no sindri connected; END_COMMAND, when set, then stops or destroys the machine
# (on_finish) unless a sindri that follows the run does it. Nothing here depends on
# sindri being alive.
# ---------------------------------------------------------------------------------
set -u
umask 022
cd "$RUN_DIR" || exit 1

now() { date +%s; }
note() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$RUN_DIR/supervisor.log"; }
# put NAME VALUE: replace a record file atomically, so a reader never sees half of it.
put() { printf '%s\n' "$2" > "$RUN_DIR/.$1.tmp" && mv -f "$RUN_DIR/.$1.tmp" "$RUN_DIR/$1"; }

# stop_group REASON: SIGTERM to the job's process group, SIGKILL after GRACE seconds.
stop_group() {
  if [ -n "$1" ] && [ ! -f "$RUN_DIR/reason" ]; then put reason "$1"; fi
  note "SIGTERM to process group $job${1:+ ($1)}"
  kill -TERM -"$job" 2>/dev/null
  waited=0
  while group_alive "$job" && [ "$waited" -lt "$GRACE" ]; do sleep 1; waited=$((waited + 1)); done
  if group_alive "$job"; then
    note "SIGKILL to process group $job after ${GRACE}s"
    kill -KILL -"$job" 2>/dev/null
  fi
}

# other_run: prints the id of another run on this machine whose supervisor still runs.
other_run() {
  for _d in "${RUN_DIR%/*}"/*/; do
    _d=${_d%/}
    [ "$_d" = "$RUN_DIR" ] && continue
    [ -f "$_d/exit_code" ] && continue
    _sp=$(head -n 1 "$_d/supervisor_pid" 2>/dev/null)
    if [ -n "$_sp" ] && alive "$_sp"; then printf '%s' "${_d##*/}"; return 0; fi
  done
  return 0
}

# end_machine: on_finish, applied by the machine to itself (END_COMMAND), so that a run
# nobody follows cannot leave it billing. A sindri that follows the run holds the end
# (end_hold) while it copies artifacts back, then applies on_finish itself
# (end_handled); a machine the platform is reclaiming, or that another run still
# uses, is left alone.
end_machine() {
  [ -n "$END_COMMAND" ] || return 0
  if [ "$(head -n 1 "$RUN_DIR/reason" 2>/dev/null)" = interrupted ]; then
    note "not ending the machine: the platform is reclaiming it"
    return 0
  fi
  while :; do
    # Gone: sindri destroyed the environment itself.
    [ -d "$RUN_DIR" ] || return 0
    if [ -f "$RUN_DIR/end_handled" ]; then
      put self_end_skipped "sindri applied on_finish itself ($(head -n 1 "$RUN_DIR/end_handled"))"
      note "on_finish left to sindri: $(head -n 1 "$RUN_DIR/end_handled")"
      return 0
    fi
    hold=$(head -n 1 "$RUN_DIR/end_hold" 2>/dev/null)
    case "$hold" in ''|*[!0-9]*) break ;; esac
    [ "$hold" -gt "$(now)" ] || break
    sleep 1
  done
  other=$(other_run)
  if [ -n "$other" ]; then
    put self_end_skipped "run $other still runs on this machine"
    note "not ending the machine: run $other still runs here"
    return 0
  fi
  put self_end "$END_ACTION"
  note "on_finish: $END_ACTION: running the end command"
  sh -c "$END_COMMAND" < /dev/null >> "$RUN_DIR/supervisor.log" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ]; then
    put self_end_skipped "the end command failed (exit code $rc); see supervisor.log"
    note "the end command failed with exit code $rc"
  fi
  return 0
}

# upload_checkpoints WHEN: copy CHECKPOINT_DIR to CHECKPOINT_STORE/RUN_ID.
upload_checkpoints() {
  [ -n "$CHECKPOINT_STORE" ] && [ -n "$CHECKPOINT_DIR" ] || return 0
  [ -d "$CHECKPOINT_DIR" ] || return 0
  mkdir "$RUN_DIR/.checkpoint.lock" 2>/dev/null || return 0
  dest="${CHECKPOINT_STORE%/}/$RUN_ID"
  ok=1
  case "$CHECKPOINT_STORE" in
    s3://*)
      if command -v aws >/dev/null 2>&1; then
        aws s3 sync --only-show-errors "$CHECKPOINT_DIR" "$dest" >> "$RUN_DIR/supervisor.log" 2>&1 || ok=0
      else
        put checkpoint_error "the aws CLI is not installed in the environment; cannot upload to $CHECKPOINT_STORE"
        ok=0
      fi
      ;;
    file://*|/*)
      dest="${dest#file://}"
      { mkdir -p "$dest" && cp -R "$CHECKPOINT_DIR/." "$dest/"; } >> "$RUN_DIR/supervisor.log" 2>&1 || ok=0
      ;;
    *)
      put checkpoint_error "unsupported checkpoint_store $CHECKPOINT_STORE (use s3://bucket/prefix, file:///path or /path)"
      ok=0
      ;;
  esac
  if [ "$ok" = 1 ]; then
    put checkpoint_uploaded_at "$(now)"
    rm -f "$RUN_DIR/checkpoint_error"
    note "checkpoints ($1) copied to $dest"
  else
    [ -f "$RUN_DIR/checkpoint_error" ] || put checkpoint_error "copying checkpoints to $dest failed; see supervisor.log"
    note "checkpoint upload ($1) to $dest failed"
  fi
  rmdir "$RUN_DIR/.checkpoint.lock" 2>/dev/null
  return 0
}

put supervisor_pid "$$"
started=$(now)
put started_at "$started"
put heartbeat "$started"
: >> "$RUN_DIR/log"

if ! cd "$WORKDIR" 2>/dev/null; then
  printf 'sindri: the workdir %s does not exist in the environment\n' "$WORKDIR" >> "$RUN_DIR/log"
  put ended_at "$(now)"
  put exit_code 126
  end_machine
  exit 0
fi
if ! command -v setsid >/dev/null 2>&1; then
  printf 'sindri: cannot start the job: setsid is not installed in the environment (util-linux or busybox provide it)\n' >> "$RUN_DIR/log"
  put ended_at "$(now)"
  put exit_code 127
  end_machine
  exit 0
fi

SINDRI_RUN_ID=$RUN_ID
SINDRI_RUN_DIR=$RUN_DIR
SINDRI_CHECKPOINT_DIR=$CHECKPOINT_DIR
# Python buffers stdout when it is not a terminal: logs would arrive in bursts.
: "${PYTHONUNBUFFERED:=1}"
export SINDRI_RUN_ID SINDRI_RUN_DIR SINDRI_CHECKPOINT_DIR PYTHONUNBUFFERED

# The job leads a new session, so its pid is its process group id and a signal to the
# group reaches everything it started, and nothing else.
setsid sh -c 'exec "$@"' sh "$@" < /dev/null >> "$RUN_DIR/log" 2>&1 &
job=$!
put pid "$job"
note "started job $job: $*"

# Watchdog: heartbeat, max_duration, periodic checkpoint uploads, interruption notices.
(
  last_beat=$started
  last_checkpoint=$started
  last_check=0
  while alive "$job"; do
    sleep 1
    t=$(now)
    if [ $((t - last_beat)) -ge "$HEARTBEAT_EVERY" ]; then put heartbeat "$t"; last_beat=$t; fi
    # The platform reclaims the machine soon (a spot notice gives about two minutes):
    # save the checkpoints while the job still runs, then stop it; sindri relaunches
    # the run elsewhere and restores them (run.max_restarts).
    if [ -n "$INTERRUPTION_CHECK" ] && [ $((t - last_check)) -ge "$INTERRUPTION_EVERY" ]; then
      last_check=$t
      if notice=$(sh -c "$INTERRUPTION_CHECK" < /dev/null 2>> "$RUN_DIR/supervisor.log"); then
        note "interruption notice: $notice"
        put interruption "${notice:-interruption notice}"
        [ -f "$RUN_DIR/reason" ] || put reason interrupted
        upload_checkpoints interruption
        stop_group interrupted
        break
      fi
    fi
    # Whole seconds: `-gt` so the limit never fires early, at most a second late.
    if [ "$MAX_DURATION" -gt 0 ] && [ $((t - started)) -gt "$MAX_DURATION" ]; then
      note "max_duration of ${MAX_DURATION}s reached"
      stop_group timeout
      break
    fi
    if [ -n "$CHECKPOINT_STORE" ] && [ $((t - last_checkpoint)) -ge "$CHECKPOINT_EVERY" ]; then
      upload_checkpoints periodic &
      last_checkpoint=$t
    fi
  done
) &
watchdog=$!

wait "$job"
code=$?
ended=$(now)
kill "$watchdog" 2>/dev/null
# What the job left behind in its group (daemons, stray children) goes with it.
if group_alive "$job"; then stop_group ""; fi
put heartbeat "$ended"
put ended_at "$ended"
# A periodic upload may still hold the lock; the final one waits for it.
n=0
while [ -d "$RUN_DIR/.checkpoint.lock" ] && [ "$n" -lt 600 ]; do sleep 1; n=$((n + 1)); done
upload_checkpoints final
note "job exited with code $code"
put exit_code "$code"
end_machine
