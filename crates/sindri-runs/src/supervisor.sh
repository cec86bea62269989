
# ---------------------------------------------------------------------------------
# sindri run supervisor. POSIX sh; needs date, sleep, kill, mv and setsid.
#
# Runs one job in its own session and process group and records, in $RUN_DIR:
#   supervisor_pid  this script's pid
#   pid             the job's pid, which is also its process group id
#   started_at      unix seconds when the job started
#   heartbeat       unix seconds, rewritten every $HEARTBEAT_EVERY s while the job runs
#   log             the job's stdout and stderr, interleaved
#   reason          why the job was stopped early: `timeout` (max_duration) or
#                   `cancelled` (written by `sindri runs cancel`)
#   ended_at        unix seconds when the job ended
#   exit_code       the job's exit status (128+N when killed by signal N), written
#                   last: its presence, and only that, means the run is over
#   supervisor.log  what this script did (checkpoint uploads, signals sent)
# The watchdog below enforces MAX_DURATION here, on the machine, so the limit holds
# with no sindri connected. Nothing above this block depends on sindri being alive.
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
  exit 0
fi
if ! command -v setsid >/dev/null 2>&1; then
  printf 'sindri: cannot start the job: setsid is not installed in the environment (util-linux or busybox provide it)\n' >> "$RUN_DIR/log"
  put ended_at "$(now)"
  put exit_code 127
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

# Watchdog: heartbeat, max_duration, periodic checkpoint uploads.
(
  last_beat=$started
  last_checkpoint=$started
  while alive "$job"; do
    sleep 1
    t=$(now)
    if [ $((t - last_beat)) -ge "$HEARTBEAT_EVERY" ]; then put heartbeat "$t"; last_beat=$t; fi
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
