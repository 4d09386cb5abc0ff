"""Compare optimizers from a sweep's runs: learning-rate sensitivity, best runs, and a results table.

    # a sweep file: reads runs/<name>/ (and runs/<name>_final/ when present)
    uv run python -m the_sgd_lecture_reproduced.compare --sweep configs/sweeps/<name>.yaml
    # a folder of runs, with what to compare given on the command line ([--by optimizer] [--x optimizer.lr]
    # are the defaults: one line per optimizer, its learning rate on the x axis)
    uv run python -m the_sgd_lecture_reproduced.compare runs/<folder> --metric val/acc --mode max --target 0.95
    uv run python -m the_sgd_lecture_reproduced.compare runs/<folder> --by optimizer --x optimizer.lr
    # each run's best value instead of its final one, into another folder
    uv run python -m the_sgd_lecture_reproduced.compare --sweep configs/sweeps/<name>.yaml --summary best --out figures/best
    uv run python -m the_sgd_lecture_reproduced.compare --help

Which runs: every run folder (config.yaml and TensorBoard events) under runs/<name>/, the trials
of the sweep, and under runs/<name>_final/, the best setting of each optimizer re-run with fresh
seeds. Other files there (the sweep's study storage) and fast_dev_run runs are left out. With
--sweep, the metric, mode (max or min), summary (final or best), target and the compared key
come from the sweep file; options given on the command line win. Without a sweep file the
metric and mode default to the runs' `checkpoint.monitor` and `checkpoint.mode`.

What each run contributes: its summary value, the `final` (last logged) or `best` (highest for
--mode max, lowest for min) value of the metric; whether it diverged (it logged the scalar
`diverged`, or its metric is not a finite number); and the optimizer step and the seconds of
wall-clock time (since the run's first event) at which the metric first reached the target
(>= it for max, <= for min). Runs whose configs differ only in the seed are one setting. A run
that stopped before its last epoch without diverging (a sweep with `prune: true` stops hopeless
runs) is left out of the numbers too, and drawn as an o beside the x's.

What it writes into --out (figures/ by default), each file named after the sweep:
- <name>_sensitivity.png / .pdf: the summary metric against the learning rate (log axis), one
  line per optimizer (per value of --by): the mean over seeds, the range from the lowest to the
  highest seed shaded. A run that diverged is not a number to average: it is an x at the bottom
  edge (for min: the top edge) at its learning rate, and "diverged" is in the legend. Where
  other settings were swept too, each point is the best setting at that learning rate.
- <name>_best_steps.png / .pdf and <name>_best_time.png / .pdf: the metric of each optimizer's
  best setting against optimizer steps and against wall-clock seconds (mean and range over its
  seeds; the target as a dotted line). The best setting has the best mean summary value over
  its seeds among the settings where no seed diverged; when runs/<name>_final/ has re-runs of
  an optimizer, those are drawn instead, as the protocol reports them.
- <name>_results.md / .tex: one row per optimizer: its best setting, the number of seeds, the
  final and best metric (mean ± standard deviation over seeds), and the steps and seconds to
  reach the target (mean ± standard deviation, or "not reached (k/n)" when k of the n seeds
  never reached it). Rows come from the _final re-runs when there are any.
The table is also copied into report.md and slides/slides.md between the markers
`<!-- compare:results:start -->` and `<!-- compare:results:end -->`, where those exist. Each sweep
keeps its own table: a second sweep's goes under the first one's, between markers of its own
(`<!-- compare:<sweep>:start -->`, ...), which you may also move where it belongs.

How optimizers are named: the lowercase name train.py's --optimizer uses (optim.OPTIMIZERS) for
the run's class and arguments, so torch.optim.SGD is `sgd`, `momentum` (momentum > 0) or
`nesterov` (nesterov: true); a class of your own is its class name in lowercase.

The numbers are made in comparison.py, the figures in sensitivity.py; this file is the command.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from ..config_errors import ConfigError, read_yaml
from ..metrics import higher_is_better
from .comparison import (
    Options,
    Setting,
    best_settings,
    best_value,
    choice_order,
    final_value,
    has_diverged,
    label_settings,
    make_settings,
    stopped_early,
    sweep_order,
    time_to_target,
)
from .comparison import optimizer_name as optimizer_name
from .comparison import resolve as resolve
from .groups import Group, short_number
from .runs import Run, declared_higher_is_better, find_runs, is_fast_dev_run
from .sensitivity import plot_best, plot_sensitivity
from .style import save, words
from .tables import embed_table, format_cell, latex, markdown

TABLE_START = "<!-- compare:results:start -->"
TABLE_END = "<!-- compare:results:end -->"


# The table


def target_cell(reached: list[float | None]) -> str:
    """The steps or seconds to target over seeds, or `not reached (k/n)`: k of n seeds never did."""
    missing = sum(value is None for value in reached)
    if missing or not reached:
        return f"not reached ({missing}/{len(reached)})"
    return format_cell([float(value) for value in reached])


def table(rows_from: dict[str, tuple[Setting, str]], options: Options) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, run folders behind each row): one row per choice."""
    metric = options.metric
    header = [options.by.rsplit(".", 1)[-1], "setting", "seeds", f"final {metric}", f"best {metric}"]
    if options.target is not None:
        header += [f"steps to {short_number(options.target)}", f"seconds to {short_number(options.target)}"]
    rows, sources = [], []
    for choice, (setting, source) in rows_from.items():
        finished = [run for run in setting.runs if not has_diverged(run, metric) and not stopped_early(run)]
        failed = [f"{count} {what}" for count, what in ((setting.diverged, "diverged"), (setting.stopped, "stopped early"))
                  if count]
        seeds = str(len(setting.runs)) + (f" ({', '.join(failed)})" if failed else "")
        finals = [v for v in (final_value(run, metric) for run in finished) if v is not None]
        bests = [v for v in (best_value(run, metric, options.mode) for run in finished) if v is not None]
        row = [choice.removeprefix(f"{header[0]}="), setting.label, seeds, format_cell(finals), format_cell(bests)]
        if options.target is not None:
            reached = [time_to_target(run, metric, options.target, options.mode) for run in setting.runs]
            row += [target_cell([None if r is None else r[0] for r in reached]),
                    target_cell([None if r is None else r[1] for r in reached])]
        rows.append(row)
        sources.append(f"{source}: `" + ", ".join(str(run.path) for run in setting.runs) + "`")
    return header, rows, sources


def explanation(rows_from: dict[str, tuple[Setting, str]], header: list[str], rows: list[list[str]],
                options: Options, trials: int) -> str:
    """The sentences under the table: where the numbers come from, and how to cite them."""
    finals = [row[0] for row, (_, source) in zip(rows, rows_from.values(), strict=True) if source == "final"]
    sweeps = [row[0] for row, (_, source) in zip(rows, rows_from.values(), strict=True) if source == "sweep"]
    direction = "highest" if options.mode == "max" else "lowest"
    text = (f"The setting of each {header[0]} is the one with the {direction} mean {options.summary} "
            f"{words(options.metric)} ({options.metric}) over seeds among the {trials} runs of the sweep in "
            f"{options.folder}. ")
    if finals:
        text += (f"The numbers of {joined(finals)} are from re-runs of that setting with fresh seeds "
                 f"({options.final}){', those of ' + joined(sweeps) + ' from the sweep itself' if sweeps else ''}. ")
    # n: the runs behind a row's numbers (its seeds, less those that diverged or stopped early)
    counts = [len(setting.runs) - setting.diverged - setting.stopped for setting, _ in rows_from.values()]
    example = next((i for i, row in enumerate(rows) if "±" in row[3]), None)
    if example is not None:
        text += (f"Each cell is the mean ± standard deviation over the row's seeds; cite it with their number, e.g. "
                 f"{rows[example][0]}: {rows[example][3]} ({header[3]}, mean ± standard deviation over "
                 f"{counts[example]} seeds)")
        text += "." if len(set(counts)) == 1 else " (the seeds column gives n for the other rows)."
    else:
        text += "Each row has one seed: no standard deviation; re-run with more seeds before you compare."
    if options.target is not None:
        sign = ">=" if options.mode == "max" else "<="
        text += (f" Steps and seconds to target: the first logged {options.metric} {sign} "
                 f"{short_number(options.target)} (seconds of wall-clock time since the run's first event); "
                 "\"not reached (k/n)\": k of the n seeds never got there.")
    return text + "\n"


def joined(names: list[str]) -> str:
    """a, b and c."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


# The command


def load_options(args: argparse.Namespace, notes: list[str]) -> Options:
    """The sweep file's settings, overridden by the command line's; defaults from the runs' config."""
    sweep: dict = {}
    if args.sweep:
        if not Path(args.sweep).is_file():
            raise SystemExit(f"error: no sweep file {args.sweep} (the project's sweeps are in configs/sweeps/)")
        try:
            sweep = read_yaml(args.sweep) or {}
        except ConfigError as error:  # a YAML mistake: its file and line
            raise SystemExit(f"error: {error}") from None
        name = str(sweep.get("name") or Path(args.sweep).stem)
        folder = (args.root or runs_root(sweep.get("experiment"), Path(args.sweep))) / name
    else:
        folder, root = Path(args.runs), args.root or Path("runs")
        if not folder.is_dir() and (root / args.runs).is_dir():
            folder = root / args.runs
        name = folder.name
    final = folder.parent / f"{folder.name}_final"
    metric, mode = args.metric or sweep.get("metric"), args.mode or sweep.get("mode")
    if metric is None or mode is None:
        monitor = monitored(folder)
        if metric is None:
            metric = monitor[0] if monitor else "val/loss"
            notes.append(f"metric: {metric} (the runs' checkpoint.monitor; choose another with --metric)")
        if mode is None:
            mode = monitor[1] if monitor and monitor[0] == metric else (
                "max" if higher_is_better(metric, declared_in(folder)) else "min")
    target = args.target if args.target is not None else sweep.get("target")
    by = str(args.by or sweep.get("compare") or "optimizer")
    return Options(name=name, folder=folder, final=final, metric=str(metric), mode=str(mode),
                   summary=str(args.summary or sweep.get("summary") or "final"),
                   target=None if target is None else float(target), by=by, x=str(args.x or "optimizer.lr"),
                   order=sweep_order(sweep.get("space"), by))


def runs_root(experiment: object, sweep_file: Path) -> Path:
    """Where a sweep's runs are: the save_dir of its experiment's logger (runs/ if none is set)."""
    root = Path("runs")
    for config in experiment if isinstance(experiment, list) else [experiment] if experiment else []:
        for folder in (Path.cwd(), *sweep_file.resolve().parents[:3]):  # as sweep.py looks for it
            if (folder / str(config)).is_file():
                logger = ((yaml.safe_load((folder / str(config)).read_text()) or {}).get("trainer") or {}).get("logger")
                if isinstance(logger, dict):
                    root = Path((logger.get("init_args") or {}).get("save_dir", root))
                break
    return root


def monitored(folder: Path) -> tuple[str, str] | None:
    """(checkpoint.monitor, checkpoint.mode) of the first config.yaml under `folder`."""
    for path in sorted(folder.rglob("config.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        checkpoint = config.get("checkpoint") or {}
        if checkpoint.get("monitor"):
            return str(checkpoint["monitor"]), str(checkpoint.get("mode") or "min")
    return None


def declared_in(folder: Path) -> tuple[str, ...] | None:
    """The metrics that the first run under `folder` declared better higher (see metrics.py)."""
    return next((declared_higher_is_better(path.parent) for path in sorted(folder.rglob("hparams.yaml"))), None)


def read_folder(folder: Path, notes: list[str]) -> list[Run]:
    """The runs under a folder, without fast_dev_run runs (their numbers mean nothing)."""
    if not folder.is_dir():
        return []
    runs = find_runs([folder], root=folder.parent, notes=notes)
    fast = [run for run in runs if is_fast_dev_run(run)]
    if fast:
        notes.append(f"{folder}: left out {len(fast)} fast_dev_run run(s)")
    return [run for run in runs if not is_fast_dev_run(run)]


def compare(options: Options, out: Path = Path("figures"), embed: list[Path] | None = None) -> dict[str, object]:
    """Everything the command does; returns what it wrote, its notes, settings, best settings and table."""
    if options.mode not in ("max", "min") or options.summary not in ("final", "best"):
        raise SystemExit(f"error: mode must be max or min (got {options.mode}), summary final or best (got {options.summary})")
    notes: list[str] = []
    runs = read_folder(options.folder, notes)
    if not runs:
        raise SystemExit(f"error: no runs in {options.folder}: run the sweep first (uv run python sweep.py --config ...), "
                         "or name the folder of its runs")
    if not any(options.metric in run.scalars for run in runs):
        logged = sorted({tag for run in runs for tag in run.scalars if "/" in tag})
        raise SystemExit(f"error: no run in {options.folder} logged {options.metric}; logged: {', '.join(logged)}")
    settings = make_settings(runs, options, notes)
    best = best_settings(settings, options.mode)
    finals = make_settings(read_folder(options.final, notes), options, notes)
    label_settings(settings, options, finals)
    choices = sorted({setting.choice for setting in settings + finals}, key=lambda c: choice_order(c, options.order))
    rows_from: dict[str, tuple[Setting, str]] = {}
    for choice in choices:
        reruns = best_settings([s for s in finals if s.choice == choice], options.mode)
        if choice in reruns:
            rows_from[choice] = (reruns[choice], "final")
        elif choice in best:
            rows_from[choice] = (best[choice], "sweep")
    for choice in dict.fromkeys(setting.choice for setting in settings):
        if choice not in rows_from:
            notes.append(f"{choice}: every run diverged, stopped early or logged no {options.metric}; no row in the table")
    diverged, stopped = sum(setting.diverged for setting in settings), sum(setting.stopped for setting in settings)
    if diverged:
        notes.append(f"{diverged} of {len(runs)} sweep runs diverged (marked x on the sensitivity plot)")
    if stopped:
        notes.append(f"{stopped} of {len(runs)} sweep runs stopped before their last epoch (pruned, or interrupted): "
                     "left out of the numbers, marked o on the sensitivity plot")
    if options.target is None:
        notes.append("no target: give --target (or `target:` in the sweep file) for the steps and seconds to reach it")

    written: list[Path] = []
    figure = plot_sensitivity(settings, choices, options, notes)
    if figure is not None:
        written += save(figure, out, f"{options.name}_sensitivity")
    # One group per choice, empty where it has no row, so that each keeps its colour (plot_metrics
    # colours a group by its place in the list).
    groups = [Group(label=choice, runs=rows_from[choice][0].runs if choice in rows_from else []) for choice in choices]
    for x, stem in (("step", "best_steps"), ("time", "best_time")):
        figure = plot_best(groups, options, x) if rows_from else None
        if figure is not None:
            written += save(figure, out, f"{options.name}_{stem}")
    header, rows, sources = table(rows_from, options)
    sentence = explanation(rows_from, header, rows, options, len(runs))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{options.name}_results.md").write_text(markdown(header, rows) + "\n" + sentence + "\n"
                                                    + markdown(header, rows, sources).split("\n\n", 1)[1])
    (out / f"{options.name}_results.tex").write_text(latex(header, rows) + "% " + sentence)
    written += [out / f"{options.name}_results.md", out / f"{options.name}_results.tex"]
    table_text = markdown(header, rows) + "\n" + sentence
    embedded = [doc for doc in (embed or []) if embed_comparison(doc, table_text, options.name)]
    return {"written": written, "notes": notes, "settings": settings, "finals": finals, "rows_from": rows_from,
            "header": header, "rows": rows, "embedded": embedded, "options": options}


def embed_comparison(document: Path, table: str, name: str) -> bool:
    """Put sweep `name`'s table in `document`, so that each sweep's table keeps its place: between
    its own markers (compare:<name>:start/end) if the document has them, else between the
    compare:results markers if they are free or hold this sweep's table, else in markers of its
    own added under them. False if the document has no markers."""
    own_start, own_end = f"<!-- compare:{name}:start -->", f"<!-- compare:{name}:end -->"
    marked = f"<!-- sweep: {name} -->\n{table.rstrip()}\n"
    if embed_table(document, marked, own_start, own_end):
        return True
    text = document.read_text() if document.is_file() else ""
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return False
    held = re.match(r"\s*<!-- sweep: (.+?) -->", text[start + len(TABLE_START):end])
    if held is None or held.group(1) == name:  # the template's placeholder, or this sweep's table
        return embed_table(document, marked, TABLE_START, TABLE_END)
    cut = end + len(TABLE_END)
    document.write_text(f"{text[:cut]}\n\n{own_start}\n{marked}{own_end}{text[cut:]}")
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="uv run python -m the_sgd_lecture_reproduced.compare",
        description="Compare optimizers from a sweep's runs: sensitivity to the learning rate, the best run of each, "
                    "and a table of mean ± standard deviation over seeds.",
    )
    parser.add_argument("runs", nargs="?", default=None, metavar="FOLDER",
                        help="the folder of the sweep's runs (runs/<name>, or just <name>); or give --sweep")
    parser.add_argument("--sweep", type=Path, default=None,
                        help="a sweep file (configs/sweeps/<name>.yaml): its runs, metric, mode, summary and target")
    parser.add_argument("--metric", default=None, help="the metric compared, e.g. val/acc (default: the sweep's)")
    parser.add_argument("--mode", choices=["max", "min"], default=None, help="whether higher (max) or lower is better")
    parser.add_argument("--summary", choices=["final", "best"], default=None,
                        help="each run's number: its final or its best value of the metric (default: the sweep's, else final)")
    parser.add_argument("--target", type=float, default=None, help="the metric value for the steps and seconds to target")
    parser.add_argument("--by", default=None,
                        help="the train.py flag whose values are compared (default: the sweep's `compare`, else optimizer)")
    parser.add_argument("--x", default=None, help="the flag on the sensitivity plot's x axis (default: optimizer.lr)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the folder of experiments (default: the sweep experiment's save_dir, else runs)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures)")
    parser.add_argument("--embed", nargs="*", type=Path, default=[Path("report.md"), Path("slides/slides.md")],
                        help="markdown files whose compare:results markers receive the table "
                             "(default: report.md slides/slides.md; give none to skip)")
    args = parser.parse_args(argv)
    if (args.runs is None) == (args.sweep is None):
        parser.error("give either a sweep file (--sweep configs/sweeps/<name>.yaml) or the folder of its runs")
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    notes: list[str] = []
    options = load_options(args, notes)
    result = compare(options, args.out, args.embed)
    for note in notes + result["notes"]:
        print(f"note: {note}")
    settings = result["settings"]
    print(f"{sum(len(s.runs) for s in settings)} run(s) of {options.name} in {len(settings)} setting(s); "
          f"{options.summary} {options.metric}, {'higher' if options.mode == 'max' else 'lower'} is better")
    for choice, (setting, source) in result["rows_from"].items():
        seeds = f"{len(setting.runs)} seed{'s' if len(setting.runs) > 1 else ''}"
        print(f"  best {choice}: {setting.label} ({seeds}{', re-runs with fresh seeds' if source == 'final' else ''})")
    print(markdown(result["header"], result["rows"]), end="")
    print("wrote " + ", ".join(str(path) for path in result["written"]))
    if result["embedded"]:
        print("updated the comparison table in " + ", ".join(map(str, result["embedded"])))
    return result


if __name__ == "__main__":
    main()
