"""The retry worker: the process a DeadLetterQueue's Deployment runs.

It reads dead letters from ``<topic>.dlq``, decides for each whether to park it or retry
it after a backoff (``decide``, ``backoff``), keeps waiting retries in a bounded schedule
instead of sleeping on them (``schedule``), republishes them to the original topic and
commits offsets only once every record before them was republished or parked.
"""
