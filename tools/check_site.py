"""Open every page of a built site in headless Chromium with the network off, and take screenshots.

For each ``*.html`` page under SITE (the static preview ``_build/<profile>/preview`` or Quarto's
``_build/<profile>/_book``) it records every request the page attempts that would leave the
machine (anything but ``file:``, ``data:``, ``blob:`` and ``about:``: all are blocked), JavaScript
errors (console errors and uncaught exceptions), images that failed to load, MathML elements, and
links to local files that do not exist.  It exits 1 when any page attempted a network request, had
a JavaScript error, a broken image or a dead local link.

    .venv/bin/python tools/check_site.py _build/quick/preview [--shots DIR] [--pages index.html ...]

``--shots DIR`` writes a 1280 x 900 screenshot of the top of each page named by ``--pages``
(default: every page), and, for a page holding a kernel-free explorer, one of the explorer.  It
drives the system's Chromium with Playwright, as ``tools/check_explorer.py`` does (exit 2 when
either is missing).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_explorer import ALLOWED_SCHEMES, UNAVAILABLE, find_chromium  # noqa: E402

_PAGE_FACTS = """() => ({
  mathml: document.querySelectorAll('math').length,
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  explorers: Array.from(document.querySelectorAll('canvas')).map(c => c.id),
})"""


def check(site: Path, shots: Path | None, only: list[str] | None, chromium: str | None) -> dict:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("Playwright is not installed (pip install playwright; do not run `playwright install`)")
        sys.exit(UNAVAILABLE)
    exe = find_chromium(chromium)
    if exe is None:
        print("no Chromium found (Debian: apt-get install chromium)")
        sys.exit(UNAVAILABLE)
    pages = sorted(site.rglob("*.html"))
    pages = [p for p in pages if "site_libs" not in p.parts]
    report: dict = {"site": str(site), "pages": {}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        for path in pages:
            rel = path.relative_to(site).as_posix()
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page = ctx.new_page()
            attempted, errors = [], []

            def route(r, attempted=attempted):
                if r.request.url.startswith(ALLOWED_SCHEMES):
                    return r.continue_()
                attempted.append(r.request.url)
                return r.abort()
            page.route("**/*", route)
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(path.resolve().as_uri())
            page.wait_for_timeout(400)
            facts = page.evaluate(_PAGE_FACTS)
            dead = []
            for href in facts["links"]:
                u = urlparse(href)
                if u.scheme == "file" and not Path(unquote(u.path)).exists():
                    dead.append(href)
            report["pages"][rel] = {"network_requests": attempted, "js_errors": errors, "mathml": facts["mathml"],
                                    "images": len(facts["images"]),
                                    "broken_images": [i["src"] for i in facts["images"] if not i["ok"]],
                                    "dead_links": sorted(set(dead)), "explorers": len(facts["explorers"])}
            if shots is not None and (only is None or rel in only):
                shots.mkdir(parents=True, exist_ok=True)
                stem = rel.replace("/", "_").removesuffix(".html")
                page.screenshot(path=str(shots / f"{stem}.png"))
                if facts["explorers"]:
                    el = page.locator("canvas").first
                    el.scroll_into_view_if_needed()
                    page.wait_for_timeout(200)
                    box = page.locator(f"#{facts['explorers'][0]}").locator("xpath=ancestor::div[1]/..")
                    (box if box.count() else el).first.screenshot(path=str(shots / f"{stem}-explorer.png"))
            ctx.close()
        browser.close()
    bad = {k: v for k, v in report["pages"].items()
           if v["network_requests"] or v["js_errors"] or v["broken_images"] or v["dead_links"]}
    report["passed"] = not bad
    report["problems"] = bad
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", type=Path)
    ap.add_argument("--shots", type=Path, default=None)
    ap.add_argument("--pages", nargs="*", default=None)
    ap.add_argument("--chromium", default=None)
    args = ap.parse_args(argv)
    report = check(args.site, args.shots, args.pages, args.chromium)
    summary = {k: {kk: (len(vv) if isinstance(vv, list) else vv) for kk, vv in v.items()}
               for k, v in report["pages"].items()}
    print(json.dumps({"passed": report["passed"], "pages": summary, "problems": report["problems"]}, indent=1))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
