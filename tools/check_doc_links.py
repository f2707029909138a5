# SPDX-License-Identifier: BSD-3-Clause
"""Check the links inside a built HTML site: every page, image and anchor they name exists.

Run: python tools/check_doc_links.py docs/_build/html

Links to other sites (a scheme such as https:, or mailto:) are not followed:
the check runs offline. A link inside the site that names a missing file, or
an anchor (``page.html#name``) that its page does not define, is printed with
the page it is on, and the exit status is 1.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """Collect a page's ids (anchors) and the links it makes (href and src)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif name == "href" or (name == "src" and tag != "script"):
                self.links.append(value)


def check(root: Path) -> list[str]:
    """Return one line per broken link inside the site built in root."""
    pages = {}
    for path in sorted(root.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = page
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue  # another site
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            where = path.relative_to(root.resolve())
            if not target.is_file():
                broken.append(f"{where}: {link}: no such file")
            elif (
                parts.fragment
                and target in pages
                and unquote(parts.fragment) not in pages[target].ids
            ):
                broken.append(f"{where}: {link}: no anchor {parts.fragment!r} in that page")
    return broken


def main() -> int:
    """Check the site given on the command line; print what is broken."""
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    root = Path(sys.argv[1])
    if not (root / "index.html").is_file():
        print(f"{root} holds no built site (no index.html)", file=sys.stderr)
        return 2
    broken = check(root)
    print("\n".join(broken) if broken else f"links inside {root}: all found")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
