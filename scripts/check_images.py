#!/usr/bin/env python3
"""Molecule's dependency step: fails when an image the scenario's containers use is not on
the Docker daemon, naming the command that builds it. The images are built here, never
pulled (no registry is reachable on the machines this project is tested on), so a missing one
would otherwise end in a pull error.

  scripts/check_images.py SCENARIO_DIRECTORY
  scripts/check_images.py --versions SCENARIO_DIRECTORY   the Airflow versions of its worker
                                                          images, as build-images.sh takes them

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


def airflow_version(image):
    """The Airflow version of a worker image (acc-worker:airflow-VERSION), or None."""
    match = re.fullmatch(r"acc-worker:airflow-(.+)", image)
    return match.group(1) if match else None


def build_command(image):
    version = airflow_version(image)
    if version:
        return "ACC_AIRFLOW_VERSIONS=%s scripts/build-images.sh" % version
    return "scripts/build-images.sh"


def scenario_images(scenario_dir, environ):
    with open(os.path.join(scenario_dir, "molecule.yml"), encoding="utf-8") as config:
        platforms = yaml.safe_load(config)["platforms"]
    return sorted({expand(platform["image"], environ) for platform in platforms})


def airflow_versions(images):
    return [version for version in map(airflow_version, images) if version]


def missing_images(images):
    return [image for image in images
            if subprocess.run(["docker", "image", "inspect", image], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode != 0]


def main(scenario_dir, environ):
    images = scenario_images(scenario_dir, environ)
    missing = missing_images(images)
    for image in missing:
        print("image %s is missing; build it from the repository's root with: %s (`make images`"
              " builds every image)" % (image, build_command(image)), file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--versions":
        print(" ".join(airflow_versions(scenario_images(sys.argv[2], os.environ))))
    elif len(sys.argv) == 2:
        sys.exit(main(sys.argv[1], os.environ))
    else:
        sys.exit(__doc__)
