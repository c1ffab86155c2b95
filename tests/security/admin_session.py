"""A staff member using the Django admin over HTTP: log in, read a form, change it, submit it.

What a browser does, with the standard library: a cookie jar for the session and CSRF cookies, and
an HTML parser that collects a form's fields as the browser would submit them.
"""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

from tests.support import TIMEOUT


class FormFields(HTMLParser):
    """The fields of the first <form> whose id or action matches, as (name, value) pairs to submit."""

    def __init__(self, form_id: str | None = None):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.done = False
        self.fields: list[tuple[str, str]] = []
        self._select: tuple[str, bool] | None = None
        self._selected_first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and not self.done and (self.form_id is None or attrs.get("id") == self.form_id):
            self.inside = True
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in {"checkbox", "radio"} and "checked" not in attrs:
                return
            if kind in {"submit", "button", "image", "file"}:
                return
            self.fields.append((name, attrs.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = (name, "multiple" in attrs)
        elif tag == "option" and self._select is not None and "selected" in attrs:
            self.fields.append((self._select[0], attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields.append((name, ""))

    def handle_data(self, data):
        if self._textarea is not None:
            name, value = self.fields.pop()
            self.fields.append((name, value + data))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form" and self.inside:
            self.inside = False
            self.done = True


class AdminSession:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, path: str, data: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body)
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def csrf(self) -> str:
        return next(c.value for c in self.cookies if c.name == "csrftoken")

    def login(self, username: str, password: str) -> tuple[int, str]:
        self.request("/admin/login/")
        return self.request(
            "/admin/login/?next=/admin/",
            [("csrfmiddlewaretoken", self.csrf()), ("username", username), ("password", password), ("next", "/admin/")],
        )

    def form(self, path: str, form_id: str | None = None) -> list[tuple[str, str]]:
        status, html = self.request(path)
        assert status == 200, (status, html[:500])
        parser = FormFields(form_id)
        parser.feed(html)
        assert parser.fields, f"no form {form_id!r} at {path}"
        return parser.fields

    def submit(self, path: str, fields: list[tuple[str, str]], **submit: str) -> tuple[int, str]:
        """POST the fields (with a fresh CSRF token) plus the submit button's name and value."""
        fields = [(k, v) for k, v in fields if k != "csrfmiddlewaretoken"]
        return self.request(path, [("csrfmiddlewaretoken", self.csrf()), *fields, *submit.items()])

    def action(self, changelist: str, action: str, object_ids: list[int]) -> tuple[int, str]:
        """Run an admin action on the selected objects, as the changelist's action bar does."""
        data = [("action", action), ("index", "0"), ("select_across", "0")]
        data += [("_selected_action", str(pk)) for pk in object_ids]
        return self.submit(changelist, data)
