"""Great Expectations Data Docs that open without the internet (pure, no Prefect).

GX writes Data Docs whose pages load Bootstrap, jQuery, bootstrap-table, the datepicker and
Font Awesome from public CDNs, so on a machine without internet they open unstyled. GX has no
setting for where its assets come from (only template overrides under a file context's
``plugins/custom_data_docs``, which would pin its templates instead of its URLs).
``make_offline`` copies the vendored files (``seriesflow/data/datadocs-vendor/``, licenses and
sources in its NOTICE.md) into the site's ``static/vendor/`` and points every page at them by
relative path, so a site opens the same over http (``make serve``'s reports server) and from
disk.

Assets are matched **by name**, not by URL: whatever host, path or version a page loads a
file from, its name without the version (``jquery-3.7.1.min.js`` -> ``jquery.min.js``,
``vega@5`` -> ``vega``) picks the vendored file. A GX release that moves its CDN or bumps a
patch version keeps working; a page that loads a file with a name we do not know is left as it
is and reported (``OfflineSite.unresolved``; the validate stage logs it, and the Data Docs test
fails on it), never silently.

GX rewrites the pages on every ``build_data_docs``: call ``make_offline`` after each build
(``GxSession.build_docs`` does). It is idempotent.

Left out on purpose (about 1.8 MB more per run): Vega (charts, which none of our
expectations render) and the dark-mode stylesheet (only ``prefers-color-scheme: dark``
readers see a difference: the light theme). Their tags are removed, so no page asks the
network for anything.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

VENDOR = Path(__file__).with_name("datadocs-vendor")
VENDOR_PREFIX = "vendor"  # inside the site's static/ folder

# Asset name (a file name without its version) -> the vendored file (package/path).
ASSETS: dict[str, str] = {
    "bootstrap.min.css": "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "bootstrap.min.js": "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    "popper.min.js": "popper.js-1.12.9/dist/umd/popper.min.js",
    "jquery.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "bootstrap-table.min.css": "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    "bootstrap-table.min.js": "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js"
    ),
    "bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css"
    ),
    "bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "all.min.css": "fortawesome-fontawesome-free-6.6.0/css/all.min.css",  # Font Awesome
}
# Assets left out (see the module docstring): their tags are removed from every page.
DROPPED = frozenset({"vega", "vega-lite", "vega-embed", "bootstrap-prefers-dark.css"})
# The GX logo (navbar image on S3, dark-mode CSS background): GX ships it in static/images.
IMAGES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}
# GX writes the favicon one folder short on validation pages (``../../../static`` four
# folders down): point it at the site's static folder like the rest.
FAVICON = re.compile(r"""(?<=href=")(?:\./|(?:\.\./)*)static/images/favicon\.ico(?=")""")
# Subresource integrity and CORS attributes: with a relative file they only get in the way
# (Chromium treats such a script from file:// as a CORS request and blocks it).
SRI = re.compile(r'\s+(?:integrity="sha\d+-[^"]*"|crossorigin="anonymous")')
# What a page loads by itself: scripts, stylesheets, images, CSS url(...). Anchors (links a
# reader may click) are not loads and may point anywhere.
LOADS = re.compile(
    r"""<(?:script|img)\b[^>]*\bsrc=["']([^"']+)["']"""
    r"""|<link\b[^>]*\bhref=["']([^"']+)["']"""
    r"""|url\(\s*['"]?([^'")\s]+)"""
)
# A tag that loads something (with a script's closing tag), and a CSS url(...).
LOADING_TAG = re.compile(
    r"""<(script|img|link)\b[^>]*?\b(?:src|href)=(["'])([^"']+)\2[^>]*>(?:\s*</script>)?""",
    re.I,
)
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")\s]+)\1\s*\)""")
REMOTE = re.compile(r"(?:https?:)?//", re.I)
# A version inside a file name: ``-3.7.1`` in jquery-3.7.1.min.js, ``@5`` in vega@5.
VERSION = re.compile(r"(?:[-@]v?\d+(?:\.\d+)*)(?=\.|$)")


def asset_name(url: str) -> str:
    """The name a remote file is known by: its last path segment without the version."""
    name = urlsplit(url if "//" in url else f"//{url}").path.rstrip("/").rsplit("/", 1)[-1]
    return VERSION.sub("", name)


@dataclass
class OfflineSite:
    """What ``make_offline`` did: the pages it changed, and remote loads it could not map
    ({page: [URL]}: a file no vendored asset is named like)."""

    changed: list[Path] = field(default_factory=list)
    unresolved: dict[str, list[str]] = field(default_factory=dict)


def vendor_files() -> list[str]:
    """Every vendored file, as a path relative to ``VENDOR`` (licenses included)."""
    return sorted(p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file())


def offline_page(html: str, static: str) -> tuple[str, list[str]]:
    """One page with remote assets replaced by ``<static>/vendor/...`` (by name), dropped tags
    removed; and the remote loads it could not map.

    ``static`` is the page's relative path to the site's ``static`` folder
    (``static`` for the index, ``../../static`` two folders down).
    """
    unresolved: list[str] = []

    def local(url: str) -> str | None:
        name = asset_name(url)
        if name in ASSETS:
            return f"{static}/{VENDOR_PREFIX}/{ASSETS[name]}"
        if name in IMAGES:
            return f"{static}/images/{IMAGES[name]}"
        return None

    def tag(match: re.Match[str]) -> str:
        url = match[3]
        if not REMOTE.match(url):
            return match[0]
        if asset_name(url) in DROPPED:
            return ""
        found = local(url)
        if found is None:
            unresolved.append(url)
            return match[0]
        start, end = match.span(3)
        offset = match.start()
        return match[0][: start - offset] + found + match[0][end - offset :]

    def css(match: re.Match[str]) -> str:
        url = match[2]
        found = local(url) if REMOTE.match(url) else None
        if REMOTE.match(url) and found is None:
            unresolved.append(url)
        return f"url({match[1]}{found or url}{match[1]})"

    text = LOADING_TAG.sub(tag, html)
    text = CSS_URL.sub(css, text)
    text = FAVICON.sub(f"{static}/images/favicon.ico", text)
    return SRI.sub("", text), sorted(set(unresolved))


def make_offline(site: Path) -> OfflineSite:
    """Vendor the assets into ``site/static/vendor`` and rewrite every page."""
    static = site / "static"
    shutil.copytree(VENDOR, static / VENDOR_PREFIX, dirs_exist_ok=True)
    done = OfflineSite()
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        relative = Path(os.path.relpath(static, page.parent)).as_posix()
        new, unresolved = offline_page(text, relative)
        if unresolved:
            done.unresolved[page.relative_to(site).as_posix()] = unresolved
        if new != text:
            page.write_text(new, encoding="utf-8")
            done.changed.append(page)
    return done


def external_loads(site: Path) -> dict[str, list[str]]:
    """{page: absolute URLs it would load} -- empty when the site is self-contained."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        urls = [
            next(g for g in match.groups() if g)
            for match in LOADS.finditer(page.read_text(encoding="utf-8"))
        ]
        remote = sorted({u for u in urls if re.match(r"(?:https?:)?//", u)})
        if remote:
            found[page.relative_to(site).as_posix()] = remote
    return found


def missing_loads(site: Path) -> dict[str, list[str]]:
    """{page: relative files it loads that do not exist in the site}."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        missing = []
        for match in LOADS.finditer(page.read_text(encoding="utf-8")):
            url = next(g for g in match.groups() if g)
            if re.match(r"(?:[a-z]+:|//|#)", url):
                continue
            target = (page.parent / url.split("?")[0].split("#")[0]).resolve()
            if not target.is_file():
                missing.append(url)
        if missing:
            found[page.relative_to(site).as_posix()] = sorted(set(missing))
    return found
