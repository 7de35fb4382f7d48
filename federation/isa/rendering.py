"""An explanation as a small document (sections of nested bullet points), as text or as HTML.

This module performs no I/O.

Rules:
1. The document is built once (:mod:`federation.isa.explanation`) and rendered twice; the two
   renderings carry the same words.
2. HTML is one self-contained page (inline style, no script, no external resource) and every
   piece of text is escaped, attribute quotes included: an ISA's free text can never become
   markup.
3. A node's ``key`` is for tests and tools to find it; it is never rendered.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Explanation", "Node", "Section", "render_html", "render_text"]


@dataclass(frozen=True, slots=True)
class Node:
    """One bullet point and the points under it."""

    text: str
    children: tuple[Node, ...] = ()
    key: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    items: tuple[Node, ...] = ()
    key: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str
    sections: tuple[Section, ...]

    def find(self, key: tuple[str, ...]) -> Section | Node | None:
        """The section or node with this key (depth first), or None."""
        for section in self.sections:
            if section.key == key:
                return section
            found = _find(section.items, key)
            if found is not None:
                return found
        return None


def _find(nodes: tuple[Node, ...], key: tuple[str, ...]) -> Node | None:
    for node in nodes:
        if node.key == key:
            return node
        found = _find(node.children, key)
        if found is not None:
            return found
    return None


def _text_nodes(nodes: tuple[Node, ...], depth: int) -> Iterator[str]:
    for node in nodes:
        yield f"{'  ' * depth}- {node.text}"
        yield from _text_nodes(node.children, depth + 1)


def render_text(doc: Explanation) -> str:
    """Plain text: the title underlined, each section's heading, paragraphs and bullets."""
    lines = [doc.title, "=" * min(len(doc.title), 78)]
    for section in doc.sections:
        lines += ["", section.heading]
        lines += [f"  {p}" for p in section.paragraphs]
        lines += _text_nodes(section.items, 1)
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45;color:#1b1b1b}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:1.8rem;"
    "border-bottom:1px solid #ccc}ul{padding-left:1.4rem}li{margin:.15rem 0}"
)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_nodes(nodes: tuple[Node, ...]) -> Iterator[str]:
    if not nodes:
        return
    yield "<ul>"
    for node in nodes:
        if not node.children:
            yield f"<li>{_esc(node.text)}</li>"
            continue
        yield f"<li>{_esc(node.text)}"
        yield from _html_nodes(node.children)
        yield "</li>"
    yield "</ul>"


def render_html(doc: Explanation) -> str:
    """One self-contained, escaped HTML page."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(doc.title)}</title>",
        f"<style>{_STYLE}</style></head>",
        "<body>",
        f"<h1>{_esc(doc.title)}</h1>",
    ]
    for section in doc.sections:
        out.append(f"<section><h2>{_esc(section.heading)}</h2>")
        out += [f"<p>{_esc(p)}</p>" for p in section.paragraphs]
        out += _html_nodes(section.items)
        out.append("</section>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
