#!/usr/bin/env python3
"""docs/configuration.md as the Markdown of apheresisd.toml(5), for go-md2man.

docs/configuration.md stays the one text of the configuration's reference; this adds what a
manual page has and the document does not (title line, NAME, SYNOPSIS, FILES, SEE ALSO), points
the document's links to the other documents at their installed copies in /usr/share/doc/apheresisd,
and turns its tables into lists of tagged paragraphs (.TP: the key, then its type, default and
meaning), which fit an 80-column terminal where a five-column table cannot. go-md2man turns "#"
and "##" headings into .SH, "###" into .SS.

Usage: configuration-manpage.py --version V --date YYYY-MM-DD docs/configuration.md > out.md
"""

import argparse
import re
import sys

DOC_DIR = "/usr/share/doc/apheresisd"


def cells(row: str) -> list[str]:
    """A Markdown table row's cells; an escaped pipe (\\|) stays in its cell."""
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def tables_as_lists(text: str) -> str:
    """Each table (header, |---| line, rows) as a definition list: first cell the term, the
    middle cells as "Header: value." and the last cell (the meaning) after them."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                and re.fullmatch(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*", lines[i + 1])):
            header = cells(lines[i])
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                row = cells(lines[i])
                row += [""] * (len(header) - len(row))
                facts = [f"{h[:1].upper()}{h[1:]}: {v}." for h, v in zip(header[1:-1], row[1:-1])
                         if v and v not in ("—", "-")]
                out += [row[0] or " ", ": " + " ".join(facts + [row[-1]]).strip(), ""]
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def convert(text: str, version: str, date: str) -> str:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise SystemExit("configuration-manpage.py: the document must start with its '# ' title")
    body = "\n".join(lines[1:]).strip("\n")
    # Links between the documents: [text](other.md) and `docs/other.md` name installed files.
    body = re.sub(r"\]\((?!https?:|/|#)([A-Za-z0-9_.-]+\.md)(#[^)]*)?\)", rf"]({DOC_DIR}/\1)", body)
    body = re.sub(r"(?<![\w/.])docs/([A-Za-z0-9_.-]+\.md)", rf"{DOC_DIR}/\1", body)
    # The repository's paths of the shipped files are installed elsewhere.
    body = body.replace("`systemd/udev/99-apheresisd.rules`", "`/lib/udev/rules.d/99-apheresisd.rules`")
    body = tables_as_lists(body)
    # The first section heading: everything before it is the description.
    first = re.search(r"^## ", body, flags=re.M)
    intro, sections = (body[: first.start()], body[first.start():]) if first else (body, "")
    header = f'% APHERESISD.TOML 5 "{date}" "apheresisd {version}" "File Formats"'
    return "\n".join([
        header,
        "",
        "# NAME",
        "",
        "apheresisd.toml - configuration file of apheresisd",
        "",
        "# SYNOPSIS",
        "",
        "**/etc/apheresisd/apheresisd.toml**",
        "",
        "# DESCRIPTION",
        "",
        intro.strip("\n"),
        "",
        sections.strip("\n"),
        "",
        "# FILES",
        "",
        "*/etc/apheresisd/apheresisd.toml*",
        ": The configuration the packaged service reads (a conffile: kept on upgrades and removal).",
        "",
        "*/etc/apheresisd/audit.key*",
        ": The audit trail's key, delivered to the service as the systemd credential `audit-key`.",
        "",
        "*/var/lib/apheresisd*",
        ": The state directory: the store and the audit anchor file.",
        "",
        "# SEE ALSO",
        "",
        "**apheresisd**(8), **apheresisctl**(1), **optia-sim**(1), **systemd.exec**(5), "
        f"{DOC_DIR}/configuration.md, {DOC_DIR}/service.md",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("document")
    args = parser.parse_args()
    with open(args.document, encoding="utf-8") as f:
        sys.stdout.write(convert(f.read(), args.version, args.date))


if __name__ == "__main__":
    main()
