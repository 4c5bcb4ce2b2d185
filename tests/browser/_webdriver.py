"""A minimal W3C WebDriver client for chromedriver (no selenium needed): start Debian's
chromedriver with headless Chromium, open pages, find elements, click, type, read text,
take screenshots."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1000",
]


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) when both are installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class Browser:
    """One chromedriver process and one headless Chromium session."""

    def __init__(self, chromium: str, chromedriver: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self._profile = tempfile.TemporaryDirectory(prefix="amlproxy-chromium-")
        self._driver = subprocess.Popen([chromedriver, f"--port={port}"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._base = f"http://127.0.0.1:{port}"
        try:
            self._wait_ready()
            args = [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}"]
            capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
                "binary": chromium, "args": args}}}
            session = self._call("POST", "/session", {"capabilities": capabilities})
            self._session = f"/session/{session['sessionId']}"
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise TimeoutError("chromedriver did not start")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())["value"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read()[:500]!r}") from None

    # ---------------------------------------------------------------- the session
    def open(self, url: str) -> None:
        self._call("POST", f"{self._session}/url", {"url": url})

    def find(self, css: str) -> str:
        found = self._call("POST", f"{self._session}/element",
                           {"using": "css selector", "value": css})
        return str(found[ELEMENT])

    def find_all(self, css: str) -> list[str]:
        found = self._call("POST", f"{self._session}/elements",
                           {"using": "css selector", "value": css})
        return [str(item[ELEMENT]) for item in found]

    def click(self, css: str) -> None:
        self._call("POST", f"{self._session}/element/{self.find(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self._call("POST", f"{self._session}/element/{element}/clear", {})
        self._call("POST", f"{self._session}/element/{element}/value", {"text": text})

    def upload(self, css: str, path: Path) -> None:
        """Chooses ``path`` in a file input (WebDriver types the path into it)."""
        self._call("POST", f"{self._session}/element/{self.find(css)}/value",
                   {"text": str(path)})

    def text(self, css: str) -> str:
        return str(self._call("GET", f"{self._session}/element/{self.find(css)}/text"))

    def run(self, script: str, *args: Any) -> Any:
        return self._call("POST", f"{self._session}/execute/sync",
                          {"script": script, "args": list(args)})

    def wait_text(self, css: str, predicate: Any, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text(css)
            if predicate(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", f"{self._session}/screenshot")))

    def close(self) -> None:
        try:
            if getattr(self, "_session", None):
                self._call("DELETE", self._session)
        finally:
            self._driver.terminate()
            try:
                self._driver.wait(10)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()
            self._profile.cleanup()
