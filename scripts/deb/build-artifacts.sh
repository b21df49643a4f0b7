#!/bin/bash
# What the Debian package carries that the Swift toolchain makes (docs/packaging.md):
#   OUT/bin/          apheresisd, apheresisctl, optia-sim
#   OUT/man/          apheresisd.8, apheresisctl.1, optia-sim.1 (swift-argument-parser's
#                     generate-manual) and apheresisd.toml.5 (docs/configuration.md)
#   OUT/completions/  bash/, zsh/, fish/ from each executable's --generate-completion-script
#
# Usage: scripts/deb/build-artifacts.sh CONFIG OUT [SCRATCH]
#   CONFIG   release: `swift build -c release --static-swift-stdlib` (the package to install);
#            debug: the debug build (the Swift runtime stays dynamic: a smoke package only)
#   SCRATCH  SwiftPM's scratch path (default: SwiftPM's own, .build)
# Run from the repository's top directory. SOURCE_DATE_EPOCH dates the manual pages.
set -euo pipefail

config=${1:?usage: build-artifacts.sh release|debug OUT [SCRATCH]}
out=${2:?usage: build-artifacts.sh release|debug OUT [SCRATCH]}
scratch=${3:-}
swift=${SWIFT:-swift}
case $config in
release) static=--static-swift-stdlib ;;
debug) static= ;;
*) echo "build-artifacts.sh: CONFIG is release or debug, not '$config'" >&2; exit 2 ;;
esac
scratch_opt=${scratch:+--scratch-path $scratch}
products="apheresisd apheresisctl optia-sim"
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -d "@$epoch" +%Y-%m-%d)
version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/ApheresisVersion/Version.swift)

rm -rf "$out"
mkdir -p "$out/bin" "$out/man" "$out/completions/bash" "$out/completions/zsh" "$out/completions/fish"

# The executables.
echo "build-artifacts: executables ($config${static:+, $static})"
for product in $products; do
	# One product per `swift build` (naming two builds only the last).
	# shellcheck disable=SC2086
	$swift build $scratch_opt -c "$config" $static --product "$product"
done
bin=$($swift build $scratch_opt -c "$config" --show-bin-path)
for product in $products; do
	install -m 0755 "$bin/$product" "$out/bin/$product"
	# The package's version is read before the build: a Version.swift changed during it (or a
	# stale executable) would give a package whose executables disagree with it.
	built=$("$out/bin/$product" --version)
	if [ "$built" != "$version" ]; then
		echo "build-artifacts: $product --version says $built, Sources/ApheresisVersion/Version.swift $version: build again" >&2
		exit 1
	fi
done

# The manual pages: swift-argument-parser's generate-manual, the tool its GenerateManual plugin
# runs (`swift package generate-manual`), run here on the very executables packaged above. The
# plugin itself would build every product again without --static-swift-stdlib, and a static and
# a dynamic release build in one scratch path compile everything twice (docs/packaging.md).
echo "build-artifacts: manual pages (generate-manual)"
# shellcheck disable=SC2086
$swift build $scratch_opt -c "$config" $static --product generate-manual
mkdir -p "$out/manual"
for page in apheresisctl:1 optia-sim:1 apheresisd:8; do
	product=${page%:*} section=${page#*:}
	"$bin/generate-manual" "$out/bin/$product" --section "$section" --date "$date" \
		--authors "apheresisd maintainers" --output-directory "$out/manual"
	# A blank line in an abstract or discussion reaches the mdoc source as an empty input line,
	# which groff warns about ("mdoc warning: Empty input line"): it becomes the paragraph macro.
	sed 's/^$/.Pp/' "$out/manual/$product.$section" >"$out/man/$product.$section"
done
rm -r "$out/manual"

# Completions, from the executables just built.
for product in $products; do
	# A bash completion is sourced, never run: without the generator's "#!/bin/bash" line.
	"$out/bin/$product" --generate-completion-script bash | sed '1{/^#!/d}' >"$out/completions/bash/$product"
	"$out/bin/$product" --generate-completion-script zsh >"$out/completions/zsh/_$product"
	"$out/bin/$product" --generate-completion-script fish >"$out/completions/fish/$product.fish"
done

# apheresisd.toml(5) from docs/configuration.md.
python3 scripts/deb/configuration-manpage.py --version "$version" --date "$date" \
	docs/configuration.md >"$out/apheresisd.toml.5.md"
go-md2man -in "$out/apheresisd.toml.5.md" -out "$out/man/apheresisd.toml.5"
rm "$out/apheresisd.toml.5.md"

echo "build-artifacts: $out ready (version $version, $config)"
