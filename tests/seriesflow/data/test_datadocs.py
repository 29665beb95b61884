"""Data Docs open without the internet: every asset a page loads is in the site itself."""

from __future__ import annotations

import hashlib

import pytest

from seriesflow.config.pipeline import ColumnsConfig, PipelineConfig, ValidationConfig
from seriesflow.data.datadocs import (
    ASSETS,
    VENDOR,
    asset_name,
    external_loads,
    make_offline,
    missing_loads,
    offline_page,
    vendor_files,
)
from seriesflow.data.expectations import GxSession, check_file, check_merged
from tests.factories import series_frame


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Real GX Data Docs: a good file, a failing file and a merged-history check."""
    docs = tmp_path_factory.mktemp("site") / "data_docs"
    session = GxSession(docs)
    check_file(session, series_frame(n=30), "good.csv", ColumnsConfig(), ValidationConfig())
    bad = series_frame(n=30)
    bad.loc[3, "value"] = float("nan")
    check_file(session, bad, "bad.csv", ColumnsConfig(), ValidationConfig())
    check_merged(session, series_frame(n=300), "good.csv", PipelineConfig(), touched={"a"})
    assert session.build_docs() == docs / "index.html"
    assert session.offline.unresolved == {}, session.offline.unresolved
    return docs


def test_built_docs_load_nothing_remote_and_every_local_asset_exists(site):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert "index.html" in pages and len(pages) >= 4  # index, suites, one page per run
    remote = external_loads(site)
    assert remote == {}, f"Data Docs pages still load remote URLs after the build: {remote}"
    assert missing_loads(site) == {}
    index = (site / "index.html").read_text()
    assert 'href="static/vendor/bootstrap-4.3.1/dist/css/bootstrap.min.css"' in index
    assert "integrity=" not in index and "vega" not in index and "bootstrap-dark" not in index
    deep = next(site.glob("validations/**/*.html"))
    depth = len(deep.relative_to(site).parts) - 1
    assert f'src="{"../" * depth}static/vendor/jquery-3.7.1/dist/jquery.min.js"' in (
        deep.read_text()
    )


def test_make_offline_is_idempotent(site):
    before = {p: p.read_bytes() for p in site.rglob("*.html")}
    again = make_offline(site)
    assert again.changed == [] and again.unresolved == {}  # a second pass changes no page
    assert {p: p.read_bytes() for p in site.rglob("*.html")} == before


def test_a_fresh_gx_page_is_rewritten_to_the_vendored_files():
    page = (
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/'
        'bootstrap.min.css" integrity="sha384-abc" crossorigin="anonymous"/>\n'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>\n'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
        'logo-long.png?d=20240101T000000.000000Z">'
    )
    assert offline_page(page, "../static") == (
        '<link rel="stylesheet" href="../static/vendor/bootstrap-4.3.1/dist/css/'
        'bootstrap.min.css"/>\n\n<img src="../static/images/logo-long.png">',
        [],
    )


def test_assets_are_matched_by_name_whatever_the_host_path_or_version():
    assert asset_name("https://code.jquery.com/jquery-3.7.1.min.js") == "jquery.min.js"
    assert asset_name("https://code.jquery.com/jquery-3.9.0.min.js") == "jquery.min.js"
    assert asset_name("https://cdn.jsdelivr.net/npm/vega-lite@6") == "vega-lite"
    assert asset_name("//unpkg.com/x/bootstrap-table.min.css?v=2#a") == "bootstrap-table.min.css"
    # what a later GX might write: another CDN, another patch version, single quotes
    page = (
        "<script src='https://cdn.jsdelivr.net/npm/jquery@3.7.2/dist/jquery-3.7.2.min.js'>"
        '</script><link href="https://cdn.example.org/bootstrap-table/1.19.2/'
        'bootstrap-table.min.css" rel="stylesheet"><a href="https://greatexpectations.io">'
        "GX</a><style>.b{background:url('https://great-expectations-web-assets.s3.amazonaws.com"
        "/full_logo_dark.png')}</style>"
    )
    text, unresolved = offline_page(page, "static")
    assert unresolved == []
    assert "src='static/vendor/jquery-3.7.1/dist/jquery.min.js'" in text
    assert 'href="static/vendor/bootstrap-table-1.19.1/dist/bootstrap-table.min.css"' in text
    assert "url('static/images/logo-long.png')" in text
    assert '<a href="https://greatexpectations.io">' in text  # a link, not a load: kept


def test_a_remote_asset_with_an_unknown_name_is_reported_not_hidden(tmp_path):
    unknown = "https://cdn.example.org/chart-kit/2.0/chart-kit.min.js"
    (tmp_path / "index.html").write_text(f'<script src="{unknown}"></script>')
    done = make_offline(tmp_path)
    assert done.unresolved == {"index.html": [unknown]}
    assert external_loads(tmp_path) == {"index.html": [unknown]}


def test_every_asset_is_vendored_with_its_license():
    files = set(vendor_files())
    assert set(ASSETS.values()) <= files
    packages = {name.split("/", 1)[0] for name in ASSETS.values()}
    for package in packages - {"popper.js-1.12.9"}:  # popper: MIT in the file's own header
        assert any(f.startswith(f"{package}/LICENSE") for f in files), package
    assert "MIT License" in (VENDOR / "popper.js-1.12.9/dist/umd/popper.min.js").read_text()[:300]
    notice = (VENDOR / "NOTICE.md").read_text()
    assert all(p.rsplit("-", 1)[1] in notice for p in packages)
    # jquery 3.7.1's published min file (its header names the version): not a stand-in
    jquery = (VENDOR / "jquery-3.7.1/dist/jquery.min.js").read_bytes()
    assert jquery.startswith(b"/*! jQuery v3.7.1")
    assert hashlib.sha256(jquery).hexdigest()[:8] == "fc9a93dd"
    total = sum((VENDOR / f).stat().st_size for f in files)
    assert total < 1_200_000, f"vendored Data Docs assets grew to {total} bytes"
