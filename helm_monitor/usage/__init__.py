"""Usage and cost over time (SPEC 10): facts kept as files are read, prices, and queries.

Nothing here knows of Flask, gevent or the live layer: sources fill :class:`facts.UsageFacts`
as they read, :mod:`pricing` turns facts into dollars with their basis, and :mod:`query`
groups many sessions' facts into buckets of any time zone.
"""
