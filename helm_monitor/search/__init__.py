"""Full-text search over every transcript (SPEC 11).

files -> sources -> the indexer process (its own pipeline: helm_monitor.search.indexer) ->
``search.db`` in the cache directory -> the web worker's read-only queries
(helm_monitor.search.query) -> ``GET /api/search``.

The index holds masked text only (the conversations' messages are masked before they
are indexed), so no secret can be found by its text, by a prefix of it, or by hit counts.
"""
