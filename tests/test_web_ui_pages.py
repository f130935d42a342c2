"""More of the web UI in the real browser (helpers and fixtures from test_web_ui.py): the
overview's live chart, the queue list's features and pages, a queue's consumers, the
connection page, changing a user's tags and password, a management user's view. Screenshots
of these pages go where test_web_ui.py puts its own."""

# The fixtures come from test_web_ui.py by import; their names are then the tests' arguments.
# ruff: noqa: F811
from __future__ import annotations

import threading
from collections.abc import Iterator

import pika
import pytest

from test_web_ui import (  # noqa: F401  (fixtures, used by name)
    EC,
    UI,
    By,
    Select,
    amqp,
    broker,
    no_js_errors,
    ui,
)

pytestmark = pytest.mark.leveret_only


@pytest.fixture
def publisher(broker) -> Iterator[threading.Event]:
    """A pika client publishing to ``ui-chart`` until the test ends (set the event to stop
    sooner)."""
    stop = threading.Event()
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("ui-chart")

    def run() -> None:
        # a steady trickle, a few hundred messages a second: a plateau on the chart
        while not stop.wait(0.004):
            ch.basic_publish("", "ui-chart", b"tick")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield stop
    stop.set()
    thread.join(10)
    ch.queue_delete("ui-chart")
    conn.close()


def chart_points(ui: UI, title: str, series: str) -> list[tuple[float, float]]:
    """The (x, y) points of one line of a chart, as drawn."""
    figure = ui.d.find_element(
        By.XPATH, f"//figure[.//span[@class='chart-title' and normalize-space()='{title}']]")
    lines = figure.find_elements(By.CSS_SELECTOR, f"svg.chart polyline.line.{series}")
    if not lines:
        return []
    pairs = lines[0].get_attribute("points").split()
    return [(float(x), float(y)) for x, y in (p.split(",") for p in pairs)]


def test_overview_chart_draws_the_message_rates_as_they_come(ui, publisher):
    ui.go("#/")
    ui.h1("Overview")
    ui.d.execute_script("window.__sameDocument = true")

    def rates_drawn(d) -> bool:
        # each refresh samples the overview into the chart; a person would wait for the
        # next automatic one (every 5 s), the test asks for one twice a second
        ui.button("Refresh now").click()
        publish = chart_points(ui, "Message rates (per second)", "s1")
        ready = chart_points(ui, "Queued messages", "s1")
        legend = d.find_element(By.XPATH, "//li[contains(., 'Publish: ')]").text
        # a line across a sixth of the minute the chart shows (svg y grows downwards: a rate
        # above 0 is drawn above the first point's)
        return (len(publish) >= 3 and publish[-1][0] - publish[0][0] > 80
                and min(y for _, y in publish) < publish[0][1]
                and len(ready) >= 3 and legend != "Publish: 0/s")

    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition, timeout: float) -> None:
        # the charts are redrawn at each refresh: an element read a moment ago may be gone
        WebDriverWait(ui.d, timeout, poll_frequency=0.5,
                      ignored_exceptions=(StaleElementReferenceException,)).until(condition)

    wait(rates_drawn, 60)
    publisher.set()
    # the rate falls back to 0 once the publisher stops, and the line follows it
    wait(
        lambda d: ui.button("Refresh now").click() or "Publish: 0/s" in d.find_element(
            By.XPATH, "//li[contains(., 'Publish: ')]").text, 30)
    assert ui.d.execute_script("return window.__sameDocument") is True  # no reload
    # the chart tells its figures in words too, for screen readers
    chart = ui.d.find_element(By.CSS_SELECTOR, "svg.chart")
    described = chart.get_attribute("aria-labelledby").split()
    assert all(ui.d.find_element(By.ID, i).text for i in described)
    ui.shot("overview")


def test_queue_list_features_and_pages(ui, amqp):
    amqp.exchange_declare("ui-dlx", "fanout")
    amqp.queue_declare("ui-page-all", durable=False, auto_delete=True, exclusive=True,
                       arguments={"x-message-ttl": 1000, "x-dead-letter-exchange": "ui-dlx",
                                  "x-max-length": 5, "x-max-priority": 3})
    for i in range(24):
        amqp.queue_declare(f"ui-page-{i:02d}")
    ui.go("#/queues")
    ui.h1("Queues")
    ui.type("Filter", "ui-page-")
    ui.wait(lambda d: "Page 1 of 1" in d.find_element(By.CSS_SELECTOR, ".page-info").text)
    row = ui.wait(lambda d: d.find_element(
        By.XPATH, "//tbody/tr[td/a[normalize-space()='ui-page-all']]"))
    # each badge is an abbreviation, its meaning in the title and in hidden text for
    # screen readers
    badges = [(a.text.split()[0], a.get_attribute("title"))
              for a in row.find_elements(By.CSS_SELECTOR, "abbr")]
    assert badges == [("AD", "auto-delete"), ("Excl", "exclusive"),
                      ("TTL", "message TTL: 1000 ms"), ("DLX", 'dead-letter exchange: "ui-dlx"'),
                      ("Lim", "max length: 5"), ("Pri", "max priority: 3")]
    ui.shot("queues-features")
    # 25 queues, 20 a page: two pages, the API paging them
    Select(ui.field("Page size")).select_by_value("20")
    ui.wait(lambda d: "Page 1 of 2" in d.find_element(By.CSS_SELECTOR, ".page-info").text)
    assert len(ui.d.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 20
    ui.button("Next page").click()
    ui.wait(lambda d: "Page 2 of 2" in d.find_element(By.CSS_SELECTOR, ".page-info").text)
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-page-20", "ui-page-21", "ui-page-22", "ui-page-23", "ui-page-all"])
    assert ui.button("Next page").get_attribute("disabled") is not None
    ui.button("Previous page").click()
    ui.wait(lambda d: "Page 1 of 2" in d.find_element(By.CSS_SELECTOR, ".page-info").text)
    Select(ui.field("Page size")).select_by_value("100")
    ui.type("Filter", "")
    for i in range(24):
        amqp.queue_delete(f"ui-page-{i:02d}")
    amqp.queue_delete("ui-page-all")
    amqp.exchange_delete("ui-dlx")


def test_queue_page_lists_its_consumers(ui, broker, amqp):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("ui-consumed-q", arguments={"x-max-length": 10})
    ch.basic_qos(prefetch_count=3)
    tag = ch.basic_consume("ui-consumed-q", lambda *a: None, consumer_tag="ui-manual")
    ch.basic_consume("ui-consumed-q", lambda *a: None, auto_ack=True, consumer_tag="ui-auto")
    ui.go("#/queues/%2F/ui-consumed-q")
    ui.h1("ui-consumed-q")
    consumers = ui.section("Consumers")
    rows = ui.wait(lambda d: len(consumers.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
                   and consumers.find_elements(By.CSS_SELECTOR, "tbody tr"))
    cells = {r.find_elements(By.XPATH, "./th|./td")[1].text:
             [c.text for c in r.find_elements(By.XPATH, "./th|./td")] for r in rows}
    assert cells[tag][0].endswith("(1)")  # the channel, by its name
    assert cells[tag][2:4] == ["manual ack", "3"]
    assert cells["ui-auto"][2:4] == ["auto ack", "3"]
    assert "x-max-length" in ui.section("Arguments").text
    ui.shot("queue")
    conn.close()
    amqp.queue_delete("ui-consumed-q")


def test_connection_page_shows_the_client_and_its_channels(ui, broker):
    params = pika.URLParameters(broker.url)
    params.client_properties = {"connection_name": "ui-shown", "product": "ui-client"}
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    ui.go("#/connections")
    ui.h1("Connections")
    ui.wait(lambda d: d.find_element(
        By.XPATH, "//tbody/tr[td[contains(., 'ui-client')]]//a")).click()
    ui.h1("Connection")
    props = ui.section("Client properties")
    ui.wait(lambda d: "connection_name\nui-shown" in props.text)
    assert "capabilities" in props.text and "product\nui-client" in props.text
    overview = ui.section("Overview")
    assert "guest" in overview.text and "AMQP 0-9-1" in overview.text
    channels = ui.section("Channels")
    ui.wait(lambda d: "confirm" in channels.text)
    ui.shot("connection")
    conn.close()


def test_change_a_users_tags_and_password(ui, broker):
    ui.go("#/users")
    ui.h1("Admin: users")
    add = ui.section("Add a user")
    ui.type("Username", "ui-bob", add)
    ui.type("Password", "first-pw", add)
    ui.type("Password (again)", "first-pw", add)
    ui.button("management", add).click()
    ui.button("Add user", add).click()
    ui.text_appears("User ui-bob added.")
    ui.go("#/users/ui-bob")
    ui.h1("ui-bob")
    perms = ui.section("Permissions")
    Select(ui.field("Virtual host", perms)).select_by_value("/")
    ui.button("Set permission", perms).click()
    ui.text_appears("Permissions of ui-bob on / set.")
    update = ui.section("Update this user")
    ui.type("New password", "second-pw", update)
    ui.type("New password (again)", "second-pw", update)
    ui.type("Tags", "monitoring", update)
    ui.button("Update user", update).click()
    ui.text_appears("User ui-bob updated.")
    ui.wait(lambda d: "monitoring" in ui.section("Overview").text)
    ui.shot("user")
    # the new password logs in over AMQP, the old one no longer does
    pika.BlockingConnection(pika.URLParameters(
        broker.url.replace("guest:guest", "ui-bob:second-pw"))).close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(
            broker.url.replace("guest:guest", "ui-bob:first-pw")))
    # and in the browser: a monitoring user sees the node, but no Admin
    ui.login("ui-bob", "second-pw")
    ui.h1("Overview")
    nav = ui.d.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]")
    assert "Admin" not in [a.text for a in nav.find_elements(By.TAG_NAME, "a")
                           if a.is_displayed()]
    ui.text_appears("File descriptors")
    ui.login("guest", "guest")
    ui.go("#/users/ui-bob")
    ui.h1("ui-bob")
    ui.button("Delete user").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.h1("Admin: users")


def test_a_management_user_sees_its_vhost_and_no_node(ui, broker, amqp):
    amqp.queue_declare("ui-guest-only")
    ui.go("#/users")
    ui.h1("Admin: users")
    add = ui.section("Add a user")
    ui.type("Username", "ui-carol", add)
    ui.type("Password", "carol-pw", add)
    ui.type("Password (again)", "carol-pw", add)
    ui.button("management", add).click()
    ui.button("Add user", add).click()
    ui.text_appears("User ui-carol added.")
    ui.login("ui-carol", "carol-pw")
    ui.h1("Overview")
    # RabbitMQ gives node figures to monitoring users only: the page says so, no blanks
    ui.text_appears("Shown to monitoring and administrator users.")
    assert "undefined" not in ui.d.find_element(By.CSS_SELECTOR, "main").text
    ui.shot("overview-management-user")
    ui.go("#/queues")
    ui.h1("Queues")
    ui.text_appears("No queues")  # no permissions anywhere yet: nothing to list
    ui.login("guest", "guest")
    ui.go("#/users/ui-carol")
    ui.h1("ui-carol")
    ui.button("Delete user").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.h1("Admin: users")
    amqp.queue_delete("ui-guest-only")


def tab_to(ui: UI, matches, limit: int = 60):
    """Press Tab until the focused element ``matches`` (a person's keyboard, no mouse)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(ui.d).send_keys(Keys.TAB).perform()
        for _attempt in range(5):
            # the list's refresh may redraw the focused element while it is looked at: look
            # at whatever has the focus again
            el = ui.d.switch_to.active_element
            try:
                if matches(el):
                    return el
                break
            except StaleElementReferenceException:
                continue
    raise AssertionError("never reached by Tab")


def press(ui: UI, *keys: str) -> None:
    """Keys pressed on whatever has the focus, as a person presses them: not sent to an element
    found earlier, which the list's refresh may have redrawn meanwhile (a stale reference)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(ui.d).send_keys(*keys).perform()


def test_the_keyboard_alone_reaches_sorts_and_filters_the_queues(ui, amqp):
    from selenium.webdriver.common.keys import Keys

    for name in ("ui-kb-b", "ui-kb-a"):
        amqp.queue_declare(name)
    amqp.basic_publish("", "ui-kb-a", b"x")
    ui.go("#/")
    ui.h1("Overview")
    tab_to(ui, lambda el: el.tag_name == "a" and el.text == "Queues"
           and el.find_elements(By.XPATH, "ancestor::nav"))
    press(ui, Keys.ENTER)
    ui.h1("Queues")
    ui.wait(lambda d: d.switch_to.active_element.tag_name == "h1")  # focus follows the page
    tab_to(ui, lambda el: el.get_attribute("name") == "name")
    press(ui, "ui-kb-")
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-kb-a", "ui-kb-b"])
    tab_to(ui, lambda el: el.tag_name == "button" and el.text == "Ready")
    press(ui, Keys.ENTER)
    ui.wait(lambda d: d.find_element(By.XPATH, "//th[.//button[normalize-space()='Ready']]")
            .get_attribute("aria-sort") == "ascending")
    press(ui, Keys.ENTER)  # the table was redrawn: focus kept
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-kb-a", "ui-kb-b"] and d.find_element(
                By.XPATH, "//th[.//button[normalize-space()='Ready']]")
            .get_attribute("aria-sort") == "descending")
    # the focus stayed on the button (the list's refresh may redraw it while it is read: a
    # stale reference is read again)
    ui.wait(lambda d: d.switch_to.active_element.text == "Ready")
    # and into a queue's page by its link
    tab_to(ui, lambda el: el.tag_name == "a" and el.text == "ui-kb-a")
    press(ui, Keys.ENTER)
    ui.h1("ui-kb-a")
    ui.go("#/queues")
    ui.h1("Queues")
    ui.type("Filter", "")
    ui.d.find_element(By.XPATH, "//th//button[normalize-space()='Name']").click()
    for name in ("ui-kb-b", "ui-kb-a"):
        amqp.queue_delete(name)
