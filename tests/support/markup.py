"""Checks of HTML output with the standard library's parser: well-formed, which tags, which text."""

from __future__ import annotations

from html.parser import HTMLParser

from selectolax.lexbor import LexborHTMLParser

from service.text.markup import DOCUMENT

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
Tree = tuple[str, tuple[tuple[str, str], ...], tuple["Tree", ...]]  # tag (or "!--", "?", "!"), attributes, children


class _Reader(HTMLParser):
    """Builds the tag tree of an HTML text, asserting that every element is closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[tuple[str, str], ...], list[Tree]]] = [("", (), [])]
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = tuple((name, value or "") for name, value in attrs)
        if tag in VOID:
            self.stack[-1][2].append((tag, attributes, ()))
        else:
            self.stack.append((tag, attributes, []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in VOID, f"<{tag}/> is not a void element"
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"</{tag}> closes a void element"
        open_tag, attributes, children = self.stack.pop()
        assert open_tag == tag, f"</{tag}> closes <{open_tag}>"
        self.stack[-1][2].append((tag, attributes, tuple(children)))

    def handle_comment(self, data: str) -> None:
        self.stack[-1][2].append(("!--", (("data", data),), ()))

    def handle_pi(self, data: str) -> None:
        self.stack[-1][2].append(("?", (("data", data),), ()))

    def handle_decl(self, decl: str) -> None:
        self.stack[-1][2].append(("!", (("data", decl),), ()))

    def handle_data(self, data: str) -> None:
        if self.stack[-1][0] not in ("script", "style"):
            self.text.append(data)


def _read(html: str) -> _Reader:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    assert len(reader.stack) == 1, f"<{reader.stack[-1][0]}> is never closed"
    return reader


def tag_tree(html: str, ordered: bool = False) -> tuple[Tree, ...]:
    """The elements, comments and doctype of a well-formed HTML text (AssertionError if it is not), without its
    text; siblings sorted unless `ordered` (translation may reorder words, and the tags around them)."""
    return _canonical(tuple(_read(html).stack[0][2]), ordered)


def _canonical(trees: tuple[Tree, ...], ordered: bool) -> tuple[Tree, ...]:
    canonical = tuple((tag, attributes, _canonical(children, ordered)) for tag, attributes, children in trees)
    return canonical if ordered else tuple(sorted(canonical))


def text_of(html: str) -> str:
    """The text of an HTML text, entities decoded, without script and style content."""
    return "".join(_read(html).text)


def repaired(html: str) -> str:
    """An HTML fragment or document as the parser repairs it, serialized (what a translation keeps the tags of)."""
    return str(LexborHTMLParser(html, is_fragment=not DOCUMENT.match(html)).html or "")
