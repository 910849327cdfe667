#!/usr/bin/env bash
# System packages the tests use: Mesa EGL (VTK >= 9.4 wheels) and Xvfb (older
# VTK wheels such as 9.2, which need an X display) for headless rendering, and
# Debian's dicom3tools (dciodvfy) for the DICOM conformance test of what
# defacing writes, and Debian's chromium and chromium-driver for the QA
# report's headless-browser test (both tests fail instead of skipping when CI=true).
# Installs only what is missing, only when run as root with apt-get.
set -uo pipefail
need=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri xvfb xauth dicom3tools chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing system packages: ${need[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
    || echo "warning: could not install ${need[*]}; rendering tests may skip; the dciodvfy and browser tests fail when CI=true" >&2
else
  echo "warning: missing system packages ${need[*]} (install them with apt-get as root); rendering tests may skip; the dciodvfy and browser tests fail when CI=true" >&2
fi
exit 0
