"""The product manager's console in real Chromium against the real server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.frontend.conftest import (
    ADMIN_KEY,
    DESKTOP,
    MOBILE,
    api,
    new_page,
    screenshot,
    serious_violations,
)

pytestmark = pytest.mark.browser

QUERY = "men"


def _open(browser: Any, site: str, viewport: dict[str, int], key: str = ADMIN_KEY) -> Any:
    page = new_page(browser, viewport)
    page.goto(site + "/console")
    page.wait_for_selector("#w-bm25")
    page.fill("#key", key)
    page.click("#key-form button")
    page.wait_for_function(
        "() => !document.querySelector('#key-state').textContent.includes('no key')"
    )
    return page


def _ids(page: Any, column: str) -> list[str]:
    return page.locator(f"#{column} li[data-product-id]").evaluate_all(
        "items => items.map(i => i.dataset.productId)"
    )


def _compare(page: Any, text: str) -> None:
    page.fill("#cq", text)
    page.click("#query-form button[type=submit]")
    page.wait_for_selector("#saved li[data-product-id]")
    page.wait_for_selector("#edited li[data-product-id]")


def test_a_wrong_key_gets_a_clear_message(site: str, browser: Any) -> None:
    page = _open(browser, site, DESKTOP, key="not-the-key")
    state = page.inner_text("#key-state")
    assert "refused (401)" in state, state
    assert page.evaluate("() => sessionStorage.getItem('snapshop-admin-key')") is None
    screenshot(page, "console-wrong-key")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_a_slider_reorders_the_edited_list_and_not_the_saved_one(
    site: str, browser: Any, viewport: dict[str, int]
) -> None:
    page = _open(browser, site, viewport)
    assert "key accepted" in page.inner_text("#key-state")
    _compare(page, QUERY)
    saved = _ids(page, "saved")
    edited = _ids(page, "edited")
    assert saved == edited, "an unedited blend must rank like the saved one"
    # BM25 off, dense text at full weight: a different blend
    page.focus("#w-bm25")
    page.keyboard.press("Home")
    page.focus("#w-text_image")
    page.keyboard.press("End")
    page.wait_for_function(
        "before => [...document.querySelectorAll('#edited li[data-product-id]')]"
        ".map(i => i.dataset.productId).join() !== before",
        arg=",".join(edited),
    )
    assert _ids(page, "saved") == saved
    assert _ids(page, "edited") != edited
    moves = page.locator("#edited .move").all_inner_texts()
    assert any(m.startswith(("↑", "↓")) or m == "new" for m in moves), moves
    page.locator("#edited li details summary").first.click()
    assert "rank" in page.locator("#edited li .explain-bars").first.inner_text()
    screenshot(page, "console-compare")
    screenshot(page, "readme-console", full_page=False)
    page.context.close()


def test_saving_creates_the_next_version(site: str, browser: Any) -> None:
    original = api(site, "GET", "/v1/fusion/profiles/default").json()
    before = original["version"]
    try:
        _save_in_page(browser, site, before)
    finally:
        # other tests search with the default profile: put its blend back (a version of its own)
        body = {k: v for k, v in original.items() if k not in ("name", "version", "updated_at")}
        assert api(site, "PUT", "/v1/fusion/profiles/default", json=body).status_code == 200


def _save_in_page(browser: Any, site: str, before: int) -> None:
    page = _open(browser, site, DESKTOP)
    page.focus("#w-image")
    page.keyboard.press("End")
    page.fill("#description", "image leg at 32 (browser test)")
    page.click("#save-form button")
    page.wait_for_function(
        "v => document.querySelector('#status').textContent.includes('version ' + v)",
        arg=before + 1,
    )
    stored = api(site, "GET", "/v1/fusion/profiles/default").json()
    assert stored["version"] == before + 1
    assert stored["weights"]["image"] == 32
    assert stored["description"] == "image leg at 32 (browser test)"
    page.wait_for_selector("#history li")
    assert f"v{before + 1}" in page.inner_text("#history")
    assert "image" in page.inner_text("#history li:first-child")
    screenshot(page, "console-saved")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_an_evaluation_shows_saved_and_edited_metrics(
    site: str, browser: Any, viewport: dict[str, int]
) -> None:
    page = _open(browser, site, viewport)
    page.wait_for_selector("#eset option[value=dev]", state="attached")
    page.focus("#w-bm25")
    page.keyboard.press("Home")
    page.click("#eval-form button")
    page.wait_for_selector("#eval-table table", timeout=180_000)
    table = page.inner_text("#eval-table")
    assert "photos (fused" in table and "typed (fused" in table
    assert "→" in table
    assert page.locator("#eval-chart svg rect").count() >= 4
    assert page.locator("#eval-worst").inner_text()
    screenshot(page, "console-evaluation")
    page.context.close()


def test_a_query_from_a_stored_set_can_be_compared(site: str, browser: Any) -> None:
    page = _open(browser, site, DESKTOP)
    page.wait_for_selector("#qset option[value=dev]", state="attached")
    page.select_option("#qset", "dev")
    page.wait_for_selector("#qpick:not([hidden])")
    photo_option = page.locator("#qpick option", has_text="📷").first.get_attribute("value")
    page.select_option("#qpick", photo_option)
    page.wait_for_selector("#saved li[data-product-id]")
    assert "Photo:" in page.inner_text("#query-note")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_a_judgement_made_in_the_page_is_stored(
    site: str, browser: Any, viewport: dict[str, int]
) -> None:
    page = _open(browser, site, viewport)
    _compare(page, QUERY)
    page.fill("#judge", f"tester-{viewport['width']}")
    item = page.locator("#edited li[data-product-id]").first
    product = item.get_attribute("data-product-id")
    item.locator("button.yes").click()
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.startsWith('Marked')"
    )
    marks = api(
        site, "GET", "/v1/judgements", params={"query_key": f"text:{QUERY}", "product_id": product}
    ).json()["judgements"]
    assert any(m["judge"] == f"tester-{viewport['width']}" and m["relevant"] for m in marks), marks
    page.wait_for_function("() => document.querySelector('#marks').textContent.includes('✓')")
    screenshot(page, "console-judgement")
    page.context.close()


def test_console_axe_finds_no_serious_violation(site: str, browser: Any) -> None:
    page = _open(browser, site, DESKTOP)
    _compare(page, QUERY)
    assert serious_violations(page) == []
    page.context.close()
