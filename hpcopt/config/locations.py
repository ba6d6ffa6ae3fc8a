"""Where on a cell a stimulus or a recording is: the soma, or a point at a distance
from the soma along a section list (BluePyOpt's ``somadistance`` locations)."""

from dataclasses import dataclass

from . import fields

SECTION_LISTS = ("all", "somatic", "axonal", "basal", "apical")


@dataclass(frozen=True)
class Location:
    """'soma' (soma(0.5)), or the point at ``distance`` um from the soma along ``sectionlist``."""

    kind: str = "soma"  # soma | somadistance
    sectionlist: str = ""
    distance: float = 0.0

    def resolved(self):
        if self.kind == "soma":
            return {"type": "soma"}
        return {"type": "somadistance", "seclist_name": self.sectionlist, "somadistance": self.distance}


def parse(raw, where):
    """The Location of a config entry (None or 'soma': the soma)."""
    if raw in (None, "soma"):
        return Location()
    t = fields.table(raw, where, required=("type",), optional=("seclist_name", "somadistance"))
    if t["type"] == "soma":
        return Location()
    if t["type"] != "somadistance":
        raise where.error("type", f"expected soma or somadistance, found {fields.show(t['type'])}")
    for key in ("seclist_name", "somadistance"):
        if key not in t:
            raise where.error(key, "missing (required for somadistance)")
    if t["seclist_name"] not in SECTION_LISTS:
        raise where.error("seclist_name", f"expected one of {', '.join(SECTION_LISTS)}")
    return Location("somadistance", t["seclist_name"], fields.number(t, where, "somadistance", minimum=0))
