"""The decisions of `serve --workers`: how many processes, and how soon a dead one comes back."""

from __future__ import annotations

from receiver.cli import build_parser, main
from receiver.workers import RestartBackoff, cpu_quota, worker_command, worker_count


def test_zero_workers_means_one_per_core() -> None:
    assert worker_count(0, 8) == 8
    assert worker_count(0, 0) == 1
    assert worker_count(3, 8) == 3


def test_a_container_cpu_limit_bounds_the_cores_counted() -> None:
    assert cpu_quota("200000 100000\n") == 2
    assert cpu_quota("150000 100000") == 2  # a core and a half: two processes
    assert cpu_quota("50000 100000") == 1
    assert cpu_quota("max 100000") is None
    assert cpu_quota("") is None


def test_a_worker_dying_again_and_again_waits_longer_each_time_up_to_the_cap() -> None:
    backoff = RestartBackoff(first=0.5, cap=4, healthy_after=60)
    delays = []
    delay = 0.0
    for _ in range(6):
        delay = backoff.delay(delay, ran_seconds=1)
        delays.append(delay)
    assert delays == [0.5, 1, 2, 4, 4, 4]


def test_a_worker_that_ran_a_while_before_dying_comes_back_at_once() -> None:
    backoff = RestartBackoff(first=0.5, cap=30, healthy_after=60)
    assert backoff.delay(16, ran_seconds=600) == 0.5


def test_a_worker_is_the_same_serve_command_told_it_shares_its_ports() -> None:
    command = worker_command("0.0.0.0", 8080)
    args = build_parser().parse_args(command[3:])
    assert (args.command, args.host, args.port, args.in_group) == ("serve", "0.0.0.0", 8080, True)


def test_a_broken_notifications_file_stops_serve_workers_before_any_worker_starts(tmp_path, monkeypatch,
                                                                                  capsys) -> None:
    broken = tmp_path / "notify.yaml"
    broken.write_text("receivers: [\n")
    monkeypatch.setenv("NOTIFY_CONFIG", str(broken))
    monkeypatch.setattr("receiver.logging_setup.configure_logging", lambda *args: None)  # the test's logging stays
    assert main(["serve", "--workers", "2", "--port", "1"]) == 2
    assert "the notifications file cannot be used" in capsys.readouterr().err
