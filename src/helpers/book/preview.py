"""The book without Quarto: a static, fully offline preview of a build folder.

:func:`preview_site` reads the build folder's ``_quarto.yml`` (``book.chapters`` and
``book.appendices``: ``.qmd`` pages and executed ``.ipynb`` notebooks) and writes one HTML page per
entry into ``<build>/preview/``, with what a reader of Quarto's book expects, plainer:

* a sidebar with the book's title and every page, prev/next links on each page;
* numbered chapters ("3  Ablating every head"; ``index.qmd`` and ``{.unnumbered}`` pages get no
  number; appendices are lettered), numbered sections, figures ("Figure 3.2: caption", with
  "(a) subcaption" under each image of a ``fig-subcap`` cell), tables ("Table 3.1") and
  equations;
* cross-references (``@fig-x``, ``@sec-x``, ``@tbl-x``, ``@eq-x``) resolved across the book (an
  unknown label shows as ``?@fig-x`` as in Quarto and is listed in ``site.unresolved``);
  citations (``[@key]``, ``[@a; @b]``, ``@key``) from the bibliography that ``_quarto.yml``
  names, with the cited entries listed where a page has the ``::: {#refs}`` div, else at the end
  of the last page;
* Quarto's Markdown syntax translated or stripped (heading attributes, callouts and other fenced
  divs, bracketed spans, shortcodes, YAML front matter); math as MathML (``latex2mathml``), which
  browsers draw with no script;
* code cells as Quarto shows them with ``code-fold: true`` (``echo: false``, ``include: false``,
  ``output: false`` and the ``remove-*`` tags honoured; ``#|`` option lines removed); papermill's
  injected parameters as one line under the chapter's title.

No page names any external resource: images are embedded as data URIs, the style sheet is inline,
and there is no script but what the chapters' own HTML outputs carry.
"""
from __future__ import annotations

import ast
import base64
import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from helpers.book.chapters import cell_options

PREVIEW_DIR = "preview"
_CROSSREF_KINDS = {"fig": "Figure", "tbl": "Table", "eq": "Equation", "sec": "Section"}
_CALLOUTS = {"note": "Note", "warning": "Warning", "important": "Important", "tip": "Tip",
             "caution": "Caution"}
_WIDGET = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# placeholders: rendered HTML (\ue000 n \ue001) and verbatim source (\ue002 n \ue003)
_TOKEN = re.compile("\ue000(\\d+)\ue001")
_VERBATIM = re.compile("\ue002(\\d+)\ue003")
_KEY = r"[A-Za-z0-9_](?:[\w:.#$%&+?<>~/-]*[\w])?"
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*(?:\{([^{}]*)\})?[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")
_DIV_OPEN = re.compile(r"^[ \t]{0,3}(:{3,})[ \t]*(\{[^}]*\}|[\w-]+)[ \t]*:*[ \t]*$")
_DIV_CLOSE = re.compile(r"^[ \t]{0,3}(:{3,})[ \t]*$")


class PreviewSite(type(Path())):
    """The preview's folder (a :class:`~pathlib.Path`) with what the preview could not resolve:
    ``unresolved`` lists each unknown cross-reference or citation as ``"@fig-x (page.html)"``."""
    unresolved: list[str] = []


def preview_site(build: Path) -> PreviewSite:
    """Write the static preview of the build folder `build` into ``<build>/preview/`` (replacing
    its pages) and return that folder; its ``unresolved`` attribute lists the cross-references and
    citations that no label or bibliography entry matched (shown as ``?@label`` in the pages)."""
    build = Path(build)
    book = _Book(build)
    site = PreviewSite(build / PREVIEW_DIR)
    site.mkdir(parents=True, exist_ok=True)
    for old in site.glob("*.html"):
        old.unlink()
    for page, text in book.render():
        (site / page.file).write_text(text, encoding="utf-8")
    downloads = build / "downloads"
    if downloads.is_dir():
        shutil.rmtree(site / "downloads", ignore_errors=True)
        shutil.copytree(downloads, site / "downloads")
    site.unresolved = book.unresolved
    return site


# ---- the bibliography ---------------------------------------------------------------------------

_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "c": "\u0327",
            "=": "\u0304", "v": "\u030c", "u": "\u0306", "H": "\u030b", ".": "\u0307"}
_LATEX_WORDS = {"ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "aa": "å", "AA": "Å", "l": "ł",
                "L": "Ł", "i": "ı"}


def _delatex(s: str) -> str:
    """Bib field text as plain Unicode: common accents, dashes, ties and escapes; braces dropped."""
    import unicodedata

    def accent(m):
        return unicodedata.normalize("NFC", m.group(2) + _ACCENTS[m.group(1)])
    s = re.sub(r"\\([\"'`^~c=vuH.])\s*\{?\s*([A-Za-z])\}?", accent, s)
    s = re.sub(r"\\(ss|ae|AE|aa|AA|o|O|l|L|i)\b", lambda m: _LATEX_WORDS[m.group(1)], s)
    s = re.sub(r"\\(?:emph|textit|textbf|textrm|texttt|mathrm)\s*", "", s)
    s = s.replace("---", "\u2014").replace("--", "\u2013").replace("~", "\u00a0")
    s = re.sub(r"\\([&%$#_{}])", r"\1", s)
    s = s.replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", s).strip()


def parse_bib(text: str) -> dict[str, dict[str, str]]:
    """``{key: {"type": ..., field: raw value}}`` of a BibTeX file, tolerantly: ``{...}``, ``"..."``
    and bare values, ``#`` concatenation; ``@comment``, ``@string`` and ``@preamble`` skipped; an
    entry it cannot read ends at the next ``@``."""
    out: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"@(\w+)\s*[{(]\s*([^,\s{}()]+)\s*,", text):
        kind = m.group(1).lower()
        if kind in ("comment", "string", "preamble"):
            continue
        fields: dict[str, str] = {"type": kind}
        i, n = m.end(), len(text)
        while i < n:
            f = re.compile(r"\s*,?\s*([\w-]+)\s*=\s*").match(text, i)
            if not f:
                break
            name, i = f.group(1).lower(), f.end()
            parts = []
            while i < n:
                if text[i] == "{":
                    depth, j = 0, i
                    while j < n:
                        depth += {"{": 1, "}": -1}.get(text[j], 0)
                        if depth == 0:
                            break
                        j += 1
                    parts.append(text[i + 1:j])
                    i = j + 1
                elif text[i] == '"':
                    j = i + 1
                    depth = 0
                    while j < n and not (text[j] == '"' and depth == 0 and text[j - 1] != "\\"):
                        depth += {"{": 1, "}": -1}.get(text[j], 0)
                        j += 1
                    parts.append(text[i + 1:j])
                    i = j + 1
                else:
                    b = re.compile(r"[^,}#\s]+").match(text, i)
                    if b:
                        parts.append(b.group(0))
                        i = b.end()
                c = re.compile(r"\s*#\s*").match(text, i)
                if not c:
                    break
                i = c.end()
            fields[name] = "".join(parts)
        out.setdefault(m.group(2), fields)
    return out


def _names(field_value: str) -> list[tuple[str, str]]:
    """``[(last, first)]`` of a BibTeX name list (``and`` at brace depth 0)."""
    parts, depth, cur = [], 0, ""
    tokens = re.split(r"(\s+and\s+|[{}])", field_value)
    for t in tokens:
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
        if depth == 0 and re.fullmatch(r"\s+and\s+", t or ""):
            parts.append(cur)
            cur = ""
        else:
            cur += t or ""
    parts.append(cur)
    names = []
    for p in (p.strip() for p in parts if p.strip()):
        if p.startswith("{") and p.endswith("}") and p.count("{") == 1:
            names.append((_delatex(p), ""))                  # {Corporate Author}
        elif "," in p:
            last, first = p.split(",", 1)
            names.append((_delatex(last), _delatex(first)))
        else:
            words = p.split()
            names.append((_delatex(words[-1]), _delatex(" ".join(words[:-1]))))
    return names


@dataclass
class _Ref:
    key: str
    fields: dict[str, str]
    authors: list[tuple[str, str]]
    year: str
    label: str = ""                                     # "Lin", "Prakash et al."

    @property
    def sort_key(self):
        return ([a[0].lower() for a in self.authors], self.year, self.key)


def _bibliography(fields_by_key: dict[str, dict[str, str]]) -> dict[str, _Ref]:
    refs = {}
    for key, f in fields_by_key.items():
        authors = _names(f.get("author") or f.get("editor") or "")
        year = _delatex(f.get("year") or (f.get("date") or "")[:4]) or "n.d."
        lasts = [a[0] for a in authors]
        if not lasts:
            label = _delatex(f.get("title", key))
        elif len(lasts) == 1:
            label = lasts[0]
        elif len(lasts) == 2:
            label = f"{lasts[0]} and {lasts[1]}"
        else:
            label = f"{lasts[0]} et al."
        refs[key] = _Ref(key, f, authors, year, label)
    # the same author label and year: 2024a, 2024b in the order of the keys' titles
    groups: dict[tuple[str, str], list[_Ref]] = {}
    for r in refs.values():
        groups.setdefault((r.label, r.year), []).append(r)
    for same in groups.values():
        if len(same) > 1:
            for letter, r in zip("abcdefghijklmnopqrstuvwxyz", sorted(same, key=lambda r: r.fields.get("title", ""))):
                r.year += letter
    return refs


def _reference_html(r: _Ref) -> str:
    f = {k: _delatex(v) for k, v in r.fields.items()}
    e = html.escape
    names = [(f"{last}, {first}" if i == 0 and first else f"{first} {last}" if first else last)
             for i, (last, first) in enumerate(r.authors)]
    who = (names[0] if len(names) == 1 else ", ".join(names[:-1]) + (", and " if len(names) > 2 else " and ")
           + names[-1]) if names else ""
    out = f"{e(who)}. " if who else ""
    out += f"{e(r.year)}. "
    title = f.get("title", "")
    venue = f.get("journal") or f.get("booktitle")
    if venue or r.fields.get("type") in ("article", "inproceedings", "incollection"):
        out += f"\u201c{e(title)}.\u201d "
        if venue:
            out += ("In " if f.get("booktitle") and not f.get("journal") else "") + f"<em>{e(venue)}</em>"
            if f.get("volume"):
                out += f" {e(f['volume'])}"
            if f.get("number"):
                out += f" ({e(f['number'])})"
            if f.get("pages"):
                out += f": {e(f['pages'])}" if f.get("volume") else f", {e(f['pages'])}"
            out += ". "
    elif title:
        out += f"<em>{e(title)}</em>. "
        if f.get("publisher"):
            out += f"{e(f['publisher'])}. "
    links = []
    if f.get("doi"):
        links.append(f'<a href="https://doi.org/{e(f["doi"])}">doi:{e(f["doi"])}</a>')
    if f.get("eprint") and (f.get("archiveprefix", "").lower() == "arxiv" or f.get("eprinttype", "").lower() == "arxiv"):
        links.append(f'<a href="https://arxiv.org/abs/{e(f["eprint"])}">arXiv:{e(f["eprint"])}</a>')
    elif f.get("url"):
        links.append(f'<a href="{e(f["url"])}">{e(f["url"])}</a>')
    out += " ".join(links)
    return out.strip()


# ---- the book -----------------------------------------------------------------------------------

@dataclass
class _Page:
    source: Path
    file: str                      # the HTML file's name
    part: str | None = None        # the sidebar heading above it
    appendix: bool = False
    title: str = ""                # Markdown
    number: str | None = None      # "3", "A" or None (unnumbered)
    refs_div: bool = False
    sections: list[tuple[str, str]] = field(default_factory=list)   # (id, title html) of ## headings
    front: dict = field(default_factory=dict)
    text: str | None = None        # the Markdown of a page that has no file (a generated index)

    def read(self) -> str:
        return self.text if self.text is not None else self.source.read_text(encoding="utf-8")


def _front_matter(text: str) -> tuple[dict, str]:
    m = re.match(r"\A\ufeff?---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", text, re.S)
    if not m:
        return {}, text
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), text[m.end():]


def _code_free_lines(text: str):
    """The lines of Markdown `text` outside fenced code blocks."""
    fence = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(2)
        elif fence is not None and m and m.group(2).startswith(fence) and not m.group(3).strip():
            fence = None
        elif fence is None:
            yield line


def _attrs(spec: str | None) -> tuple[str | None, list[str], dict[str, str]]:
    """``(id, classes, key=value attributes)`` of a Pandoc attribute block's inside."""
    ident, classes, kv = None, [], {}
    for m in re.finditer(r'([\w-]+)=("[^"]*"|\'[^\']*\'|\S+)|#([\w:.-]+)|\.([\w-]+)', spec or ""):
        if m.group(1):
            kv[m.group(1)] = m.group(2).strip("\"'")
        elif m.group(3):
            ident = m.group(3)
        else:
            classes.append(m.group(4))
    return ident, classes, kv


def _slug(text: str) -> str:
    s = re.sub(r"<[^>]+>", "", text).lower()
    s = re.sub(r"[^\w\s.-]", "", s)
    s = re.sub(r"\s+", "-", s.strip())
    s = re.sub(r"^[^a-z]+", "", s)
    return s or "section"


_RELATIVE_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]+)(")')


class _Book:
    def __init__(self, build: Path):
        self.build = build
        conf_file = build / "_quarto.yml"
        conf = (yaml.safe_load(conf_file.read_text()) or {}) if conf_file.exists() else {}
        book = conf.get("book") or {}
        self.title = str(book.get("title") or "Book")
        self.subtitle = str(book.get("subtitle") or "")
        html_format = ((conf.get("format") or {}).get("html") or {}) if isinstance(conf.get("format"), dict) else {}
        self.code_fold = html_format.get("code-fold", True)
        self.code_summary = str(html_format.get("code-summary") or "Code")
        bib = conf.get("bibliography") or book.get("bibliography") or "references.bib"
        bib_files = bib if isinstance(bib, list) else [bib]
        fields: dict[str, dict[str, str]] = {}
        for b in bib_files:
            if (build / b).exists():
                fields.update(parse_bib((build / b).read_text(encoding="utf-8")))
        self.refs = _bibliography(fields)
        if conf_file.exists():
            entries = [(e, False) for e in book.get("chapters") or []]
            entries += [(e, True) for e in book.get("appendices") or []]
        else:                                             # no _quarto.yml: what the folder has
            entries = [(n, False) for n in ("index.qmd", "scorecard.qmd") if (build / n).exists()]
            entries += [(str(p.relative_to(build)), False) for p in sorted((build / "chapters").glob("*.ipynb"))]
        self.pages: list[_Page] = []
        self.missing: list[str] = []
        used: set[str] = set()
        for entry, appendix in entries:
            part, items = None, [entry]
            if isinstance(entry, dict):
                part = entry.get("part")
                items = list(entry.get("chapters") or [])
                if part and str(part).endswith((".qmd", ".md")):
                    items.insert(0, part)
                    part = None
            for item in items:
                src = build / str(item)
                if not src.exists():
                    self.missing.append(str(item))
                    continue
                name = "index" if str(item) == "index.qmd" else src.stem
                file, k = f"{name}.html", 1
                while file in used:
                    k += 1
                    file = f"{name}-{k}.html"
                used.add(file)
                self.pages.append(_Page(src, file, part=part, appendix=appendix))
                part = None
        if "index.html" not in used:                      # every site starts at index.html
            self.pages.insert(0, _Page(build / "index.qmd", "index.html",
                                       text="# Contents {.unnumbered}\n\nThe pages of this build are listed "
                                            "on the left.\n"))
        self.labels: dict[str, tuple[str, str]] = {}      # label -> (href, text)
        self.unresolved: list[str] = []
        self.cited: set[str] = set()
        self.final = False
        self._scan()

    # -- the pages' titles, numbers and where the bibliography goes
    def _scan(self):
        chapter, appendix = 0, 0
        for page in self.pages:
            texts = self._markdown_sources(page)
            heading = None
            for text in texts:
                for line in _code_free_lines(text):
                    m = _HEADING.match(line)
                    if m and len(m.group(1)) == 1:
                        heading = m
                        break
                if heading:
                    break
            if any(re.search(r"^[ \t]*:{3,}[ \t]*\{[ \t]*#refs[\s}]", t, re.M) for t in texts):
                page.refs_div = True
            classes = _attrs(heading.group(3))[1] if heading else []
            page.title = heading.group(2) if heading else str(page.front.get("title") or page.source.stem)
            numbered = page.source.name != "index.qmd" and "unnumbered" not in classes \
                and page.front.get("number-sections", True) is not False
            if numbered and page.appendix:
                appendix += 1
                page.number = chr(ord("A") + appendix - 1)
            elif numbered:
                chapter += 1
                page.number = str(chapter)
        self.refs_page = next((p.file for p in self.pages if p.refs_div),
                              self.pages[-1].file if self.pages else "index.html")

    def _markdown_sources(self, page: _Page) -> list[str]:
        if page.source.suffix == ".ipynb":
            nb = self._notebook(page)
            return [c.source for c in nb.cells if c.cell_type == "markdown"]
        page.front, body = _front_matter(page.read())
        return [body]

    def _notebook(self, page: _Page):
        import nbformat
        if not hasattr(page, "_nb"):
            page._nb = nbformat.read(page.source, as_version=4)
        return page._nb

    # -- two passes: labels first, then the pages with every reference known
    def render(self):
        for final in (False, True):
            self.final = final
            self.cited, self.unresolved = set(), []
            bodies = [self._page_body(p) for p in self.pages]
        bib = self._bibliography_html()
        for i, (page, body) in enumerate(zip(self.pages, bodies)):
            if "\ue010refs\ue011" in body:
                body = body.replace("\ue010refs\ue011", bib)
            elif page.file == self.refs_page and bib:
                body += f'<section id="refs" class="references"><h2>References</h2>{bib}</section>'
            prev = self.pages[i - 1] if i > 0 else None
            nxt = self.pages[i + 1] if i + 1 < len(self.pages) else None
            yield page, self._frame(page, body, prev, nxt)

    def _bibliography_html(self) -> str:
        cited = sorted((self.refs[k] for k in self.cited), key=lambda r: r.sort_key)
        if not cited:
            return ""
        items = "".join(f'<div class="csl-entry" id="ref-{html.escape(r.key)}">{_reference_html(r)}</div>'
                        for r in cited)
        return f'<div class="csl-bib-body">{items}</div>'

    def _page_body(self, page: _Page) -> str:
        md = _Markdown(self, page)
        if page.source.suffix == ".ipynb":
            body, params = _NotebookRenderer(self, page, md).render(self._notebook(page))
        else:
            body, params = md.block(_front_matter(page.read())[1]), ""
        if not md.title_done:                    # no "# Title": the front matter's title, or the file's name
            body = md.title_html(page.title) + body
        if params:
            body = body.replace("</h1>", f"</h1>{params}", 1) if "</h1>" in body else params + body
        page.sections = md.sections
        return self._relink(page, body)

    def _relink(self, page: _Page, body: str) -> str:
        """Relative links are written relative to the page's source file, as Quarto reads them: a
        link to another page's source (``scorecard.qmd``, ``../chapters/02_training.ipynb``) goes
        to that page; a link to a file of the build (``../downloads/...``) to its copy beside the
        preview's pages, which all lie in one folder."""
        build = self.build.resolve()
        by_source = {p.source.resolve(): p.file for p in self.pages}
        outputs = {p.file for p in self.pages}

        def fix(m: re.Match) -> str:
            url = m.group(2)
            path, hash_, frag = url.partition("#")
            if not path or path in outputs or path.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
                return m.group(0)
            target = (page.source.parent / html.unescape(path)).resolve()
            if target in by_source:
                new = by_source[target]
            else:
                try:
                    new = target.relative_to(build).as_posix()
                except ValueError:
                    return m.group(0)
            return m.group(1) + html.escape(new + hash_ + frag) + m.group(3)
        return _RELATIVE_HREF.sub(fix, body)

    # -- references
    def xref(self, label: str, page: _Page, bare: bool = False) -> str:
        target = self.labels.get(label)
        if target is None:
            if self.final:
                self.unresolved.append(f"@{label} ({page.file})")
            return f'<strong class="unresolved">?@{html.escape(label)}</strong>'
        href, text = target
        if bare:
            text = text.split(" ", 1)[-1] if re.match(r"(Figure|Table|Equation|Section|Chapter|Appendix) ", text) else text
        return f'<a class="xref" href="{html.escape(href)}">{html.escape(text)}</a>'

    def cite(self, key: str, page: _Page, in_text: bool = False, year_only: bool = False,
             prefix: str = "", suffix: str = "") -> str:
        r = self.refs.get(key)
        if r is None:
            if self.final:
                self.unresolved.append(f"@{key} ({page.file})")
            return f'<strong class="unresolved">?{html.escape(key)}</strong>'
        self.cited.add(key)
        href = f"{self.refs_page}#ref-{key}" if self.refs_page != page.file else f"#ref-{key}"
        if year_only:
            text = r.year
        elif in_text:
            text = f"{r.label} ({r.year})"
        else:
            text = f"{r.label} {r.year}"
        return f'{prefix}<a class="citation" href="{html.escape(href)}">{html.escape(text)}</a>{suffix}'

    # -- the page around a body
    def _contents_label(self, p: _Page) -> str:
        num = f'<span class="chapter-number">{p.number}</span>&nbsp; ' if p.number else ""
        return num + _Markdown(self, p).inline(_strip_heading_attrs(p.title), record=False)

    def _frame(self, page: _Page, body: str, prev: _Page | None, nxt: _Page | None) -> str:
        items = []
        appendix_heading = False
        for p in self.pages:
            if p.appendix and not appendix_heading:
                items.append('<li class="part">Appendices</li>')
                appendix_heading = True
            if p.part:
                items.append(f'<li class="part">{html.escape(str(p.part))}</li>')
            cls = ' class="current"' if p is page else ""
            toc = ""
            if p is page and p.sections:
                toc = "<ul class='page-toc'>" + "".join(
                    f'<li><a href="#{html.escape(i)}">{t}</a></li>' for i, t in p.sections) + "</ul>"
            items.append(f'<li{cls}><a href="{p.file}">{self._contents_label(p)}</a>{toc}</li>')
        nav = []
        if prev:
            nav.append(f'<a class="prev" href="{prev.file}">&larr; {self._contents_label(prev)}</a>')
        else:
            nav.append("<span></span>")
        if nxt:
            nav.append(f'<a class="next" href="{nxt.file}">{self._contents_label(nxt)} &rarr;</a>')
        title = re.sub(r"<[^>]+>", "", self._contents_label(page)).replace("&nbsp;", " ")
        sub = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{title} \u2013 {html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
                f'<body><div class="layout"><nav class="sidebar" aria-label="Contents">'
                f'<p class="book-title"><a href="index.html">{html.escape(self.title)}</a></p>{sub}'
                f'<ol class="contents">{"".join(items)}</ol>'
                f'<p class="preview-note">Static preview of the build <code>{html.escape(self.build.name)}</code>, '
                f"written without Quarto.</p></nav>\n"
                f'<main class="content">{body}\n<nav class="page-nav">{"".join(nav)}</nav></main>'
                f"</div></body></html>\n")


def _strip_heading_attrs(title: str) -> str:
    return re.sub(r"\s*\{[^{}]*\}\s*$", "", title)


# ---- Markdown with Quarto's syntax ------------------------------------------------------------

class _Markdown:
    """Renders Quarto Markdown of one page: a pre-pass translates Quarto's syntax into HTML kept
    aside as placeholders (code blocks and code spans untouched), then mistune renders the rest."""

    def __init__(self, book: _Book, page: _Page):
        import mistune
        self.book, self.page = book, page
        self.md = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "footnotes"])
        self.store: list[str] = []
        self.verbatim: list[str] = []
        self.title_done = False
        self.counters = {"fig": 0, "tbl": 0, "eq": 0}
        self.section_numbers = [0] * 6
        self.ids: set[str] = set()
        self.sections: list[tuple[str, str]] = []

    # placeholders
    def keep(self, html_text: str) -> str:
        self.store.append(html_text)
        return f"\ue000{len(self.store) - 1}\ue001"

    def _verbatim(self, text: str) -> str:
        self.verbatim.append(text)
        return f"\ue002{len(self.verbatim) - 1}\ue003"

    def _restore(self, text: str) -> str:
        for _ in range(5):
            if "\ue002" not in text:
                break
            text = _VERBATIM.sub(lambda m: self.verbatim[int(m.group(1))], text)
        return text

    def _substitute(self, text: str) -> str:
        for _ in range(10):
            if "\ue000" not in text:
                break
            text = re.sub("<p>\ue000(\\d+)\ue001</p>", lambda m: self.store[int(m.group(1))], text)
            text = _TOKEN.sub(lambda m: self.store[int(m.group(1))], text)
        return text

    # numbering
    def number(self, kind: str) -> str:
        self.counters[kind] += 1
        k = self.counters[kind]
        return f"{self.page.number}.{k}" if self.page.number else str(k)

    def register(self, label: str, text: str, href: str | None = None):
        """Record `label` (first pass only; the first of two equal labels wins) as `text` linking
        to `href` (default: the label's element on this page)."""
        if self.book.final or label in self.book.labels:
            return
        self.book.labels[label] = (href or f"{self.page.file}#{label}", text)

    def unique_id(self, ident: str) -> str:
        base, k = ident, 0
        while ident in self.ids:
            k += 1
            ident = f"{base}-{k}"
        self.ids.add(ident)
        return ident

    # entry points
    def block(self, text: str) -> str:
        """Markdown `text` (several blocks) as HTML."""
        return self._substitute(self._blocks(self._protect(text)))

    def inline(self, text: str, record: bool = True) -> str:
        """Markdown `text` (one line, e.g. a caption) as inline HTML."""
        saved = (self.book.final, self.book.unresolved[:], set(self.book.cited))
        out = self.md(self._restore(self._transform(self._protect(text)))).strip()
        out = re.sub(r"^<p>(.*)</p>$", r"\1", out, flags=re.S)
        out = self._substitute(out)
        if not record:
            self.book.unresolved[:], self.book.cited = saved[1], saved[2]
        return out

    def title_html(self, title: str) -> str:
        self.title_done = True
        title = _strip_heading_attrs(title)
        num = f'<span class="chapter-number">{self.page.number}</span>&nbsp; ' if self.page.number else ""
        return f'<h1 class="title">{num}<span class="chapter-title">{self.inline(title)}</span></h1>'

    # code out of reach of every rewriting
    def _protect(self, text: str) -> str:
        lines, out, fence, buf = text.splitlines(keepends=True), [], None, []
        for line in lines:
            m = _FENCE.match(line.rstrip("\n"))
            if fence is None and m:
                fence, buf = m.group(2), [re.sub(r"^([ \t]*[`~]{3,})\s*\{\.?([\w+-]+)[^}]*\}", r"\1\2", line)]
            elif fence is not None:
                buf.append(line)
                if m and m.group(2).startswith(fence[0]) and len(m.group(2)) >= len(fence) and not m.group(3).strip():
                    out.append(self._verbatim("".join(buf).rstrip("\n")) + "\n")
                    fence = None
            else:
                out.append(line)
        if fence is not None:
            out.append(self._verbatim("".join(buf).rstrip("\n")) + "\n")
        text = "".join(out)
        return re.sub(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)", lambda m: self._verbatim(m.group(0)), text, flags=re.S)

    # fenced divs, recursively
    def _blocks(self, text: str) -> str:
        lines = text.split("\n")
        out, i = [], 0
        leaf: list[str] = []

        def flush():
            if leaf:
                out.append(self._leaf("\n".join(leaf)))
                leaf.clear()
        while i < len(lines):
            m = _DIV_OPEN.match(lines[i])
            if not m:
                leaf.append(lines[i])
                i += 1
                continue
            colons = len(m.group(1))
            depth, j = 1, i + 1
            while j < len(lines):
                if _DIV_OPEN.match(lines[j]):
                    depth += 1
                elif (c := _DIV_CLOSE.match(lines[j])) and len(c.group(1)) >= 3:
                    depth -= 1
                    if depth == 0 and len(c.group(1)) >= min(colons, 3):
                        break
                j += 1
            flush()
            out.append(self._div(m.group(2), "\n".join(lines[i + 1:j])))
            i = j + 1
        flush()
        return "\n".join(out)

    def _div(self, spec: str, inner: str) -> str:
        ident, classes, kv = _attrs(spec[1:-1] if spec.startswith("{") else "." + spec)
        if ident == "refs":
            return "\ue010refs\ue011"
        callout = next((c.split("-", 1)[1] for c in classes if c.startswith("callout-")), None)
        if callout:
            title = kv.get("title")
            m = re.match(r"\s*#{1,6}[ \t]+(.*)\n", inner)
            if title is None and m:
                title, inner = m.group(1), inner[m.end():]
            title_html = self.inline(self._restore(title)) if title else _CALLOUTS.get(callout, callout.title())
            return (f'<div class="callout callout-{html.escape(callout)}"><div class="callout-title">'
                    f'{title_html}</div><div class="callout-body">{self._blocks(inner)}</div></div>')
        if ident and ident.startswith("fig-"):                     # a figure div: caption last
            number = self.number("fig")
            paragraphs = inner.strip().split("\n\n")
            caption = paragraphs.pop() if len(paragraphs) > 1 else ""
            text = f"Figure {number}"
            self.register(ident, text)
            cap = self.inline(self._restore(caption))
            return (f'<figure class="figure" id="{html.escape(ident)}">{self._blocks(chr(10).join(paragraphs))}'
                    f"<figcaption>{text}: {cap}</figcaption></figure>")
        attrs = f' id="{html.escape(ident)}"' if ident else ""
        if classes:
            attrs += f' class="{html.escape(" ".join(classes))}"'
        return f"<div{attrs}>{self._blocks(inner)}</div>"

    def _leaf(self, text: str) -> str:
        out = self.md(self._restore(self._transform(text)))
        return re.sub(r"<table>(.*?)</table>", r'<div class="table-wrap"><table>\1</table></div>', out, flags=re.S)

    # the pre-pass on text without code
    def _transform(self, text: str) -> str:
        text = re.sub(r"\{\{[<%].*?[%>]\}\}", "", text, flags=re.S)          # shortcodes
        text = re.sub(r"<!--.*?-->", lambda m: self.keep(m.group(0)), text, flags=re.S)
        lines = []
        for line in text.split("\n"):
            m = _HEADING.match(line)
            lines.append(self._heading(m) if m else line)
        text = "\n".join(lines)
        text = self._math(text)
        text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)\{([^{}]*)\}", self._image, text)
        text = re.sub(r"(?<!\!)\[([^\[\]]+)\]\{([^{}]*)\}", self._span, text)
        text = re.sub(r"\[([^\[\]]*?@[^\[\]]*)\](?![(\[{])", self._bracketed, text)
        text = re.sub(rf"(?<![\w@/.:+\-\\])@({_KEY})", self._in_text, text)
        return text

    def _heading(self, m: re.Match) -> str:
        level, title = len(m.group(1)), m.group(2)
        ident, classes, _ = _attrs(m.group(3))
        if m.group(3) is not None and ident is None and not classes and "=" not in m.group(3):
            title = f"{title} {{{m.group(3)}}}"                     # braces that are not attributes
        title_html = self.inline(self._restore(title))
        if level == 1 and not self.title_done:
            self.title_done = True
            num = f'<span class="chapter-number">{self.page.number}</span>&nbsp; ' if self.page.number else ""
            ident = self.unique_id(ident or _slug(title_html))
            kind = "Appendix" if self.page.appendix else "Chapter"
            self.register(ident, f"{kind} {self.page.number}" if self.page.number else re.sub(r"<[^>]+>", "", title_html),
                          href=self.page.file)
            return "\n\n" + self.keep(f'<h1 class="title" id="{html.escape(ident)}">{num}'
                                      f'<span class="chapter-title">{title_html}</span></h1>') + "\n\n"
        number = None
        if self.page.number and "unnumbered" not in classes and level >= 2:
            self.section_numbers[level - 1] += 1
            for k in range(level, 6):
                self.section_numbers[k] = 0
            number = ".".join([self.page.number] + [str(n) for n in self.section_numbers[1:level]])
        ident = self.unique_id(ident or _slug(title_html))
        self.register(ident, f"Section {number}" if number else re.sub(r"<[^>]+>", "", title_html))
        num = f'<span class="header-section-number">{number}</span>&nbsp; ' if number else ""
        if level == 2 and "unlisted" not in classes:
            self.sections.append((ident, num + title_html))
        return "\n\n" + self.keep(f'<h{level} id="{html.escape(ident)}">{num}{title_html}</h{level}>') + "\n\n"

    def _math(self, text: str) -> str:
        def display(m):
            ident = _attrs(m.group(2))[0] if m.group(2) else None
            mathml = _mathml(m.group(1), True)
            if ident and ident.startswith("eq-"):
                number = self.number("eq")
                self.register(ident, f"Equation {number}")
                return self.keep(f'<span class="display-math" id="{html.escape(ident)}">{mathml}'
                                 f'<span class="eq-number">({number})</span></span>')
            return self.keep(f'<span class="display-math">{mathml}</span>')
        text = re.sub(r"(?<!\\)\$\$(.+?)\$\$(?:[ \t]*\{([^{}]*#eq-[^{}]*)\})?", display, text, flags=re.S)
        return re.sub(r"(?<![\\$\w])\$(?![\s$])((?:[^$\\\n]|\\.|\n(?![ \t]*\n))+?)(?<![\s\\])\$(?![\d$])",
                      lambda m: self.keep(_mathml(m.group(1), False)), text)

    def _image(self, m: re.Match) -> str:
        ident, _, kv = _attrs(m.group(3))
        size = "".join(f' {k}="{html.escape(kv[k])}"' for k in ("width", "height") if k in kv)
        img = f'<img src="{html.escape(m.group(2))}" alt="{html.escape(m.group(1))}"{size}>'
        if ident and ident.startswith("fig-"):
            number = self.number("fig")
            self.register(ident, f"Figure {number}")
            return "\n\n" + self.keep(f'<figure class="figure" id="{html.escape(ident)}">{img}<figcaption>'
                                      f"Figure {number}: {self.inline(self._restore(m.group(1)))}"
                                      f"</figcaption></figure>") + "\n\n"
        return self.keep(img)

    def _span(self, m: re.Match) -> str:
        ident, classes, _ = _attrs(m.group(2))
        attrs = (f' id="{html.escape(ident)}"' if ident else "") + \
            (f' class="{html.escape(" ".join(classes))}"' if classes else "")
        return self.keep(f"<span{attrs}>") + m.group(1) + self.keep("</span>")

    def _bracketed(self, m: re.Match) -> str:
        items = []
        for part in m.group(1).split(";"):
            it = re.fullmatch(rf"\s*(.*?)(-?)@({_KEY})(.*?)\s*", part, re.S)
            if not it:
                return m.group(0)
            items.append(it.groups())
        keys = [k for _, _, k, _ in items]
        known = [k for k in keys if k in self.book.refs or _is_xref(k)]
        if not known:
            if all(re.fullmatch(r"[\w:-]+", k) for k in keys) and all(not p.strip() for p, _, _, _ in items):
                return self.keep(", ".join(self.book.cite(k, self.page) for k in keys))   # ?key
            return m.group(0)
        if all(_is_xref(k) for k in keys):
            return self.keep(", ".join(
                (self.inline(self._restore(p)) + " " if p.strip() else "") + self.book.xref(k, self.page, bare=bool(neg))
                + self.inline(self._restore(s)) for p, neg, k, s in items))
        cites = [self.book.cite(k, self.page, year_only=bool(neg),
                                prefix=(self.inline(self._restore(p.strip())) + " ") if p.strip() else "",
                                suffix=self.inline(self._restore(s.rstrip())) if s.strip() else "")
                 if not _is_xref(k) else self.book.xref(k, self.page) for p, neg, k, s in items]
        return self.keep("(" + "; ".join(cites) + ")")

    def _in_text(self, m: re.Match) -> str:
        key = m.group(1)
        if _is_xref(key):
            return self.keep(self.book.xref(key, self.page))
        if key in self.book.refs:
            return self.keep(self.book.cite(key, self.page, in_text=True))
        return m.group(0)


def _is_xref(key: str) -> bool:
    return key.split("-", 1)[0] in _CROSSREF_KINDS and "-" in key


def _mathml(latex: str, block: bool) -> str:
    try:
        from latex2mathml.converter import convert      # requirements.txt pins it
        out = convert(latex.strip(), display="block" if block else "inline")
    except Exception:                                   # not installed, or LaTeX it cannot read: the source
        return f'<code class="math">{html.escape(latex)}</code>'
    return out.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")


# ---- notebooks ----------------------------------------------------------------------------------

def _truthy(v, default=True) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.strip().lower() not in ("false", "no", "0")
    return bool(v)


def _text(v) -> str:
    return "".join(v) if isinstance(v, list) else str(v)


def _clean_stream(s: str) -> str:
    s = _ANSI.sub("", s)
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
                     for line in s.split("\n"))


def _parameters_note(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    items = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            value = ast.get_source_segment(source, node.value) or ""
            value = value if len(value) <= 120 else value[:117] + "..."
            names = ", ".join(ast.get_source_segment(source, t) or "?" for t in node.targets)
            items.append(f"<code>{html.escape(names)} = {html.escape(value)}</code>")
    if not items:
        return ""
    return f'<p class="build-parameters">Parameters of this build: {", ".join(items)}</p>'


class _NotebookRenderer:
    def __init__(self, book: _Book, page: _Page, md: _Markdown):
        self.book, self.page, self.md = book, page, md

    def render(self, nb) -> tuple[str, str]:
        parts, params = [], ""
        for cell in nb.cells:
            tags = set(cell.get("metadata", {}).get("tags", []))
            if cell.cell_type == "markdown":
                src = cell.source
                for name, data in (cell.get("attachments") or {}).items():
                    mime = next((k for k in data if k.startswith("image/")), None)
                    if mime:
                        src = src.replace(f"attachment:{name}", f"data:{mime};base64,{_text(data[mime]).strip()}")
                parts.append(self.md.block(src))
            elif cell.cell_type == "raw":
                fmt = cell.get("metadata", {}).get("format") or cell.get("metadata", {}).get("raw_mimetype", "")
                if fmt in ("text/html", "html"):
                    parts.append(cell.source)
                elif fmt in ("text/markdown", "markdown"):
                    parts.append(self.md.block(cell.source))
            elif cell.cell_type == "code":
                if "injected-parameters" in tags:
                    params = _parameters_note(cell.source)
                    continue
                parts.append(self.code_cell(cell, tags))
        return "\n".join(parts), params

    def code_cell(self, cell, tags: set[str]) -> str:
        opts, code = cell_options(cell.source, strict=False)
        if not _truthy(opts.get("include")) or "remove-cell" in tags:
            return ""
        echo = _truthy(opts.get("echo")) and "remove-input" not in tags
        output = opts.get("output", True)
        show_output = _truthy(output) and "remove-output" not in tags
        html_parts = []
        if echo and code.strip():
            code_html = f'<pre class="code"><code class="language-python">{html.escape(code)}</code></pre>'
            fold = opts.get("code-fold", self.book.code_fold)
            if fold is False or str(fold).lower() == "false":
                html_parts.append(code_html)
            else:
                summary = html.escape(str(opts.get("code-summary") or self.book.code_summary))
                is_open = " open" if str(fold).lower() == "show" else ""
                html_parts.append(f'<details class="code-fold"{is_open}><summary>{summary}</summary>{code_html}</details>')
        if show_output:
            html_parts.append(self.outputs(cell, opts, asis=str(output).lower() == "asis"))
        return f'<div class="cell">{"".join(html_parts)}</div>' if any(html_parts) else ""

    def outputs(self, cell, opts: dict, asis: bool = False) -> str:
        label = str(opts.get("label") or "")
        items: list[tuple[str, str]] = []              # (kind, html); kind "image" or "other"
        for out in cell.get("outputs", []):
            kind, h = self.output(out, opts, asis)
            if h:
                items.append((kind, h))
        fig_cap = opts.get("fig-cap")
        if label.startswith("fig-") or (fig_cap and not label.startswith("tbl-")):
            return self.figure(items, label if label.startswith("fig-") else "", fig_cap, opts)
        if label.startswith("tbl-"):
            number = self.md.number("tbl")
            text = f"Table {number}"
            self.md.register(label, text)
            cap = opts.get("tbl-cap")
            cap_html = f"{text}: {self.md.inline(str(cap))}" if cap else text
            return (f'<div class="table-figure" id="{html.escape(label)}"><p class="table-caption">{cap_html}</p>'
                    + "".join(h for _, h in items) + "</div>")
        return "".join(h for _, h in items)

    def figure(self, items, label: str, cap, opts) -> str:
        images = [h for k, h in items if k == "image"]
        text = ""
        if label:
            number = self.md.number("fig")
            text = f"Figure {number}"
            self.md.register(label, text)
        cap_html = self.md.inline(str(cap)) if cap else ""
        caption = f"{text}: {cap_html}" if text and cap_html else (text or cap_html)
        ident = f' id="{html.escape(label)}"' if label else ""
        subcaps = opts.get("fig-subcap")
        if len(images) > 1 and subcaps:
            subs = subcaps if isinstance(subcaps, list) else [""] * len(images)
            inner = "".join(
                f'<div class="subfigure">{img}<p class="subcaption">({chr(ord("a") + i)}) '
                f'{self.md.inline(str(subs[i])) if i < len(subs) else ""}</p></div>'
                for i, img in enumerate(images))
            inner = f'<div class="subfigures">{inner}</div>'
        else:
            inner = "".join(images)
        if not images:                                # a figure drawn as HTML: everything is in it
            return (f'<figure class="figure"{ident}>{"".join(h for _, h in items)}'
                    f"<figcaption>{caption}</figcaption></figure>")
        fig = f'<figure class="figure"{ident}>{inner}<figcaption>{caption}</figcaption></figure>'
        out, placed = [], False
        for kind, h in items:
            if kind == "image":
                if not placed:
                    out.append(fig)
                    placed = True
            else:
                out.append(h)
        return "".join(out)

    def output(self, out, opts: dict, asis: bool) -> tuple[str, str]:
        t = out.get("output_type")
        if t == "stream":
            if out.get("name") == "stderr" and not _truthy(opts.get("warning")):
                return "other", ""
            text = _clean_stream(_text(out.get("text", "")))
            if not text.strip():
                return "other", ""
            if asis:
                return "other", self.md.block(text)
            return "other", f'<pre class="output stream {html.escape(out.get("name", ""))}">{html.escape(text)}</pre>'
        if t == "error":
            tb = _ANSI.sub("", "\n".join(out.get("traceback") or []))
            head = f'{out.get("ename", "Error")}: {out.get("evalue", "")}'
            return "other", f'<pre class="output error">{html.escape(tb or head)}</pre>'
        if t not in ("display_data", "execute_result"):
            return "other", ""
        data = out.get("data", {})
        if _WIDGET in data:
            return "other", ""
        meta = out.get("metadata", {}) or {}
        if "text/markdown" in data:
            return "other", f'<div class="output markdown">{self.md.block(_text(data["text/markdown"]))}</div>'
        if "text/html" in data:
            return "other", f'<div class="output html">{_text(data["text/html"])}</div>'
        for mime in ("image/svg+xml", "image/png", "image/jpeg", "image/gif"):
            if mime in data:
                return "image", self.image(mime, data[mime], meta)
        if "text/latex" in data:
            return "other", f'<div class="output latex">{self.md.block(_text(data["text/latex"]))}</div>'
        if "application/javascript" in data:
            return "other", f"<script>{_text(data['application/javascript'])}</script>"
        if "text/plain" in data:
            return "other", f'<pre class="output text">{html.escape(_ANSI.sub("", _text(data["text/plain"])))}</pre>'
        return "other", ""

    def image(self, mime: str, value, meta: dict) -> str:
        if not self.book.final:
            return "<img>"
        own = meta.get(mime, {}) if isinstance(meta.get(mime), dict) else {}
        size = ""
        for k in ("width", "height"):
            v = own.get(k, meta.get(k))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                size += f' {k}="{int(v)}"'
        if mime == "image/svg+xml":
            payload = base64.b64encode(_text(value).encode("utf-8")).decode("ascii")
        else:
            payload = re.sub(r"\s+", "", _text(value))
        return f'<img class="output-image" src="data:{mime};base64,{payload}"{size} alt="">'


_CSS = """
:root{--fg:#1f2328;--muted:#57606a;--accent:#1a5fb4;--line:#d8dee4;--bg-soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:17px/1.6 Charter,"Bitstream Charter","Sitka Text",Cambria,Georgia,serif}
.layout{display:flex;min-height:100vh}
.sidebar{flex:0 0 17rem;padding:1.2rem 1rem;border-right:1px solid var(--line);background:var(--bg-soft);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;position:sticky;top:0;
 height:100vh;overflow-y:auto}
.sidebar a{color:var(--fg);text-decoration:none}.sidebar a:hover{text-decoration:underline}
.book-title{font-weight:700;font-size:1.05rem;margin:0 0 .3rem}.subtitle{color:var(--muted);margin:0 0 1rem}
.contents{list-style:none;padding:0;margin:0}.contents li{margin:.25rem 0}
.contents li.part{margin-top:.8rem;font-weight:700;color:var(--muted);text-transform:uppercase;font-size:.8rem}
.contents li.current>a{font-weight:700;color:var(--accent)}
.page-toc{list-style:none;padding-left:1rem;margin:.2rem 0;font-size:.92em}
.preview-note{margin-top:1.5rem;color:var(--muted);font-size:.85em}
.content{flex:1;min-width:0;max-width:52rem;padding:1.5rem 2.5rem 3rem}
h1,h2,h3,h4{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;line-height:1.25}
h1.title{font-size:2rem;margin-top:.5rem}h2{margin-top:2.2rem;border-bottom:1px solid var(--line);padding-bottom:.2rem}
a{color:var(--accent)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.86em}
pre{background:var(--bg-soft);padding:.6rem .8rem;overflow-x:auto;border-radius:4px;line-height:1.4}
:not(pre)>code{background:var(--bg-soft);padding:.05em .3em;border-radius:3px}
details.code-fold{margin:.6rem 0}details.code-fold>summary{cursor:pointer;color:var(--muted);
 font:14px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.output{margin:.6rem 0}.output.html,.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.86em;margin:.6rem 0}
th,td{border-bottom:1px solid var(--line);padding:.25rem .6rem;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid var(--fg)}
img{max-width:100%;height:auto}
figure{margin:1.2rem 0}figcaption,.table-caption{font-size:.92em;color:var(--muted);margin:.4rem 0}
.subfigure{margin:0 0 .8rem}
.subcaption{text-align:center;font-size:.9em;color:var(--muted);margin:.2rem 0}
.display-math{display:block;position:relative;margin:.8rem 0;overflow-x:auto;text-align:center}
.eq-number{position:absolute;right:0;top:50%;transform:translateY(-50%)}
pre.error{background:#fff0f0;border:1px solid #e5534b;color:#82071e}
pre.stream.stderr{background:#fff8e6}
.callout{border-left:4px solid var(--accent);background:#f3f7fd;padding:.5rem 1rem;margin:1rem 0;border-radius:3px}
.callout-title{font:600 15px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:.2rem 0}
.callout-warning,.callout-caution{border-color:#d29922;background:#fff8e6}
.callout-important{border-color:#cf222e;background:#fff0f0}.callout-tip{border-color:#1a7f37;background:#effaf1}
blockquote{margin:1rem 0;padding:.2rem 1rem;border-left:4px solid var(--line);color:var(--muted)}
.build-parameters{font-size:.85em;color:var(--muted)}
.unresolved{color:#cf222e}
.csl-entry{margin:.5rem 0 .5rem 1.5rem;text-indent:-1.5rem}
.page-nav{display:flex;justify-content:space-between;gap:1rem;margin-top:3rem;padding-top:1rem;
 border-top:1px solid var(--line);font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
@media (max-width:800px){.layout{display:block}.sidebar{position:static;max-height:none;border-right:0;
 border-bottom:1px solid var(--line)}.content{padding:1rem}}
"""
