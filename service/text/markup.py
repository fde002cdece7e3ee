"""HTML in, blocks of plain text out, and back: what of a page is translated and what is kept as it is.

The page is parsed by selectolax's Lexbor backend, an HTML5 parser: broken HTML is repaired the way browsers
repair it, never refused. The parsed page becomes a `Page`: literal HTML (markup and untranslated
content, serialized as the parser repaired it) and `Block`s, the runs of text and inline elements between
block-level tags. A block carries its plain text and its `Tag`s: each inline element (b, i, a, span, ...)
with the characters of the text it covers, and each atom kept whole at a point of the text (void elements
such as br and img, comments, code and translate="no" elements). `Page.render` puts the rendered
blocks (see service/text/placement.py) back between the literal parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser, LexborNode


def _names(names: str) -> frozenset[str]:
    """A set of tag names written as one string."""
    return frozenset(names.split())


# Phrasing elements: they sit inside a block's text. Any other element starts and ends blocks.
INLINE_TAGS = _names(
    "a abbr b bdi bdo big button cite data del dfn em font i ins label mark nobr q rp rt ruby s small span"
    " strike strong sub sup time tt u"
)
# Phrasing elements kept whole at a point of the text: void, embedded, and code-like content.
ATOM_TAGS = _names("br wbr img input embed iframe object video audio canvas svg math select textarea code kbd samp var")
# Elements whose content is never translated wherever they are.
KEPT_TAGS = _names("script style code pre template textarea xmp noscript noembed noframes plaintext")
VOID_TAGS = _names("area base br col embed hr img input link meta source track wbr")
NO_WORD_BREAK = frozenset({"wbr"})  # atoms that do not separate the words around them
DOCUMENT = re.compile(r"\A\s*(<!--.*?-->\s*)*<(!doctype|html|head|body)\b", re.IGNORECASE | re.DOTALL)
MAX_DEPTH = 512  # nesting of the elements walked, as browsers cap it (Blink); the walk recurses once per level
SENTINEL = "<!---->"  # parsed first in a fragment: the first node of a fragment serializes as the whole fragment
TEXT, DOCTYPE = "-text", "-doctype"


@dataclass(frozen=True)
class Tag:
    """An inline element or an atom of a block: the block text characters [start, end) it covers.

    `open` and `close` are its start and end tags; an atom (start == end) is its whole markup in `open`.
    `parent` is the index of the enclosing inline element in the block's tags, -1 at the top.
    """

    start: int
    end: int
    open: str
    close: str
    parent: int
    atom: bool


@dataclass(frozen=True)
class Block:
    """A run of text and inline elements, translated as one unit."""

    text: str
    tags: tuple[Tag, ...] = ()

    @property
    def source(self) -> str:
        """What the model translates: the text without its surrounding whitespace."""
        return self.text.strip()

    @property
    def offset(self) -> int:
        """Where `source` starts in `text`."""
        return len(self.text) - len(self.text.lstrip())


@dataclass(frozen=True)
class Page:
    """A parsed HTML text: literal HTML strings and indices of blocks, in page order."""

    parts: tuple[str | int, ...]
    blocks: tuple[Block, ...]

    def render(self, blocks_html: Sequence[str]) -> str:
        """The page with each block replaced by its rendered HTML, in block order."""
        if len(blocks_html) != len(self.blocks):
            raise ValueError(f"{len(blocks_html)} rendered blocks for a page of {len(self.blocks)}")
        return "".join(part if isinstance(part, str) else blocks_html[part] for part in self.parts)


class MarkupTooDeep(ValueError):
    """The HTML nests elements deeper than MAX_DEPTH."""


def parse(html: str) -> Page:
    """The blocks and literal parts of an HTML fragment or document (one starting with a doctype or <html>).

    Raises MarkupTooDeep for elements nested more than MAX_DEPTH deep (outside those kept as they are).
    """
    writer = _Writer()
    writer.nodes(_top_nodes(html), depth=1)
    return writer.page()


def _top_nodes(html: str) -> Iterator[LexborNode]:
    """The top-level nodes of a document (doctype, comments, <html>) or of a fragment."""
    if DOCUMENT.match(html):
        root = LexborHTMLParser(html).root
        document = root.parent if root is not None else None
        return _siblings(document.child if document is not None else root)
    sentinel = LexborHTMLParser(SENTINEL + html, is_fragment=True).root
    return _siblings(sentinel.next if sentinel is not None else None)


@dataclass
class _Run:
    """A block being collected: its text, its tags, its nodes (kept as they are if it has no words)."""

    text: list[str] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    nodes: list[LexborNode] = field(default_factory=list)
    length: int = 0
    word_break: bool = False  # an atom separated words: a space goes before the next word

    def add_text(self, text: str) -> None:
        """Appends a text node's text, after a space if an atom separated it from a word before."""
        if self.word_break and text[:1].strip() and self.length and self.text[-1][-1:].strip():
            self._append(" ")
        self.word_break = self.word_break and not text.strip()
        self._append(text)

    def _append(self, text: str) -> None:
        if text:
            self.text.append(text)
            self.length += len(text)

    def has_words(self) -> bool:
        """Whether the run has anything to translate."""
        return any(t.strip() for t in self.text)


class _Writer:
    """Walks the parsed nodes, writing literal HTML and blocks."""

    def __init__(self) -> None:
        self._parts: list[str | int] = []
        self._blocks: list[Block] = []
        self._run = _Run()

    def page(self) -> Page:
        return Page(tuple(self._parts), tuple(self._blocks))

    def nodes(self, nodes: Iterator[LexborNode], depth: int) -> None:
        """Writes `nodes`, siblings `depth` levels below the top."""
        for node in nodes:
            _check_depth(node, depth)
            if _in_run(node, depth):
                self._run.nodes.append(node)
                self._inline(node, -1, depth)
                continue
            self._flush()
            tag = _tag(node)
            if tag.startswith("-") or _kept(node):
                self._parts.append(_html(node))
            else:
                self._parts.append(start_tag(node))
                if tag not in VOID_TAGS:
                    self.nodes(_siblings(node.child), depth + 1)
                    self._parts.append(f"</{tag}>")
        self._flush()

    def _inline(self, node: LexborNode, parent: int, depth: int) -> None:
        """Adds a node of a run: its text, or its tag and then its content."""
        _check_depth(node, depth)
        run, tag = self._run, _tag(node)
        if tag == TEXT:
            run.add_text(node.text_content or "")
        elif tag.startswith("-") or _kept(node) or tag in ATOM_TAGS:  # comments, processing instructions, ...
            run.tags.append(Tag(run.length, run.length, _html(node), "", parent, atom=True))
            run.word_break = run.word_break or not (tag.startswith("-") or tag in NO_WORD_BREAK)
        else:
            index = len(run.tags)
            run.tags.append(Tag(run.length, run.length, start_tag(node), f"</{tag}>", parent, atom=False))
            for child in _siblings(node.child):
                self._inline(child, index, depth + 1)
            opened = run.tags[index]
            run.tags[index] = Tag(opened.start, run.length, opened.open, opened.close, parent, atom=False)

    def _flush(self) -> None:
        """Ends the current run: a block if it has words, else its HTML as it was."""
        run, self._run = self._run, _Run()
        if run.has_words():
            self._parts.append(len(self._blocks))
            self._blocks.append(Block("".join(run.text), tuple(run.tags)))
        elif run.nodes:
            self._parts.append("".join(map(_html, run.nodes)))


def _check_depth(node: LexborNode, depth: int) -> None:
    """Raises MarkupTooDeep for an element (not a text) `depth` levels below the top, if that is too deep."""
    if depth > MAX_DEPTH and node.tag != TEXT:
        raise MarkupTooDeep(f"nests elements more than {MAX_DEPTH} deep; at most {MAX_DEPTH} levels are allowed")


def _siblings(node: LexborNode | None) -> Iterator[LexborNode]:
    """`node` and the siblings after it."""
    while node is not None:
        yield node
        node = node.next


def _in_run(node: LexborNode, depth: int) -> bool:
    """Whether a node belongs to the text around it: text, comments, atoms, inline elements without blocks."""
    tag = _tag(node)
    if tag == DOCTYPE:
        return False
    return tag.startswith("-") or tag in ATOM_TAGS or (tag in INLINE_TAGS and not _holds_block(node, depth))


def _holds_block(node: LexborNode, depth: int) -> bool:
    """Whether an inline element has a block-level element inside (then it is a container, like a block)."""
    _check_depth(node, depth)
    for child in _siblings(node.child):
        tag = _tag(child)
        if tag.startswith("-") or tag in ATOM_TAGS:
            continue
        if tag not in INLINE_TAGS or _holds_block(child, depth + 1):
            return True
    return False


def _kept(node: LexborNode) -> bool:
    """Whether a node is left as it is: code-like elements and translate="no" (or class notranslate)."""
    tag = _tag(node)
    if tag in KEPT_TAGS:
        return True
    if tag.startswith("-"):
        return False
    attributes = node.attributes
    return (attributes.get("translate") or "").strip().lower() == "no" or "notranslate" in (
        attributes.get("class") or ""
    ).split()


def _tag(node: LexborNode) -> str:
    """An element's name, or the parser's name of a node of another kind ("-text", "-comment", ...)."""
    return node.tag or "-"


def _html(node: LexborNode) -> str:
    """A node's HTML as the parser serializes it (text escaped as in an element's content)."""
    return escape_text(node.text_content or "") if node.tag == TEXT else str(node.html or "")


def start_tag(node: LexborNode) -> str:
    """The start tag of an element, attributes in their order, values escaped as HTML5 serializes them."""
    attributes = "".join(f' {name}="{escape_attribute(value or "")}"' for name, value in node.attributes.items())
    return f"<{node.tag}{attributes}>"


def escape_text(text: str) -> str:
    """Text as element content: &, <, > and no-break spaces escaped."""
    return text.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(value: str) -> str:
    """An attribute value between double quotes."""
    return escape_text(value).replace('"', "&quot;")
