#!/usr/bin/env bash
# Rebuild .dvc/plots/offline.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined from their
# npm packages (the versions dvc-render asks its CDN for), so `dvc plots show` works without a network.
# Hospital networks are offline; the page DVC writes by default loads these scripts from jsDelivr.
# Run it when dvc-render moves to other versions; the result is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "${packages[@]}" >/dev/null && for tarball in *.tgz; do
    mkdir "${tarball%.tgz}" && tar xzf "$tarball" -C "${tarball%.tgz}"; done)
out=.dvc/plots/offline.html
mkdir -p "$(dirname "$out")"
{
    printf '<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n    <title>DVC Plot</title>\n'
    for package in "${packages[@]}"; do
        name=${package%@*}
        printf '    <!-- %s (BSD-3-Clause, University of Washington Interactive Data Lab), inlined -->\n' "$package"
        printf '    <script type="text/javascript">\n'
        cat "$work/${name}-${package#*@}/package/build/${name}.min.js"
        printf '\n    </script>\n'
    done
    printf '    <style>\n        table {\n            border-spacing: 15px;\n        }\n    </style>\n'
    printf '</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
