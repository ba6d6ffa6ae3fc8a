"""Stimulus kinds: each is one class that reads its config entry, says what it
stores in the run file (``resolved``), and says what NEURON objects make it
(``primitive``): an IClamp step, an IClamp whose amplitude plays a time course, or
a synapse driven by a NetStim. hpcopt/neuron builds primitives, and the exported
standalone cells build the same ones, so a new kind that is one of these needs
nothing but its class here (and an entry in ``KINDS``).

Every kind has ``location`` (locations.Location), and ``delay`` and ``duration``
(ms): the default eFEL window of a protocol is the first stimulus's
[delay, delay + duration].
"""

from dataclasses import dataclass

from . import fields, locations
from .fields import path_of

COMMON = ("type", "location", "totduration")


@dataclass(frozen=True)
class Step:
    """A current step (BluePyOpt's 'step' and 'holding' stimuli)."""

    location: locations.Location
    delay: float
    duration: float
    amplitude: float

    kind = "step"

    @classmethod
    def parse(cls, t, where, base_dir):
        t = fields.table(t, where, required=("delay", "amp", "duration"), optional=COMMON)
        return cls(locations.parse(t.get("location"), where / "location"),
                   delay=fields.number(t, where, "delay", minimum=0),
                   duration=fields.number(t, where, "duration", minimum=0), amplitude=fields.number(t, where, "amp"))

    def resolved(self):
        return {"delay": self.delay, "duration": self.duration, "amp": self.amplitude}

    def primitive(self, tstop):
        return {"type": "step", "delay": self.delay, "dur": self.duration, "amp": self.amplitude}


@dataclass(frozen=True)
class Ramp:
    """A current ramping linearly from ``amplitude`` to ``amplitude_end`` over ``duration``."""

    location: locations.Location
    delay: float
    duration: float
    amplitude: float
    amplitude_end: float

    kind = "ramp"

    @classmethod
    def parse(cls, t, where, base_dir):
        t = fields.table(t, where, required=("delay", "amp", "amp_end", "duration"), optional=COMMON)
        return cls(locations.parse(t.get("location"), where / "location"),
                   delay=fields.number(t, where, "delay", minimum=0),
                   duration=fields.number(t, where, "duration", above=0),
                   amplitude=fields.number(t, where, "amp"), amplitude_end=fields.number(t, where, "amp_end"))

    def resolved(self):
        return {"delay": self.delay, "duration": self.duration, "amp": self.amplitude, "amp_end": self.amplitude_end}

    def primitive(self, tstop):
        end = self.delay + self.duration
        return {"type": "play", "delay": 0.0, "dur": 1e9, "times": [0.0, self.delay, self.delay, end, end,
                                                                    max(tstop, end)],
                "amps": [0.0, 0.0, self.amplitude, self.amplitude_end, 0.0, 0.0]}


@dataclass(frozen=True)
class Waveform:
    """An arbitrary current: ``currents`` (nA) at ``times`` (ms), linear in between,
    given inline or as a two-column text file."""

    location: locations.Location
    times: tuple
    currents: tuple

    kind = "waveform"

    @property
    def delay(self):
        return self.times[0]

    @property
    def duration(self):
        return self.times[-1] - self.times[0]

    @classmethod
    def parse(cls, t, where, base_dir):
        t = fields.table(t, where, optional=COMMON + ("file", "times", "currents"))
        if "file" in t:
            path = path_of(t["file"], where, "file", base_dir)
            try:
                rows = [line.split() for line in open(path) if line.strip() and not line.startswith("#")]
                times = tuple(float(r[0]) for r in rows)
                currents = tuple(float(r[1]) for r in rows)
            except (OSError, ValueError, IndexError) as err:
                raise where.error("file", f"cannot read a two-column (ms, nA) waveform from {path}: {err}") from err
        elif "times" in t and "currents" in t:
            times, currents = fields.numbers(t, where, "times"), fields.numbers(t, where, "currents")
        else:
            raise where.error(None, "a waveform needs 'file' (two columns: ms, nA) or 'times' and 'currents'")
        if len(times) < 2 or len(times) != len(currents) or any(b <= a for a, b in zip(times, times[1:])):
            raise where.error(None, "waveform times must be increasing, at least 2, one current each")
        return cls(locations.parse(t.get("location"), where / "location"), times, currents)

    def resolved(self):
        return {"times": list(self.times), "currents": list(self.currents)}

    def primitive(self, tstop):
        return {"type": "play", "delay": self.times[0], "dur": self.times[-1] - self.times[0],
                "times": list(self.times), "amps": list(self.currents)}


@dataclass(frozen=True)
class Synapse:
    """A point process (``synapse``: {"mechanism": name, parameter: value}) driven by a
    regular NetStim: ``number`` events every ``interval`` ms from ``start``."""

    location: locations.Location
    synapse: tuple  # (("mechanism", "ExpSyn"), ("tau", 2.0), ...)
    start: float
    interval: float
    number: int
    weight: float

    kind = "synapse"

    @property
    def delay(self):
        return self.start

    @property
    def duration(self):
        return self.interval * self.number

    @property
    def mechanism(self):
        return dict(self.synapse)["mechanism"]

    @classmethod
    def parse(cls, t, where, base_dir):
        t = fields.table(t, where, required=("start", "number", "weight"), optional=COMMON + ("synapse", "interval"))
        synapse = t.get("synapse", {"mechanism": "ExpSyn"})
        if not isinstance(synapse, dict) or not isinstance(synapse.get("mechanism"), str):
            raise where.error("synapse", "expected {\"mechanism\": point process name, parameter: value, ...}")
        for key in synapse:
            if key != "mechanism":
                fields.number(synapse, where / "synapse", key)
        return cls(locations.parse(t.get("location"), where / "location"),
                   synapse=tuple(sorted(synapse.items(), key=lambda kv: kv[0] != "mechanism")),
                   start=fields.number(t, where, "start", minimum=0),
                   interval=fields.number(t, where, "interval", above=0) if "interval" in t else 10.0,
                   number=fields.number(t, where, "number", minimum=1, integer=True),
                   weight=fields.number(t, where, "weight", minimum=0))

    def resolved(self):
        return {"synapse": dict(self.synapse), "start": self.start, "interval": self.interval, "number": self.number,
                "weight": self.weight}

    def primitive(self, tstop):
        return {"type": "synapse", "synapse": dict(self.synapse), "start": self.start, "interval": self.interval,
                "number": self.number, "weight": self.weight}


KINDS = {"step": Step, "holding": Step, "ramp": Ramp, "waveform": Waveform, "synapse": Synapse}


def parse(raw, where, base_dir):
    """(stimulus, its totduration or None) of one entry of a protocol's ``stimuli``."""
    kind = raw.get("type", "step") if isinstance(raw, dict) else None
    if kind not in KINDS:
        names = [k for k in KINDS if k != "holding"]
        raise where.error("type", f"expected {', '.join(names[:-1])} or {names[-1]}, found {fields.show(kind)}")
    return KINDS[kind].parse(raw, where, base_dir), raw.get("totduration")


def resolved(stimulus):
    """The config entry that parses back to ``stimulus`` (what the run file stores)."""
    return {"type": stimulus.kind, "location": stimulus.location.resolved(), **stimulus.resolved()}
