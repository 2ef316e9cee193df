"""Check the kernel-free explorers (:mod:`helpers.figures.html_explorer`) in a headless browser.

Opens a page in headless Chromium with every network request blocked (and recorded), then for
each explorer on the page (or the first ``--max`` of them) checks that

* the heatmap is drawn (the canvas has non-blank pixels and the readout is no longer the
  "needs JavaScript" message);
* changing each of its ``<select>`` controls redraws it: the title text and a hash of the canvas
  pixels both change; the "stretch colours" check box redraws it;
* hovering over a cell, and an arrow key on the focused heatmap, write a readout with a value;
* no JavaScript error is logged (console errors and uncaught exceptions), no network request is
  attempted (anything but ``file:``, ``data:``, ``blob:`` and ``about:`` URLs) and the explorer's
  HTML names no URL.

The page is one of: a built HTML page (``PAGE.html``), an executed notebook (``NB.ipynb``: its
explorer outputs are written into a standalone page first), or, without an argument, a
standalone page holding a synthetic explorer (random matrices, no model needed).

    .venv/bin/python tools/check_explorer.py [PAGE.html|NB.ipynb] [--screenshot PATH] [--keep PATH]

It drives Chromium with Playwright (``pip install playwright``; do *not* run ``playwright
install``: the system browser ``/usr/bin/chromium``, Debian's ``chromium`` package, is used, or
the one named by ``--chromium`` or ``$CHROMIUM``).  Exit status: 0 passed, 1 failed, 2 the browser
or Playwright is not available (the message says which).  The report is printed as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

UNAVAILABLE = 2
ALLOWED_SCHEMES = ("file:", "data:", "blob:", "about:")
URL_PATTERN = re.compile(r"https?://|//cdn", re.I)

_CANVAS_STATE = """(uid) => {
  const root = document.getElementById(uid);
  const c = document.getElementById(uid + "-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let h = 2166136261 >>> 0, ink = 0;
  for (let i = 0; i < d.length; i++) { h = Math.imul(h ^ d[i], 16777619) >>> 0; }
  for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0) { ink++; } }
  return {hash: h, ink: ink, width: c.width, height: c.height,
          draws: parseInt(root.getAttribute("data-draws") || "0", 10),
          title: document.getElementById(uid + "-title").textContent,
          readout: document.getElementById(uid + "-readout").textContent};
}"""


def find_chromium(explicit: str | None = None) -> str | None:
    for cand in (explicit, os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if cand and Path(cand).exists():
            return cand
    return None


def synthetic_page(path: Path) -> Path:
    """A standalone page with two explorers (a sequential one with a lower triangle and coloured
    label groups, and a diverging one), as the chapters make them."""
    import numpy as np

    from helpers.figures.html_explorer import Matrix, matrix_explorer
    rng = np.random.default_rng(0)
    labels = [f"t{i}" for i in range(12)]
    groups = ["a" if i % 3 else "b" for i in range(12)]
    mats = {}
    for m in range(2):
        for layer in range(3):
            for p in range(2):
                x = rng.random((12, 12))
                mats[(m, layer, p)] = Matrix(np.tril(x) / np.tril(x).sum(1, keepdims=True), labels, row_groups=groups)
    first = matrix_explorer({"model": ["m0", "m1"], "layer": range(3), "prompt": ["p0", "p1"]}, mats,
                            lower=True, vmin=0, vmax=1, group_colors={"a": "#1f77b4", "b": "#ff7f0e"},
                            drop_to_fit="prompt", row_axis="query", col_axis="key", name="Synthetic explorer")
    effects = {(h,): Matrix(rng.normal(size=(4, 6)), [f"r{i}" for i in range(4)], [f"c{j}" for j in range(6)])
               for h in range(3)}
    second = matrix_explorer({"head": ["h0", "h1", "h2"]}, effects, scale="diverging", title="effect of {head}")
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>explorers</title></head><body>"
                    + first.html + "<p>between</p>" + second.html + "</body></html>")
    return path


def notebook_page(nb_path: Path, path: Path) -> Path:
    """A standalone page with the explorer outputs (``text/html`` holding ``matrix-explorer``) of
    an executed notebook, as Quarto and the static preview place them."""
    nb = json.loads(Path(nb_path).read_text())
    found = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            h = (out.get("data") or {}).get("text/html")
            if h is None:
                continue
            h = "".join(h) if isinstance(h, list) else h
            if "matrix-explorer" in h:
                found.append(h)
    if not found:
        raise SystemExit(f"{nb_path}: no explorer output (text/html with 'matrix-explorer') found")
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>explorers of "
                    f"{Path(nb_path).name}</title></head><body>" + "<hr>".join(found) + "</body></html>")
    return path


def check_page(page_path: Path, chromium: str, screenshot: str | None = None, max_explorers: int = 4,
               timeout_ms: int = 20000) -> dict:
    from playwright.sync_api import sync_playwright
    report: dict = {"page": str(page_path), "requests_blocked": [], "errors": [], "explorers": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-first-run", "--disable-gpu"])
        try:
            ctx = browser.new_context(viewport={"width": 1200, "height": 1000}, device_scale_factor=1)

            def route(r):
                if r.request.url.startswith(ALLOWED_SCHEMES):
                    r.continue_()
                else:
                    report["requests_blocked"].append(r.request.url)
                    r.abort()
            ctx.route("**/*", route)
            page = ctx.new_page()
            page.on("request", lambda req: None if req.url.startswith(ALLOWED_SCHEMES)
                    else report["requests_blocked"].append(req.url))
            page.on("console", lambda m: report["errors"].append(f"console.{m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: report["errors"].append(f"uncaught: {e}"))
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            uids = page.eval_on_selector_all("div.matrix-explorer", "els => els.map(e => e.id)")
            report["n_explorers"] = len(uids)
            for uid in uids[:max_explorers]:
                report["explorers"].append(_check_explorer(page, uid, timeout_ms))
            if screenshot and uids:
                page.locator(f"#{uids[0]}").screenshot(path=screenshot)
                report["screenshot"] = screenshot
        finally:
            browser.close()
    report["requests_blocked"] = sorted(set(report["requests_blocked"]))
    problems = [f"network request attempted: {u}" for u in report["requests_blocked"]]
    problems += [f"JavaScript error: {e}" for e in report["errors"]]
    if not report["explorers"]:
        problems.append("no explorer (div.matrix-explorer) on the page")
    for ex in report["explorers"]:
        problems += [f"{ex['id']}: {p}" for p in ex["problems"]]
    report["problems"] = problems
    report["passed"] = not problems
    return report


def _check_explorer(page, uid: str, timeout_ms: int) -> dict:
    out: dict = {"id": uid, "problems": [], "controls": []}
    p = out["problems"]
    html = page.eval_on_selector(f"#{uid}", "e => e.outerHTML")
    out["html_bytes"] = len(html.encode())
    if URL_PATTERN.search(html):
        p.append(f"its HTML names a URL: {URL_PATTERN.search(html).group(0)!r}")
    try:
        page.wait_for_function("uid => parseInt(document.getElementById(uid).getAttribute('data-draws') || '0') > 0",
                               arg=uid, timeout=timeout_ms)
    except Exception:  # noqa: BLE001 - reported, not raised
        state = page.evaluate(_CANVAS_STATE, uid)
        p.append(f"never drawn (readout: {state['readout']!r})")
        return out
    state = page.evaluate(_CANVAS_STATE, uid)
    out["initial"] = {k: state[k] for k in ("title", "width", "height", "ink")}
    if state["ink"] == 0:
        p.append("the canvas is blank")
    if "needs JavaScript" in state["readout"]:
        p.append("the readout still says the explorer needs JavaScript")
    selects = page.eval_on_selector_all(f"#{uid} select[data-control]",
                                        "els => els.map(e => [e.id, e.options.length, e.value])")
    for sid, n, value in selects:
        if n < 2:
            continue
        before = page.evaluate(_CANVAS_STATE, uid)
        new = str((int(value) + 1) % n)
        page.select_option(f"#{sid}", value=new)
        try:
            page.wait_for_function("([uid, n]) => parseInt(document.getElementById(uid).getAttribute('data-draws')) > n",
                                   arg=[uid, before["draws"]], timeout=timeout_ms)
        except Exception:  # noqa: BLE001
            p.append(f"changing {sid} did not redraw")
            continue
        after = page.evaluate(_CANVAS_STATE, uid)
        rec = {"select": sid, "to": new, "title": after["title"], "title_changed": after["title"] != before["title"],
               "pixels_changed": after["hash"] != before["hash"]}
        out["controls"].append(rec)
        if not rec["title_changed"]:
            p.append(f"changing {sid} left the title at {before['title']!r}")
        if not rec["pixels_changed"]:
            p.append(f"changing {sid} left the canvas pixels unchanged")
    # the "stretch colours" check box redraws
    before = page.evaluate(_CANVAS_STATE, uid)
    page.click(f"#{uid}-auto")
    try:
        page.wait_for_function("([uid, n]) => parseInt(document.getElementById(uid).getAttribute('data-draws')) > n",
                               arg=[uid, before["draws"]], timeout=timeout_ms)
        out["stretch_pixels_changed"] = page.evaluate(_CANVAS_STATE, uid)["hash"] != before["hash"]
    except Exception:  # noqa: BLE001
        p.append("the stretch check box did not redraw")
    # hover over the bottom-left cell (present in full and lower-triangle matrices)
    box = page.locator(f"#{uid}-canvas").bounding_box()
    geo = page.evaluate("""(uid) => { const c = document.getElementById(uid + '-canvas');
        return [c.clientWidth, c.clientHeight]; }""", uid)
    if box:
        # scan up from the bottom-left until the readout names a value
        for fy in (0.6, 0.5, 0.4, 0.3, 0.7):
            page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * fy)
            text = page.evaluate(_CANVAS_STATE, uid)["readout"]
            if re.search(r": .* -?\d", text):
                out["hover_readout"] = text
                break
        else:
            p.append(f"hovering gave no value readout (canvas {geo}, readout {text!r})")
    # the keyboard: focus the heatmap, move with an arrow key, read a value
    page.mouse.move(0, 0)
    page.focus(f"#{uid}-canvas")
    page.keyboard.press("ArrowUp")
    text = page.evaluate(_CANVAS_STATE, uid)["readout"]
    if re.search(r": .* -?\d", text):
        out["keyboard_readout"] = text
    else:
        p.append(f"the arrow keys gave no value readout ({text!r})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page", nargs="?", help="a built page (.html) or an executed notebook (.ipynb); "
                                            "default: a synthetic explorer page")
    ap.add_argument("--screenshot", help="save a screenshot of the first explorer here (PNG)")
    ap.add_argument("--keep", help="also write the checked standalone page here")
    ap.add_argument("--chromium", help="the Chromium executable (default: $CHROMIUM or /usr/bin/chromium)")
    ap.add_argument("--max", type=int, default=4, help="explorers to check per page (default 4)")
    args = ap.parse_args(argv)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("check_explorer: Playwright is not installed (pip install playwright)", file=sys.stderr)
        return UNAVAILABLE
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("check_explorer: no Chromium found (apt-get install chromium, or --chromium PATH)", file=sys.stderr)
        return UNAVAILABLE
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "explorer.html"
        if args.page is None:
            synthetic_page(target)
        elif args.page.endswith(".ipynb"):
            notebook_page(Path(args.page), target)
        else:
            target = Path(args.page)
        if args.keep:
            shutil.copyfile(target, args.keep)
        try:
            report = check_page(target, chromium, args.screenshot, args.max)
        except Exception as e:  # noqa: BLE001 - a browser that does not start is "unavailable"
            if "launch" in str(e).lower() or "executable" in str(e).lower():
                print(f"check_explorer: Chromium did not start: {e}", file=sys.stderr)
                return UNAVAILABLE
            raise
    print(json.dumps(report, indent=1))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
