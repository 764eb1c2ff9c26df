"""What every module option may be, declared once: by parameter name here (a name means the same
thing in every module that takes it), and per class in its ``option_rules`` where a module's
option is its own (``variant``, ``pools``, ``branches``...) or narrower than the name's rule.

The registry checks every constructor call of a registered class against these rules, so a value
that would crash later (``kernel_size=4`` in a same-padded conv, ``reduction=1e-9`` asking for a
terabyte, ``groups=0``) is a one-line ValueError naming the module, the option and what is allowed,
whether the module is built from Python, from a model's ``attn=`` or from the command line.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Mapping

from ..utils.constraints import Flag, Integer, Number, Predicate, Rule
from .activations import _LAYERS

COUNT = Integer(minimum=1)
ODD_SIZE = Integer(minimum=1, odd=True)  # a same-padded kernel: the map keeps its size
ACTIVATION = Predicate(f"an activation name ({', '.join(sorted(_LAYERS))}), an nn.Module class or a factory",
                       lambda v: v in _LAYERS if isinstance(v, str) else callable(v), bad_values=("nope", 3, None))

BY_NAME: dict[str, Rule] = {
    # Widths and counts.
    **dict.fromkeys(("min_hidden", "hidden", "out_channels", "round_to", "groups", "min_group_channels", "heads", "radix",
                     "paths", "recurrence", "block_size", "key_dim", "feat_size", "max_attn_elements", "kv_stride",
                     "dilation", "stride"), COUNT),
    # A divisor of the width: below 1 it multiplies (1e-9 would ask for a billion-fold hidden layer).
    "reduction": Number(minimum=1),
    **dict.fromkeys(("kernel_size", "min_kernel_size", "radius"), ODD_SIZE),
    "halo_size": Integer(minimum=0),
    "extent": Integer(minimum=0),
    # ECA's adaptive kernel size |log2(C) / γ + b / γ|odd: γ divides.
    "gamma": Number(minimum=0, closed_min=False),
    "beta": Number(),
    "scale": Number(minimum=0, closed_min=False),
    "drop_rate": Number(minimum=0, maximum=1, closed_max=False),
    "norm_momentum": Number(minimum=0, maximum=1),
    # Added to a variance: below 1e-12 it vanishes in fp32 and a constant input divides 0 by 0.
    **dict.fromkeys(("ln_eps", "e_lambda"), Number(minimum=1e-12)),
    **dict.fromkeys(("act_layer", "gate_layer"), ACTIVATION),
    **dict.fromkeys(("bias", "zero_init", "final_norm", "extra_params", "use_mlp", "use_conv", "spatial", "subsample",
                     "scale_logits", "avd"), Flag()),
}


@functools.lru_cache(maxsize=None)
def option_rules(cls: type) -> Mapping[str, Rule]:
    """The rule of each option of ``cls``'s constructor (``channels`` aside): the class's own
    ``option_rules`` over the by-name rules; options without a rule are left out."""
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "channels")]
    own: Mapping[str, Rule] = getattr(cls, "option_rules", {})
    return {p: own[p] if p in own else BY_NAME[p] for p in params if p in own or p in BY_NAME}


def check_module_options(cls: type, options: Mapping[str, Any]) -> None:
    """Raise a one-line ValueError for the first option of ``options`` its rule refuses; ``None``
    passes where it is the parameter's default."""
    rules = option_rules(cls)
    params = inspect.signature(cls.__init__).parameters
    for name, value in options.items():
        if name in rules and not (value is None and name in params and params[name].default is None):
            rules[name].check(name, value, cls.__name__)


def checked_init(cls: type) -> type:
    """``cls`` with its constructor checking its options against their rules first."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as e:
            raise ValueError(f"{cls.__name__}: {e}") from None
        check_module_options(cls, {k: v for k, v in bound.arguments.items() if k not in ("self", "channels")})
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls
