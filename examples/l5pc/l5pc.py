"""BluePyOpt's L5PC example (Van Geit et al. 2016's first use case), as BluePyOpt
1.14.26's source distribution ships it, fitted by hpcopt from its JSON files unchanged.

    python examples/l5pc/l5pc.py config FOLDER [--population N --generations G]
    python examples/l5pc/l5pc.py compare RUN.h5 FOLDER

``config`` fetches the example (``pip download --no-deps --no-binary :all:
bluepyopt==1.14.26``, cached as tests/corpus.py does: nothing of it is committed),
copies it into FOLDER and writes FOLDER/config.json, a ``problem.bluepyopt`` config
that names its files. ``compare`` prints the run's best individual beside the
release parameters BluePyOpt's example publishes (its l5pc_analysis.py), each
scored by hpcopt on the same 35 objectives.
"""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
import corpus  # noqa: E402  (the one place that knows how to fetch BluePyOpt's examples)

FILES = {"morphology": "morphology/C060114A7.asc", "mechanisms": "config/mechanisms.json",
         "parameters": "config/parameters.json", "protocols": "config/protocols.json",
         "features": "config/features.json", "mod_dir": "mechanisms"}


def release_params(folder):
    """The release parameters, as the example's l5pc_analysis.py defines them (read as data)."""
    tree = ast.parse(open(os.path.join(folder, "l5pc_analysis.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "release_params":
            return ast.literal_eval(node.value)
    raise SystemExit(f"{folder}/l5pc_analysis.py: no release_params")


def make_config(folder, population, generations):
    source = os.path.join(corpus.examples(), "l5pc")
    if os.path.exists(folder):
        shutil.rmtree(folder)
    shutil.copytree(source, folder)
    config = {"problem": {"bluepyopt": {key: path for key, path in FILES.items()}},
              "optimizer": {"algorithm": "ibea", "population": population, "generations": generations, "seed": 1,
                            "scale": "linear"}}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(folder, "release.json"), "w") as f:
        json.dump(release_params(folder), f, indent=1)
    print(f"{folder}/config.json: BluePyOpt {corpus.VERSION}'s L5PC files, IBEA {population} x {generations}")


def hpcopt(*args):
    command = [os.path.join(os.path.dirname(sys.executable), "hpcopt"), *map(str, args)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def compare(run, folder):
    best = hpcopt("best", run, "--json")
    release = json.load(open(os.path.join(folder, "release.json")))
    scored = hpcopt("evaluate", os.path.join(folder, "config.json"), "--params",
                    os.path.join(folder, "release.json"), "--json")
    print(f"{'parameter':<32} {'hpcopt best':>12} {'BluePyOpt release':>18}")
    for name, value in best["parameters"].items():
        print(f"{name:<32} {value:>12.5g} {release.get(name, float('nan')):>18.5g}")
    print(f"{'score (sum of 35 objectives)':<32} {best['score']:>12.5g} {scored['score']:>18.5g}")
    print(f"('hpcopt status {run}' says how many evaluations the run took; the release parameters come "
          "from BluePyOpt's full optimisation)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("config")
    make.add_argument("folder")
    make.add_argument("--population", type=int, default=8)
    make.add_argument("--generations", type=int, default=3)
    check = commands.add_parser("compare")
    check.add_argument("run")
    check.add_argument("folder")
    args = parser.parse_args()
    if args.command == "config":
        make_config(args.folder, args.population, args.generations)
    else:
        compare(args.run, args.folder)


if __name__ == "__main__":
    main()
