#!/usr/bin/env bash
# Run a command with an X display when one is needed and Xvfb is available
# (older VTK wheels render offscreen only through X).
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  exec xvfb-run -a -s "-screen 0 1024x768x24" "$@"
fi
exec "$@"
