"""300 browsers on one web process all receive every status change of a burst of tasks
and each ends on the newest (latencies printed; bench/scale.py is where they are judged)."""

from __future__ import annotations

import pytest

from tests.scale.measure import fan_out

pytestmark = pytest.mark.scale

CLIENTS = 300


def test_300_clients_on_one_web_process_receive_every_status_change(cluster):
    web = cluster.web("web1")
    for proc in (web, cluster.worker("w1"), cluster.worker("w2")):
        proc.wait_ready()

    # A burst: 20 tasks queued at once, 60 changes, 18,000 deliveries.
    burst = fan_out(cluster, web, clients=CLIENTS, tasks=20)
    # Changes one at a time (PRODUCT.md: "a status change reaches 500
    # connected browsers within 250 ms (p95)").
    single = fan_out(cluster, web, clients=CLIENTS, tasks=6, spacing=0.5)
    for name, result in (("burst", burst), ("one at a time", single)):
        print(
            f"\n{name}: {CLIENTS} clients x {result.events_per_client} changes: "
            f"p50 {result.p50 * 1000:.0f} ms, p95 {result.p95 * 1000:.0f} ms, "
            f"max {result.max * 1000:.0f} ms"
        )
        assert result.complete_clients == CLIENTS  # no status lost
        assert result.final_clients == CLIENTS  # and each shows the last one
        assert len(result.latencies) == CLIENTS * result.events_per_client
    # No bound on the latencies here: on a 2-core machine that also runs the 300
    # clients, the workers and PostgreSQL they measure the machine, not the
    # product (the burst's p95: 2.1 s quiet in bench/RESULTS.md, 9.5 s beside
    # two CPU hogs; one at a time: 0.19 s and 1.5 s). bench/scale.py measures
    # them on a quiet machine.
