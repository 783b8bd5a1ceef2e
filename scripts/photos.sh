#!/usr/bin/env bash
# Fetches real photographs (6-20 MP JPEGs from Debian's wallpaper packages) into .cache/photos.
# Idempotent: does nothing when they are already there and the tests' photo checks out.
# Prints the folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest=".cache/photos"
# Pinned: the tests assert sizes and variant counts of these exact photos (bookworm's package).
package="lomiri-wallpapers-16.04"
version="20.04.0-2"
deb=".cache/debs/${package}_${version}_all.deb"
deb_sha256="a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"
# The photo tests/local/conftest.py loads; checked after extraction as well as in the .deb.
photo="friends_by_Aitzol_Berasategi.jpg"
photo_sha256="cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d"

photo_ok() { echo "$photo_sha256  $dest/$photo" | sha256sum --check --status 2>/dev/null; }

if photo_ok; then
    echo "$dest"
    exit 0
fi
mkdir -p "$dest" .cache/debs
if ! echo "$deb_sha256  $deb" | sha256sum --check --status 2>/dev/null; then
    rm -f "$deb"
    (
        cd .cache/debs
        if ! apt-get download "$package=$version" >/dev/null 2>&1; then
            apt-get update -qq >/dev/null
            apt-get download "$package=$version" >/dev/null || {
                echo "photos.sh: apt cannot download $package=$version; apt-cache policy says:" >&2
                apt-cache policy "$package" >&2
                exit 1
            }
        fi
    )
    if ! echo "$deb_sha256  $deb" | sha256sum --check --status; then
        echo "photos.sh: $deb does not have the expected sha256 $deb_sha256" >&2
        exit 1
    fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
find "$tmp" -name '*.jpg' -exec cp {} "$dest/" \;
if ! photo_ok; then
    echo "photos.sh: $dest/$photo is missing or not the expected photo (sha256 $photo_sha256)" >&2
    exit 1
fi
echo "$dest"
