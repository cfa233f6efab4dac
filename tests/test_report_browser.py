"""report.html in a real browser: headless Chromium loads every figure of an exo-plan and a cross-check report.

The browser is Debian's ``chromium`` (``make test`` installs it with apt-get when it is absent and the
mirror answers); without it, or when it cannot start, the tests skip with the reason. Chromium is driven
over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fds 3 and 4, messages ending in NUL),
so no third-party client is needed: each report is opened in a fresh tab, the page's load event (which
waits for every image to load or fail) is awaited, and every ``<img>``'s ``naturalWidth`` /
``naturalHeight`` is read from the live DOM. The expected sizes come from each PNG's own IHDR header,
read here without the browser.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from experiments.crosschecking.compare import compare_pair
from experiments.crosschecking.report import ReportInputs, write_report
from experiments.crosschecking.verdict import Targets
from tests.test_crosscheck_compare import A_MODEL, A_REFUSED, A_RUNTIME, SERIES, Pair, requests, summary

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not on PATH (`make test` installs Debian's chromium with apt-get when it can; "
    "its output says why it could not)",
)

# the fastest exo-plan run of tests/test_plan_cli.py, cut to one policy and one codec mix
SMALL_PLAN = [
    "hardware=ci_small",
    "phase=256k",
    "phase.name=64k",
    "phase.target_tokens=65536",
    "plan.policies=[lru]",
    "plan.codecs=[int4]",
    "plan.min_sessions=12",
    "plan.sweep_jobs=1",
]
TIMEOUT_S = 30.0
IMAGES = """new Promise(done => {
  if (document.readyState === 'complete') done(); else addEventListener('load', () => done());
}).then(() => JSON.stringify(Array.from(document.images, i => ({
  src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))))"""
"""Once the page has loaded (every image loaded or failed), each <img>'s src and decoded size, as JSON."""


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe; ``close()`` ends it."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child: its fds 3 (commands in) and 4 (replies out)
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = profile / "chromium.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
                 "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile / 'profile'}",
                 "about:blank"],
                pass_fds=(3, 4), preexec_fn=wire_fds, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        """Send one command; return its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def wait(self, match: int | str) -> dict[str, Any]:
        """The reply to command ``match`` (an id) or the next event named ``match``; raise RuntimeError
        with the browser's log when it answers with an error, closes the pipe or takes over TIMEOUT_S."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if message.get("id") == match or message.get("method") == match:
                    if "error" in message:
                        raise RuntimeError(f"chromium answered {message['error']}")
                    return message
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0.0))
            chunk = os.read(self._from_browser, 1 << 16) if ready else b""
            if not chunk:
                why = "closed its pipe" if ready else f"did not answer within {TIMEOUT_S:.0f} s"
                raise RuntimeError(f"chromium {why}: {self.log.read_text(errors='replace')[-1500:]}")
            self._buffer += chunk

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and return its result."""
        result: dict[str, Any] = self.wait(self.send(method, params, session))["result"]
        return result

    def images(self, page: Path) -> list[dict[str, Any]]:
        """Open ``page`` in a fresh tab; once loaded, every <img>'s src, complete flag and natural size."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            self.call("Page.enable", session=session)
            self.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
            self.wait("Page.loadEventFired")
            value = self.call("Runtime.evaluate", {"expression": IMAGES, "awaitPromise": True,
                                                   "returnByValue": True}, session)["result"]["value"]
        finally:
            self.call("Target.closeTarget", {"targetId": target})
        images: list[dict[str, Any]] = json.loads(value)
        return images

    def close(self) -> None:
        """Ask the browser to quit; kill it if it has not within 10 s."""
        try:
            self.send("Browser.close")
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(10)
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height in pixels, from its IHDR chunk (bytes 16-24, big-endian)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def figures_in(markdown: str) -> list[str]:
    """The figure files report.md links, in order."""
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", markdown)


def figure_problems(browser: Chromium, report: Path) -> list[str]:
    """What is wrong with report.html's figures in Chromium: a figure report.md names that is not an <img>
    (or the reverse), or an <img> not decoded at its PNG's size (0 x 0 when it failed to load)."""
    expected = figures_in((report.parent / "report.md").read_text())
    assert expected, f"{report.parent / 'report.md'} names no figure"
    images = browser.images(report)
    problems = [] if [i["src"] for i in images] == expected else [f"<img> {[i['src'] for i in images]} != {expected}"]
    for image in images:
        shown = (image["width"], image["height"])
        if not image["complete"] or shown == (0, 0):
            problems.append(f"{image['src']}: not loaded")
        elif shown != png_size(report.parent / image["src"]):
            problems.append(f"{image['src']}: {shown} in the browser, {png_size(report.parent / image['src'])} in the file")
    return problems


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    assert CHROMIUM is not None
    home = tmp_path_factory.mktemp("chromium")
    try:
        chromium = Chromium(CHROMIUM, home)
        chromium.call("Browser.getVersion")
    except (OSError, RuntimeError) as e:
        pytest.skip(f"chromium could not start: {e}")
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def plan_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "run"
    proc = subprocess.run(["exo-plan", *SMALL_PLAN, f"hydra.run.dir={out}"], cwd=out.parent,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "report.html"


def test_every_figure_of_a_plan_report_loads(browser: Chromium, plan_report: Path) -> None:
    assert figure_problems(browser, plan_report) == []


def test_every_figure_of_a_crosscheck_report_loads(browser: Chromium, tmp_path: Path) -> None:
    # the hand-made results of tests/test_crosscheck_compare.py: the report exo-crosscheck writes, without its runs
    wide = [0.002 * 3**i for i in range(8)]
    pairs = [
        Pair("zipf", summary(11.0), SERIES, requests(A_MODEL, A_REFUSED), summary(10.0), SERIES.copy(),
             requests(A_RUNTIME, A_REFUSED, queue_s=[0.1] * 6, load_s=[0.2] * 6), [10.2, 10.0, 9.7]),
        Pair("agents", summary(9.0, requests=8), SERIES, requests([t * 1.1 for t in wide]),
             summary(10.0, requests=8), SERIES.copy(), requests(wide), [10.0]),
    ]
    inputs = ReportInputs(suite="unit", host=SimpleNamespace(profile="crosscheck", calibration=None),  # type: ignore[arg-type]
                          pairs=pairs, targets=Targets(), load_before=(0.5, 0.4, 0.3),  # type: ignore[arg-type]
                          load_after=(0.6, 0.5, 0.4), elapsed_s=12.0, cpus=2)
    _, html = write_report([compare_pair(p) for p in pairs], inputs, tmp_path)  # type: ignore[arg-type]
    assert figure_problems(browser, html) == []


def test_a_missing_or_broken_figure_is_caught(browser: Chromium, plan_report: Path, tmp_path: Path) -> None:
    # the check has teeth: the same report with one figure gone and one cut short fails it
    for f in plan_report.parent.glob("*.png"):
        shutil.copy(f, tmp_path / f.name)
    for name in ("report.html", "report.md"):
        shutil.copy(plan_report.parent / name, tmp_path / name)
    names = figures_in((tmp_path / "report.md").read_text())
    gone, cut = names[0], names[-1]
    (tmp_path / gone).unlink()
    (tmp_path / cut).write_bytes((plan_report.parent / cut).read_bytes()[:24])  # the header only, no pixels
    assert figure_problems(browser, tmp_path / "report.html") == [f"{gone}: not loaded", f"{cut}: not loaded"]
