"""The HTML pages (server/http/pages.py): every page assembled from its body and its head partial, and the ways a
page can fail to assemble, each loud and naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.http.pages import WEB_CLIENT, Page, PageError, read_pages

STAFF_PAGES = {"console": None, "qa": "qa.css", "supervisor": "supervisor.css", "admin": "admin.css"}
CUSTOMER_PAGES = {"customer": "customer.js", "link-error": None}
LINK_ERROR_FIELDS = {"title": "Link expired", "message": "This link has expired."}


@pytest.fixture(scope="module")
def pages() -> dict[str, Page]:
    return read_pages(WEB_CLIENT)


def rendered(page: Page) -> str:
    return page.render(**LINK_ERROR_FIELDS) if page.name == "link-error" else page.render()


def stylesheets(text: str) -> list[str]:
    return re.findall(r'<link rel="stylesheet" href="/static/css/([^"]+)">', text)


def scripts(text: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", text)


def test_every_page_file_is_served(pages: dict[str, Page]) -> None:
    assert set(pages) == set(STAFF_PAGES) | set(CUSTOMER_PAGES)
    assert {path.stem for path in WEB_CLIENT.glob("*.html")} == set(pages)


@pytest.mark.parametrize("name", sorted(STAFF_PAGES) + sorted(CUSTOMER_PAGES))
def test_a_page_is_one_document_with_one_head_and_its_whole_body(pages: dict[str, Page], name: str) -> None:
    text = rendered(pages[name])
    source = (WEB_CLIENT / f"{name}.html").read_text(encoding="utf-8")
    assert text.startswith('<!doctype html>\n<html lang="en"')
    assert text.count("<head>") == 1 and text.count("</head>") == 1 and text.count("<html") == 1
    assert text.index("</head>") < text.index("<body") and text.rstrip().endswith("</body>\n</html>")
    # Nothing of the assembly is left: no marker, no slot, no placeholder.
    assert "<!-- head:" not in text and "{{" not in text and "}}" not in text
    # The body is the page file's (before the link error page's fields are filled), every test id included.
    assert pages[name].text.endswith(source.split("\n", 1)[1])
    assert re.findall(r'data-testid="([^"]+)"', text) == re.findall(r'data-testid="([^"]+)"', source)
    # No inline scripts or styles (the CSP refuses them): every script is a module file, no style anywhere.
    assert all('type="module" src="/static/js/' in tag for tag in scripts(text))
    assert "<style" not in text and " style=" not in text and not re.search(r"\son\w+=", text)


@pytest.mark.parametrize("name", sorted(STAFF_PAGES))
def test_a_staff_page_has_its_title_key_stylesheet_and_script(pages: dict[str, Page], name: str) -> None:
    text = rendered(pages[name])
    assert f'<title data-i18n="{name}.page_title">Rapport</title>' in text
    own = STAFF_PAGES[name]
    assert stylesheets(text) == ["app.css"] + ([own] if own else [])
    assert scripts(text) == [f'<script type="module" src="/static/js/{name}.js">']
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "data-i18n-slot = a child" in text  # the note on the i18n attributes, once per staff page
    assert "robots" not in text and "theme-color" not in text


@pytest.mark.parametrize("name", sorted(CUSTOMER_PAGES))
def test_a_customer_page_has_the_phone_head(pages: dict[str, Page], name: str) -> None:
    text = rendered(pages[name])
    assert 'content="width=device-width, initial-scale=1, viewport-fit=cover"' in text
    assert '<meta name="theme-color" content="#1f4e79">' in text and '<html lang="en" dir="ltr">' in text
    assert stylesheets(text) == ["app.css", "customer.css"]
    script = CUSTOMER_PAGES[name]
    assert scripts(text) == ([f'<script type="module" src="/static/js/{script}">'] if script else [])


def test_the_customer_page_is_indexable_and_the_link_error_page_is_not(pages: dict[str, Page]) -> None:
    assert "<title>Video support</title>" in rendered(pages["customer"]) and "robots" not in pages["customer"].text
    error = rendered(pages["link-error"])
    assert '<meta name="robots" content="noindex">' in error and "<title>Link expired</title>" in error


def test_the_link_error_page_escapes_what_it_is_given(pages: dict[str, Page]) -> None:
    page = pages["link-error"]
    assert page.fields == {"title", "message"} and all(not p.fields for p in pages.values() if p is not page)
    text = page.render(title='<b>"x"</b>', message="<script>alert(1)</script> {{title}}")
    assert "<b>" not in text and "<script>alert" not in text
    assert "<title>&lt;b&gt;&quot;x&quot;&lt;/b&gt;</title>" in text
    assert '<p data-testid="link-error-message">&lt;script&gt;alert(1)&lt;/script&gt; {{title}}</p>' in text
    with pytest.raises(PageError, match="message"):
        page.render(title="only a title")
    with pytest.raises(PageError, match="fields"):
        pages["customer"].render(title="not a field here")


# pages that cannot be assembled

STAFF_HEAD = (WEB_CLIENT / "partials" / "staff-head.html").read_text(encoding="utf-8")


def tree(tmp_path: Path, page: str) -> Path:
    """A web_client folder with the real staff head and one page, ``x.html``."""
    (tmp_path / "partials").mkdir()
    (tmp_path / "partials" / "staff-head.html").write_text(STAFF_HEAD, encoding="utf-8")
    (tmp_path / "x.html").write_text(page + "\n<body></body>\n</html>\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ("<!-- head: nope title=x.page_title script=x.js -->", r"x\.html: no head named 'nope' \(known: staff\)"),
        ("<!-- head: staff script=x.js -->", r"x\.html: the head needs title="),
        ("<!-- head: staff title=x.page_title script=x.js colour=red -->", r"x\.html: the head has no slot for colour"),
        ("<!-- head: staff title=x.page_title script=x.js", r"x\.html: line 1 is not a head marker"),
        ("<!doctype html>", r"x\.html: 0 head markers"),
        ("<!-- head: staff title=a script=a.js -->\n<!-- head: staff title=b script=b.js -->", r"x\.html: 2 head"),
    ],
)
def test_a_page_that_cannot_be_assembled_fails_naming_its_file(tmp_path: Path, marker: str, problem: str) -> None:
    with pytest.raises(PageError, match=problem):
        read_pages(tree(tmp_path, marker))


def test_an_optional_line_is_left_out_only_when_the_marker_does_without(tmp_path: Path) -> None:
    root = tree(tmp_path, "<!-- head: staff title=x.page_title stylesheet=x.css script=x.js -->")
    assert stylesheets(read_pages(root)["x"].text) == ["app.css", "x.css"]
    (root / "x.html").write_text("<!-- head: staff title=x.page_title script=x.js -->\n<body></body>\n</html>\n")
    assert stylesheets(read_pages(root)["x"].text) == ["app.css"]
