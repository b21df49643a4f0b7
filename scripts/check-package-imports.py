#!/usr/bin/env python3
"""Package.swift's dependencies must equal the imports (issue 12).

For every target of Package.swift, compares the modules its Swift sources import
(`import X`, `@testable import X`, `import struct X.Y`, inside `#if` too) with the
dependencies the target declares (target names and `.product(name:)` names), and reports

  (a) a module imported but not declared: it builds only because another dependency
      happens to bring it along, and breaks when that one changes;
  (b) a dependency declared but never imported: it lengthens builds and hides the real arrows.

Exit status 1 when there is either, 0 when they agree. Python 3, standard library only.
Usage: scripts/check-package-imports.py [package directory, default: the repository]
"""

import os
import re
import sys

# Modules of the toolchain and the OS: imported freely, never declared.
SYSTEM_MODULES = {
    "Foundation", "FoundationEssentials", "FoundationInternationalization", "FoundationNetworking", "FoundationXML",
    "Glibc", "Musl", "Darwin", "os", "Dispatch", "Synchronization", "Testing", "XCTest",
    "Swift", "_Concurrency", "_StringProcessing", "RegexBuilder", "Observation",
}

# Products whose modules are not named like the product. A product missing here provides
# the one module of its own name (true of every product this package uses today).
PRODUCT_MODULES = {
    "GRDB": {"GRDB"},
    "Crypto": {"Crypto"},
    "HTTPTypes": {"HTTPTypes"},
    "ArgumentParser": {"ArgumentParser"},
    "TOMLKit": {"TOMLKit"},
    "Prometheus": {"Prometheus"},
    "Hummingbird": {"Hummingbird"},
    "NIOCore": {"NIOCore"},
    "NIOPosix": {"NIOPosix"},
    "ServiceLifecycle": {"ServiceLifecycle"},
    "Logging": {"Logging"},
    "PropertyBased": {"PropertyBased"},
}

TARGET_KINDS = ("target", "executableTarget", "testTarget", "systemLibrary", "macro", "plugin")

IMPORT = re.compile(
    r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*"  # attributes: @testable, @preconcurrency, @_spi(X), ...
    r"(?:(?:public|package|internal|fileprivate|private)\s+)?"
    r"import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?"
    r"([A-Za-z_][A-Za-z0-9_]*)",
    re.MULTILINE,
)


def strip_comments(text, keep_strings=True):
    """Swift text without // and /* */ comments, line numbers kept. String literals (raw,
    multi-line, with interpolations) are kept, or blanked when `keep_strings` is false so that
    a line of a multi-line string is never taken for an import."""
    out = []
    n = len(text)

    def code(i, until_paren):
        """Copies code from `i`; returns where it stopped (past the `)` closing an interpolation)."""
        depth = 0
        while i < n:
            c = text[i]
            if text.startswith("//", i):
                end = text.find("\n", i)
                i = n if end < 0 else end
            elif text.startswith("/*", i):
                i = block_comment(i)
            elif c == '"' or (c == "#" and re.match(r'#+"', text[i:i + 64])):
                i = string(i)
            else:
                if until_paren:
                    if c == "(":
                        depth += 1
                    elif c == ")":
                        if depth == 0:
                            out.append(c)
                            return i + 1
                        depth -= 1
                out.append(c)
                i += 1
        return i

    def block_comment(i):
        depth = 0  # Swift block comments nest
        while i < n:
            if text.startswith("/*", i):
                depth += 1
                i += 2
            elif text.startswith("*/", i):
                depth -= 1
                i += 2
                if depth == 0:
                    return i
            else:
                if text[i] == "\n":
                    out.append("\n")
                i += 1
        return i

    def string(i):
        hashes = len(text[i:]) - len(text[i:].lstrip("#"))
        triple = text.startswith('"""', i + hashes)
        opening = "#" * hashes + ('"""' if triple else '"')
        closing = ('"""' if triple else '"') + "#" * hashes
        escape = "\\" + "#" * hashes
        out.append(opening)
        i += len(opening)
        while i < n:
            if text.startswith(closing, i):
                out.append(closing)
                return i + len(closing)
            if text.startswith(escape + "(", i):
                out.append(escape + "(")
                i = code(i + len(escape) + 1, until_paren=True)
                continue
            if text.startswith(escape, i) and i + len(escape) < n:
                piece = text[i:i + len(escape) + 1]
                i += len(piece)
            else:
                piece = text[i]
                i += 1
            out.append(piece if keep_strings else re.sub(r"[^\n]", " ", piece))
        return i

    code(0, until_paren=False)
    return "".join(out)


def matching(text, start, open_char, close_char):
    """Index just past the bracket that closes the one at `start` (strings skipped)."""
    depth = 0
    i = start
    in_string = False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == open_char:
            depth += 1
        elif c == close_char:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced %s in Package.swift" % open_char)


def top_level_argument(arguments, label):
    """The text after `label:` at the call's own level (not inside nested calls), or None."""
    depth = 0
    i = 0
    in_string = False
    pattern = re.compile(r"\b%s\s*:" % re.escape(label))
    while i < len(arguments):
        c = arguments[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0:
            m = pattern.match(arguments, i)
            if m and (i == 0 or not (arguments[i - 1].isalnum() or arguments[i - 1] == "_")):
                return arguments[m.end():].lstrip()
        i += 1
    return None


def parse_targets(package_text):
    """[(kind, name, path or None, [(dependency name, is product)])] in Package.swift's order."""
    text = strip_comments(package_text)
    targets = []
    for m in re.finditer(r"\.(%s)\s*\(" % "|".join(TARGET_KINDS), text):
        kind = m.group(1)
        open_at = m.end() - 1
        arguments = text[open_at + 1:matching(text, open_at, "(", ")") - 1]
        name_text = top_level_argument(arguments, "name")
        if name_text is None:
            continue
        name = re.match(r'"([^"]*)"', name_text).group(1)
        path_text = top_level_argument(arguments, "path")
        path = re.match(r'"([^"]*)"', path_text).group(1) if path_text else None
        dependencies = []
        deps_text = top_level_argument(arguments, "dependencies")
        if deps_text is not None and deps_text.startswith("["):
            body = deps_text[1:matching(deps_text, 0, "[", "]") - 1]
            # .product(name: "X", ...) first, then .target(name:)/.byName(name:) and bare "X".
            for product in re.finditer(r'\.product\s*\(\s*name\s*:\s*"([^"]+)"[^)]*\)', body):
                dependencies.append((product.group(1), True))
            body = re.sub(r'\.product\s*\([^)]*\)', "", body)
            for dep in re.finditer(r'"([^"]+)"', body):
                dependencies.append((dep.group(1), False))
        targets.append((kind, name, path, dependencies))
    return targets


def source_directory(root, kind, name, path):
    if path:
        return os.path.join(root, path)
    if kind == "testTarget":
        return os.path.join(root, "Tests", name)
    if kind == "plugin":
        return os.path.join(root, "Plugins", name)
    return os.path.join(root, "Sources", name)


def imports_of(directory):
    """{module: [(relative file, line)]} for every .swift file under `directory`."""
    found = {}
    for folder, subfolders, files in os.walk(directory):
        subfolders.sort()
        for file in sorted(files):
            if not file.endswith(".swift"):
                continue
            full = os.path.join(folder, file)
            with open(full, encoding="utf-8") as handle:
                text = strip_comments(handle.read(), keep_strings=False)
            for m in IMPORT.finditer(text):
                line = text.count("\n", 0, m.start(1)) + 1
                found.setdefault(m.group(1), []).append((full, line))
    return found


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    with open(os.path.join(root, "Package.swift"), encoding="utf-8") as handle:
        targets = parse_targets(handle.read())
    target_names = {name for _, name, _, _ in targets}
    problems = 0
    for kind, name, path, dependencies in targets:
        directory = source_directory(root, kind, name, path)
        imported = imports_of(directory) if os.path.isdir(directory) else {}
        declared = {}  # module -> the dependency that provides it
        for dependency, is_product in dependencies:
            modules = PRODUCT_MODULES.get(dependency, {dependency}) if is_product else {dependency}
            for module in modules:
                declared[module] = dependency
        for module in sorted(imported):
            if module in SYSTEM_MODULES or module == name or module in declared:
                continue
            for file, line in imported[module]:
                problems += 1
                kind_of = "target" if module in target_names else "module"
                print("%s: imports %s %s, not among its dependencies (%s:%d)"
                      % (name, kind_of, module, os.path.relpath(file, root), line))
        used = set(imported)
        for dependency, is_product in dependencies:
            modules = PRODUCT_MODULES.get(dependency, {dependency}) if is_product else {dependency}
            if not modules & used:
                problems += 1
                what = ".product(name: \"%s\")" % dependency if is_product else "\"%s\"" % dependency
                print("%s: declares %s, which no file under %s imports"
                      % (name, what, os.path.relpath(directory, root)))
    if problems:
        print("%d problem(s): Package.swift's dependencies differ from the imports" % problems)
        return 1
    print("Package.swift's dependencies equal the imports (%d targets)" % len(targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
