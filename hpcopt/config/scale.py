"""``optimizer.scale``: on which scale the optimiser searches each free parameter.

The generators search the unit cube [0, 1]^d; a parameter's scale says how a unit
coordinate u maps to its physical value (problem/space.py does the mapping):

- ``linear``: lower + u (upper - lower), as hpcopt always did;
- ``log``: lower (upper / lower)^u, uniform in the logarithm: equal steps for equal
  ratios, for conductances whose bounds span decades (needs lower > 0);
- ``auto``: log when lower > 0 and upper / lower >= AUTO_RATIO (two decades or more),
  linear otherwise.

The config gives one scale for every parameter (``"scale": "auto"``) or an object
``{"default": SCALE, PARAMETER: SCALE, ...}``; the resolved config (what the run file
stores) names every free parameter with the scale it got: ``{PARAMETER: "linear" |
"log", ...}``. A stored config without ``scale`` was made before scales existed and
means linear (STORED_DEFAULT).
"""

from . import fields

SCALES = ("linear", "log", "auto")
DEFAULT = "auto"  # a config without "scale" (benchmarks/results/scaling.md measured it against linear)
STORED_DEFAULT = "linear"  # a run file's stored config without "scale" (made before scales existed)
AUTO_RATIO = 100.0  # auto: log when upper / lower >= this (and lower > 0)


def parse(raw, where):
    """The spec of ``optimizer.scale``: (default scale, ((parameter, scale), ...))."""
    if isinstance(raw, str):
        if raw not in SCALES:
            raise where.error(None, f"unknown scale {fields.show(raw)}; valid: {', '.join(SCALES)}")
        return raw, ()
    if not isinstance(raw, dict):
        raise where.error(None, f"expected one of {', '.join(SCALES)}, or an object {{\"default\": scale, "
                                f"parameter: scale, ...}}, found {fields.show(raw)}")
    for key, value in raw.items():
        if value not in SCALES:
            raise where.error(key, f"unknown scale {fields.show(value)}; valid: {', '.join(SCALES)}")
    return raw.get("default", DEFAULT), tuple((k, v) for k, v in raw.items() if k != "default")


def choose(scale, lower, upper):
    """The scale ``linear`` or ``log`` a parameter in [lower, upper] gets for ``scale``."""
    if scale == "auto":
        return "log" if lower > 0 and upper / lower >= AUTO_RATIO else "linear"
    return scale


def resolve(spec, names, lower, upper, where):
    """{name: "linear" or "log"} of the free parameters ``names`` (bounds ``lower``,
    ``upper``) for the spec (default, overrides) of parse(). ConfigError naming the
    field: an override for a name that is not a free parameter, or log for a
    parameter whose lower bound is <= 0."""
    default, overrides = spec
    names = list(names)
    for name, _ in overrides:
        if name not in names:
            raise where.error(name, f"not a free parameter of the problem; free: {', '.join(names)}")
    given = dict(overrides)
    out = {}
    for name, low, high in zip(names, lower, upper):
        asked = given.get(name, default)
        out[name] = choose(asked, float(low), float(high))
        if out[name] == "log" and not float(low) > 0:
            field = name if name in given else None
            raise where.error(field, f"log scale for {name} needs a lower bound > 0, found {float(low):g}"
                                     + ("" if field else f" (give {{\"default\": \"{default}\", \"{name}\": "
                                                         "\"linear\"}} or use \"auto\")"))
    return out
