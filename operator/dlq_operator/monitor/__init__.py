"""The depth monitor: how full each dead-letter queue is, and who must hear about it.

One periodic cycle covers every ``DeadLetterQueue``: a single batched offset query
(:mod:`.cycle` plans it) yields per-DLQ figures (:mod:`.depth`), an alert level and a
notification decision that never repeats itself more than once per renotify interval
(:mod:`.alerts`), status patches only when something changed (:mod:`.cycle`), Prometheus
metrics (:mod:`.metrics`), Kubernetes Events and webhooks (:mod:`.sinks`).

Everything here but the webhook sender is pure: values in, values out, clock passed in.
"""
