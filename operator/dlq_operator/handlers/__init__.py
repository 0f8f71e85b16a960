"""kopf's side of the operator: thin handlers, indexers and filters, registered in ``main.py``,
and kopf's API session with a bounded connection pool (:mod:`.session`).

A handler turns kopf's kwargs into the project's values, leaves the work to domain code
(the reconciler, the replay controller, ``memo.nudge`` for objects to look at again) and
applies what comes back (status patch, Events, "retry later"). Indexers and filters read the
one object they are given.

Every handler and indexer is a coroutine, even when it awaits nothing: kopf runs plain
functions in a thread pool, a thread hop for each of the many index calls per event."""
