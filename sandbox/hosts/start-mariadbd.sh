#!/usr/bin/env bash
# Starts a sandbox mariadbd in the background and waits until it answers: the sandbox's stand-in
# for `systemctl start mariadb` in the agent's server.start command.
set -euo pipefail
defaults="$1"
socket=$(sed -n 's/^socket=//p' "$defaults" | head -1)
base=$(dirname "$defaults")
setsid mariadbd --defaults-file="$defaults" >>"$base/mariadbd.out" 2>&1 </dev/null &
for _ in $(seq 1 600); do
  if [ -S "$socket" ] && mariadb-admin --defaults-file="$defaults" -uroot ping >/dev/null 2>&1; then exit 0; fi
  sleep 0.1
done
echo "mariadbd did not start within 60 s; see $base/error.log" >&2
exit 1
