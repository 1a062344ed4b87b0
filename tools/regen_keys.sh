#!/bin/sh
# docs/keys.md from `sharpen keys --markdown` (tests/test_menu.py checks it is current)
set -e
cd "$(dirname "$0")/.."
{ sed -n '1,4p' docs/keys.md; .venv/bin/sharpen keys --markdown; } > docs/keys.md.new
mv docs/keys.md.new docs/keys.md
