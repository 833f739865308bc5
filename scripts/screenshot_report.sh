#!/usr/bin/env bash
# Render the evaluation report (a single self-contained HTML file) to a PNG with headless Chromium,
# to check by eye that the ROC curve, confusion matrix and Grad-CAM overlays are all there.
#
# Usage: scripts/screenshot_report.sh [REPORT_HTML] [OUTPUT_PNG]
#   REPORT_HTML  default data/evaluation/report/report.html (written by `radflow stage evaluate`)
#   OUTPUT_PNG   default data/evaluation/report_screenshot.png
# Installs chromium with apt-get when it is missing (needs root). Works offline: the report embeds
# every image as base64 and every network feature of Chromium is switched off below.
set -euo pipefail

report="${1:-data/evaluation/report/report.html}"
output="${2:-data/evaluation/report_screenshot.png}"

if [[ ! -f "$report" ]]; then
    echo "no report at $report: run the pipeline first (make demo, or radflow stage evaluate)" >&2
    exit 1
fi

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$browser" ]]; then
    apt-get install -y chromium >/dev/null
    browser="$(command -v chromium)"
fi

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$output")"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars \
    --screenshot="$(realpath -m "$output")" --window-size=1280,3000 \
    "file://$(realpath "$report")" 2>/dev/null
echo "screenshot written to $output"
