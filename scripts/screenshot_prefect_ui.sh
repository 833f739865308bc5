#!/usr/bin/env bash
# Screenshot the Prefect UI showing a retrain flow run and its task runs, with headless Chromium.
#
# Usage: scripts/screenshot_prefect_ui.sh [OUT.png] [PROJECT]
#   OUT.png  where to write the screenshot (default: prefect-ui.png)
#   PROJECT  a radflow/DVC project to retrain (default: a tiny generated 3-stage DVC project, so the
#            screenshot takes a minute instead of a training run)
#
# It starts a throwaway Prefect server on a free 127.0.0.1 port (its data in a temporary
# PREFECT_HOME), runs `radflow retrain` twice against it (the second run shows every stage skipped),
# looks up both flow runs through the REST API and screenshots their pages. The server and the
# temporary files are removed on exit. Needs chromium (`apt-get install -y chromium`) and curl.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-prefect-ui.png}")"
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
SERVER_PID=""

cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill -- "-$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }
source "$REPO/.venv/bin/activate"

if [[ -n "${2:-}" ]]; then
  PROJECT="$(realpath "$2")"
else
  PROJECT="$WORK/project"
  (cd "$REPO" && python -c 'import sys; from pathlib import Path; from tests.test_retrain import make_project; make_project(Path(sys.argv[1]))' "$PROJECT")
fi

echo "starting Prefect server on 127.0.0.1:${PORT} ..."
# setsid: the server gets its own process group, so cleanup stops its workers too.
PREFECT_HOME="$WORK/prefect-home" PREFECT_SERVER_ANALYTICS_ENABLED=false \
  setsid prefect server start --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  curl -sf "$PREFECT_API_URL/health" >/dev/null && break
  sleep 1
done
curl -sf "$PREFECT_API_URL/health" >/dev/null || { echo "server did not start; log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }

export PREFECT_HOME="$WORK/prefect-client"
echo "retrain (runs the stages) ..."
(cd "$PROJECT" && radflow retrain >"$WORK/run1.log" 2>&1)
echo "retrain again (every stage skipped) ..."
(cd "$PROJECT" && radflow retrain >"$WORK/run2.log" 2>&1)

# The first run (stages ran) goes to OUT, the second (every stage Skipped) to OUT with a -skipped suffix.
RUNS="$(curl -sf -X POST "$PREFECT_API_URL/flow_runs/filter" -H 'Content-Type: application/json' \
  -d '{"sort": "START_TIME_ASC", "limit": 2}' | python3 -c 'import json, sys; print(*[r["id"] for r in json.load(sys.stdin)])')"
read -r FIRST SECOND <<<"$RUNS"
for pair in "$FIRST:$OUT" "$SECOND:${OUT%.png}-skipped.png"; do
  URL="http://127.0.0.1:${PORT}/runs/flow-run/${pair%%:*}"
  echo "screenshot of $URL -> ${pair#*:}"
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d -p "$WORK")" --virtual-time-budget=15000 \
    --window-size=1400,1000 --screenshot="${pair#*:}" "$URL" 2>"$WORK/chromium.log" || { tail -20 "$WORK/chromium.log" >&2; exit 1; }
done
echo "done: $OUT ${OUT%.png}-skipped.png"
