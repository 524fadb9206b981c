#!/usr/bin/env bash
# Refresh the vendored Niivue viewer (the reader app serves it; no CDN at run time).
# Usage: scripts/vendor_niivue.sh [VERSION]   (default: the version in static/vendor/NIIVUE_VERSION)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/nervemuscle/reader/static/vendor"
version="${1:-$(sed -n 's/^version: //p' "$dest/NIIVUE_VERSION" 2>/dev/null || echo 0.69.0)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund --ignore-scripts "@niivue/niivue@$version" >/dev/null)
pkg="$work/node_modules/@niivue/niivue"
cp "$pkg/dist/niivue.umd.js" "$dest/niivue.umd.js"
published_sha="$(sha256sum "$dest/niivue.umd.js" | cut -d' ' -f1)"
# Local patch (checked by tests/test_reader_support.py): option skipGradientTexture skips the blur + Sobel
# gradient texture that refreshLayers computes for layer 0 (3D rendering only; seconds per volume in software
# WebGL). The minified names are those of 0.69.0: another version needs the pattern found again.
python3 - "$dest/niivue.umd.js" <<'PATCH'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
old = "g===0&&(this.volumeTexture=i,this.gradientTexture=Ti({"
new = "g===0&&(this.volumeTexture=i,this.gradientTexture=this.opts.skipGradientTexture?this.gradientTexture:Ti({"
if text.count(old) != 1:
    sys.exit(f"vendor_niivue.sh: the skipGradientTexture patch does not apply to {path} (pattern found {text.count(old)} times)")
open(path, "w", encoding="utf-8").write(text.replace(old, new))
PATCH
if [ -f "$pkg/LICENSE" ]; then
  cp "$pkg/LICENSE" "$dest/NIIVUE_LICENSE"
else
  # The npm package declares "license": "BSD-2-Clause" but ships no LICENSE file; this is the text
  # of https://github.com/niivue/niivue/blob/main/LICENSE.
  cat > "$dest/NIIVUE_LICENSE" <<'LICENSE'
BSD 2-Clause License

Copyright (c) 2021, Niivue
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
LICENSE
fi
actual="$(node -p "require('$pkg/package.json').version")"
sha="$(sha256sum "$dest/niivue.umd.js" | cut -d' ' -f1)"
cat > "$dest/NIIVUE_VERSION" <<VERSION
package: @niivue/niivue
version: $actual
file: dist/niivue.umd.js
sha256 (as published): $published_sha
sha256 (with the local patch): $sha
license: BSD-2-Clause (NIIVUE_LICENSE)
refresh: scripts/vendor_niivue.sh [VERSION] (applies the local patch, or fails if it no longer applies)
local patch (one edit, checked by tests/test_reader_support.py): option \`skipGradientTexture\` skips the
  blur + Sobel gradient texture that refreshLayers computes for layer 0 (used only by 3D volume rendering;
  seconds per 256x256x120 volume in a software WebGL renderer). In refreshLayers replace
    g===0&&(this.volumeTexture=i,this.gradientTexture=Ti({
  with
    g===0&&(this.volumeTexture=i,this.gradientTexture=this.opts.skipGradientTexture?this.gradientTexture:Ti({
  The option is set after construction (nv.opts.skipGradientTexture = true): Niivue's constructor drops
  options it does not know.
VERSION
echo "vendored @niivue/niivue $actual -> $dest"
