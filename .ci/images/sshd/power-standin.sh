#!/bin/sh
# Stand-in for shutdown, poweroff, halt and reboot in the test "machine": appends the
# call to /var/log/sindri-power.log then, like the real command, returns at once and
# takes the machine down a moment later: SIGTERM to tini, the container's init, which
# passes it on to sshd and ends the container when sshd has gone. A reboot is only
# recorded. Tests read the record with `docker cp`, which works on a stopped container.
set -u
name=${0##*/}
printf '%s\n' "$name${*:+ $*}" >> /var/log/sindri-power.log
case "$name $*" in
    reboot*|*" -r"*) exit 0 ;;
esac
( sleep 1; kill -TERM 1 ) </dev/null >/dev/null 2>&1 &
exit 0
