#!/usr/bin/env bash
# Fetches real photographs (6-20 MP JPEGs from Debian's wallpaper packages) into .cache/photos.
# Idempotent: does nothing when they are already there. Prints the folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest=".cache/photos"
if [ -n "$(ls "$dest"/*.jpg 2>/dev/null)" ]; then
    echo "$dest"
    exit 0
fi
mkdir -p "$dest" .cache/debs
(
    cd .cache/debs
    if ! apt-get download lomiri-wallpapers-16.04 >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get download lomiri-wallpapers-16.04 >/dev/null
    fi
)
tmp=$(mktemp -d)
dpkg-deb -x .cache/debs/lomiri-wallpapers-16.04_*.deb "$tmp"
find "$tmp" -name '*.jpg' -exec cp {} "$dest/" \;
rm -rf "$tmp"
echo "$dest"
