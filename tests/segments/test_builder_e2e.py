"""The builder in a real headless Chromium (Debian's package) against a live server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from segments.models import Segment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]


@pytest.fixture
def page(live_server, django_user_model, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_superuser("lead", "lead@example.com", "pw-lead-123")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "lead")
        page.fill("#id_password", "pw-lead-123")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        # Errors in the browser console from here on (the tests' pages: builder, segment pages).
        page.console_errors = []
        page.on(
            "console",
            lambda m: (
                page.console_errors.append(f"{m.text} ({m.location['url']})")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        page.base_url = live_server.url
        yield page
        browser.close()


def drag(page, handle, target) -> None:
    """Drag with real mouse moves (SortableJS runs in fallback mode, driven by pointer events)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.seg-children')].every(e => e._sortable)"
    )
    start = handle.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.wait_for_timeout(100)
    page.mouse.move(x + 8, y + 8, steps=4)
    page.wait_for_timeout(100)
    # Other nodes shift while the dragged one moves, so aim again where the target now is.
    for _ in range(4):
        end = target.bounding_box()
        page.mouse.move(end["x"] + 40, end["y"] + end["height"] - 8, steps=10)
        page.wait_for_timeout(120)
    page.mouse.up()


def condition(page, path: str):
    return page.locator(f'li.seg-node[data-path="{path}"]')


def test_drag_two_conditions_into_a_nested_group_save_and_explain(page, make_profile):
    for first, city, country in [
        ("Ann", "Berlin", "DE"),
        ("Ben", "Hamburg", "DE"),
        ("Cem", "München", "DE"),
        ("Dora", "Berlin", "AT"),
    ]:
        make_profile(
            first_name=first, city=city, country=country, email=f"{first.lower()}@example.com"
        )

    page.goto(f"{page.base_url}/admin/segments/segment/builder/")
    expect(page.locator("#seg-total")).to_have_text("4")

    # Build with the buttons and the keyboard: country = DE, city = Berlin, city = Hamburg,
    # and an empty nested group.
    page.fill("#seg-palette-search", "countr")
    expect(page.locator('.seg-palette-item[data-key="city"]')).to_be_hidden()
    page.click('.seg-palette-item[data-key="country"] button')
    condition(page, "include.0").locator("input.seg-value").fill("DE")
    page.fill("#seg-palette-search", "")
    for index, city in ((1, "Berlin"), (2, "Hamburg")):
        add = page.locator('li.seg-top[data-path="include"] > .seg-adders > .seg-add-input')
        add.fill("city")
        add.press("Enter")
        value = condition(page, f"include.{index}").locator("input.seg-value")
        value.fill(city)
    page.click('li.seg-top[data-path="include"] > .seg-adders > .seg-add-group')
    expect(condition(page, "include.3")).to_have_attribute("data-type", "group")
    expect(page.locator("#seg-total")).to_have_text("0")  # Berlin AND Hamburg: nobody

    # Drag "city = Berlin" and then "city = Hamburg" into the nested group.
    drag(
        page,
        condition(page, "include.1").locator(".seg-handle"),
        condition(page, "include.3").locator(":scope > .seg-children"),
    )
    expect(condition(page, "include.2.0")).to_be_visible()
    expect(page.locator("#seg-total")).to_have_text("0")  # DE AND Hamburg AND (Berlin)
    drag(
        page,
        condition(page, "include.1").locator(".seg-handle"),
        condition(page, "include.2").locator(":scope > .seg-children"),
    )
    expect(condition(page, "include.1.1")).to_be_visible()

    # DE AND (Berlin OR Hamburg): Ann and Ben; the group alone: Ann, Ben and Dora.
    expect(page.locator("#seg-total")).to_have_text("2")
    expect(page.locator("#count-include-1")).to_have_text("3")
    expect(page.locator("#seg-preview")).to_contain_text("ann@example.com")
    expect(page.locator("#seg-preview")).not_to_contain_text("cem@example.com")

    page.fill("#seg-name", "DE city dwellers")
    page.fill("#seg-description", "Berlin or Hamburg, Germany")
    page.click("#seg-save-button")
    page.wait_for_url("**/admin/segments/segment/*/change/")
    assert page.console_errors == []
    segment = Segment.objects.get(name="DE city dwellers")
    group = segment.rules["include"]["children"][1]
    assert group["op"] == "or"
    assert sorted(c["value"] for c in group["children"]) == ["Berlin", "Hamburg"]

    page.goto(f"{page.base_url}/admin/segments/segment/")
    expect(page.locator("#result_list")).to_contain_text("DE city dwellers")

    page.goto(f"{page.base_url}/admin/segments/segment/{segment.pk}/why/")
    page.fill("#why-profile", "cem@example.com")
    page.click("text=Explain")
    expect(page.locator("#why-verdict")).to_contain_text("is not in “DE city dwellers”")
    expect(page.locator('li[data-path="include.0"] > .seg-mark')).to_have_text("✓ true")
    expect(page.locator('li[data-path="include.1"] > .seg-mark')).to_have_text("✗ false")
    expect(page.locator('li[data-path="include"] > .seg-mark')).to_have_text("✗ false")


def test_type_ahead_of_json_numbers_keeps_console_clean_and_survives_server_errors(
    page, make_profile, settings
):
    # DEBUG on, as in the demo: django-htmx then shows Django's error page for a failed request.
    settings.DEBUG = True
    for orders in (10, 2, 9, 2):
        make_profile(attributes={"total_orders": orders})
    page.goto(f"{page.base_url}/admin/segments/segment/builder/")
    expect(page.locator("#seg-total")).to_have_text("4")
    page.click('.seg-palette-item[data-key="total_orders"] button')
    expect(page.locator("#count-include-0")).to_have_text("incomplete")  # rendered and settled
    value = condition(page, "include.0").locator("input.seg-value")
    value.focus()
    expect(page.locator("#dl-include-0 option")).to_have_count(3)
    options = page.locator("#dl-include-0 option")
    assert [options.nth(i).get_attribute("value") for i in range(3)] == ["2", "9", "10"]

    # Typing re-counts while an earlier count may still be running: two changes at once
    # used to abort the first request (htmx logs each abort as a console error).
    value.press_sequentially("2", delay=50)
    page.evaluate(
        "() => { htmx.trigger(document.body, 'seg-changed');"
        " htmx.trigger(document.body, 'seg-changed'); }"
    )
    expect(page.locator("#seg-total")).to_have_text("2")
    expect(page.locator("#count-include-0")).to_have_text("2")
    page.wait_for_timeout(300)
    assert page.console_errors == []

    # A server error (forced here, the endpoint no longer fails) keeps the builder and the
    # rules on the page and says what happened until that endpoint answers again.
    page.route(
        "**/builder/values/**",
        lambda route: route.fulfill(
            status=500, content_type="text/html", body="<html><h1>OperationalError</h1></html>"
        ),
    )
    value.press_sequentially("0", delay=50)
    expect(page.locator("#seg-request-error")).to_contain_text("error 500")
    expect(page.locator("h1")).not_to_have_text("OperationalError")
    expect(value).to_have_value("20")
    expect(page.locator("#seg-total")).to_have_text("0")  # counts still answer...
    expect(page.locator("#seg-request-error")).to_contain_text("Your rules are unchanged")
    expect(page.locator("#seg-tree")).to_be_visible()
    page.unroute("**/builder/values/**")
    value.press_sequentially("0", delay=50)
    expect(page.locator("#seg-request-error")).to_be_hidden()
    expect(value).to_have_value("200")
