"""The HTML export in a real browser, opened from disk: pictures load, nothing leaves the folder,
no message can run script.

Chromium (Debian's, as the UI test uses) opens ``index.html`` and every conversation page
through ``file://``. Set ``ETL_EXPORT_SCREENSHOT=path.png`` to keep a screenshot of a
conversation page (``docs/export-conversation.png`` is made this way).
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .test_export import HOSTILE_TEXT, Warehouse, warehouse  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.slow


def _png(width: int, height: int, seed: int) -> bytes:
    """A real PNG (a colour gradient), so the browser decodes it."""
    r0, g0, b0 = (seed * 67) % 256, (seed * 131 + 80) % 256, (seed * 29 + 160) % 256
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw += bytes((r0 // 2 + 110 * x // width, g0 // 2 + 110 * y // height, b0 // 2 + 100 * (x + y) // (width + height)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b"")


def _real_pictures(w: Warehouse) -> int:
    """Give the stored pictures and video previews real image bytes (the generator writes placeholders)."""
    media = (w.artifacts / "media").resolve()
    targets: list[Path] = []
    for (path,) in w.rows("SELECT media_path FROM attachments WHERE media_status = 'stored' AND kind = 'photo'"):
        file = (w.artifacts / path).resolve()
        if file.is_relative_to(media) and file.is_file():  # never a row that points outside the store
            targets.append(file)
    for (path,) in w.rows("SELECT media_path FROM attachments WHERE media_status = 'stored' AND kind = 'video'"):
        targets += sorted(media.glob(Path(path).name.split(".1.")[0] + ".2.*"))
    for i, file in enumerate(sorted(set(targets))):
        file.write_bytes(_png(320 + 8 * (i % 10), 200 + 6 * (i % 7), i))
    return len(targets)


def test_pages_open_from_disk_with_pictures_and_no_script(warehouse: Warehouse, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium (CI installs it): apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    assert _real_pictures(warehouse) > 3
    out = tmp_path / "out"
    done = warehouse.cli("export", str(out), "--format", "html", "--tz", "Europe/Berlin")
    assert done.returncode == 0, done.stderr
    root = out.resolve()
    pages = [root / "index.html", *sorted((root / "conversations").glob("*.html"))]
    hostile_page = next(p for p in pages if "m-9000000000001" in p.read_text(encoding="utf-8"))

    requests: list[str] = []
    dialogs: list[str] = []
    pictures = previews = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            for path in pages:
                page.goto(path.as_uri(), wait_until="load")
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
                )
                for src, complete, width in images:
                    assert complete and width > 0, (path.name, src)
                pictures += len(images)
                previews += sum(" preview." in unquote(src) for src, _, _ in images)
                assert page.evaluate("document.querySelectorAll('script, iframe, object, embed').length") == 0
                assert page.evaluate("document.querySelectorAll('a[href^=\"javascript\"]').length") == 0

            page.goto(hostile_page.as_uri(), wait_until="load")
            message = page.locator("#m-9000000000001")
            assert message.locator(".text").inner_text() == HOSTILE_TEXT
            assert message.locator(".who").inner_text() == '<img src=x onerror="alert(2)">'
            assert page.locator("#m-9000000000004 .text").inner_text() == "click me"
            assert page.locator("#m-9000000000004 a").count() == 0  # its javascript: link is not a link
            page.wait_for_timeout(300)  # time for any handler that might fire

            page.goto((root / "index.html").as_uri(), wait_until="load")
            assert page.locator("tbody tr").count() == len(pages) - 1
            page.locator("tbody tr a").first.click()
            page.wait_for_load_state("load")
            assert page.url.startswith((root / "conversations").as_uri())

            shot_to = os.environ.get("ETL_EXPORT_SCREENSHOT")
            if shot_to:
                _screenshot(page, hostile_page, Path(shot_to))
        finally:
            browser.close()

    assert pictures > 3
    assert previews > 0  # a video's preview picture is shown in place
    assert dialogs == []
    assert requests
    for url in requests:
        assert urlsplit(url).scheme == "file", url
        target = Path(unquote(urlsplit(url).path)).resolve()
        assert target.is_relative_to(root) and target.is_file(), url


def _screenshot(page, conversation_page: Path, target: Path) -> None:
    """A viewport of a conversation page ending with the hostile messages, for the documentation."""
    page.set_viewport_size({"width": 1000, "height": 1250})
    page.goto(conversation_page.as_uri(), wait_until="load")
    top = page.evaluate("document.getElementById('m-9000000000001').getBoundingClientRect().top + window.scrollY")
    page.evaluate("y => window.scrollTo(0, Math.max(0, y - 560))", top)
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
