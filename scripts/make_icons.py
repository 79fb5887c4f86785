#!/usr/bin/env python3
"""Renders the page's app icons (home screen, manifest) from camctl/web/static/icon.svg with
Debian's Chromium: icon-180.png (iPhone), icon-192.png and icon-512.png (manifest).

    .venv/bin/python scripts/make_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from tests.harness import chromium_binary

STATIC = Path(__file__).resolve().parent.parent / "camctl" / "web" / "static"


def main() -> None:
    svg = (STATIC / "icon.svg").read_text()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), args=["--no-sandbox"])
        for size in (180, 192, 512):
            page = browser.new_page(viewport={"width": size, "height": size})
            page.set_content(f"<style>*{{margin:0}} svg{{width:{size}px;height:{size}px;display:block}}</style>{svg}")
            page.screenshot(path=str(STATIC / f"icon-{size}.png"), omit_background=True)
            page.close()
        browser.close()
    print("icons written to", STATIC)


if __name__ == "__main__":
    main()
