"""Prometheus metrics of the gateway, on a registry of its own per app (tests build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "askwise_requests", "Chat requests by endpoint, preset, action and HTTP status.",
            ["endpoint", "preset", "action", "status"], registry=self.registry)
        self.latency = Histogram(
            "askwise_request_latency_seconds", "Time from request to the last byte of the reply.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram(
            "askwise_time_to_first_token_seconds", "Time to the first user-visible text (streams).",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter(
            "askwise_tokens", "Tokens processed by the policy model.", ["kind"], registry=self.registry)
        self.in_flight = Gauge(
            "askwise_in_flight_requests", "Chat requests being served now.", registry=self.registry)
        self.queued = Gauge(
            "askwise_queued_requests", "Chat requests waiting for a serving slot.",
            registry=self.registry)
        self.backend_errors = Counter(
            "askwise_backend_errors", "Engine or backend failures by kind.", ["kind"],
            registry=self.registry)
        self.malformed = Counter(
            "askwise_malformed_replies", "Model replies that needed a parser fallback.",
            registry=self.registry)
        self.redraws = Counter(
            "askwise_question_redraws", "Questions that repeated an option, were cut off, or "
            "grounded fewer than two options in the documents, by whether a redraw replaced "
            "them.", ["outcome"], registry=self.registry)
        for outcome in ("replaced", "kept"):
            self.redraws.labels(outcome)  # both series from the start, at 0
        self.decisions = Counter(
            "askwise_decisions", "Opening turns by what chose the action: the value head, the "
            "policy's tag, or the tag because the value server failed.", ["by"], registry=self.registry)
        for by in ("value", "policy", "policy_fallback"):
            self.decisions.labels(by)
        self.lists = Counter(
            "askwise_lists", "Multi-answers built from the readings (--lists readings), by what "
            "the user got: the readings' list, or the policy's own where its question offered "
            "fewer than two options.", ["written_by"], registry=self.registry)
        for by in ("readings", "model"):
            self.lists.labels(by)

    def watch_replicas(self, replicas) -> None:
        """Export each backend replica's state (askwise.policy.engines.replicas.Replica)."""
        self.registry.register(_ReplicaCollector(replicas))


class _ReplicaCollector:
    """Read at scrape time: the replica set owns the numbers, metrics only reports them."""

    def __init__(self, replicas):
        self.replicas = replicas

    def collect(self):
        up = GaugeMetricFamily("askwise_backend_replica_up",
                               "1 while a backend replica takes requests, 0 while it is out.",
                               labels=["replica"])
        outstanding = GaugeMetricFamily("askwise_backend_replica_outstanding",
                                        "Requests waiting on each backend replica.", labels=["replica"])
        sent = CounterMetricFamily("askwise_backend_replica_requests",
                                   "Generation requests sent to each backend replica.",
                                   labels=["replica"])
        for replica in self.replicas:
            up.add_metric([replica.name], float(replica.healthy))
            outstanding.add_metric([replica.name], replica.outstanding)
            sent.add_metric([replica.name], replica.served)
        return [up, outstanding, sent]
