"""bench/run_all.py's partial re-run keeps what the full run's header said (no benchmark runs)."""

from conftest import load_bench

run_all = load_bench("run_all")


def test_a_partial_rerun_keeps_the_full_runs_machine_and_time(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        "# Benchmarks\n\nMade by `python bench/run_all.py` (this run: 19.6 min, commit abc).\n"
        "Machine: AMD EPYC, 2 cores, GPU: none; Python 3.11.7, torch 2.13.0+cpu.\n"
    )
    assert (
        run_all.full_run_machine(path)
        == "AMD EPYC, 2 cores, GPU: none; Python 3.11.7, torch 2.13.0+cpu"
    )
    assert run_all.last_full_run(path) == " (last full run: 19.6 min, commit abc)."
    assert run_all.full_run_machine(tmp_path / "none.md") == run_all.machine()
