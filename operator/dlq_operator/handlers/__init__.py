"""Thin kopf handlers: each one translates kopf's kwargs, awaits one domain call, and
applies the outcome (status patch, Events, "retry later"). Registered in ``main.py``.

Every handler and indexer is a coroutine, even when it awaits nothing: kopf runs plain
functions in a thread pool, a thread hop for each of the many index calls per event."""
