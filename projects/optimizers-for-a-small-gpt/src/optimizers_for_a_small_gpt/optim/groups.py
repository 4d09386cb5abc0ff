"""The parameter groups every optimizer gets (see `param_groups`): weight decay applies to weight
matrices and filters, never to biases, norms or embeddings; the hidden layers' weight matrices
form a group named "matrices" (Muon trains that group, AdamW the rest). A config adds its own:

    param_groups:                     # model.init_args.param_groups
      - {match: "net.layers.0.*", lr: 0.01}
"""

import fnmatch

from torch import nn

from ..config_errors import ConfigError

# Parameters of these layers never get weight decay: shrinking a norm's gain or an embedding
# towards zero is not the regularisation weight decay is meant to be.
NORMS = ("BatchNorm", "SyncBatchNorm", "InstanceNorm")  # torch.nn's batch and instance norms, lazy ones too
NO_DECAY_LAYERS = tuple(getattr(nn, name) for name in dir(nn) if name.removeprefix("Lazy").rstrip("123d") in NORMS)
NO_DECAY_LAYERS += (nn.LayerNorm, nn.GroupNorm, nn.Embedding)


def named_trainable(model: nn.Module):
    """(name, parameter, owning module) for each trainable parameter, shared ones once."""
    seen = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:  # tied weights count once
                seen.add(id(param))
                yield f"{module_name}.{name}" if module_name else name, param, module


def hidden_matrices(model: nn.Module) -> set[int]:
    """ids of the hidden layers' weight matrices: those of every nn.Linear but the last one (the
    output layer, even when tied to an embedding). A model without hidden layers (the objective
    family's variables, say) gives any 2-D parameter that is not an embedding."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    embeddings = {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}
    hidden = {id(module.weight) for module in linears[:-1] if module.weight.requires_grad} - embeddings
    if not hidden:
        hidden = {id(param) for _, param, _ in named_trainable(model) if param.ndim == 2} - embeddings
    return hidden


def param_groups(model: nn.Module, overrides: list[dict] | None = None) -> list[dict]:
    """The model's trainable parameters in named groups, for any optimizer:

    - "matrices": the hidden layers' weight matrices (weight decay as the optimizer sets it);
    - "decay": every other weight matrix or filter (the same);
    - "no_decay": biases, norm gains and embeddings (weight_decay 0);
    - one group per override {match: <glob on parameter names>, <optimizer arguments>}, which
      takes the parameters it matches and sets its own arguments (e.g. lr).
    Groups leave out the arguments they do not set, so the optimizer fills in its own values.
    """
    overrides = list(overrides or [])
    for override in overrides:
        if not isinstance(override, dict) or "match" not in override:
            raise ConfigError(f"each entry of param_groups needs a `match` pattern, got {override!r}")
    hidden = hidden_matrices(model)
    members = {"matrices": [], "decay": [], "no_decay": []} | {i: [] for i in range(len(overrides))}
    for name, param, module in named_trainable(model):
        matched = [i for i, override in enumerate(overrides) if fnmatch.fnmatchcase(name, override["match"])]
        if matched:
            members[matched[0]].append(param)
        elif param.ndim <= 1 or isinstance(module, NO_DECAY_LAYERS):
            members["no_decay"].append(param)
        else:
            members["matrices" if id(param) in hidden else "decay"].append(param)
    groups = [
        {"name": "matrices", "params": members["matrices"]},
        {"name": "decay", "params": members["decay"]},
        {"name": "no_decay", "params": members["no_decay"], "weight_decay": 0.0},
    ]
    for i, override in enumerate(overrides):
        settings = {key: value for key, value in override.items() if key != "match"}
        groups.append({"name": override["match"], "params": members[i], **settings})
    return [group for group in groups if group["params"]]


def build_optimizer(factory, groups: list[dict]):
    """factory(groups), the optimizer over the parameter groups of `param_groups`. An optimizer
    that takes a single group (torch.optim.LBFGS) gets every parameter in one group instead, as
    the default groups only split weight decay; with groups the config asks for (param_groups
    overrides), its refusal stands."""
    try:
        return factory(groups)
    except ValueError:
        if len(groups) < 2 or any(group.get("name") not in ("matrices", "decay", "no_decay") for group in groups):
            raise
        return factory([{"params": [param for group in groups for param in group["params"]]}])
