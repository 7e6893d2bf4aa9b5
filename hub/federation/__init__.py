"""Hub-to-hub (``consumer``: who asks across the hop; ``remote``: the client of another region's hub;
``delegate``: what is asked of them and how their answers are checked and merged).

Hub-to-hub: another region's hub as a source for residents this hub does not hold.

When a root ``person``, ``people`` or ``household`` field resolves to null here (not in this region's data, or
outside the caller's jurisdiction), the gateway forwards that root field's sub-operation to each configured
remote hub (``HUB_REMOTE_HUBS``), concurrently and within the source timeout, and merges the first non-null
answer into the response. The remote hub is asked as an ordinary client (client credentials registered there,
with role ``hub``): it authenticates, applies its own policies and row scope to that client, audits the request
and answers; its errors come back with their codes, prefixed by the region's name.

This hub's policy plan has already approved every coordinate of the operation before anything ran, so a
field comes back only if both hubs grant it. Both audit logs record the exchange under the same ids: this
hub's entry lists ``remote: [{"hub": name, "request_id": <the remote's request id>}]`` and the remote's entry
carries ``origin_request_id`` (this hub's request id, sent as ``X-Hub-Origin-Request-Id``). A request that
itself came from a hub is never forwarded again (one hop, no loops).
"""
