"""Alarm console under load: 5,000 active alarms across 20 sites, 100 transitions a second.

A real Mosquitto, the console as its own process (``hazardgw console``) and Debian's Chromium
(headless, Playwright) logged in to it. This process plays the gateways: it publishes the
retained alarm states of ``--sites`` × ``--alarms-per-site`` alarms, waits until the page shows
all of them, then changes ``--rate`` alarms a second for ``--seconds`` seconds the way a gateway
does (the new retained state on ``P/alarms/…`` and the transition on ``P/events/alarm``):
acknowledge, re-raise with a new value and time (so the row moves in the sorted list), shelve.

``dom_latency_*_ms`` is measured in the browser: each transition carries a sequence number in
the alarm's message (the page shows it as the title of a rule the packs do not know); a
MutationObserver on the alarm table notes ``Date.now()`` when a row first shows a sequence
number, and the latency is that minus the wall time this process published it (same machine,
same clock). The page keeps only the rows in view in the document, so the latency is taken over
the transitions whose row is in view: the priority-1 ones (a quarter), which sort to the top as
the newest; ``in_view`` counts them and ``missed`` those never shown (a row changed twice within
one frame shows only the second). ``console_cpu_pct`` is the console process's CPU over the
measured window and ``renderer_busy_pct`` the page's main thread (Chromium's TaskDuration), 100
= one core. Prints human lines, then one JSON line last:

    {"alarms", "sites", "transitions", "transitions_per_s", "dom_latency_p50_ms",
     "dom_latency_p99_ms", "dom_latency_max_ms", "in_view", "missed", "console_cpu_pct",
     "renderer_busy_pct", "initial_load_s", "load_1min"}

Usage: benchmarks/console_bench.py [--sites 20] [--alarms-per-site 250] [--rate 100]
                                   [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.topics import Topics, alarm_topic, events_alarm_topic, site_base  # noqa: E402
from tests.harness.mosquitto import Mosquitto  # noqa: E402
from tests.harness.ports import free_port, wait_port  # noqa: E402

PREFIX = "bench"
USER, PASSWORD = "bench.operator", "bench-password-1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Notes, in the page, the first time a row shows each sequence number ("seq N" in its title).
OBSERVE = """() => {
  window.__seen = {};
  const note = (tr) => {
    const cell = tr.querySelector('td.title');
    if (!cell) return;
    const m = /seq (\\d+)/.exec(cell.firstChild ? cell.firstChild.textContent : '');
    if (m && !(m[1] in window.__seen)) window.__seen[m[1]] = Date.now();
  };
  new MutationObserver((muts) => {
    for (const mu of muts) {
      const tr = mu.target.nodeType === 1 ? mu.target.closest('tr') : null;
      if (tr) note(tr);
      mu.addedNodes.forEach((n) => { if (n.tagName === 'TR') note(n); });
    }
  }).observe(document.getElementById('alarm-rows'), {childList: true, subtree: true});
}"""


def alarm_doc(state: str, priority: int, seq: int, value: float, ts_ms: int) -> bytes:
    doc = {
        "ts": ts_ms,
        "state": state,
        "level": "HH" if priority == 1 else "H",
        "priority": priority,
        "value": value,
        "limit": 1.5 if priority == 1 else 1.0,
        "message": f"bench seq {seq}: simulated alarm",
    }
    return json.dumps(doc).encode()


class Gateways:
    """Plays ``sites`` gateways on one paho connection."""

    def __init__(self, port: int, sites: int, per_site: int) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-gateways")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.alarms = [
            (f"site-{s:02d}", f"dev-{a // 10:03d}/p{a % 10}/bench_rule")
            for s in range(sites)
            for a in range(per_site)
        ]
        self.state = dict.fromkeys(self.alarms, "UNACK_ACTIVE")
        self.priority = {key: 1 + i % 4 for i, key in enumerate(self.alarms)}
        self.sites = sorted({site for site, _ in self.alarms})
        self.published: dict[int, float] = {}
        self.top: dict[int, bool] = {}  # sequence number -> its row sorts to the top (priority 1)
        self.seq = 0

    def publish_all(self) -> None:
        now_ms = round(time.time() * 1000)
        for site in self.sites:
            self.client.publish(Topics(PREFIX, site).gateway_status, b'{"online":true}', 1, True)
        for i, key in enumerate(self.alarms):
            self.seq += 1
            payload = alarm_doc("UNACK_ACTIVE", self.priority[key], self.seq, 1.6, now_ms - i)
            topic = alarm_topic(site_base(PREFIX, key[0]), key[1])
            self.client.publish(topic, payload, qos=1, retain=True)

    def transition(self, rng: random.Random) -> None:
        key = rng.choice(self.alarms)
        site, alarm_id = key
        before = self.state[key]
        after = {"UNACK_ACTIVE": "ACK_ACTIVE", "ACK_ACTIVE": "SHELVED"}.get(before, "UNACK_ACTIVE")
        self.state[key] = after
        self.seq += 1
        priority = self.priority[key]
        ts_ms = round(time.time() * 1000)
        payload = alarm_doc(after, priority, self.seq, round(rng.uniform(1.5, 3.0), 3), ts_ms)
        event = json.loads(payload)
        event.update({"type": "transition", "id": alarm_id, "from": before, "to": after})
        self.published[self.seq] = time.time()
        self.top[self.seq] = priority == 1
        base = site_base(PREFIX, site)
        self.client.publish(alarm_topic(base, alarm_id), payload, qos=1, retain=True)
        self.client.publish(events_alarm_topic(base), json.dumps(event).encode(), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_console(work: Path, broker: Mosquitto, port: int) -> subprocess.Popen[bytes]:
    users = work / "users"
    gw = [sys.executable, "-m", "hazardgw", "console"]
    subprocess.run(
        [*gw, "adduser", USER, "--users", str(users), "--password-stdin"],
        input=PASSWORD.encode(),
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "HAZARDGW_CONSOLE_SECRET": "bench-secret-" + "x" * 20}
    proc = subprocess.Popen(
        [
            *(*gw, "--mqtt", broker.url, "--prefix", PREFIX),
            *("--listen", f"127.0.0.1:{port}", "--users", str(users), "--log-level", "WARNING"),
        ],
        stderr=(work / "console.log").open("w"),
        env=env,
        cwd=ROOT,
    )
    wait_port(port, timeout=30)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--alarms-per-site", type=int, default=250)
    ap.add_argument("--rate", type=float, default=100.0, help="transitions per second")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    total = args.sites * args.alarms_per_site
    work = Path(tempfile.mkdtemp(prefix="hazardgw-console-bench-"))
    broker = Mosquitto(work, extra="set_tcp_nodelay true\n").start()
    gateways = Gateways(broker.port, args.sites, args.alarms_per_site)
    gateways.publish_all()
    port = free_port()
    console = start_console(work, broker, port)
    proc = psutil.Process(console.pid)
    rng = random.Random(args.seed)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            t_login = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/login")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_function(
                f"document.getElementById('count').textContent === '{total}'", timeout=120_000
            )
            page.wait_for_selector("#link.live", timeout=30_000)
            initial_load_s = time.monotonic() - t_login
            print(f"page shows {total} alarms {initial_load_s:.1f} s after login")
            page.evaluate(OBSERVE)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            pm0 = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            first_seq = gateways.seq + 1
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.monotonic()
            n = 0
            while (elapsed := time.monotonic() - t0) < args.seconds:
                due = int(elapsed * args.rate)
                while n < due:
                    gateways.transition(rng)
                    n += 1
                time.sleep(max(0.0, t0 + (n + 1) / args.rate - time.monotonic()))
            window = time.monotonic() - t0
            cpu1 = sum(proc.cpu_times()[:2])
            time.sleep(2.0)  # the last transitions reach the page
            seen: dict[str, float] = page.evaluate("window.__seen")
            pm1 = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            renderer_s = pm1["TaskDuration"] - pm0["TaskDuration"]
            browser.close()
    finally:
        gateways.close()
        console.terminate()
        console.wait(10)
        broker.stop()

    in_view = [seq for seq in range(first_seq, gateways.seq + 1) if gateways.top[seq]]
    latencies = [seen[str(q)] - gateways.published[q] * 1000.0 for q in in_view if str(q) in seen]
    missed = len(in_view) - len(latencies)
    lat = np.array(latencies or [np.nan])
    result: dict[str, Any] = {
        "alarms": total,
        "sites": args.sites,
        "transitions": n,
        "transitions_per_s": round(n / window, 1),
        "dom_latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "dom_latency_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "dom_latency_max_ms": round(float(lat.max()), 1),
        "in_view": len(in_view),
        "missed": missed,
        "console_cpu_pct": round(100.0 * (cpu1 - cpu0) / window, 1),
        "renderer_busy_pct": round(100.0 * renderer_s / window, 1),
        "initial_load_s": round(initial_load_s, 2),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(
        f"{n} transitions in {window:.1f} s over {total} alarms: DOM update p50 "
        f"{result['dom_latency_p50_ms']} ms, p99 {result['dom_latency_p99_ms']} ms, "
        f"{len(in_view)} in view, {missed} of them not seen; console CPU "
        f"{result['console_cpu_pct']} %, page's main thread busy {result['renderer_busy_pct']} %"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
