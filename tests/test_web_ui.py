"""The web UI in a real browser: Debian's Chromium driven headless through chromedriver
(Selenium), against a broker whose state pika clients make and check.

One browser session for the module. Screenshots of the main pages go to
``$LEVERET_UI_SCREENSHOTS`` if set, else to ``build/ui-screenshots/`` in the checkout (ignored by
git: never committed), where a person can look at them after a run.
Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from leveret import Broker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("no chromium and chromedriver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")

# Selenium must use the system's browser and driver, never fetch one
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.leveret_only


class UI:
    """The browser on the broker's management port, with the waits the tests need."""

    def __init__(self, driver, base: str, shots: Path, downloads: Path) -> None:
        self.d = driver
        self.base = base
        self.shots = shots
        self.downloads = downloads

    def wait(self, condition, timeout: float = 10.0):
        # the page replaces tables as it refreshes: an element seen a moment ago may be gone
        return WebDriverWait(self.d, timeout, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException,)
                             ).until(condition)

    def go(self, hash_: str) -> None:
        """Show a page by its hash (#/queues): the app routes without reloading."""
        if not self.d.current_url.startswith(self.base):
            self.d.get(self.base + "/" + hash_)
        else:
            self.d.execute_script("location.hash = arguments[0]", hash_)

    def h1(self, text: str) -> None:
        self.wait(lambda d: text in d.find_element(By.TAG_NAME, "h1").text)

    def find(self, css: str):
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def button(self, label: str, within=None):
        root = within or self.d
        xpath = f".//button[normalize-space()='{label}']"
        self.wait(lambda d: any(b.is_displayed() for b in root.find_elements(By.XPATH, xpath)))
        return next(b for b in root.find_elements(By.XPATH, xpath) if b.is_displayed())

    def section(self, heading: str):
        """The <section> labelled by an h2 with this text."""
        xpath = (f"//section[h2[normalize-space()='{heading}' or "
                 f"starts-with(normalize-space(), '{heading} (')]]")
        return self.wait(EC.presence_of_element_located((By.XPATH, xpath)))

    def field(self, label: str, within=None):
        """The control a <label> names (as a screen reader finds it)."""
        root = within or self.d
        lab = WebDriverWait(root, 10).until(
            lambda r: r.find_element(By.XPATH, f".//label[normalize-space()='{label}']"))
        return self.d.find_element(By.ID, lab.get_attribute("for"))

    def type(self, label: str, text: str, within=None) -> None:
        el = self.field(label, within)
        # keys, not clear(): the page listens for input events as a person types
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.DELETE)
        el.send_keys(text)

    def text_appears(self, text: str, css: str = "main", timeout: float = 10.0) -> None:
        try:
            self.wait(lambda d: text in d.find_element(By.CSS_SELECTOR, css).text, timeout)
        except TimeoutException:
            raise AssertionError(f"{text!r} never appeared in {css}: "
                                 f"{self.d.find_element(By.CSS_SELECTOR, css).text[:2000]!r}"
                                 ) from None

    def shot(self, name: str) -> Path:
        """A screenshot of the whole page (not only the window), for a person to look at."""
        path = self.shots / f"{name}.png"
        height = self.d.execute_script(
            "return Math.max(document.body.scrollHeight, window.innerHeight)")
        width = self.d.execute_script("return document.documentElement.clientWidth")
        shot = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 6000), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def login(self, user: str, password: str) -> None:
        if self.d.find_elements(By.XPATH, "//button[normalize-space()='Log out']"):
            logout = self.d.find_element(By.XPATH, "//button[normalize-space()='Log out']")
            if logout.is_displayed():
                logout.click()
        self.go("#/")
        name = self.find("input[name=username]")
        name.clear()
        name.send_keys(user)
        pw = self.d.find_element(By.NAME, "password")
        pw.clear()
        pw.send_keys(password, Keys.ENTER)
        self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, "nav[aria-label=Main]")))

    def row(self, table_css: str, first_cell: str):
        """The <tr> of a table whose first cell reads ``first_cell``."""
        xpath = f".//tbody/tr[th[normalize-space()='{first_cell}']]"

        def found(d):
            for table in d.find_elements(By.CSS_SELECTOR, table_css):
                rows = table.find_elements(By.XPATH, xpath)
                if rows:
                    return rows[0]
            return False
        return self.wait(found)

    def js_errors(self) -> list[str]:
        """JavaScript errors the page logged (failed requests the app handles are not)."""
        return [e["message"] for e in self.d.get_log("browser")
                if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]


@pytest.fixture(scope="module")
def broker():
    with Broker.in_thread(management_port=0) as b:
        yield b


@pytest.fixture(scope="module")
def ui(broker, tmp_path_factory) -> Iterator[UI]:
    shots = Path(os.environ.get("LEVERET_UI_SCREENSHOTS")
                 or Path(__file__).resolve().parents[1] / "build" / "ui-screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    downloads = tmp_path_factory.mktemp("ui-downloads")
    profile = tempfile.mkdtemp(prefix="leveret-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.execute_cdp_cmd("Page.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(downloads)})
        driver.set_script_timeout(10)
        page = UI(driver, broker.management_url, shots, downloads)
        page.d.get(page.base + "/")
        page.login("guest", "guest")
        yield page
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def amqp(broker) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    yield conn.channel()
    if conn.is_open:
        conn.close()


@pytest.fixture(autouse=True)
def no_js_errors(request):
    yield
    if "ui" in request.fixturenames:
        ui = request.getfixturevalue("ui")
        assert ui.js_errors() == []


# ---------------------------------------------------------------------- login


def test_login_page_refuses_a_wrong_password_then_shows_the_navigation(ui):
    ui.button("Log out").click()
    ui.find("input[name=username]").send_keys("guest")
    ui.d.find_element(By.NAME, "password").send_keys("wrong", Keys.ENTER)
    alert = ui.find("form.login [role=alert]")
    assert "Login failed" in alert.text
    ui.shot("login")
    ui.login("guest", "guest")
    nav = ui.d.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]")
    assert [a.text for a in nav.find_elements(By.TAG_NAME, "a")] == [
        "Overview", "Connections", "Channels", "Exchanges", "Queues", "Admin"]
    ui.h1("Overview")
    ui.text_appears("Message rates (per second)")
    assert ui.d.find_element(By.CSS_SELECTOR, "svg.chart")
    ui.shot("overview")


def test_overview_counts_what_clients_made(ui, amqp):
    amqp.queue_declare("ui-overview-a")
    amqp.queue_declare("ui-overview-b")
    for _ in range(3):
        amqp.basic_publish("", "ui-overview-a", b"x")
    ui.go("#/")
    ui.h1("Overview")
    ui.button("Refresh now").click()

    def stat(label):
        xpath = (f"//div[@class='stat'][span[@class='stat-label' and normalize-space()="
                 f"'{label}']]/span[@class='stat-value']")
        return ui.d.find_element(By.XPATH, xpath).text

    ui.wait(lambda d: stat("Ready") == "3" and stat("Queues") == "2")
    assert stat("Connections") == "1" and stat("Total") == "3"
    amqp.queue_delete("ui-overview-a")
    amqp.queue_delete("ui-overview-b")


# ---------------------------------------------------------------------- queues


def test_queues_list_shows_a_pika_queue_with_its_depth_and_follows_it(ui, amqp):
    amqp.queue_declare("ui-depth", durable=True, arguments={"x-max-length": 100,
                                                              "x-message-ttl": 60000})
    amqp.queue_declare("ui-depth-other")
    for i in range(3):
        amqp.basic_publish("", "ui-depth", f"m{i}".encode())
    ui.go("#/queues")
    ui.h1("Queues")
    row = ui.wait(lambda d: d.find_element(
        By.XPATH, "//tbody/tr[td/a[normalize-space()='ui-depth']]"))
    cells = row.find_elements(By.XPATH, "./th|./td")
    assert [c.text for c in cells[:3]] == ["/", "ui-depth", "classic"]
    assert [a.get_attribute("title") for a in cells[3].find_elements(By.TAG_NAME, "abbr")] == [
        "durable", "message TTL: 60000 ms", "max length: 100"]
    assert [c.text for c in cells[4:9]] == ["running", "3", "0", "3", "0"]
    ui.shot("queues")
    # it refreshes by itself, without reloading the page
    ui.d.execute_script("window.__stillHere = true")
    amqp.basic_publish("", "ui-depth", b"m3")
    amqp.basic_publish("", "ui-depth", b"m4")
    ui.wait(lambda d: d.find_element(
        By.XPATH, "//tbody/tr[td/a[normalize-space()='ui-depth']]/td[5]").text == "5", 15)
    assert ui.d.execute_script("return window.__stillHere") is True
    # filter by a regular expression
    ui.type("Filter", "^ui-d.pth$")
    ui.d.find_element(By.XPATH, "//label[normalize-space()='Regex']").click()
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-depth"])
    # a bad expression is an error the reader sees, not an empty table
    ui.type("Filter", "ui-(")
    ui.text_appears("not a valid regular expression")
    ui.type("Filter", "ui-depth")
    ui.d.find_element(By.XPATH, "//label[normalize-space()='Regex']").click()
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-depth", "ui-depth-other"])
    # sort by ready messages, then the other way
    header = ui.d.find_element(By.XPATH, "//th[.//button[normalize-space()='Ready']]")
    header.find_element(By.TAG_NAME, "button").click()
    ui.wait(lambda d: d.find_element(By.XPATH, "//th[.//button[normalize-space()='Ready']]")
            .get_attribute("aria-sort") == "ascending")
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-depth-other", "ui-depth"])
    ui.d.find_element(By.XPATH, "//th//button[normalize-space()='Ready']").click()
    ui.wait(lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "main tbody a")]
            == ["ui-depth", "ui-depth-other"])
    ui.type("Filter", "")
    ui.d.find_element(By.XPATH, "//th//button[normalize-space()='Name']").click()
    amqp.queue_delete("ui-depth")
    amqp.queue_delete("ui-depth-other")


def test_queue_page_gets_a_dead_letter_with_its_body_and_x_death(ui, amqp):
    amqp.queue_declare("ui-dead")
    amqp.queue_declare("ui-work", arguments={"x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": "ui-dead"})
    amqp.basic_publish("", "ui-work", "hello from pika ✓".encode(),
                       pika.BasicProperties(headers={"trace": "abc-123"},
                                            content_type="text/plain", correlation_id="c-9"))
    method, _, _ = amqp.basic_get("ui-work")
    amqp.basic_reject(method.delivery_tag, requeue=False)
    amqp.queue_declare("ui-dead", passive=True)
    ui.go("#/queues/%2F/ui-dead")
    ui.h1("ui-dead")
    get = ui.section("Get messages")
    Select(ui.field("Ack mode", get)).select_by_value("ack_requeue_true")
    ui.button("Get messages", get).click()
    item = ui.find("article.message-item")
    text = item.text
    assert "hello from pika ✓" in item.find_element(By.CSS_SELECTOR, "pre.payload").text
    assert "Routing key\nui-dead" in text
    assert "trace\nabc-123" in text
    assert "correlation_id\nc-9" in text and "content_type\ntext/plain" in text
    death = item.find_element(By.XPATH, ".//dt[normalize-space()='x-death']/following-sibling::dd")
    assert "reason\nrejected" in death.text and "queue\nui-work" in death.text
    assert "count\n1" in death.text
    ui.shot("queue-get-message")
    item.find_element(By.XPATH, ".//button[normalize-space()='Base64']").click()
    assert item.find_element(By.CSS_SELECTOR, "pre.payload").text == base64.b64encode(
        "hello from pika ✓".encode()).decode()
    # requeued: still in the queue
    assert amqp.queue_declare("ui-dead", passive=True).method.message_count == 1
    for q in ("ui-dead", "ui-work"):
        amqp.queue_delete(q)


def test_publish_from_the_queue_page_reaches_a_pika_consumer(ui, amqp):
    amqp.queue_declare("ui-publish")
    ui.go("#/queues/%2F/ui-publish")
    ui.h1("ui-publish")
    pub = ui.section("Publish message")
    assert ui.field("Routing key", pub).get_attribute("value") == "ui-publish"
    Select(ui.field("Delivery mode", pub)).select_by_value("2")
    ui.type("Headers", '{"source": "browser", "attempt": 2}', pub)
    ui.type("Properties", '{"content_type": "text/plain", "message_id": "m-1"}', pub)
    ui.type("Payload", "from the browser", pub)
    ui.button("Publish message", pub).click()
    ui.text_appears("Message published.", "main")
    method, props, body = amqp.basic_get("ui-publish", auto_ack=True)
    assert body == b"from the browser"
    assert props.headers == {"source": "browser", "attempt": 2}
    assert (props.content_type, props.message_id, props.delivery_mode) == (
        "text/plain", "m-1", 2)
    # bad JSON is said plainly, nothing is sent
    ui.type("Headers", "{not json", pub)
    ui.button("Publish message", pub).click()
    ui.text_appears("Headers must be a JSON object", "main")
    assert amqp.queue_declare("ui-publish", passive=True).method.message_count == 0
    amqp.queue_delete("ui-publish")


def test_purge_and_delete_a_queue_from_its_page(ui, amqp):
    amqp.queue_declare("ui-purge")
    for _ in range(4):
        amqp.basic_publish("", "ui-purge", b"x")
    ui.go("#/queues/%2F/ui-purge")
    ui.h1("ui-purge")
    ui.text_appears("Total\n4")
    ui.button("Purge messages").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.text_appears("Queue ui-purge purged.")
    assert amqp.queue_declare("ui-purge", passive=True).method.message_count == 0
    ui.button("Delete queue").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.h1("Queues")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        amqp.queue_declare("ui-purge", passive=True)


def test_add_a_queue_and_a_binding_and_see_the_apis_error(ui, amqp):
    ui.go("#/queues")
    ui.h1("Queues")
    ui.d.find_element(By.XPATH, "//summary[normalize-space()='Add a new queue']").click()
    panel = ui.d.find_element(By.CSS_SELECTOR, "details.panel")
    ui.type("Name", "ui-added", panel)
    ui.type("Arguments", '{"x-max-length": "many"}', panel)
    ui.button("Add queue", panel).click()
    err = ui.wait(lambda d: panel.find_element(By.CSS_SELECTOR, "[role=alert]"))
    assert "400" not in err.text and "x-max-length" in err.text
    ui.type("Arguments", '{"x-max-length": 10}', panel)
    ui.button("Add queue", panel).click()
    ui.text_appears("Queue ui-added added.")
    ui.wait(lambda d: d.find_elements(By.XPATH, "//tbody//a[normalize-space()='ui-added']"))
    ok = amqp.queue_declare("ui-added", passive=True)
    assert ok.method.message_count == 0
    # bind it to amq.topic from its page
    ui.go("#/queues/%2F/ui-added")
    ui.h1("ui-added")
    bindings = ui.section("Bindings")
    ui.type("From exchange", "amq.topic", bindings)
    ui.type("Routing key", "ui.#", bindings)
    ui.button("Bind", bindings).click()
    ui.text_appears("Bound ui-added to amq.topic.")
    ui.wait(lambda d: bindings.find_elements(
        By.XPATH, ".//tbody//a[normalize-space()='amq.topic']"))
    amqp.basic_publish("amq.topic", "ui.x", b"routed")
    assert amqp.basic_get("ui-added", auto_ack=True)[2] == b"routed"
    ui.button("Unbind", bindings).click()
    ui.text_appears("removed")
    amqp.basic_publish("amq.topic", "ui.x", b"not routed")
    assert amqp.queue_declare("ui-added", passive=True).method.message_count == 0
    amqp.queue_delete("ui-added")


# ---------------------------------------------------------------------- exchanges


def test_exchange_page_binds_publishes_and_unbinds(ui, amqp):
    amqp.exchange_declare("ui-events", "direct")
    amqp.queue_declare("ui-events-q")
    ui.go("#/exchanges")
    ui.h1("Exchanges")
    ui.wait(lambda d: d.find_elements(By.XPATH, "//tbody//a[normalize-space()='ui-events']"))
    # listed by name (the API's default order, as RabbitMQ's page shows them)
    names = [a.text for a in ui.d.find_elements(By.CSS_SELECTOR, "main tbody a")]
    assert names == ["(AMQP default)", "amq.direct", "amq.fanout", "amq.headers", "amq.match",
                     "amq.rabbitmq.trace", "amq.topic", "ui-events"]
    ui.shot("exchanges")
    ui.d.find_element(By.XPATH, "//tbody//a[normalize-space()='ui-events']").click()
    ui.h1("ui-events")
    bindings = ui.section("Bindings")
    ui.type("Name", "ui-events-q", bindings)
    ui.type("Routing key", "created", bindings)
    ui.button("Bind", bindings).click()
    ui.text_appears("Bound ui-events-q to ui-events.")
    pub = ui.section("Publish message")
    ui.type("Routing key", "created", pub)
    ui.type("Payload", "event 1", pub)
    ui.button("Publish message", pub).click()
    ui.text_appears("Message published.")
    assert amqp.basic_get("ui-events-q", auto_ack=True)[2] == b"event 1"
    ui.type("Routing key", "nobody-listens", pub)
    ui.button("Publish message", pub).click()
    ui.text_appears("not routed")
    ui.shot("exchange")
    ui.button("Unbind", bindings).click()
    ui.text_appears("removed")
    ui.wait(lambda d: not bindings.find_elements(By.XPATH, ".//button[normalize-space()='Unbind']"))
    amqp.exchange_delete("ui-events")
    amqp.queue_delete("ui-events-q")


# ---------------------------------------------------------------------- connections, channels


def test_connections_and_channels_show_clients_and_close_one_with_a_reason(ui, broker):
    params = pika.URLParameters(broker.url)
    params.client_properties = {"connection_name": "ui-victim", "product": "ui-test-client"}
    victim = pika.BlockingConnection(params)
    ch = victim.channel()
    ch.basic_qos(prefetch_count=7)
    ch.queue_declare("ui-consumed")
    for _ in range(3):
        ch.basic_publish("", "ui-consumed", b"x")
    got = []
    ch.basic_consume("ui-consumed", lambda c, m, p, b: got.append(m.delivery_tag))
    while len(got) < 3:
        victim.process_data_events(time_limit=0.1)
    ui.go("#/channels")
    ui.h1("Channels")
    row = ui.wait(lambda d: d.find_element(
        By.XPATH, "//tbody/tr[td[normalize-space()='7 per consumer']]"))
    cells = [c.text for c in row.find_elements(By.XPATH, "./th|./td")]
    assert cells[1:3] == ["/", "guest"] and cells[7] == "3"  # vhost, user, unacked
    ui.shot("channels")
    ui.go("#/connections")
    ui.h1("Connections")
    link = ui.wait(lambda d: d.find_element(
        By.XPATH, "//tbody/tr[td[contains(., 'ui-test-client')]]//a"))
    ui.shot("connections")
    link.click()
    ui.h1("Connection")
    ui.text_appears("connection_name\nui-victim")
    ui.type("Reason", "closed by the UI test")
    ui.button("Force close").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.h1("Connections")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(50):
            victim.process_data_events(time_limit=0.1)
    assert closed.value.reply_code == 320
    assert "closed by the UI test" in closed.value.reply_text


# ---------------------------------------------------------------------- admin


def test_create_a_user_give_it_a_vhost_and_log_in_as_it(ui, broker):
    ui.go("#/users")
    ui.h1("Admin: users")
    add = ui.section("Add a user")
    ui.type("Username", "ui-alice", add)
    ui.type("Password", "s3cret-ü", add)
    ui.type("Password (again)", "s3cret-ü", add)
    ui.button("management", add).click()
    ui.button("Add user", add).click()
    ui.text_appears("User ui-alice added.")
    ui.shot("users")
    ui.d.find_element(By.XPATH, "//tbody//a[normalize-space()='ui-alice']").click()
    ui.h1("ui-alice")
    perms = ui.section("Permissions")
    Select(ui.field("Virtual host", perms)).select_by_value("/")
    ui.type("Write regexp", "^ui-", perms)
    ui.button("Set permission", perms).click()
    ui.text_appears("Permissions of ui-alice on / set.")
    ui.wait(lambda d: "^ui-" in perms.text)
    ui.login("ui-alice", "s3cret-ü")
    ui.h1("Overview")
    assert ui.d.find_element(By.CSS_SELECTOR, ".session").text.count("ui-alice") == 1
    # a management user: no Admin link, and the overview still works without node figures
    nav = ui.d.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]")
    assert [a.text for a in nav.find_elements(By.TAG_NAME, "a") if a.is_displayed()] == [
        "Overview", "Connections", "Channels", "Exchanges", "Queues"]
    ui.text_appears("Message rates (per second)")
    # the new user connects over AMQP too
    conn = pika.BlockingConnection(pika.URLParameters(
        broker.url.replace("guest:guest", "ui-alice:s3cret-%C3%BC")))
    conn.close()
    ui.login("guest", "guest")
    ui.go("#/users/ui-alice")
    ui.h1("ui-alice")
    ui.button("Delete user").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.h1("Admin: users")
    ui.wait(lambda d: not d.find_elements(By.XPATH, "//tbody//a[normalize-space()='ui-alice']"))


def test_add_and_delete_a_virtual_host(ui):
    ui.go("#/vhosts")
    ui.h1("Admin: virtual hosts")
    add = ui.section("Add a virtual host")
    ui.type("Name", "ui-vhost", add)
    ui.type("Description", "made in the browser", add)
    ui.button("Add virtual host", add).click()
    ui.text_appears("Virtual host ui-vhost added.")
    # the list is fetched again after the message: wait for the new row
    link = "//tbody//a[normalize-space()='ui-vhost']"
    ui.wait(lambda d: d.find_elements(By.XPATH, link))
    ui.d.find_element(By.XPATH, link).click()
    ui.h1("ui-vhost")
    ui.text_appears("made in the browser")
    # the header's virtual host choice offers it now
    options = [o.text for o in Select(ui.d.find_element(By.ID, "vhost-select")).options]
    assert "ui-vhost" in options
    ui.button("Delete virtual host").click()
    ui.wait(EC.alert_is_present()).accept()
    ui.h1("Admin: virtual hosts")
    ui.wait(lambda d: not d.find_elements(By.XPATH, "//tbody//a[normalize-space()='ui-vhost']"))


def test_import_a_definitions_file_and_export_them_as_a_download(ui, amqp, tmp_path):
    defs = {
        "vhosts": [{"name": "/"}],
        "queues": [{"name": "ui-imported", "vhost": "/", "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 5}}],
        "exchanges": [{"name": "ui-imported-x", "vhost": "/", "type": "fanout", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": "ui-imported-x", "vhost": "/", "destination": "ui-imported",
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    }
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(defs))
    ui.go("#/definitions")
    ui.h1("Admin: definitions")
    imp = ui.section("Import definitions")
    ui.field("Definitions file", imp).send_keys(str(path))
    ui.button("Upload broker definitions", imp).click()
    ui.text_appears("Definitions from definitions.json imported.")
    amqp.basic_publish("ui-imported-x", "", b"through the imported binding")
    assert amqp.basic_get("ui-imported", auto_ack=True)[2] == b"through the imported binding"
    ui.shot("definitions")
    exp = ui.section("Export definitions")
    ui.type("File name", "exported.json", exp)
    ui.button("Download broker definitions", exp).click()
    target = ui.downloads / "exported.json"
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    exported = json.loads(target.read_text())
    assert {"name": "ui-imported", "vhost": "/"}.items() <= next(
        q for q in exported["queues"] if q["name"] == "ui-imported").items()
    # a broken file is refused with the reason
    bad = tmp_path / "broken.json"
    bad.write_text("{nope")
    ui.field("Definitions file", imp).send_keys(str(bad))
    ui.button("Upload broker definitions", imp).click()
    ui.text_appears("broken.json is not JSON")
    amqp.queue_delete("ui-imported")
    amqp.exchange_delete("ui-imported-x")


# ---------------------------------------------------------------------- the page itself


def test_page_structure_serves_keyboard_and_screen_reader_users(ui):
    for hash_, heading in (("#/", "Overview"), ("#/queues", "Queues"),
                           ("#/users", "Admin: users"), ("#/definitions", "Admin: definitions")):
        ui.go(hash_)
        ui.h1(heading)
        ui.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "main section"))
        unlabelled = ui.d.execute_script("""
            return [...document.querySelectorAll('input, select, textarea')]
              .filter(el => el.type !== 'hidden' && el.labels.length === 0
                      && !el.getAttribute('aria-label'))
              .map(el => el.outerHTML);""")
        assert unlabelled == [], heading
        headers_without_scope = ui.d.execute_script("""
            return [...document.querySelectorAll('thead th')].filter(th => !th.scope).length""")
        assert headers_without_scope == 0
        # the page's heading has focus after navigating, for screen readers
        ui.wait(lambda d: d.switch_to.active_element.tag_name == "h1")
        assert ui.d.switch_to.active_element.text == heading
    for landmark in ("header.banner", "nav[aria-label=Main]", "main#main"):
        assert ui.d.find_element(By.CSS_SELECTOR, landmark)
    assert ui.d.find_elements(By.CSS_SELECTOR, "[aria-live]")
    # the first Tab reaches the skip link, which moves focus into the page
    ui.d.refresh()  # a fresh load leaves focus at the top
    ui.h1("Admin: definitions")
    ActionChains(ui.d).send_keys(Keys.TAB).perform()
    assert ui.d.switch_to.active_element.text == "Skip to main content"
    ui.d.switch_to.active_element.send_keys(Keys.ENTER)
    assert ui.d.switch_to.active_element.get_attribute("id") == "main"

