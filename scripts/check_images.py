#!/usr/bin/env python3
"""Molecule's dependency step: fails when an image the scenario's containers use is not on
the Docker daemon, naming the command that builds it. The images are built here, never
pulled (no registry is reachable on the machines this project is tested on), so a missing one
would otherwise end in a pull error.

  scripts/check_images.py SCENARIO_DIRECTORY

Reads the scenario's molecule.yml; `${NAME:-default}` in an image name is filled in from the
environment, as Molecule does."""
import os
import re
import subprocess
import sys

import yaml

VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def expand(text, environ):
    return VARIABLE.sub(lambda m: environ.get(m.group("name")) or m.group("default") or "", text)


def build_command(image):
    version = re.fullmatch(r"acc-worker:airflow-(.+)", image)
    if version:
        return "ACC_AIRFLOW_VERSIONS=%s scripts/build-images.sh" % version.group(1)
    return "scripts/build-images.sh"


def missing_images(images):
    return [image for image in images
            if subprocess.run(["docker", "image", "inspect", image], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode != 0]


def main(scenario_dir, environ):
    with open(os.path.join(scenario_dir, "molecule.yml"), encoding="utf-8") as config:
        platforms = yaml.safe_load(config)["platforms"]
    images = sorted({expand(platform["image"], environ) for platform in platforms})
    missing = missing_images(images)
    for image in missing:
        print("image %s is missing; build it from the repository's root with: %s (`make images`"
              " builds every image)" % (image, build_command(image)), file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], os.environ))
