"""`manage.py demo`: loads the demo data and computes insights once, idempotently."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from insights.models import InsightRun, ProfileInsight
from profiles.models import Profile


def demo() -> str:
    out = io.StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_demo_computes_insights_once_and_a_second_demo_keeps_them():
    first = demo()

    runs = list(InsightRun.objects.values_list("kind", "status"))
    assert runs == [("full", "succeeded")]
    profiles = Profile.objects.count()
    assert profiles > 1000
    assert ProfileInsight.objects.count() == profiles
    buyers = ProfileInsight.objects.filter(order_count__gt=0)
    assert buyers.exclude(rfm_group="").count() == buyers.count() > 0
    assert f"Insights: full run #{InsightRun.objects.get().pk} succeeded" in first
    # The worker the demo starts keeps insights current afterwards.
    assert sorted(Schedule.objects.values_list("name", "func")) == [
        ("insights: full (nightly)", "insights.tasks.insight_run_enqueue_full"),
        ("insights: incremental", "insights.tasks.insight_run_enqueue_incremental"),
    ]

    second = demo()

    assert list(InsightRun.objects.values_list("kind", "status")) == runs
    assert ProfileInsight.objects.count() == profiles
    assert "Insights: unchanged data, already computed" in second


def test_sigterm_stops_the_demo_server_and_its_worker(tmp_path):
    """`make demo` stopped by SIGTERM (not only Ctrl+C) leaves no qcluster worker behind."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "DEBUG": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'cdp.settings'); "
        "django.setup(); from profiles.management.commands.demo import serve; "
        f"serve('127.0.0.1:{port}')"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/").status
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) == 1  # the qcluster worker
        worker = int(children[0])

        server.send_signal(signal.SIGTERM)

        assert server.wait(timeout=30) == 0
        for _ in range(100):
            if not Path(f"/proc/{worker}").exists():
                break
            time.sleep(0.2)
        assert not Path(f"/proc/{worker}").exists()
    finally:
        if server.poll() is None:
            server.kill()
