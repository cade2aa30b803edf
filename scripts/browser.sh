# Sourced by scripts/setup.sh and scripts/node_setup.sh: have_browser says whether a Chromium
# raycollect can launch is on PATH ($RAYCOLLECT_CHROMIUM first), as raycollect's own search does.
have_browser() {
  [ -n "${RAYCOLLECT_CHROMIUM:-}" ] && command -v "$RAYCOLLECT_CHROMIUM" >/dev/null && return 0
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$b" >/dev/null && return 0
  done
  return 1
}
