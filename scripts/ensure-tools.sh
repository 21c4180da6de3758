#!/usr/bin/env bash
# Installs the system tools Streamdesk needs when they are missing, from Debian's packages.
#   scripts/ensure-tools.sh python java node chromium
# python: venv support; java: a Java 17+ JDK for DynamoDB Local (javac compiles the small launcher that binds
# it to 127.0.0.1); node: npm, to install DynamoDB Local;
# chromium: Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
set -euo pipefail

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$major" ] && [ "$major" -ge 17 ]
}

packages=()
for tool in "$@"; do
  case "$tool" in
    python)
      if ! "${PYTHON:-python3}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "Streamdesk needs Python 3.11 or newer; '${PYTHON:-python3}' is $("${PYTHON:-python3}" --version 2>&1)." >&2
        echo "Install one and run: make PYTHON=python3.11 up" >&2
        exit 1
      fi
      "${PYTHON:-python3}" -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv) ;;
    java) { java_ok && command -v javac >/dev/null 2>&1; } || packages+=(default-jdk-headless) ;;
    node) command -v npm >/dev/null 2>&1 || packages+=(nodejs npm) ;;
    chromium) [ -x /usr/bin/chromium ] || packages+=(chromium) ;;
    *) echo "ensure-tools: unknown tool '$tool'" >&2; exit 2 ;;
  esac
done
[ ${#packages[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing: ${packages[*]}. Install them with your system's package manager (this script knows apt)." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "Missing: ${packages[*]}; run as root or install them: apt-get install ${packages[*]}" >&2
    exit 1
  fi
fi
echo "Installing from Debian's packages: ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
if [[ " ${packages[*]} " == *" default-jdk-headless "* ]] && ! java_ok; then
  echo "Installed default-jdk-headless, but it is older than Java 17; install openjdk-17-jdk-headless or newer." >&2
  exit 1
fi
