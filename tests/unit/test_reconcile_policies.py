"""A RetryPolicy's digest and observed status (pure)."""

from __future__ import annotations

from dlq_operator.reconcile.policies import observed_status, policy_digest


def test_the_digest_changes_with_the_spec_not_with_key_order() -> None:
    spec = {"maxRetries": 3, "backoff": {"initialDelay": "1s", "maxDelay": "60s"}}
    same = {"backoff": {"maxDelay": "60s", "initialDelay": "1s"}, "maxRetries": 3}
    assert policy_digest(spec) == policy_digest(same)
    assert policy_digest(spec) != policy_digest({**spec, "maxRetries": 4})
    assert len(policy_digest(spec)) == 16


def test_an_observed_policy_is_ready_and_counts_its_users() -> None:
    status = observed_status({}, 2, 5)
    assert (status["observedGeneration"], status["usedBy"]) == (5, 2)
    kinds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert kinds == {
        "Ready": ("True", "Accepted"),
        "Reconciling": ("False", "Accepted"),
        "Stalled": ("False", "Accepted"),
    }
    assert status["conditions"][0]["message"] == "used by 2 DeadLetterQueue(s)"
