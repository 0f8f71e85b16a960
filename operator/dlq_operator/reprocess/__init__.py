"""Replay: dead letters sent back to where they came from, selected and rate-limited.

Shared by the ReprocessRequest controller and ``dlq-admin reprocess``. A replay

1. plans an offset range per partition of the DLQ (or parked) topic from the selector's
   partition, offset and time filters (:mod:`.selection`), and starts its
   :class:`~.progress.Progress` there;
2. reads those ranges, judges every record against the selector's per-record filters
   (:mod:`.selection`), builds the record to produce for each one picked (:mod:`.records`);
3. produces them in small batches at the requested rate (:mod:`.ratelimit`), moving the
   checkpoint only after the broker acknowledged a batch (:mod:`.engine`);
4. keeps counters, checkpoint and dry-run samples in the request's status, so a
   restarted operator goes on where it stopped, and tells which offsets may be committed
   as resolved so the DLQ's depth figures drop (:mod:`.progress`).

Everything here is pure or written against small protocols: the Kafka and Kubernetes
adapters are passed in.
"""
