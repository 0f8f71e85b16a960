"""``dlq-admin``: the admin CLI for dead-letter queues, also ``kubectl dlq``.

Commands talk to Kafka directly (``list``, ``show``, ``reprocess``, ``purge``) or to the
Kubernetes API (``stats``, ``watch``, ``reprocess --via-cluster``). Each command is a thin
function in its own module (:mod:`.records`, :mod:`.replay`, :mod:`.purge`,
:mod:`.cluster`); :mod:`.app` puts them together, and :mod:`.errors` lists the exit codes.
"""
