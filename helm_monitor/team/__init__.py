"""Team mode (SPEC 9): many hosts publish to Redis (or Valkey) Streams, web workers fan out.

- ``keys``: the layout in the engine and the wire format of stream entries: the contract
  between the two roles.
- ``client``: redis-py clients with the settings blocking reads need (the redis-py 8 trap).
- ``agent`` / ``publisher``: ``helm-monitor agent``, this host's store changes written to the
  host's own stream and snapshot hash.
- ``feed`` / ``web``: ``helm-monitor web``, every host's stream followed with one blocking
  read per worker, merged into the existing store and broadcasters.
- ``admin``: ``helm-monitor hosts add|remove|list``, one engine user per host.

Nothing here is imported unless ``HELM_REDIS_URL`` is set: the single-host app needs no
engine and no new dependency. Design and measurements: ``../shared/design/TEAM_SCALE.md``.
"""
