"""``helm-monitor agent``: this host's dashboard as always, plus a publisher to the team's engine.

The app factory builds the usual :class:`~helm_monitor.live.service.LiveService` and calls
:func:`attach`: the publisher follows the service's store and its usage index (SPEC 10: the
cells are published as this host priced them; it never reaches back into either) and starts
and stops with the service. Everything the publisher needs of the service is handed to it
here, so that :mod:`helm_monitor.team.publisher` knows nothing of files or sources.
"""

from __future__ import annotations

from helm_monitor.team.publisher import Publisher

# An offset past any conversation's end: page() then reads no message and answers its total.
_PAST_THE_END = 1 << 31


def attach(svc, config) -> Publisher:
    """Make the service's store publish to ``config.redis_url`` as host ``config.host_name``."""
    if svc.host != config.host_name:
        raise ValueError(f"the service stamps its sessions {svc.host!r}, but this host is {config.host_name!r}")
    usage = getattr(svc, "usage", None)  # the service's UsageIndex: its cells, priced here, are published
    publisher = Publisher(svc.store, url=config.redis_url, ca_file=config.redis_ca_file, host=config.host_name,
                          heartbeat_s=config.team_heartbeat_s, wait_ready=svc.wait_ready,
                          read_tail=lambda key, count: read_tail(svc, key, count), usage=usage)
    svc.store.add_listener(publisher.on_change)
    if usage is not None:
        usage.add_listener(publisher.on_usage)
    svc.attached.append(publisher)
    return publisher


def read_tail(svc, key: str, count: int) -> dict | None:
    """The last ``count`` messages of a session, exactly as the detail endpoint pages them
    (masked and clipped by the source), and how many there are; None if it has none to read.

    Read like :meth:`LiveService.conversation`: the lock taken in the caller's greenlet, the
    reading in the request pool (a native thread under gevent), never in the caller's greenlet.
    Raises FileNotFoundError when the session's data went meanwhile.
    """
    conv = svc.catalog.conversation(key)
    if conv is None:
        return None

    def last() -> dict:
        # Two pages: the total alone (no message read), then the last ones. A message appended in
        # between moves the end: asked again once, else the next write brings the newest.
        for _ in range(2):
            total = conv.page(_PAST_THE_END, 1)["total"]
            page = conv.page(max(0, total - count), count)
            if page["total"] == total:
                break
        return {"messages": page["messages"], "total": page["total"]}

    with conv.lock:
        return svc.request_offload(last)
