"""Connect to a Skyport server with OAuth, driving the browser step headlessly, and call hello.

usage: oauth_client.py fastmcp|sdk URL USER PASSWORD
  fastmcp  the FastMCP `Client(url, auth="oauth")`: dynamic registration, PKCE, its own local
           callback server; `webbrowser.open` is replaced by a thread that submits Skyport's
           login and consent forms and follows the redirect to that callback server
  sdk      the official SDK's `OAuthClientProvider`, whose redirect handler submits the same
           forms and whose callback handler returns the code from the redirect
Prints {"ok": true, "text": "...", "forms": N} or {"ok": false, "error": "..."}; exits 0 only when ok.
"""

import asyncio
import html
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser

from report import report, text_of


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)
FORMS = {"count": 0}


def post(url, fields):
    """POSTs a form without following redirects: (status, Location, body)."""
    data = urllib.parse.urlencode(fields).encode()
    try:
        with OPENER.open(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.status, r.headers.get("Location"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location"), e.read().decode()


def sign_in(authorize_url, user, password):
    """What a person does in the browser: sign in, allow. Returns the redirect to the client."""
    parsed = urllib.parse.urlsplit(authorize_url)
    with urllib.request.urlopen(authorize_url, timeout=30) as r:
        page = r.read().decode()
    if "Sign in to Skyport" not in page:
        raise RuntimeError(f"no login page at {authorize_url}: {page[:300]}")
    fields = dict(urllib.parse.parse_qsl(parsed.query))
    fields.update(username=user, password=password)
    base = f"{parsed.scheme}://{parsed.netloc}"
    status, _, page = post(f"{base}/oauth/authorize", fields)
    if status != 200 or "Allow access?" not in page:
        raise RuntimeError(f"login failed ({status}): {page[:300]}")
    ticket = re.search(r'name="ticket" value="([^"]+)"', page)
    if not ticket:
        raise RuntimeError(f"no consent ticket in: {page[:300]}")
    status, location, page = post(
        f"{base}/oauth/consent", {"ticket": html.unescape(ticket.group(1)), "decision": "approve"}
    )
    if status not in (302, 303) or not location:
        raise RuntimeError(f"consent did not redirect ({status}): {page[:300]}")
    FORMS["count"] += 2
    return location


async def fastmcp_call(url, user, password):
    from fastmcp import Client
    from fastmcp.client.auth import OAuth

    failures = []

    def browser(authorize_url, *args, **kwargs):
        def follow():
            try:
                location = sign_in(authorize_url, user, password)
                # The client starts its callback server after opening the browser.
                for _ in range(100):
                    try:
                        with urllib.request.urlopen(location, timeout=10) as r:
                            r.read()
                        return
                    except (urllib.error.URLError, ConnectionError):
                        time.sleep(0.1)
                raise RuntimeError(f"the callback {location} never answered")
            except Exception as e:  # reported by the main thread, and now (it may be waiting)
                print(f"browser step failed: {e}", file=sys.stderr, flush=True)
                failures.append(e)

        threading.Thread(target=follow, daemon=True).start()
        return True

    webbrowser.open = browser
    auth = OAuth(callback_host="127.0.0.1", callback_timeout=60)
    async with Client(url, auth=auth) as c:
        called = await c.call_tool("hello", {"name": user})
    if failures:
        raise failures[0]
    return {"ok": not called.is_error, "text": text_of(called.content), "forms": FORMS["count"]}


async def sdk_call(url, user, password):
    import mcp
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
    from pydantic import AnyUrl

    class Memory:
        def __init__(self):
            self.tokens = None
            self.client = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens

        async def get_client_info(self):
            return self.client

        async def set_client_info(self, info):
            self.client = info

    redirect = {}

    async def redirect_handler(authorize_url):
        redirect["to"] = await asyncio.to_thread(sign_in, authorize_url, user, password)

    async def callback_handler():
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect["to"]).query))
        if "code" not in query:
            raise RuntimeError(f"no code in the redirect: {redirect['to']}")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"))

    metadata = OAuthClientMetadata(
        client_name="mcp SDK e2e",
        redirect_uris=[AnyUrl("http://127.0.0.1:3030/callback")],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(url, metadata, Memory(), redirect_handler, callback_handler)
    http = create_mcp_http_client(auth=provider)
    async with mcp.Client(streamable_http_client(url, http_client=http), mode="legacy") as c:
        called = await c.call_tool("hello", {"name": user})
    return {"ok": not called.is_error, "text": text_of(called.content), "forms": FORMS["count"]}


def main():
    kind, url, user, password = sys.argv[1:]
    run = {"fastmcp": fastmcp_call, "sdk": sdk_call}[kind]
    report(lambda: run(url, user, password))


if __name__ == "__main__":
    main()
