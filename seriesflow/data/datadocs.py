"""Great Expectations Data Docs that open without the internet (pure, no Prefect).

GX 1.24 writes Data Docs whose pages load Bootstrap, jQuery, bootstrap-table, the
datepicker and Font Awesome from public CDNs, so on a machine without internet they
open unstyled. ``make_offline`` copies the same files (the exact versions the CDN URLs
name, vendored in ``seriesflow/data/datadocs-vendor/``, licenses and sources in its NOTICE.md)
into the site's ``static/vendor/`` and points every page at them by relative path, so
a site opens the same over http (``make serve``'s reports server) and from disk.

GX rewrites the pages on every ``build_data_docs``: call ``make_offline`` after each
build (``GxSession.build_docs`` does). It is idempotent.

Left out on purpose (about 1.8 MB more per run): Vega (charts, which none of our
expectations render) and the dark-mode stylesheet (only ``prefers-color-scheme:
dark`` readers see a difference: the light theme). Their tags are removed, so no page
asks the network for anything.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

VENDOR = Path(__file__).with_name("datadocs-vendor")
VENDOR_PREFIX = "vendor"  # inside the site's static/ folder

# CDN URL as GX 1.24.1's templates write it -> the same file, vendored (package/path).
ASSETS: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap-4.3.1/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap-4.3.1/dist/js/bootstrap.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js-1.12.9/dist/umd/popper.min.js"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table-1.19.1/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fortawesome-fontawesome-free-6.6.0/css/all.min.css"
    ),
}
# Tags of the assets left out (see the module docstring): removed from every page.
DROPPED = re.compile(
    r'<script[^>]*src="https://cdn\.jsdelivr\.net/npm/vega(?:-lite|-embed)?@\d+"[^>]*>\s*</script>'
    r'|<link[^>]*href="https://cdn\.jsdelivr\.net/npm/@forevolve/bootstrap-dark@[^"]*"[^>]*>'
)
# The GX logo (navbar image on S3, dark-mode CSS background): GX ships it in static/images.
LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/"
    r"(?:logo-long|full_logo_dark)\.png(?:\?d=[0-9TZ.]+)?"
)
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


def vendor_files() -> list[str]:
    """Every vendored file, as a path relative to ``VENDOR`` (licenses included)."""
    return sorted(p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file())


def offline_page(html: str, static: str) -> str:
    """One page with CDN URLs replaced by ``<static>/vendor/...`` and dropped tags removed.

    ``static`` is the page's relative path to the site's ``static`` folder
    (``static`` for the index, ``../../static`` two folders down).
    """
    text = DROPPED.sub("", html)
    # Longest URL first, so that no URL's replacement eats the prefix of a longer one.
    for url in sorted(ASSETS, key=len, reverse=True):
        local = f"{static}/{VENDOR_PREFIX}/{ASSETS[url]}"
        text = re.sub(re.escape(url) + r"(?=[\"'])", local, text)
    text = LOGO.sub(f"{static}/images/logo-long.png", text)
    text = FAVICON.sub(f"{static}/images/favicon.ico", text)
    return SRI.sub("", text)


def make_offline(site: Path) -> list[Path]:
    """Vendor the assets into ``site/static/vendor`` and rewrite every page; the pages changed."""
    static = site / "static"
    shutil.copytree(VENDOR, static / VENDOR_PREFIX, dirs_exist_ok=True)
    changed = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        relative = Path(os.path.relpath(static, page.parent)).as_posix()
        new = offline_page(text, relative)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


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
