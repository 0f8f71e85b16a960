"""Prometheus metrics of the retry worker (served on its own port)."""

from prometheus_client import Counter, Gauge

RETRY_SUCCESS = Counter(
    "dlq_retry_success_total",
    "Dead letters republished to their original topic.",
    ["original_topic"],
)
RETRY_FAILED = Counter(
    "dlq_retry_failed_total",
    "Republish attempts that failed (retried later or parked).",
    ["original_topic"],
)
PARKED = Counter("dlq_parked_total", "Dead letters moved to the parked topic.", ["reason"])
MAX_RETRIES_EXCEEDED = Counter(
    "dlq_max_retries_exceeded_total",
    "Dead letters parked because retries ran out.",
    ["original_topic"],
)
SCHEDULED = Gauge("dlq_worker_scheduled_records", "Dead letters waiting for their backoff.")
SCHEDULE_LAG = Gauge(
    "dlq_worker_schedule_lag_seconds", "How late the most overdue waiting retry is."
)
IN_FLIGHT = Gauge("dlq_worker_in_flight_records", "Produces not yet acknowledged by the broker.")
