"""GraphiQL for developers (``HUB_DEV_MODE``), served by the hub itself: its scripts and styles are shipped in the
package (``hub/static/graphiql/``, see its README.md for versions and licences), so the page works without
internet access, and nothing it loads leaves the hub.

The page opens with the README's household query and explains how to get a token and which headers to set.
Its fetcher sends nothing to ``/graphql`` until the Authorization header holds a token, so loading the page
(GraphiQL introspects on load) does not write a denied audit entry.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

ASSETS = Path(__file__).parent / "static" / "graphiql"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SERVED = frozenset(
    {"graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js", "start.js"}
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

STARTER_QUERY = """# The README's household query, under purpose CASE (set the headers below the editor first).
# A field your department is not granted for the purpose refuses the whole query, naming the field.
{
  household(householdId: "H330113000173") {
    address
    size
    members {
      name
      relationToHead
      civilAffairs { tier monthlyAmount }
      disability { category grade }
      medical { outOfPocket12mBand }
      employment { pensionMonthlyBand }
      tax { incomeBand }
      education { isFullTimeStudent }
    }
  }
}
"""
STARTER_HEADERS = {
    "Authorization": "Bearer <paste the access_token here>",
    "X-Hub-Purpose": "CASE",
    "X-Hub-Case": "CASE-2026-0001",
    "X-Hub-Officer": "officer-wang",
}
WAITING_FOR_CREDENTIALS = (
    "Nothing was sent: the Authorization header holds no token yet. Get one with the curl command above the "
    'editor, paste it into the Headers tab as "Bearer <token>", then press the re-fetch schema button (↻).'
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hub · GraphiQL</title>
<link rel="stylesheet" href="/graphiql/graphiql.min.css">
<style>
html, body {{ margin: 0; height: 100%; font-family: system-ui, sans-serif; }}
body {{ display: flex; flex-direction: column; }}
#help {{ padding: 6px 14px; background: #f4f6fa; border-bottom: 1px solid #d8dce6; font-size: 13px; }}
#help summary {{ cursor: pointer; font-weight: 600; }}
#help pre {{ background: #fff; border: 1px solid #d8dce6; padding: 6px; overflow-x: auto; white-space: pre-wrap; }}
#graphiql {{ flex: 1; min-height: 0; }}
</style></head>
<body>
<details id="help" open><summary>hub GraphiQL: get a token, then set the headers (click to fold)</summary>
<p>1. Get an access token for your client (client credentials; the demo's secrets are in
<code>.hub-demo/demo-clients.json</code>). <code>scope</code> is optional: the purposes the token may declare.</p>
<pre>curl -s -u linping-civil-affairs:$SECRET -d grant_type=client_credentials -d scope=CASE {base}/oauth/token</pre>
<p>2. In the <b>Headers</b> tab below the editor, replace <code>&lt;paste the access_token here&gt;</code> with the
<code>access_token</code>, keep <code>Bearer </code> before it, then press ↻ (re-fetch schema) in the left bar.
Every request declares its purpose in <code>X-Hub-Purpose</code> (one your client is registered for and the
token's scope includes), names the officer acting in <code>X-Hub-Officer</code>, and gives the case in
<code>X-Hub-Case</code> where the purpose needs one (CASE does). Every request is an audit entry; nothing is
sent until the header holds a token. Errors are explained in <code>docs/errors/</code>.</p>
</details>
<div id="graphiql">Loading GraphiQL…</div>
<script type="application/json" id="hub-graphiql">{config}</script>
<script src="/graphiql/react.production.min.js"></script>
<script src="/graphiql/react-dom.production.min.js"></script>
<script src="/graphiql/graphiql.min.js"></script>
<script src="/graphiql/start.js"></script>
</body></html>
"""


def page(base_url: str) -> str:
    """The GraphiQL page; ``base_url`` (the hub's own address, as the browser reached it) is shown in the curl."""
    config = {
        "url": "/graphql",
        "query": STARTER_QUERY,
        "headers": json.dumps(STARTER_HEADERS, indent=2),
        "noToken": WAITING_FOR_CREDENTIALS,
    }
    data = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")  # cannot close the <script> element
    return PAGE.format(base=html.escape(base_url), config=data)


async def graphiql_page(request: Request) -> Response:
    base = f"{request.url.scheme}://{request.url.netloc}"
    return HTMLResponse(page(base), headers={"content-security-policy": CSP, "cache-control": "no-store"})


async def graphiql_asset(request: Request) -> Response:
    """One of the shipped files, with its content type; 404 for anything else, and outside dev mode."""
    name = request.path_params["name"]
    if not request.app.state.hub.settings.dev_mode or name not in SERVED:
        return Response("not found", status_code=404, media_type="text/plain")
    path = ASSETS / name
    return Response(
        path.read_bytes(),
        media_type=CONTENT_TYPES[path.suffix],
        headers={"cache-control": "max-age=3600", "x-content-type-options": "nosniff"},
    )
