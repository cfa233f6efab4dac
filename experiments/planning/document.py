"""A small document model written out twice: as Markdown and as a self-contained HTML page.

The report is built once as a list of blocks (headings, paragraphs, bullet lists, tables, figures);
each writer renders them. Inline markup is limited to ``**bold**`` and ```code```, which both
writers understand.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Block:
    """One block of the document: ``kind`` is heading | paragraph | bullets | table | figure."""

    kind: str
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    align: list[str] = field(default_factory=list)


class Document:
    """A report under construction; :meth:`markdown` and :meth:`html` write it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading (level 2) or subsection (level 3)."""
        self.blocks.append(Block("heading", text=text, level=level))

    def paragraph(self, text: str) -> None:
        """A paragraph of prose."""
        self.blocks.append(Block("paragraph", text=text))

    def bullets(self, items: list[str]) -> None:
        """A bullet list."""
        if items:
            self.blocks.append(Block("bullets", items=list(items)))

    def table(self, header: list[str], rows: list[list[Any]], align: list[str] | None = None) -> None:
        """A table; ``align`` per column is ``l`` or ``r`` (numbers right, by default every column but the first)."""
        cells = [[str(c) for c in row] for row in rows]
        al = align or (["l"] + ["r"] * (len(header) - 1))
        self.blocks.append(Block("table", header=list(header), rows=cells, align=al))

    def figure(self, path: str, caption: str) -> None:
        """A figure: an image file beside the report, with its caption."""
        self.blocks.append(Block("figure", text=caption, items=[path]))

    # ------------------------------------------------------------------ writers
    def markdown(self) -> str:
        """The document as Markdown (GitHub flavour: pipe tables)."""
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "heading":
                out += [f"{'#' * b.level} {b.text}", ""]
            elif b.kind == "paragraph":
                out += [b.text, ""]
            elif b.kind == "bullets":
                out += [f"- {item}" for item in b.items] + [""]
            elif b.kind == "table":
                out.append("| " + " | ".join(b.header) + " |")
                out.append("| " + " | ".join("---:" if a == "r" else "---" for a in b.align) + " |")
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in b.rows]
                out.append("")
            elif b.kind == "figure":
                out += [f"![{b.text}]({b.items[0]})", "", f"*{b.text}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        """The document as one HTML page (styles inline, figures linked beside it)."""
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind == "heading":
                body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
            elif b.kind == "paragraph":
                body.append(f"<p>{_inline(b.text)}</p>")
            elif b.kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
            elif b.kind == "table":
                head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
                rows = "".join(
                    "<tr>"
                    + "".join(
                        f'<td class="{"num" if a == "r" else "txt"}">{_inline(c)}</td>'
                        for c, a in zip(row, b.align, strict=False)
                    )
                    + "</tr>"
                    for row in b.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b.kind == "figure":
                src = html.escape(b.items[0], quote=True)
                body.append(f'<figure><img src="{src}" alt="{html.escape(b.text, quote=True)}">'
                            f"<figcaption>{_inline(b.text)}</figcaption></figure>")
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    return _BOLD.sub(r"<strong>\1</strong>", out)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ border-bottom: 2px solid #444; padding-bottom: .2em; }}
h2 {{ border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 1.8em; }}
table {{ border-collapse: collapse; margin: .8em 0; font-size: .92em; }}
th, td {{ border: 1px solid #ccc; padding: .25em .6em; }}
th {{ background: #f0f0f0; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ background: #f4f4f4; padding: 0 .2em; border-radius: 3px; }}
figure {{ margin: 1em 0; }} figure img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-style: italic; color: #555; }}
</style></head>
<body>
{body}
</body></html>
"""
