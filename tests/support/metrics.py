"""Read a Prometheus exposition (GET /metrics) as tests look at it: one value per sample."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset], float]


def parse_samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by its name and its labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of the sample with exactly these labels (0 if absent, as Prometheus reads a counter never counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def app_samples(client) -> Samples:
    """The samples of a Flask test client's app."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return parse_samples(answer.get_data(as_text=True))
