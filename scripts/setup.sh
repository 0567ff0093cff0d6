#!/usr/bin/env bash
# Installs what `npm test` and `npm run demo` need on a fresh machine: npm dependencies and the
# Debian packages for the real database tools. Never starts the system MariaDB service.
# REWIND_POLICY_RC names the policy-rc.d file (tests point it elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "rewind setup: $1" >&2
  exit 1
}

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "rewind setup: installing npm dependencies" >&2
  # Exactly the committed lock, which lists every platform's optional packages (biome, esbuild,
  # rollup), so it installs on linux-x64, linux-arm64 and macOS alike. Warnings stay quiet: the
  # system node may be older than the node 22 the devDependency brings (EBADENGINE for packages
  # that only run under it); errors still show.
  npm ci --no-audit --no-fund --loglevel=error >&2 ||
    fail "npm ci failed (see above); check that the npm registry is reachable, then run this again"
fi

missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariabackup >/dev/null 2>&1 || missing+=(mariadb-backup)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
for extra in "$@"; do
  case "$extra" in
    awscli) command -v aws >/dev/null 2>&1 || missing+=(awscli) ;;
    sysbench) command -v sysbench >/dev/null 2>&1 || missing+=(sysbench) ;;
    *) fail "unknown extra \"$extra\"; this script knows awscli and sysbench" ;;
  esac
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

if [ "$(id -u)" != "0" ]; then
  fail "missing Debian packages ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
fi
echo "rewind setup: installing ${missing[*]} (the system service is not started)" >&2
# policy-rc.d exit 101 keeps the package scripts from starting the system mariadb service. One
# that is already there is left as it was.
policy=${REWIND_POLICY_RC:-/usr/sbin/policy-rc.d}
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
remove_policy() {
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
}
trap remove_policy EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 ||
  fail "apt-get update failed (see above); check that Debian's package mirrors are reachable, or install ${missing[*]} by hand"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
  fail "apt-get install ${missing[*]} failed (see above); install them by hand, then run this again"
for tool in mariadbd mariabackup zstd; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "$tool is still missing after apt-get install; is $(dirname "$(command -v apt-get)") the system's apt-get?"
done
