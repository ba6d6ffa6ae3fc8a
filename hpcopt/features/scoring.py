"""eFEL: the only module that imports efel.

All features of one trace are extracted by one eFEL call (with 'trace_check'
when asked for), with eFEL's settings reset to their defaults and set explicitly
before it, on the settings object eFEL holds at that moment (other eFEL code in
the process may have called efel.reset(), which replaces it). The score
of a feature is eFEL's distance, computed as ``efel.get_distance`` computes it:
the mean over the feature's values of |value - mean| / std, or the penalty when
the feature is missing, the trace check fails or the result is NaN.
"""

import math
from collections import defaultdict

import numpy as np

from ..errors import ConfigError


def version():
    import efel

    return efel.__version__


class Scorer:
    """Scores traces against the features of a CellModel.

    features: tuple of config.cell.Feature (objective order); penalty: the error score;
    trace_check: fail a trace's features when it has spikes outside the stimulus
    window (eFEL's trace_check; BluePyOpt does not ask for it).
    """

    def __init__(self, features, penalty, trace_check=False):
        import efel

        efel.reset()  # initialises eFEL's core once; per trace only the settings are reset
        self.efel = efel
        self.features = features
        self.penalty = penalty
        self.trace_check = trace_check
        _check_settings(efel.get_settings(), features)
        groups = defaultdict(list)
        for i, f in enumerate(features):
            groups[(f.protocol, f.recording, f.stim_start, f.stim_end, f.threshold, f.settings)].append(i)
        self.groups = list(groups.items())

    def __call__(self, traces):
        """traces: {(protocol, recording): (t, v)}.

        Returns (scores (m,), means (m,) with NaN where missing, raw {name: list or None});
        the score of a feature without a target is NaN.
        """
        efel = self.efel
        m = len(self.features)
        scores, means, raw = np.full(m, float(self.penalty)), np.full(m, np.nan), {}
        for (protocol, recording, start, end, threshold, settings), indices in self.groups:
            t, v = traces[(protocol, recording)]
            _default_settings(efel.get_settings())  # asked each time: an efel.reset() elsewhere replaces it
            efel.set_setting("Threshold", threshold)
            for key, value in settings:
                efel.set_setting(key, value)
            # lists: eFEL copies a trace element by element, three times faster from a list
            trace = {"T": t.tolist(), "V": v.tolist(), "stim_start": [start], "stim_end": [end]}
            names = list(dict.fromkeys(self.features[i].efel_name for i in indices))
            if self.trace_check:
                names.append("trace_check")
            values = efel.get_feature_values([trace], names, raise_warnings=False)[0]
            checked = not self.trace_check or values["trace_check"] is not None
            for i in indices:
                f = self.features[i]
                found = values[f.efel_name]
                raw[f.name] = None if found is None else [float(x) for x in np.ravel(found)]
                if found is not None and len(found):
                    means[i] = float(np.mean(found))
                if not f.has_target:  # listed to be measured (hpcopt evaluate, targets): no score
                    scores[i] = math.nan
                elif checked:
                    scores[i] = distance(found, f.mean, f.std, self.penalty)
        return scores, means, raw



def _check_settings(settings, features):
    """ConfigError for a feature's eFEL setting that eFEL does not have, or of a
    type its default does not have (eFEL would raise in every evaluation)."""
    defaults = {name: getattr(settings, name) for name in type(settings).__dataclass_fields__}
    for f in features:
        for key, value in f.settings:
            where = f"features.{f.name}.settings.{key}"
            if key not in defaults:
                raise ConfigError(where, f"not an eFEL setting; eFEL's: {', '.join(sorted(defaults))}")
            default = defaults[key]
            numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) if numeric
                  else isinstance(value, type(default)))
            if default is not None and not ok:
                raise ConfigError(where, f"expected {type(default).__name__} as eFEL's default "
                                         f"{default!r}, found {value!r}")


def _default_settings(settings):
    """eFEL's settings back to their defaults, without efel.reset(): that also
    re-initialises eFEL's C++ core (10-20 ms), which get_feature_values does not
    need since it pushes every setting to the core on each call."""
    settings.reset_to_default()
    fields = type(settings).__dataclass_fields__
    for name in [name for name in vars(settings) if name not in fields]:
        delattr(settings, name)


def distance(values, mean, std, penalty):
    """eFEL's distance of the feature values from mean in units of std (its own order of sums)."""
    if values is None or len(values) < 1:
        return float(penalty)
    total = 0.0
    for value in values:
        total += abs(value - mean)
    total = total / std / len(values)
    return float(penalty) if math.isnan(total) else float(total)
