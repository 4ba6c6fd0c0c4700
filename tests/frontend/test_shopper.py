"""The shopper's page in real Chromium against the real server."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.frontend.conftest import (
    DESKTOP,
    MOBILE,
    new_page,
    record_metric,
    screenshot,
    serious_violations,
)

pytestmark = pytest.mark.browser


def _cards(page: Any) -> list[str]:
    return page.locator("#results .card:not(.skeleton)").evaluate_all(
        "cards => cards.map(c => c.dataset.productId)"
    )


def _first_row(page: Any) -> list[str]:
    """Product ids of the cards laid out on the grid's first line."""
    return page.evaluate(
        """() => {
          const cards = [...document.querySelectorAll('#results .card:not(.skeleton)')];
          if (!cards.length) return [];
          const top = cards[0].getBoundingClientRect().top;
          return cards.filter(c => Math.abs(c.getBoundingClientRect().top - top) < 2)
                      .map(c => c.dataset.productId);
        }"""
    )


def _wait_results(page: Any) -> None:
    page.wait_for_selector("#results .card:not(.skeleton)")


def _no_sideways_scroll(page: Any) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


# Playwright does not expose multipart bodies holding a Blob, so the test wraps the page's
# fetch and keeps a copy of every form it sends (the page's own code is untouched).
RECORD_FORMS = """
window.__sentForms = [];
const pageFetch = window.fetch.bind(window);
window.fetch = async (input, init = {}) => {
  if (init.body instanceof FormData) {
    const form = {};
    for (const [name, value] of init.body.entries()) {
      if (value instanceof Blob) {
        const bytes = new Uint8Array(await value.arrayBuffer());
        let bin = "";
        for (let i = 0; i < bytes.length; i += 8192) {
          bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
        }
        form[name] = {type: value.type, size: value.size, b64: btoa(bin)};
      } else {
        form[name] = value;
      }
    }
    window.__sentForms.push({url: String(input), form});
  }
  return pageFetch(input, init);
};
"""


def _last_form(page: Any) -> dict[str, Any]:
    forms = page.evaluate("() => window.__sentForms")
    assert forms, "the page sent no multipart search"
    form: dict[str, Any] = forms[-1]["form"]
    return form


def _sent_image(form: dict[str, Any]) -> tuple[Image.Image, int]:
    data = base64.b64decode(form["image"]["b64"])
    return Image.open(io.BytesIO(data)), len(data)


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_shelf_photo_cropped_finds_its_product_in_the_first_row(
    site: str, browser: Any, held_out_photo: tuple[Path, str], viewport: dict[str, int]
) -> None:
    photo, product_id = held_out_photo
    page = new_page(browser, viewport)
    page.add_init_script(RECORD_FORMS)
    page.goto(site + "/")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector(".cropper-crop-box")
    # shrink the box a little from its bottom-right corner, as a shopper framing the product would
    handle = page.locator(".cropper-point.point-se")
    box = handle.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 10, box["y"] - 10, steps=5)
    page.mouse.up()
    started = time.perf_counter()
    page.click("#crop-search")
    _wait_results(page)
    elapsed_ms = (time.perf_counter() - started) * 1000
    crop = json.loads(_last_form(page)["crop"])
    assert 0 <= crop["x0"] < crop["x1"] < 1 and 0 <= crop["y0"] < crop["y1"] < 1, crop
    assert product_id in _first_row(page), (product_id, _cards(page)[:10])
    # its thumbnail arrives from /v1/images and shows
    page.wait_for_function(
        "pid => { const img = document.querySelector(`.card[data-product-id='${pid}'] img`);"
        " return img && img.complete && img.naturalWidth > 0; }",
        arg=product_id,
    )
    _no_sideways_scroll(page)
    record_metric(f"photo_search_first_result_ms_{viewport['width']}", round(elapsed_ms, 1))
    screenshot(page, "shopper-photo-search")
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "readme-shopper", full_page=False)
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_typed_query_is_in_the_url_and_back_returns_to_it(
    site: str, browser: Any, viewport: dict[str, int]
) -> None:
    page = new_page(browser, viewport)
    page.goto(site + "/")
    page.fill("#q", "apple")
    page.press("#q", "Enter")
    _wait_results(page)
    assert "q=apple" in page.url
    first = _cards(page)
    page.fill("#q", "men shirt")
    page.press("#q", "Enter")
    page.wait_for_url("**q=men+shirt**")
    page.wait_for_function(
        "first => document.querySelector('#results .card')?.dataset.productId !== first",
        arg=first[0],
    )
    page.go_back()
    page.wait_for_url("**q=apple")
    page.wait_for_function(
        "first => document.querySelector('#results .card:not(.skeleton)')"
        "?.dataset.productId === first",
        arg=first[0],
    )
    assert page.input_value("#q") == "apple"
    assert _cards(page) == first
    _no_sideways_scroll(page)
    screenshot(page, "shopper-typed-query")
    page.context.close()


def test_a_shared_url_runs_its_query(site: str, browser: Any) -> None:
    page = new_page(browser, MOBILE)
    page.goto(site + "/?q=apple")
    _wait_results(page)
    assert page.input_value("#q") == "apple"
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_facet_chip_filters_the_results(site: str, browser: Any, viewport: dict[str, int]) -> None:
    page = new_page(browser, viewport)
    page.goto(site + "/?q=men")
    _wait_results(page)
    chips = page.locator("#facets .chip")
    assert chips.count() >= 3, "expected All and at least two categories"
    chip = chips.nth(1)
    category = chip.get_attribute("title")
    assert category
    label = chip.inner_text()
    count = int(label.rsplit("(", 1)[1].rstrip(")"))
    chip.click()
    page.wait_for_url(f"**category={category.split('/')[0]}**")
    page.wait_for_function(
        "() => document.querySelector('#facets .chip[aria-pressed=true]')?.title"
        " !== 'All categories'"
    )
    _wait_results(page)
    shown = _cards(page)
    assert 0 < len(shown) <= count
    for pid in shown:
        product = httpx.get(f"{site}/v1/products/{pid}").json()
        assert product["category"] == category or product["category"].startswith(category + "/")
    _no_sideways_scroll(page)
    screenshot(page, "shopper-facet")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_more_like_this_and_more_results(site: str, browser: Any, viewport: dict[str, int]) -> None:
    page = new_page(browser, viewport)
    page.goto(site + "/?q=men")
    _wait_results(page)
    before = _cards(page)
    assert page.is_visible("#more")
    page.click("#more")
    page.wait_for_function(
        f"() => document.querySelectorAll('#results .card:not(.skeleton)').length > {len(before)}"
    )
    after = _cards(page)
    assert after[: len(before)] == before
    assert len(set(after)) == len(after), "a product repeated across pages"
    target = before[0]
    page.locator(f'.card[data-product-id="{target}"] button').first.click()
    page.wait_for_selector("#context:not([hidden])")
    _wait_results(page)
    similar = _cards(page)
    assert similar and target not in similar
    # a neighbour list has no paging and no category chips
    assert not page.is_visible("#facets") and not page.is_visible("#more")
    screenshot(page, "shopper-similar")
    page.click("#context button")
    page.wait_for_selector("#context", state="hidden")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_a_12mp_photo_is_downscaled_before_upload(
    site: str,
    browser: Any,
    held_out_photo: tuple[Path, str],
    tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    big = tmp_path / "big.jpg"
    with Image.open(held_out_photo[0]) as im:
        im.convert("RGB").resize((4000, 3000)).save(big, quality=90)
    page = new_page(browser, viewport)
    page.add_init_script(RECORD_FORMS)
    page.goto(site + "/")
    page.set_input_files("#file", str(big))
    page.wait_for_selector(".cropper-crop-box")
    assert "4000\u00d73000" in page.inner_text("#photo-note")
    page.click("#crop-search")
    _wait_results(page)
    uploaded, size = _sent_image(_last_form(page))
    assert max(uploaded.size) == 1024 and uploaded.format == "JPEG", uploaded.size
    assert size < 400_000, f"{size} bytes sent for a downscaled photo"
    record_metric(f"upload_kb_for_12mp_photo_{viewport['width']}", round(size / 1024, 1))
    _no_sideways_scroll(page)
    screenshot(page, "shopper-big-photo")
    page.context.close()


def test_nothing_scrolls_sideways_at_360_px(site: str, browser: Any) -> None:
    page = new_page(browser, {"width": 360, "height": 740})
    page.goto(site + "/")
    # before any search: the photo target and a hint, nothing else
    assert page.is_visible("#picker") and not page.is_visible("#more")
    assert not page.is_visible("#facets") and not page.is_visible("#cropper")
    page.goto(site + "/?q=men")
    _wait_results(page)
    _no_sideways_scroll(page)
    page.context.close()


def test_a_server_error_is_shown_with_its_reason_and_a_retry(site: str, browser: Any) -> None:
    page = new_page(browser, MOBILE)
    page.goto(site + "/")
    page.fill("#q", "x" * 3000)  # longer than the API accepts
    page.press("#q", "Enter")
    page.wait_for_selector("#status.error")
    text = page.inner_text("#status")
    assert "Search failed" in text and "q" in text
    assert page.locator("#status button", has_text="Retry").count() == 1
    screenshot(page, "shopper-error")
    page.context.close()


def test_no_results_says_what_to_do(site: str, browser: Any) -> None:
    page = new_page(browser, MOBILE)
    page.goto(site + "/?q=men&category=Nothing/Here")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('No products')"
    )
    assert "remove the category filter" in page.inner_text("#status")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile"])
def test_axe_finds_no_serious_violation(site: str, browser: Any, viewport: dict[str, int]) -> None:
    page = new_page(browser, viewport)
    page.goto(site + "/?q=men")
    _wait_results(page)
    assert serious_violations(page) == []
    page.context.close()


@pytest.mark.parametrize(("path", "name"), [("/", "shopper"), ("/console", "console")])
def test_page_weight(site: str, browser: Any, path: str, name: str) -> None:
    """The JS + CSS a first visit downloads, recorded for the closing note (and bounded)."""
    page = new_page(browser, MOBILE)
    sizes: dict[str, int] = {}

    def on_response(response: Any) -> None:
        if response.request.resource_type in ("script", "stylesheet"):
            sizes[response.url] = len(response.body())

    page.on("response", on_response)
    page.goto(site + path)
    page.wait_for_load_state("networkidle")
    total_kb = sum(sizes.values()) / 1024
    record_metric(f"{name}_js_css_kb", round(total_kb, 1))
    assert 0 < total_kb < 150, sizes
    page.context.close()
