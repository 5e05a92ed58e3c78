#!/usr/bin/env bash
# Idempotent set-up on Debian/Ubuntu: the lab's Debian packages (as root) and iotrate with its
# pinned Python dependencies in ./.venv. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/lab-packages.txt)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The lab runs these daemons itself, inside namespaces. Packages that start a system-wide
    # copy on the host (lighttpd on :80, mosquitto, snmpd...) are stopped and disabled again.
    if [ -d /run/systemd/system ]; then
      for svc in lighttpd mosquitto snmpd vsftpd minidlna postgresql; do
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      done
    fi
  fi
elif [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: not root: skipping Debian packages (the lab needs root and them)" >&2
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.iotrate-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing iotrate and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi
