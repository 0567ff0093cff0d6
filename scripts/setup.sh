#!/usr/bin/env bash
# Installs what `npm test` and `npm run demo` need on a fresh machine: npm dependencies and the
# Debian packages for the real database tools. Never starts the system MariaDB service.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "rewind setup: installing npm dependencies" >&2
  # `npm ci` rejects locks written with omit-lockfile-registry-resolved (optional platform
  # packages look missing); `npm install` honours the lock and leaves it unchanged.
  npm install --no-audit --no-fund >&2
fi

missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariabackup >/dev/null 2>&1 || missing+=(mariadb-backup)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
for extra in "$@"; do
  case "$extra" in
    awscli) command -v aws >/dev/null 2>&1 || missing+=(awscli) ;;
    sysbench) command -v sysbench >/dev/null 2>&1 || missing+=(sysbench) ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "rewind setup: missing Debian packages ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "rewind setup: installing ${missing[*]} (the system service is not started)" >&2
  # policy-rc.d exit 101 keeps the package scripts from starting the system mariadb service.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
fi
