"""Our study in optuna-dashboard, rendered by headless Chromium: listed by name, the Pareto-front
plot with one point per COMPLETE trial (front and dominated as the dashboard splits them), the
objectives by name, and each trial's variant and knobs readable."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import entry_points

import optuna
import pytest
from conftest import CHROMIUM, page_text, render
from optuna.trial import TrialState

from lorasearch.cli import main

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (the test extra)")

STUDY = "toy"


@pytest.fixture(scope="module")
def pages(tiny_bert, toy_data, tmp_path_factory):
    """A tiny search in a sqlite file, then the dashboard's pages for it as Chromium left them:
    (study, its id in the storage, {"home": ..., "study": ..., "trials": ...})."""
    folder = tmp_path_factory.mktemp("dashboard")
    storage = f"sqlite:///{folder / 'lorasearch.db'}"
    args = ["search", "--data", str(toy_data), "--text-column", "sentence", "--model",
            str(tiny_bert), "--variants", "lora,vera", "--trials", "3", "--steps", "8",
            "--eval-every", "4", "--batch-size", "16", "--max-length", "24", "--storage",
            storage, "--study", STUDY, "--no-tracking"]  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORASEARCH_CACHE", str(folder / "cache"))
        assert main(args) == 0
    study = optuna.load_study(study_name=STUDY, storage=storage)
    study_id = optuna.storages.get_storage(storage).get_study_id_from_name(STUDY)
    port = _free_port()
    log = folder / "dashboard.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            _dashboard_command(storage, port), stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/api/meta", log)
        rendered = {
            name: render(f"{base}/dashboard{path}", folder)
            for name, path in (
                ("home", ""),
                ("study", f"/studies/{study_id}"),
                ("trials", f"/studies/{study_id}/trials"),
            )
        }
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    return study, study_id, rendered


def test_the_study_list_names_the_study(pages):
    _, study_id, rendered = pages
    assert f" {study_id}. {STUDY} Direction: MAXIMIZE, MINIMIZE " in page_text(rendered["home"])
    assert f"{STUDY} (id=" in page_text(rendered["study"])


def test_the_pareto_front_plot_has_one_point_per_complete_trial(pages):
    study, _, rendered = pages
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    assert len(complete) == 3 and 0 < len(front) < 3  # both of the plot's traces have points
    # The dashboard draws the front (colour bar "Best Trial") and the dominated trials ("Trial").
    assert _pareto_points(rendered["study"]) == {
        "Best Trial": len(front),
        "Trial": len(complete) - len(front),
    }


def test_the_objectives_are_named(pages):
    _, _, rendered = pages
    html = rendered["study"]
    # The Pareto plot's axes are picked by objective name (without names: "0" and "1").
    assert _selected(html, "Objective X:") == "accuracy"
    assert _selected(html, "Objective Y:") == "trainable_params"
    assert _axis_titles(html, "plot-history") == ["Trial", "accuracy"]


def test_each_trial_shows_its_variant_and_knobs(pages):
    study, _, rendered = pages
    text = page_text(rendered["trials"])
    for trial in study.trials:
        assert f" Trial {trial.number} " in text
    first = study.trials[0]  # the trial the list opens on
    attrs = first.user_attrs
    assert f" variant {attrs['variant']} " in text
    assert f" knobs {json.dumps(attrs['knobs'])} " in text
    assert f" trainable_params {attrs['trainable_params']} " in text
    assert f" {first.values[0]}, {int(first.values[1])} " in text  # Value: metric, params


# --- helpers --------------------------------------------------------------------------------------


def _dashboard_command(storage: str, port: int) -> list[str]:
    """The ``optuna-dashboard`` script run by this interpreter (its venv's bin may not be on
    PATH), on wsgiref: one process (gunicorn, picked when installed, forks a worker and writes a
    control socket under ~/.gunicorn)."""
    (script,) = entry_points(group="console_scripts", name="optuna-dashboard")
    code = f"from {script.module} import {script.attr}; {script.attr}()"
    return [sys.executable, "-c", code, storage, "--host", "127.0.0.1", "--port", str(port),
            "--server", "wsgiref"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, log) -> None:
    for _ in range(120):
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail("optuna-dashboard did not come up: " + log.read_text())


def _plot(html: str, plot_id: str) -> str:
    """The plotly plot ``plot_id``'s DOM: its one plot container (up to the next plot's)."""
    assert f'id="{plot_id}"' in html, f"no {plot_id} on the page"
    container = 'class="plot-container plotly"'
    return html.split(f'id="{plot_id}"', 1)[1].split(container, 2)[1]


def _pareto_points(html: str) -> dict[str, int]:
    """The Pareto-front plot's points per trace, each trace named by its colour bar's title."""
    plot = _plot(html, "graph-pareto-front")
    titles = dict(re.findall(r'class="ycb(\w+)title"[^>]*data-unformatted="([^"]*)"', plot))
    points = {}
    for trace in plot.split('<g class="trace scatter trace')[1:]:
        uid = re.match(r"\w+", trace).group()
        points[titles[uid]] = trace.split('<g class="text"')[0].count('class="point"')
    return points


def _selected(html: str, legend: str) -> str:
    """The text of the select box under the fieldset legend ``legend``."""
    found = re.search(rf'{re.escape(legend)}</legend>.*?role="combobox"[^>]*>([^<]*)<', html, re.S)
    assert found, f"no {legend} select box"
    return found.group(1)


def _axis_titles(html: str, plot_id: str) -> list[str]:
    plot = _plot(html, plot_id)
    return re.findall(r'class="[xy]title"[^>]*data-unformatted="([^"]*)"', plot)
