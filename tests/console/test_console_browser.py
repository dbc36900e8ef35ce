"""The alarm console in a real browser (Debian's Chromium, headless, driven by Playwright) against
a real Mosquitto, a real gateway process and the gas-leak simulators.

Screenshots land in ``tests/artifacts/`` (kept by CI as test artefacts, not committed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.harness import (
    BROKER_PASSWORD,
    OPERATOR,
    PASSWORD,
    SITE_ID,
    VIEWER,
    ConsoleStack,
    chromium_path,
)
from tests.harness.mosquitto import mosquitto_binary
from tests.harness.paths import ROOT

pytestmark = pytest.mark.integration

playwright_sync = pytest.importorskip("playwright.sync_api")

ARTIFACTS = ROOT / "tests" / "artifacts"
ALARM = "face1-gas/ch4/ch4_face"
ROW = f'tr[data-key="{SITE_ID}/{ALARM}"]'
SCREEN = {"width": 1366, "height": 768}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Records, in the page, when each alarm row first appeared and each state it showed.
WATCH_ROWS = """() => {
  window.__rows = {};
  const note = (tr) => {
    const k = tr.dataset.key; if (!k) return;
    const seen = window.__rows[k] || (window.__rows[k] = {first: Date.now(), states: {}});
    if (!(tr.dataset.state in seen.states)) seen.states[tr.dataset.state] = Date.now();
  };
  document.querySelectorAll('#alarm-rows tr').forEach(note);
  new MutationObserver((muts) => {
    for (const m of muts) {
      const tr = m.target.closest ? m.target.closest('tr') : null;
      if (tr && tr.dataset.key) note(tr);
      m.addedNodes.forEach((n) => { if (n.tagName === 'TR') note(n); });
    }
  }).observe(document.getElementById('alarm-rows'),
             {childList: true, subtree: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _stack(tmp: Path) -> ConsoleStack:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    return ConsoleStack(tmp)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    s = _stack(tmp_path_factory.mktemp("console"))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def login(browser: Any, stack: ConsoleStack, user: str, password: str = PASSWORD) -> Any:
    page = browser.new_page(viewport=SCREEN)
    page.goto(f"{stack.url}/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login")
    return page


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def retained_states(stack: ConsoleStack) -> list[dict[str, Any]]:
    assert stack.recorder is not None
    return [
        doc
        for _, topic, doc, _ in list(stack.recorder.seen)
        if topic == f"{stack.base}/alarms/{ALARM}" and doc is not None
    ]


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout} s")


def test_operator_sees_acknowledges_and_shelves_a_methane_alarm(
    browser: Any, stack: ConsoleStack
) -> None:
    page = login(browser, stack, OPERATOR)
    page.wait_for_selector("#link.live", timeout=10_000)
    page.evaluate(WATCH_ROWS)

    # the methane alarm appears within 1 s of the gateway publishing it
    page.wait_for_selector(ROW, timeout=30_000)
    assert stack.recorder is not None
    published = wait_for(
        lambda: stack.recorder.first("events/alarm", id=ALARM, to="UNACK_ACTIVE")  # type: ignore[union-attr]
    )
    shown_ms = page.evaluate(f"window.__rows['{SITE_ID}/{ALARM}'].first")
    delay_ms = shown_ms - published[0] * 1000
    assert delay_ms < 1000, f"row shown {delay_ms:.0f} ms after the gateway published"
    row = page.locator(ROW)
    assert "甲烷超限" in row.inner_text() and "methane" in row.inner_text()

    # the priority filter hides a priority-2 alarm and shows it again
    if row.get_attribute("class") and "p2" in (row.get_attribute("class") or ""):
        page.select_option("#f-priority", "1")
        row.wait_for(state="hidden", timeout=2_000)
        page.select_option("#f-priority", "")
        row.wait_for(state="visible", timeout=2_000)

    # HH (1.5 %vol, power-off level) makes it priority 1: red, flashing, and a tone
    page.wait_for_selector(f"{ROW}.p1", timeout=30_000)
    assert int(page.get_attribute("body", "data-tones") or 0) >= 1
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "1" and cells[5] == "HH" and cells[1] == "unack"
    value, limit = (float(x) for x in cells[4].split(" / "))
    assert value >= 1.5 and limit == 1.5
    # usable on a 1366×768 screen: no page scrolling, the actions in view
    size = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size[0] <= SCREEN["width"] and size[1] <= SCREEN["height"]
    box = row.locator("button[data-act=ack]").bounding_box()
    assert box is not None and box["x"] + box["width"] <= SCREEN["width"]
    # the gateway's power-off interlock for the face's area: shown, and the alarm learns its area
    page.wait_for_selector("#interlocks li:has-text('POWER OFF')", timeout=10_000)
    assert "face-1" in page.inner_text("#interlocks")
    page.wait_for_selector(f"{ROW} .power-off", timeout=5_000)
    assert "face-1" in row.locator("td").nth(2).inner_text()
    shot(page, "console-unacknowledged.png")

    # acknowledge: the gateway's retained state changes, the page and the journal show who
    row.locator("button[data-act=ack]").click()
    page.wait_for_selector(f"{ROW}[data-state=ACK_ACTIVE]", timeout=10_000)
    assert wait_for(lambda: any(d["state"] == "ACK_ACTIVE" for d in retained_states(stack)))
    ack = wait_for(lambda: stack.recorder.first("events/alarm", id=ALARM, to="ACK_ACTIVE"))  # type: ignore[union-attr]
    assert ack[1]["user"] == OPERATOR
    assert page.locator("#journal li", has_text=f"{OPERATOR} ack").count() >= 1

    # shelve for 15 minutes with a reason
    row.locator("button[data-act=shelve]").click()
    page.fill("#ask-minutes", "15")
    page.fill("#ask-reason", "detector recalibration, gas checked by hand")
    page.click("#ask-ok")
    page.wait_for_selector(f"{ROW}[data-state=SHELVED]", timeout=10_000)
    assert wait_for(lambda: any(d["state"] == "SHELVED" for d in retained_states(stack)))
    command = stack.recorder.first("cmd/alarm/shelve", id=ALARM)
    assert command is not None
    assert (command[1]["user"], command[1]["minutes"]) == (OPERATOR, 15)
    assert command[1]["reason"] == "detector recalibration, gas checked by hand"
    line = page.locator("#journal li", has_text="detector recalibration")
    assert line.count() == 1 and OPERATOR in line.inner_text() and "15 min" in line.inner_text()
    shot(page, "console-shelved.png")
    page.close()


def test_viewer_sees_the_alarm_but_cannot_act(browser: Any, stack: ConsoleStack) -> None:
    page = login(browser, stack, VIEWER)
    page.wait_for_selector(ROW, timeout=30_000)
    assert page.locator(f"{ROW} button").count() == 0
    # the tone's mute toggle is the page's, kept across reloads (a viewer may mute too)
    page.click("#mute")
    assert page.get_attribute("#mute", "aria-pressed") == "true"
    page.reload()
    page.wait_for_selector("#mute[aria-pressed=true]", timeout=5_000)
    assert "view only" in page.locator("#me").inner_text() or "viewer" in page.inner_text("#me")
    before = len(stack.recorder.seen)  # type: ignore[union-attr]
    csrf = page.get_attribute('meta[name="csrf"]', "content")
    reply = page.request.post(
        f"{stack.url}/api/alarm/ack",
        data={"site": SITE_ID, "id": ALARM},
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert reply.status == 403 and "may not act" in reply.json()["error"]
    page.wait_for_selector(f"#journal li.refused:has-text('{VIEWER} ack')", timeout=5_000)
    time.sleep(0.5)
    commands = [t for _, t, _, _ in stack.recorder.seen[before:] if "/cmd/" in t]  # type: ignore[union-attr]
    assert commands == []
    page.close()


def test_wrong_password_is_refused_and_journaled(browser: Any, stack: ConsoleStack) -> None:
    page = login(browser, stack, OPERATOR, password="not the password")
    assert page.url.endswith("/login")
    assert "Wrong user name or password" in page.inner_text("#login-error")
    assert page.goto(f"{stack.url}/").url.endswith("/login")  # no session was made
    page.close()
    page = login(browser, stack, OPERATOR)
    line = page.locator("#journal li.refused", has_text="login")
    line.first.wait_for(timeout=5_000)
    assert "wrong user name or password" in line.first.inner_text()
    page.close()


def test_forged_csrf_token_is_refused(browser: Any, stack: ConsoleStack) -> None:
    page = login(browser, stack, OPERATOR)
    page.wait_for_selector(ROW, timeout=30_000)
    before = len(stack.recorder.seen)  # type: ignore[union-attr]
    for headers in ({"X-CSRF-Token": "forged-token"}, {}):
        reply = page.request.post(
            f"{stack.url}/api/alarm/shelve",
            data={"site": SITE_ID, "id": ALARM, "minutes": 60, "reason": "x"},
            headers=headers,
        )
        assert reply.status == 403 and "CSRF" in reply.json()["error"]
    # the user named in a request is never used: the session's user acts
    page.wait_for_selector(f"#journal li.refused:has-text('{OPERATOR} shelve')", timeout=5_000)
    time.sleep(0.5)
    assert [t for _, t, _, _ in stack.recorder.seen[before:] if "/cmd/" in t] == []  # type: ignore[union-attr]
    page.close()


def test_the_page_never_shows_the_broker_password(browser: Any, stack: ConsoleStack) -> None:
    page = login(browser, stack, OPERATOR)
    page.wait_for_selector("#link.live", timeout=10_000)
    stream = page.evaluate(
        """async () => {
          const reader = (await fetch('/events')).body.getReader();
          const {value} = await reader.read();
          reader.cancel();
          return new TextDecoder().decode(value);
        }"""
    )
    assert '"kind":"snapshot"' in stream
    secrets = (BROKER_PASSWORD, stack.env["HAZARDGW_CONSOLE_SECRET"])
    for text in (page.content(), stream, stack.log("console")):
        assert not any(secret in text for secret in secrets)
    page.close()


def test_broker_restart_marks_the_page_stale_then_rebuilds(browser: Any, tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    stack.broker.extra = f"persistence true\npersistence_location {tmp_path}/\n"
    stack.start()
    try:
        page = login(browser, stack, OPERATOR)
        page.wait_for_selector(ROW, timeout=30_000)
        page.wait_for_selector("#link.live", timeout=10_000)
        stack.broker.stop()
        page.wait_for_selector("#link.down", timeout=3_000)  # at once, not at a keepalive
        assert "BROKER UNREACHABLE" in page.inner_text("#link")
        assert page.locator(ROW).is_visible()  # last known state kept...
        assert "stale-board" in (page.get_attribute("body", "class") or "")  # ...marked stale
        shot(page, "console-broker-down.png")
        stack.broker.start()
        page.wait_for_selector("#link.live", timeout=20_000)
        page.wait_for_selector(ROW, timeout=5_000)
        assert "stale-board" not in (page.get_attribute("body", "class") or "")
        # Ctrl-C stops the console although a page holds its event stream open
        assert stack.stop_process("console") == 0
        page.wait_for_selector("#link.down", timeout=5_000)  # and the page says so
        page.close()
    finally:
        stack.stop()


def test_rescue_maintenance_and_the_area_filter(browser: Any, stack: ConsoleStack) -> None:
    """Open rescues come from the retained ``P/rescue/{device}`` (published here in the
    gateway's record format, gateway/rescue.py; an empty retained payload closes one);
    maintenance is the gateway's own, after a real ``P/cmd/device/maintenance`` command; the
    area filter offers the interlock's area."""
    import paho.mqtt.client as paho

    page = login(browser, stack, OPERATOR)
    page.wait_for_selector(ROW, timeout=30_000)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", stack.broker.port)
    client.loop_start()
    now = int(time.time() * 1000)
    rescue = {
        "ts": now,
        "device": "lift-1",
        "registration_code": "31104403002019000123",
        "maintenance_unit": "Xinmi Lift Service",
        "stages": {"raised": now - 60_000, "acknowledged": now, "arrived": None, "released": None},
        "overdue": ["arrival"],
    }
    device = {"device": "face1-return-gas", "user": "zhao", "minutes": 30, "reason": "calibration"}

    def publish(topic: str, payload: bytes, *, retain: bool) -> None:
        client.publish(f"{stack.base}/{topic}", payload, qos=1, retain=retain).wait_for_publish()

    try:
        publish("rescue/lift-1", json.dumps(rescue).encode(), retain=True)
        publish("cmd/device/maintenance", json.dumps(device).encode(), retain=False)
        page.wait_for_selector("#rescues li:has-text('lift-1')", timeout=5_000)
        text = page.inner_text("#rescues")
        assert "reg. 31104403002019000123" in text and "Xinmi Lift Service" in text
        assert "raised" in text and "acknowledged" in text and "overdue: arrival" in text
        page.wait_for_selector(
            f"#devices li[data-device='{SITE_ID}/face1-return-gas'] .st-maintenance", timeout=5_000
        )
        # the area comes from the interlock that names the alarm among its causes (at HH)
        page.wait_for_selector(f"{ROW} .power-off", timeout=30_000)
        page.select_option("#f-area", "face-1")
        page.wait_for_function(
            """(row) => document.querySelector(row) && [...document.querySelectorAll(
                 '#alarm-rows tr[data-key]')].every((tr) => tr.children[2].textContent.includes(
                 'face-1'))""",
            arg=ROW,
        )
        shot(page, "console-rescue-maintenance.png")
        page.select_option("#f-area", "")
        publish("rescue/lift-1", b"", retain=True)
        page.wait_for_selector("#rescues li:has-text('no open rescue')", timeout=5_000)
    finally:
        publish("rescue/lift-1", b"", retain=True)
        end = {"device": "face1-return-gas", "user": "zhao"}
        publish("cmd/device/maintenance/end", json.dumps(end).encode(), retain=False)
        client.loop_stop()
        client.disconnect()
        page.close()


def test_bad_action_input_is_refused_and_journaled(browser: Any, stack: ConsoleStack) -> None:
    page = login(browser, stack, OPERATOR)
    page.wait_for_selector(ROW, timeout=30_000)
    csrf = page.get_attribute('meta[name="csrf"]', "content") or ""
    cases = [
        ("shelve", {"minutes": 0, "reason": "x"}, 400, "'minutes' must be a number"),
        ("shelve", {"minutes": 30}, 400, "shelve needs a reason"),
        ("out_of_service", {"reason": "  "}, 400, "out of service needs a reason"),
        ("ack", {"id": "no/such/alarm"}, 404, "no active alarm"),
        ("delete", {}, 404, "unknown action"),
    ]
    for verb, extra, status, error in cases:
        reply = page.request.post(
            f"{stack.url}/api/alarm/{verb}",
            data={"site": SITE_ID, "id": ALARM, "user": "someone.else", **extra},
            headers={"X-CSRF-Token": csrf},
        )
        assert (reply.status, error in reply.json()["error"]) == (status, True), reply.json()
    page.wait_for_selector("#journal li.refused:has-text('unknown action')", timeout=5_000)
    assert page.locator("#journal li.refused", has_text="someone.else").count() == 0
    # a command the gateway refuses: its error comes back to the page and into the journal
    for _ in range(2):  # the second ack of one alarm is refused whatever state it was in
        reply = page.request.post(
            f"{stack.url}/api/alarm/ack",
            data={"site": SITE_ID, "id": ALARM},
            headers={"X-CSRF-Token": csrf},
        )
    assert reply.status == 409
    assert reply.json()["ok"] is False
    assert "not awaiting acknowledgement" in reply.json()["error"]
    page.wait_for_selector("#journal li.refused:has-text('not awaiting')", timeout=5_000)
    page.close()
