"""Execute notebooks headless with papermill into run folders (``medbench run``).

Each run goes to ``reports/<notebook>/<run_id>/`` holding ``executed.ipynb``,
``executed.html``, ``params.yaml``, ``run.json`` (status included),
``metrics.json``, ``figures/`` and ``kernel.log`` (what the kernel process
itself printed: its own log lines and anything native libraries write to the
process's stderr; cell outputs are in the notebook). The folder is assembled under a hidden temporary name and
renamed when the run ends (completed or failed), so a crash of medbench itself
never leaves a half-written run; parameters are validated before anything is
created. One failing notebook does not stop the rest.

Kernels are started with CurveZMQ transport encryption whenever pyzmq and the
kernelspec support it (the medbench and python3 kernelspecs declare it), and
their process output goes to ``kernel.log``, so the progress bar shows
progress only.

Executed notebooks are stored without widget state and without the
widget-view references whose state is gone (a reference to a model of a kernel
that has exited renders as "model not found"): every medbench widget also puts
a PNG of itself in its display data, which is what the committed notebook,
``executed.ipynb``, the offline HTML export, GitHub and nbviewer show.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from medbench import config, recipes
from medbench.atomic import atomic_dir, write_text
from medbench.errors import ConfigError, RunError
from medbench.report.run import ENV_HEADLESS, ENV_OVERRIDES, ENV_PROFILE, ENV_RUN_DIR, finalise, reports_root

#: What the kernel process printed during a run (kept out of the progress output).
KERNEL_LOG = "kernel.log"


def notebooks_dir() -> Path:
    """The notebooks folder of this checkout (``$MEDBENCH_NOTEBOOKS`` overrides)."""
    env = os.environ.get("MEDBENCH_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "notebooks"


def notebook_path(name: str) -> Path:
    stem = recipes.resolve_notebook(name)
    path = notebooks_dir() / f"{stem}.ipynb"
    if not path.is_file():
        raise ConfigError(f"notebook {stem!r} is registered but {path} does not exist")
    return path


def kernel_name() -> str:
    """The 'medbench' kernel when registered (``make install``), else this interpreter's python3."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "medbench" if "medbench" in KernelSpecManager().find_kernel_specs() else "python3"


@dataclasses.dataclass
class RunResult:
    notebook: str
    status: str  # "completed" | "failed"
    run_dir: Path
    duration_s: float
    error: str = ""


def _failure_message(notebook: str, exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first = next((ln for ln in exc.source.splitlines() if ln.strip()), "")
        return (
            f"{notebook} failed in cell {exc.cell_index} (execution count {exc.exec_count}, "
            f"starting {first[:60]!r}): {exc.ename}: {exc.evalue}"
        )
    return f"{notebook} failed: {type(exc).__name__}: {exc}"


#: nbconvert template folder of the offline HTML export (see its index.html.j2).
HTML_TEMPLATE = "medbench_offline"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def export_html(ipynb: Path, html: Path) -> None:
    """Export an executed notebook to one self-contained HTML page (atomically).

    Offline by construction: the ``medbench_offline`` template (JupyterLab's
    look) drops the CDN scripts (require.js, MathJax, mermaid, the widget
    manager), styles are inlined, markdown images embedded, and widgets show
    the PNG from their display data.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(ipynb, as_version=4)
    drop_widget_views(nb)
    templates = Path(__file__).resolve().parent / "report" / "nbconvert"
    exporter = HTMLExporter(template_name=HTML_TEMPLATE, extra_template_basedirs=[str(templates)], embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    write_text(html, body)


def drop_widget_views(nb: Any) -> int:
    """Remove the widget state and the widget-view references it served; return how many views were removed.

    For a notebook whose kernel has exited. Without its state a widget-view
    reference can only render as an error ("model not found") in JupyterLab,
    and stored state is large (ipyniivue's state alone carries its 5 MB
    viewer bundle and the volumes). Each output keeps its other
    representations: the PNG medbench widgets add, and ``text/plain``.
    """
    nb.metadata.pop("widgets", None)
    removed = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                removed += 1
    return removed


@functools.cache
def kernel_manager_class() -> type:
    """A jupyter_client kernel manager: encrypted transport where supported, kernel output to a log.

    ``transport_encryption="auto"`` provisions CurveZMQ keys when pyzmq has
    CURVE and the kernelspec declares it (ipykernel otherwise warns, on every
    start, that it runs over TCP without encryption). The kernel process's
    stdout/stderr go to the file named by the ``kernel_log`` trait (appended),
    not to the terminal that shows the progress bar.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode, default

    class RunKernelManager(AsyncKernelManager):
        kernel_log = Unicode("", config=True, help="file that receives the kernel process's stdout and stderr")

        @default("transport_encryption")
        def _default_encryption(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if not self.kernel_log:
                await super()._async_launch_kernel(kernel_cmd, **kw)
                return
            Path(self.kernel_log).parent.mkdir(parents=True, exist_ok=True)
            with open(self.kernel_log, "ab") as log:  # the child keeps its own copy of the descriptor
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return RunKernelManager


def kernel_manager_for(log: Path) -> type:
    """:func:`kernel_manager_class` with its ``kernel_log`` set to ``log`` (nbclient instantiates the class)."""
    from traitlets import Unicode

    return type("RunKernelManager", (kernel_manager_class(),), {"kernel_log": Unicode(str(log), config=True)})


def _store_without_widget_state(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    drop_widget_views(nb)
    text = nbformat.writes(nb)
    write_text(path, text if text.endswith("\n") else text + "\n")


def new_run_id(profile: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{profile}"


@contextlib.contextmanager
def _run_environment(run_dir: Path, profile: str, overrides: Mapping[str, Any]) -> Iterator[None]:
    """Tell the kernel where its run goes (read by :func:`medbench.report.start_run`)."""
    values = {ENV_RUN_DIR: str(run_dir), ENV_PROFILE: profile, ENV_OVERRIDES: json.dumps(dict(overrides), sort_keys=True),
              ENV_HEADLESS: "1"}
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(
    notebook: str,
    params: config.Params,
    run_dir: Path,
    *,
    profile: str,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> RunResult:
    """Execute one notebook into the new folder ``run_dir`` (which must not exist).

    The parameters are injected under their flat names (what the notebook's
    ``parameters`` cell holds); the run's folder, profile and overrides reach
    the kernel through the environment, so no science schema carries an
    output path.
    """
    import papermill as pm

    src = notebook_path(notebook)
    changed = dict(overrides) if overrides is not None else config.diff(params, type(params)())
    start = time.perf_counter()
    status, error = "completed", ""
    with atomic_dir(run_dir) as tmp:
        write_text(tmp / "params.yaml", yaml.safe_dump(
            {"profile": profile, "overrides": changed, "params": params.model_dump(mode="json")}, sort_keys=True))
        try:
            with _run_environment(tmp, profile, changed):
                pm.execute_notebook(
                    str(src), str(tmp / "executed.ipynb"), parameters=params.to_flat(), kernel_name=kernel_name(),
                    progress_bar=progress, cwd=str(src.parent), log_output=False,
                    kernel_manager_class=kernel_manager_for(tmp / KERNEL_LOG),
                )
        except Exception as exc:  # a failing notebook is a result, not a crash
            status, error = "failed", _failure_message(notebook, exc)
        duration = time.perf_counter() - start
        if (tmp / "executed.ipynb").exists():
            _store_without_widget_state(tmp / "executed.ipynb")
            export_html(tmp / "executed.ipynb", tmp / "executed.html")
        finalise(tmp, notebook=notebook, status=status, error=error, duration_s=duration, profile=profile,
                 overrides=changed)
    return RunResult(notebook, status, run_dir, duration, error)


def run_many(
    names: Sequence[str],
    *,
    profile: str = "smoke",
    overrides: Mapping[str, Any] | None = None,
    reports: Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> list[RunResult]:
    """Validate everything first, then execute each notebook; one failure does not stop the rest."""
    from medbench.report.index import build_index

    stems = [recipes.resolve_notebook(n) for n in names] or list(recipes.NOTEBOOKS)
    resolved = {s: recipes.resolve(s, profile, overrides) for s in stems}  # all errors before any work
    for s in stems:
        notebook_path(s)
    root = Path(reports) if reports else reports_root()
    _check_writable(root)
    results = []
    for n, stem in enumerate(stems, 1):
        echo(f"[{n}/{len(stems)}] {stem} (profile {profile}) ...")
        run_dir = root / stem / new_run_id(profile)
        changed = recipes.changed_parameters(stem, profile, resolved[stem])
        res = execute(stem, resolved[stem], run_dir, profile=profile, overrides=changed, progress=progress)
        echo(f"[{n}/{len(stems)}] {stem}: {res.status} in {res.duration_s:.1f} s -> {run_dir}")
        if res.error:
            echo(f"    {res.error}")
        results.append(res)
    index = build_index(root)
    echo(f"report: {index}")
    return results


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise RunError(f"reports folder {root} is not writable: {exc.strerror or exc}") from None


def refresh_in_place(names: Sequence[str], *, progress: bool = True) -> list[Path]:
    """``make notebooks``: re-execute notebooks at the smoke defaults and store normalised outputs.

    Runs with no injected parameters (the parameters cell already holds the
    smoke defaults), into a scratch run folder, then strips volatile metadata
    (papermill timings, execution timestamps) so diffs show real changes only.
    A failing notebook is not written back.
    """
    stems = [recipes.resolve_notebook(n) for n in names] or list(recipes.NOTEBOOKS)
    # a fixed scratch path keeps paths printed in outputs identical between refreshes
    scratch = Path(tempfile.gettempdir()) / "medbench-notebook-refresh"
    written = []
    for stem in stems:
        with _exclusive(scratch.with_suffix(".lock")):  # refreshes from other checkouts wait their turn
            written.append(_refresh_one(stem, scratch, progress))
    return written


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (POSIX; a no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refresh_one(stem: str, scratch: Path, progress: bool) -> Path:
    """Re-execute one notebook into ``scratch`` and write it back normalised (nothing written on failure)."""
    import papermill as pm

    src = notebook_path(stem)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    out = scratch / src.name
    env_before = os.environ.get("MEDBENCH_REPORTS")
    headless_before = os.environ.get(ENV_HEADLESS)
    os.environ["MEDBENCH_REPORTS"] = str(scratch / "reports")
    os.environ[ENV_HEADLESS] = "1"  # no progress bars in committed outputs
    try:
        pm.execute_notebook(str(src), str(out), kernel_name=kernel_name(), progress_bar=progress,
                            cwd=str(src.parent), kernel_manager_class=kernel_manager_for(scratch / KERNEL_LOG))
    except Exception as exc:
        raise RunError(_failure_message(stem, exc)) from None
    finally:
        for key, value in (("MEDBENCH_REPORTS", env_before), (ENV_HEADLESS, headless_before)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    normalise_notebook(out)
    write_text(src, out.read_text(encoding="utf-8"))
    shutil.rmtree(scratch, ignore_errors=True)
    return src


def normalise_notebook(path: Path) -> None:
    """Remove run-specific metadata (and widget state, see :func:`drop_widget_views`) from an executed notebook."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    drop_widget_views(nb)
    nb.metadata["kernelspec"] = {"name": "medbench", "display_name": "medbench", "language": "python"}
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = count
                out.get("metadata", {}).pop("papermill", None)
    nbformat.write(nb, path)
