"""What a test reads in an HTML page: the attributes of its elements, the code of its scripts, its images."""

import re
from html.parser import HTMLParser

PLACEHOLDER = "No description has been provided for this image"  # nbconvert's alt for an image without one


class Page(HTMLParser):
    """The elements of an HTML page that matter here: attributes of every element, and the text of its scripts."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.elements, self.scripts, self._script = [], [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._script = []

    def handle_data(self, data):
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def references(self):
        """(tag, attribute, value) of every attribute that makes the browser load or link something."""
        return [
            (tag, name, value)
            for tag, attrs in self.elements
            for name, value in attrs.items()
            if name in ("src", "href", "srcset", "data", "poster", "action", "formaction") and value is not None
        ]

    def images(self):
        return [attrs for tag, attrs in self.elements if tag == "img"]


def external(url):
    """Whether the browser would fetch url from another machine."""
    return bool(re.match(r"\s*(?:[a-z][a-z0-9+.-]*:)?//", url, re.I)) and not url.strip().lower().startswith("file:")
