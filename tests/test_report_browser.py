"""report.html in a real headless Chromium: loads without errors, shows the map and the summary
table, no script runs, and a one-screen screenshot is not blank.

The page is driven over the DevTools protocol with a minimal stdlib WebSocket client (console
errors, exceptions and log errors such as a blocked resource are collected); the screenshot uses
Chromium's own ``--screenshot``. Set ``CITYVITALS_SCREENSHOT=PATH`` to keep the screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import matplotlib.image as mpimg
import numpy as np
import pytest

from engine.report import render_report
from run_fixture import EVIL, fixture_city, write_run

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing (Debian package `chromium`)")


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: text frames, client masking, ping."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _frame(self, opcode: int, data: bytes) -> None:
        n = len(data)
        hdr = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
                                         bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                         bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        body = (np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.sendall(hdr + mask + body)

    def send(self, message: dict) -> None:
        self._frame(0x1, json.dumps(message).encode())

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> dict:
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = (np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
            op = b0 & 0x0F
            if op == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if op == 0x9:
                self._frame(0xA, data)
                continue
            if op in (0x1, 0x0, 0x2):
                parts.append(data)
                if b0 & 0x80:
                    return json.loads(b"".join(parts))

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """One page target: ``call`` a method and wait for its answer; events are kept in ``events``."""

    def __init__(self, ws: WebSocket):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = self.ws.recv()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        for e in self.events:
            if e["method"] == event:
                return e
        while time.monotonic() < end:
            msg = self.ws.recv()
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == event:
                    return msg
        raise TimeoutError(f"no {event} within {timeout} s")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args", []))[:300])
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", "")[:300])
        return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = write_run(tmp_path_factory.mktemp("browser") / "run", days=7, evil=True)
    return render_report(run, fixture_city())


def _chromium(profile: Path, *extra: str, timeout: float = 60.0):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra],
                          capture_output=True, timeout=timeout, text=True)


STATE = """(() => {
    const imgs = [...document.images];
    const map = document.querySelector('img#risk-map');
    const summary = document.querySelector('table#summary-table');
    return {images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
            mapWidth: map ? map.naturalWidth : 0, mapShown: map ? map.getBoundingClientRect().width : 0,
            summaryRows: summary ? summary.rows.length : 0, scripts: document.scripts.length,
            alertRows: document.querySelectorAll('#alerts-table tbody tr').length,
            evilText: document.body.innerText.includes(%s),
            height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth};
})()""" % json.dumps(EVIL)


def load_page(url: str, profile: Path) -> tuple[dict, list[str]]:
    """Open ``url`` in headless Chromium over DevTools; return the page state and the errors seen."""
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "--window-size=1600,1000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None, "chromium exited before opening DevTools"
            assert time.monotonic() < end, "chromium did not open DevTools within 30 s"
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        browser = DevTools(WebSocket(f"ws://127.0.0.1:{port}{path}"))
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        browser.ws.close()
        page = DevTools(WebSocket(f"ws://127.0.0.1:{port}/devtools/page/{target}"))
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        state = page.call("Runtime.evaluate", returnByValue=True, expression=STATE)["result"]["value"]
        time.sleep(0.3)
        page.call("Runtime.evaluate", expression="1")  # collect events that arrived meanwhile
        page.ws.close()
        return state, page.errors()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def test_page_loads_without_errors_and_shows_map_and_summary(report, tmp_path):
    state, errors = load_page(report.as_uri(), tmp_path / "profile")
    assert errors == []
    assert state["images"] == 4 and state["decoded"] == 4
    assert state["mapWidth"] > 400 and state["mapShown"] > 300
    assert state["summaryRows"] >= 10 and state["alertRows"] >= 3
    assert state["scripts"] == 0 and state["evilText"]  # the planted script is text, never a tag
    assert state["width"] <= 1600 and state["height"] <= 1000, f"not one screen: {state['width']}x{state['height']}"


def test_dump_dom_has_the_map_image_and_the_summary_table(report, tmp_path):
    proc = _chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    dom = proc.stdout
    assert '<img id="risk-map"' in dom and 'src="data:image/png;base64,' in dom
    assert '<table class="kv" id="summary-table">' in dom
    assert "<script" not in dom


def test_screenshot_is_a_non_blank_png(report, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1600,1000", report.as_uri())
    assert shot.exists(), "chromium wrote no screenshot"
    img = mpimg.imread(shot)
    assert img.shape[:2] == (1000, 1600)
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.1
    assert len(np.unique((rgb[::7, ::7] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
    keep = os.environ.get("CITYVITALS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def test_the_harness_sees_errors(tmp_path):
    """Guard against a vacuous check: an external image (blocked by the report's CSP) and a
    script error are reported."""
    from engine.report.html import Raw, page

    bad = tmp_path / "bad.html"
    bad.write_text(page("bad", Raw('<img src="http://127.0.0.1:9/x.png">')).replace(
        "</body>", "<script>undefined_function()</script></body>"), encoding="utf-8")
    _, errors = load_page(bad.as_uri(), tmp_path / "profile")
    assert any("Content Security Policy" in e for e in errors), errors
