"""The sandbox's inbox page in a real browser: headless Chromium driven by Selenium.

A real :class:`anysend.sandbox.Sandbox` takes messages from the real adapters
(``Client(sandbox.providers(), sandbox=sandbox.url)``); the page must render every channel,
follow status changes live (Server-Sent Events, no reload), send replies from its reply box
and show hostile text as text.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; override with ``ANYSEND_CHROMIUM`` / ``ANYSEND_CHROMEDRIVER``) and
``pip install selenium``; it skips, saying which is missing, without them. The full-page
screenshot goes to ``$ANYSEND_TEST_ARTIFACTS/sandbox-inbox.png`` (default
``<repo>/test-artifacts/``).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

CHROMIUM = os.environ.get("ANYSEND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("ANYSEND_CHROMEDRIVER")
    or shutil.which("chromedriver")
    or "/usr/bin/chromedriver"
)
if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
if not os.path.exists(CHROMEDRIVER):
    pytest.skip(
        f"no chromedriver at {CHROMEDRIVER} (Debian: apt-get install chromium-driver)",
        allow_module_level=True,
    )
pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")
for _module in ("aiohttp", "aiosmtpd", "cryptography"):
    pytest.importorskip(
        _module, reason='the sandbox needs its extra: pip install "anysend[sandbox]"'
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import anysend  # noqa: E402
from anysend.sandbox import Sandbox, SandboxMessage  # noqa: E402
from anysend.testing import VirtualClock  # noqa: E402

_T = TypeVar("_T")
WAIT = 10.0  # seconds: the bound on every wait for the page (none of them sleeps)
ANN_EMAIL = "ann@example.com"
ANN_PHONE = "+48600100200"
ANN_TELEGRAM = 424242
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def artifacts_dir() -> Path:
    """Where screenshots go: ``$ANYSEND_TEST_ARTIFACTS`` or ``<repo>/test-artifacts``."""
    configured = os.environ.get("ANYSEND_TEST_ARTIFACTS")
    folder = (
        Path(configured) if configured else Path(__file__).resolve().parents[1] / "test-artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clock() -> VirtualClock:
    """The sandbox's clock: the test decides when callbacks are due."""
    return VirtualClock()


@pytest.fixture(scope="module")
def sandbox(clock: VirtualClock) -> Iterator[Sandbox]:
    """A running sandbox on a free port."""
    with Sandbox(seed=9, delivery_delay=1.0, read_probability=1.0, clock=clock) as box:
        yield box


@pytest.fixture(scope="module")
def ann(sandbox: Sandbox) -> anysend.Recipient:
    """Ann, known to the sandbox: email, phone, Telegram, and a browser subscribed to push."""
    laptop = sandbox.subscription("ann-laptop")
    return sandbox.person(
        "Ann", email=ANN_EMAIL, phone=ANN_PHONE, push=laptop, telegram=ANN_TELEGRAM
    )


@pytest.fixture(scope="module")
def client(sandbox: Sandbox) -> Iterator[anysend.Client]:
    """A client whose real adapters talk to the sandbox."""
    with anysend.Client(sandbox.providers(), sandbox=sandbox.url) as sending:
        yield sending


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium (new headless mode), animations off so screenshots are settled."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the test may run as root (containers, CI)
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--force-prefers-reduced-motion",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def ann_inbox(
    sandbox: Sandbox, client: anysend.Client, browser: WebDriver, ann: anysend.Recipient
) -> Iterator[WebDriver]:
    """Ann received an email, an SMS, a push, a WhatsApp and a Telegram message; inbox open.

    When the module's tests are done, the page (with the replies and statuses they added) is
    saved as ``sandbox-inbox.png`` in the test artefacts.
    """
    sent = [
        client.send(
            anysend.Message(
                subject="Sneakers are back",
                text="Size 42 is back in stock.",
                html=(
                    "<div style='font-family:sans-serif'><h2>Your size is back</h2>"
                    "<p>The <b>Runner 2</b> in size 42 is in stock again.</p>"
                    "<script>document.title = 'scripted'</script></div>"
                ),
            ),
            to=ann,
            via="email",
        ),
        client.send(
            anysend.Message(text="Size 42 is back: 10% off with BACK10"), to=ann, via="sms"
        ),
        client.send(
            anysend.Message(subject="Back in stock", text="The Runner 2 in size 42 is back."),
            to=ann,
            via="push",
        ),
        client.send(
            anysend.Message(text="Hi Ann! Want us to hold a pair for you?"),
            to=ann,
            via="whatsapp",
        ),
        client.send(anysend.Message(text="Your order ships today 📦"), to=ann, via="telegram"),
    ]
    for result in sent:
        result.raise_for_status()
    open_inbox(browser, sandbox, "Ann")
    yield browser
    browser.switch_to.default_content()
    browser.execute_script("window.scrollTo(0, 0)")
    save_full_page(browser, artifacts_dir() / "sandbox-inbox.png")


# ---------------------------------------------------------------------------------- helpers


def wait(driver: WebDriver, condition: Callable[[WebDriver], _T], what: str) -> _T:
    """Wait (bounded) until ``condition`` is truthy; the failure says what never happened."""
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, message=what)


def open_inbox(driver: WebDriver, sandbox: Sandbox, person: str) -> None:
    """Load the page, wait for the live connection, and select ``person``'s inbox."""
    driver.get(sandbox.url + "/")
    wait(driver, lambda d: connection_state(d) == "live", "the event stream to connect")
    button = wait(
        driver,
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'[data-testid="person"][data-person-key="{person}"]'
        ),
        f"{person} in the people list",
    )
    button.click()
    wait(
        driver,
        lambda d: (
            d.find_element(By.ID, "person-name").text == person
            and d.find_elements(By.CSS_SELECTOR, '[data-testid="message"]')
        ),
        f"{person}'s messages",
    )


def connection_state(driver: WebDriver) -> str | None:
    """The page's own view of its event stream: connecting, live, reconnecting, offline."""
    return driver.find_element(By.ID, "connection").get_attribute("data-state")


def panel(driver: WebDriver, thread: str) -> WebElement:
    """The panel of one channel (``email``, ``sms``, ``push``, ``whatsapp``...)."""
    return wait(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f'[data-testid="channel-{thread}"]'),
        f"the {thread} panel",
    )


def message_node(driver: WebDriver, message_id: str) -> WebElement:
    """The element of one message, by the sandbox's id for it."""
    return driver.find_element(
        By.CSS_SELECTOR, f'[data-testid="message"][data-message-id="{message_id}"]'
    )


def shown_status(driver: WebDriver, message_id: str) -> str | None:
    """The status the page shows for a message."""
    node = message_node(driver, message_id)
    return node.find_element(By.CSS_SELECTOR, '[data-testid="message-status"]').get_attribute(
        "data-status"
    )


def only_message(sandbox: Sandbox, channel: str) -> SandboxMessage:
    """The one message the sandbox took on ``channel``."""
    found = [m for m in sandbox.messages() if m.channel == channel and m.direction == "outbound"]
    assert len(found) == 1, found
    return found[0]


def status_in_sandbox(sandbox: Sandbox, message_id: str) -> str:
    """The status the sandbox itself has for a message."""
    return next(m.status for m in sandbox.messages() if m.id == message_id)


def save_full_page(driver: WebDriver, path: Path) -> None:
    """A screenshot of the whole page, not only the window (Chrome DevTools protocol)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    width = int(metrics["cssContentSize"]["width"])
    height = int(metrics["cssContentSize"]["height"])
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


# ---------------------------------------------------------------------------------- tests


def test_every_channel_renders_in_one_inbox(ann_inbox: WebDriver, sandbox: Sandbox) -> None:
    """Email, SMS, push, WhatsApp and Telegram to Ann show in her inbox, each in its own form."""
    driver = ann_inbox
    assert driver.find_element(By.ID, "person-name").text == "Ann"
    addresses = [
        a.text for a in driver.find_elements(By.CSS_SELECTOR, '[data-testid="person-address"]')
    ]
    assert ANN_EMAIL in addresses
    assert ANN_PHONE in addresses

    email = panel(driver, "email")
    assert (
        email.find_element(By.CSS_SELECTOR, '[data-testid="email-subject"]').text
        == "Sneakers are back"
    )
    sent_email = only_message(sandbox, "email")
    assert (
        email.find_element(By.CSS_SELECTOR, '[data-testid="email-from"]').text == sent_email.sender
    )
    frame = email.find_element(By.CSS_SELECTOR, 'iframe[data-testid="email-body"]')
    assert frame.get_attribute("sandbox") == ""  # no scripts, no same origin
    assert "Runner 2" in (frame.get_attribute("srcdoc") or "")
    driver.switch_to.frame(frame)
    try:
        assert "Your size is back" in driver.find_element(By.TAG_NAME, "body").text
        assert driver.title != "scripted"  # the email's own script did not run
    finally:
        driver.switch_to.default_content()

    sms = panel(driver, "sms")
    assert (
        "Size 42 is back: 10% off with BACK10"
        in sms.find_element(By.CSS_SELECTOR, '[data-testid="message-text"]').text
    )
    assert (
        sms.find_element(By.CSS_SELECTOR, '[data-testid="sms-segments"]').text
        == "1 segment · GSM-7"
    )
    assert sms.find_element(By.CSS_SELECTOR, '[data-testid="reply-input"]').is_displayed()

    push = panel(driver, "push")
    assert push.find_element(By.CSS_SELECTOR, '[data-testid="push-title"]').text == "Back in stock"
    assert push.find_element(By.CSS_SELECTOR, '[data-testid="push-body"]').text == (
        "The Runner 2 in size 42 is back."
    )

    whatsapp = panel(driver, "whatsapp")
    bubble = whatsapp.find_element(
        By.CSS_SELECTOR, '[data-testid="message"][data-direction="outbound"]'
    )
    assert bubble.find_element(By.CSS_SELECTOR, '[data-testid="message-text"]').text == (
        "Hi Ann! Want us to hold a pair for you?"
    )
    assert "bubble--theirs" in (bubble.get_attribute("class") or "")

    telegram = panel(driver, "telegram")
    assert telegram.find_element(By.CSS_SELECTOR, '[data-testid="message-text"]').text == (
        "Your order ships today 📦"
    )
    assert telegram.find_elements(By.CSS_SELECTOR, '[data-testid="reply-form-telegram"]')


def test_the_inbox_is_accessible(ann_inbox: WebDriver) -> None:
    """Landmarks, roles and labels are there: screen readers get the same inbox."""
    driver = ann_inbox
    assert driver.find_element(By.CSS_SELECTOR, "nav.people").aria_role == "navigation"
    assert driver.find_element(By.ID, "inbox").aria_role == "main"
    assert driver.find_element(By.ID, "connection").aria_role == "status"
    ann = driver.find_element(By.CSS_SELECTOR, '[data-testid="person"][data-person-key="Ann"]')
    assert ann.get_attribute("aria-current") == "true"
    assert ann.accessible_name.startswith("Ann")
    for thread in ("sms", "whatsapp", "telegram"):
        messages = panel(driver, thread).find_element(By.CSS_SELECTOR, '[data-role="list"]')
        assert messages.aria_role == "log"
        field = panel(driver, thread).find_element(By.CSS_SELECTOR, '[data-testid="reply-input"]')
        assert field.accessible_name.endswith("as the customer")
        send = panel(driver, thread).find_element(By.CSS_SELECTOR, '[data-testid="reply-send"]')
        assert send.accessible_name == "Send reply"
    frame = panel(driver, "email").find_element(By.CSS_SELECTOR, '[data-testid="email-body"]')
    assert frame.accessible_name == "Email: Sneakers are back"
    assert panel(driver, "push").accessible_name == "Push notifications"


def test_status_updates_live_without_a_reload(
    ann_inbox: WebDriver, sandbox: Sandbox, clock: VirtualClock
) -> None:
    """A delivered and then a read callback change the shown status over SSE, no reload."""
    driver = ann_inbox
    whatsapp = only_message(sandbox, "whatsapp")
    assert shown_status(driver, whatsapp.id) == "accepted"
    driver.execute_script("window.__sameDocument = true")

    clock.advance(timedelta(seconds=1))  # the sandbox's delivery_delay
    sandbox.run_due()
    assert status_in_sandbox(sandbox, whatsapp.id) == "delivered"
    wait(driver, lambda d: shown_status(d, whatsapp.id) == "delivered", "delivered on the page")

    clock.advance(timedelta(seconds=1))  # read_probability=1: read one delay later
    sandbox.run_due()
    wait(driver, lambda d: shown_status(d, whatsapp.id) == "read", "read on the page")

    assert driver.execute_script("return window.__sameDocument") is True  # no reload
    status = message_node(driver, whatsapp.id).find_element(
        By.CSS_SELECTOR, '[data-testid="message-status"]'
    )
    assert status.text.endswith("Read")


@pytest.mark.parametrize(
    ("thread", "provider", "text"),
    [
        ("whatsapp", "whatsapp", "Yes, size 42 please"),
        ("sms", "twilio", "Is it in blue too? <b>42</b>"),
    ],
)
def test_reply_box_sends_an_inbound_reply(
    ann_inbox: WebDriver, sandbox: Sandbox, thread: str, provider: str, text: str
) -> None:
    """The reply box of a chat or SMS thread makes an inbound reply in the sandbox and page."""
    driver = ann_inbox
    form = panel(driver, thread).find_element(
        By.CSS_SELECTOR, f'[data-testid="reply-form-{thread}"]'
    )
    form.find_element(By.CSS_SELECTOR, '[data-testid="reply-input"]').send_keys(text)
    form.find_element(By.CSS_SELECTOR, '[data-testid="reply-send"]').click()

    reply = sandbox.wait_for(lambda m: m.direction == "inbound" and m.text == text, timeout=WAIT)
    assert reply.channel == thread
    assert reply.provider == provider
    assert reply.person == "Ann"
    node = wait(driver, lambda d: message_node(d, reply.id), f"the reply in the {thread} thread")
    assert node.get_attribute("data-direction") == "inbound"
    assert "bubble--mine" in (node.get_attribute("class") or "")  # the customer's side
    assert node.find_element(By.CSS_SELECTOR, '[data-testid="message-text"]').text == text
    assert (
        form.find_element(By.CSS_SELECTOR, '[data-testid="reply-input"]').get_attribute("value")
        == ""
    )


def test_a_new_recipient_gets_an_inbox_live(
    ann_inbox: WebDriver, sandbox: Sandbox, client: anysend.Client
) -> None:
    """An SMS to a number nobody declared adds its own inbox to the list, no reload."""
    driver = ann_inbox
    driver.execute_script("window.__sameDocument = true")
    stranger = "+48600300400"
    client.send(
        anysend.Message(text="Your code is 123456"), to=anysend.Recipient(phone=stranger), via="sms"
    ).raise_for_status()
    button = wait(
        driver,
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'[data-testid="person"][data-person-key="{stranger}"]'
        ),
        "the new inbox in the people list",
    )
    assert driver.find_element(By.ID, "person-name").text == "Ann"  # the selection stays
    button.click()
    wait(
        driver,
        lambda d: (
            [e.text for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="message-text"]')]
            == ["Your code is 123456"]
        ),
        "the stranger's inbox",
    )
    assert driver.execute_script("return window.__sameDocument") is True
    open_inbox(driver, sandbox, "Ann")  # back to Ann for the other tests and the screenshot


def test_message_text_is_shown_as_text(
    ann_inbox: WebDriver, sandbox: Sandbox, client: anysend.Client
) -> None:
    """An SMS carrying <script> and <img onerror> arrives live and renders as plain text."""
    driver = ann_inbox
    client.send(
        anysend.Message(text=HOSTILE), to=anysend.Recipient(phone=ANN_PHONE), via="sms"
    ).raise_for_status()
    hostile = next(m for m in sandbox.messages() if m.text == HOSTILE)
    node = wait(driver, lambda d: message_node(d, hostile.id), "the new SMS, without a reload")
    assert node.find_element(By.CSS_SELECTOR, '[data-testid="message-text"]').text == HOSTILE
    assert node.find_elements(By.TAG_NAME, "img") == []
    assert node.find_elements(By.TAG_NAME, "script") == []
    assert driver.execute_script("return window.__pwned === undefined") is True
