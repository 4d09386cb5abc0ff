"""What the shared code of a run learns from the problem families, which declare it themselves.

A family is one file, problems/<family>.py (its helpers: problems/<family>_<what>.py), holding
its DataModule and its LightningModule. Its DataModule declares, as class attributes, what
train.py's command line, resume and the figures need to know of it; none of them is required:

    class MyDataModule(L.LightningDataModule):
        model_links = ("num_classes",)        # properties handed to the model's argument of the same name
        resume_may_change = {"data_dir"}      # settings a resume may change: training stays the same
        data_file = None                      # or a function of the data's settings that gives the file of
                                              # the team's own that a run reads (it names the run's folder)
        samples_per_step = None               # or a function of the data's settings that gives the training
                                              # samples in one step (the figures' samples axis), when that
                                              # is not the `batch_size` setting; None from it: not known

Nothing outside problems/ names a family or one of its settings, so a team adds a family by
adding its file (see docs/extending.md), without editing this one.

    uv run python -c "from conditioning_momentum_and_the_noise_floor.run.families import model_links; print(model_links())"
"""

import importlib
import pkgutil

from .. import problems


def data_modules() -> list[type]:
    """The DataModule classes of every family module in problems/ (a family's helper modules,
    problems/<family>_<what>.py, hold none). Looked for anew at each call: a family added since is found."""
    from lightning.pytorch import LightningDataModule

    found = []
    for info in pkgutil.iter_modules(problems.__path__):
        if "_" in info.name:
            continue
        module = importlib.import_module(f"{problems.__name__}.{info.name}")
        found += [value for value in vars(module).values() if isinstance(value, type)
                  and issubclass(value, LightningDataModule) and value.__module__ == module.__name__]
    return found


def model_links() -> tuple[str, ...]:
    """The names that some family's data hands to its model (cli.py links data.NAME to model.NAME
    for each; a data module without the property leaves the model's argument alone)."""
    return tuple(dict.fromkeys(name for data in data_modules() for name in getattr(data, "model_links", ())))


def data_class(class_path: str | None) -> type | None:
    """The class at `class_path` (a config's data.class_path), or None if there is none to import."""
    if not class_path or "." not in str(class_path):
        return None
    module, _, name = str(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def declared(class_path: str | None, name: str, default):
    """What the data class at `class_path` declares as `name` (see this module's docstring)."""
    return getattr(data_class(class_path), name, default)


def family_of(class_path: str) -> str:
    """The family of a class in problems/: <package>.problems.tabular.TabularDataModule -> tabular."""
    return str(class_path).split(".")[-2]
