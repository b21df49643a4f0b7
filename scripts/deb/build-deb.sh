#!/bin/bash
# The Debian package (docs/packaging.md): `make deb` (release) or `make deb DEB_CONFIG=debug`.
#
#   1. scripts/deb/build-artifacts.sh: executables, manual pages, completions, in the repository
#      (release: SwiftPM scratch path .build-deb/release-build; debug: the shared .build)
#   2. a copy of what the package needs (debian/, systemd/, README.md, docs/*.md, the simulator's
#      scenarios) in .build-deb/CONFIG/src/apheresisd-VERSION, with debian/changelog made here
#   3. dpkg-buildpackage -b there (debhelper), then lintian on the .deb
#
# Nothing is written outside .build-deb/ (and SwiftPM's scratch path). Prints the .deb's path last.
set -euo pipefail

config=${1:-release}
top=$(pwd)
out=$top/.build-deb/$config
version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/ApheresisVersion/Version.swift)
[ -n "$version" ] || { echo "build-deb.sh: no version in Sources/ApheresisVersion/Version.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

case $config in
release) scratch=$top/.build-deb/release-build ;;
debug) scratch= ;; # the debug build everyone shares (`swift build`)
*) echo "build-deb.sh: DEB_CONFIG is release or debug, not '$config'" >&2; exit 2 ;;
esac

step() { printf '\n== deb (%s): %s\n' "$config" "$*"; }

step "executables, manual pages, completions"
scripts/deb/build-artifacts.sh "$config" "$out/artifacts" $scratch

step "source tree $out/src/apheresisd-$version"
tree=$out/src/apheresisd-$version
rm -rf "$out/src"
mkdir -p "$tree/docs" "$tree/simulator" "$tree/scripts"
cp -a debian systemd monitoring README.md "$tree/"
cp -a docs/*.md "$tree/docs/"
cp -a simulator/scenarios "$tree/simulator/"
cp -a scripts/deb "$tree/scripts/"
cp -a "$out/artifacts" "$tree/debian/artifacts"
maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
suffix=
[ "$config" = debug ] && suffix=" This is the debug smoke build: its executables need the Swift toolchain (docs/packaging.md)."
cat >"$tree/debian/changelog" <<EOF
apheresisd ($version) bookworm; urgency=medium

  * apheresisd $version, built from the repository at commit $commit
    ($config build). The project's changes are in its git history and
    docs/; the version is bumped per docs/daemon.md, "Version".$suffix

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
# Fold the smoke note to debian/changelog's width.
python3 - "$tree/debian/changelog" <<'EOF'
import sys, textwrap
p = sys.argv[1]
lines = open(p).read().split("\n")
item = [i for i, l in enumerate(lines) if l.startswith("  * ")][0]
end = item
while lines[end + 1].startswith("    "):
    end += 1
text = " ".join(l.strip() for l in lines[item:end + 1])[2:]
wrapped = textwrap.wrap(text, 76, initial_indent="  * ", subsequent_indent="    ")
open(p, "w").write("\n".join(lines[:item] + wrapped + lines[end + 1:]))
EOF

step "dpkg-buildpackage -b"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.changes "$out"/*.buildinfo
# The smoke package needs no -dbgsym package (its executables keep their debug information).
debopts=${DEB_BUILD_OPTIONS:-}
if [ "$config" = debug ]; then debopts="$debopts noautodbgsym"; fi
(cd "$tree" && DEB_CONFIG=$config DEB_BUILD_OPTIONS="$debopts" dpkg-buildpackage -b -us -uc)
mv "$out/src"/*.deb "$out/src"/*.ddeb "$out/src"/*.changes "$out/src"/*.buildinfo "$out/" 2>/dev/null || true
deb=$out/apheresisd_${version}_${arch}.deb
[ -f "$deb" ] || { echo "build-deb.sh: $deb was not built" >&2; exit 1; }

step "lintian $(basename "$deb")"
# --info shows the tags of every level, --show-overrides the overridden ones (there are none
# today; docs/packaging.md, "lintian"). Release: any tag not overridden fails the build.
lintian_log=$out/lintian.txt
lintian --info --show-overrides --fail-on none "$deb" | tee "$lintian_log"
unexpected=$(grep -E '^[EWI]: ' "$lintian_log" || true)
if [ "$config" = debug ]; then
	# The smoke package is honest about what it is: its executables load the Swift runtime
	# from the toolchain through a RUNPATH (custom-library-search-path), and dpkg-shlibdeps
	# finds no package for those libraries. These tags stay in the output above; only others fail.
	expected='custom-library-search-path'
	unexpected=$(printf '%s\n' "$unexpected" | grep -Ev ": ($expected)( |$)" || true)
	echo "deb (debug): lintian tags expected of the smoke package, not of a release: $expected"
fi
if [ -n "$unexpected" ]; then
	echo "deb ($config): lintian reports tags that are neither fixed nor overridden:" >&2
	printf '%s\n' "$unexpected" >&2
	exit 1
fi
if [ "$config" = debug ]; then
	echo "deb (debug): lintian reports no tag beyond the expected ones above"
elif [ -f debian/apheresisd.lintian-overrides ]; then
	echo "deb ($config): lintian clean apart from the overrides in debian/apheresisd.lintian-overrides (shown above)"
else
	echo "deb ($config): lintian clean, no overrides"
fi

step "contents"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
echo "deb ($config): $deb"
