"""Runs that differ only by their seed form a group: one line of a figure, one row of a table,
labelled by what tells the groups apart (`adam lr=3e-4`, `sgd lr=0.1 momentum=0.9`).

    from optimizers_for_a_small_gpt.report.groups import group_runs
    from optimizers_for_a_small_gpt.report.runs import find_runs
    for group in group_runs(find_runs(["vision_digits"])):
        print(group.label, [run.name for run in group.runs])
"""

import math
import re
from dataclasses import dataclass, field

from .runs import Run

# Config keys that never tell two configurations apart: the run's name, where it was resumed
# from, which folder it logged into, and the seed (repeats over seeds are averaged instead).
IGNORED_KEYS = {"name", "ckpt_path", "trainer.logger.init_args.version", "trainer.logger.version"}
SEED_KEY = "seed_everything"
LABEL_LIMIT = 29  # characters: every legend label stays under 30
# Usual short names of settings in labels (`wd=0.1`); other settings keep their own name.
KEY_ABBREVIATIONS = {"weight_decay": "wd", "learning_rate": "lr", "warmup_steps": "warmup",
                     "accumulate_grad_batches": "accumulate", "gradient_clip_val": "clip"}
CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*\.[A-Z]\w*")  # torch.optim.Adam, my_pkg.opt.MyOpt


@dataclass
class Group:
    """Runs that differ at most by their seed: drawn as one line (their mean) and one table row.

    `label` is short (under 30 characters) for legends and tables; `full` is the label before it
    was cut, and `settings` the config values that tell this group from the others.
    """

    label: str
    runs: list[Run] = field(default_factory=list)
    full: str = ""
    settings: dict[str, object] = field(default_factory=dict)


def settings_of(run: Run) -> dict[str, object]:
    """The run's config without the seed and the bookkeeping keys."""
    return {key: value for key, value in run.config.items() if key != SEED_KEY and key not in IGNORED_KEYS}


def configuration(run: Run) -> tuple:
    """What identifies a run's configuration: its settings, as a sorted tuple."""
    if not run.config:
        return (("run", str(run.path)),)  # no config.yaml: the run stands alone
    return tuple(sorted((key, repr(value)) for key, value in settings_of(run).items()))


def is_class_key(key: str) -> bool:
    """Whether a config key holds a class (jsonargparse's `class_path`)."""
    return key == "class_path" or key.endswith(".class_path")


def class_name(path: object) -> str:
    """torch.optim.Adam -> Adam."""
    return str(path).rsplit(".", 1)[-1]


def short_number(number: float) -> str:
    """A float in few characters: 0.0003 -> 3e-4, 1e-08 -> 1e-8, 0.1 -> 0.1, 0.9 -> 0.9."""
    plain = f"{number:g}"
    if not math.isfinite(number) or number == 0:
        return plain
    mantissa, exponent = f"{number:.5e}".split("e")  # %g shows 6 significant digits: so does this
    scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return scientific if len(scientific) < len(plain) else plain


def show(value: object) -> str:
    """A config value in short: numbers by short_number, lists joined by commas, classes by name."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return short_number(value)
    if isinstance(value, (list, tuple)):
        return ",".join(show(item) for item in value)
    if isinstance(value, str) and CLASS_PATH.fullmatch(value):
        return class_name(value)
    return str(value)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Short names for config keys: `model.init_args.optimizer.init_args.lr` -> `lr`.

    Drops `init_args`, keeps the shortest ending that no other key in `keys` shares (`lr`, or
    `optimizer.lr` beside `scheduler.lr`), then uses the usual abbreviation (`wd`) if it is free.
    """
    parts = {key: [part for part in key.split(".") if part != "init_args"] for key in keys}
    names = {}
    for key, pieces in parts.items():
        for length in range(1, len(pieces) + 1):
            ending = pieces[-length:]
            if sum(other[-length:] == ending for other in parts.values()) == 1:
                break
        names[key] = ".".join(ending)
    for key, name in names.items():
        short = KEY_ABBREVIATIONS.get(name)
        if short and short not in names.values():
            names[key] = short
    return names


def key_order(key: str) -> tuple[int, bool]:
    """Labels show the optimizer first, then the schedule, then the rest; a class before its arguments."""
    parts = key.split(".")
    section = 0 if "optimizer" in parts else 1 if "scheduler" in parts or "lr_scheduler" in parts else 2
    return section, not is_class_key(key)


def differing_keys(configs: list[dict[str, object]], strict: bool = True) -> list[str]:
    """The keys that tell configurations apart, in label order.

    Strict: keys with two values or more among the configurations that have them. A key that
    only some configurations have (`momentum` of SGD beside Adam) is left out when it has one
    value: the class in the label already says it. Not strict: every key whose value (or
    absence) is not the same in all configurations.
    """
    keys = list(dict.fromkeys(key for config in configs for key in config))

    def values(key: str) -> set[str]:
        return {repr(config.get(key, "<absent>")) for config in configs if key in config or not strict}

    return sorted((key for key in keys if len(values(key)) > 1), key=key_order)


def fit(parts: list[str], limit: int = LABEL_LIMIT) -> str:
    """`parts` joined by spaces; when that is over `limit` characters, the parts that fit and ` …`."""
    label = " ".join(parts)
    if len(label) <= limit:
        return label
    kept: list[str] = []
    for part in parts:
        if len(" ".join([*kept, part])) > limit - 2:
            break
        kept.append(part)
    return " ".join(kept) + " …" if kept else label[: limit - 1] + "…"


def describe(config: dict[str, object], keys: list[str], names: dict[str, str]) -> dict[str, str]:
    """The parts of one configuration's label, by key: `adam`, `lr=3e-4`, ... for the keys it has."""
    return {key: class_name(config[key]).lower() if is_class_key(key) else f"{names[key]}={show(config[key])}"
            for key in keys if key in config}


def short_labels(rows: list[dict[str, str]], keys: list[str], limit: int = LABEL_LIMIT) -> list[str]:
    """One label per row (its parts by key), the parts in the order of `keys`, each under `limit` characters.

    When a full label is too long, every label keeps the keys that tell the rows apart (chosen in
    order: `lr`, then what still separates rows of the same `lr`, ...), then whatever other parts
    fit, and ends with ` …` where parts were left out.
    """

    def parts(row: dict[str, str], chosen: list[str]) -> list[str]:
        shown = [row[key] for key in keys if key in row and key in chosen]
        return shown + (["…"] if any(key not in chosen for key in row) else [])

    if all(len(" ".join(row.values())) <= limit for row in rows):
        return [" ".join(row[key] for key in keys if key in row) for row in rows]
    chosen: list[str] = []
    for key in keys:
        distinct = len({fit(parts(row, chosen), limit) for row in rows})
        if len({fit(parts(row, [*chosen, key]), limit) for row in rows}) > distinct:
            chosen.append(key)
    labels = []
    for row in rows:
        mine = list(chosen)
        for key in keys:
            if key in row and key not in mine and len(" ".join(parts(row, [*mine, key]))) <= limit:
                mine.append(key)
        labels.append(fit(parts(row, mine), limit))
    return labels


def label_groups(groups: list[Group]) -> None:
    """Label each group by what differs between the groups, in under 30 characters.

    If the strict choice of keys (see differing_keys) leaves two labels alike, every differing
    key is used; if shortening makes two labels alike, they are numbered (#1, #2, ...).
    """
    configs = [settings_of(group.runs[0]) for group in groups]
    for strict in (True, False):
        keys = differing_keys(configs, strict)
        names = short_keys([key for key in keys if not is_class_key(key)])
        rows = [describe(config, keys, names) or {"run": f"{group.runs[0].experiment}/{group.runs[0].name}"}
                for config, group in zip(configs, groups, strict=True)]
        if len({tuple(row.values()) for row in rows}) == len(rows):
            break
    keys = [*keys, "run"]  # "run": the run folder, for runs without a config.yaml
    labels = short_labels(rows, keys)
    if len(set(labels)) < len(labels):
        labels = short_labels([{"number": f"#{number}", **row} for number, row in enumerate(rows, 1)], ["number", *keys])
    for group, config, label, row in zip(groups, configs, labels, rows, strict=True):
        group.label, group.full = label, " ".join(row[key] for key in keys if key in row)
        group.settings = {key: config[key] for key in keys if key in config}


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with the same configuration up to the seed form a group, labelled by what differs."""
    by_config: dict[tuple, list[Run]] = {}
    for run in runs:
        by_config.setdefault(configuration(run), []).append(run)
    groups = [Group(label="", runs=members) for members in by_config.values()]
    if len(groups) == 1:
        name = " ".join(sorted({run.experiment for run in runs}))
        groups[0].label, groups[0].full = fit([name]), name
    else:
        label_groups(groups)
    return groups


def key_names(groups: list[Group]) -> list[str]:
    """What the labels' short keys stand for: `lr = model.init_args.optimizer.init_args.lr`, ..."""
    keys = list(dict.fromkeys(key for group in groups for key in group.settings))
    names = short_keys([key for key in keys if not is_class_key(key)])
    lines = []
    for key in keys:
        if is_class_key(key):
            classes = sorted({str(group.settings[key]) for group in groups if key in group.settings},
                             key=lambda path: class_name(path).lower())
            lines.append(f"{', '.join(class_name(path).lower() for path in classes)} = {key} ({', '.join(classes)})")
        else:
            lines.append(f"{names[key]} = {key}")
    return lines
