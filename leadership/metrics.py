"""Prometheus figures of the worker's election, served by each runstream process on WORKER_METRICS_PORT."""

from prometheus_client import Counter, Gauge

IS_LEADER = Gauge("worker_is_leader", "1 while this worker holds the lease and leads, else 0")
FENCE_TOKEN = Gauge("worker_fence_token", "The fencing token of this worker's current term (0 on standby)")
TERMS = Counter("worker_terms_total", "Terms this worker began as leader")
RENEWAL_FAILURES = Counter("worker_lease_renewal_failures_total", "Lease renewals that failed (Redis unreachable)")
STEP_DOWNS = Counter("worker_step_downs_total", "Terms that ended because the lease was lost or in doubt")
