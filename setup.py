"""Package discovery, which pyproject.toml alone cannot express here.

Every package under ``nstlib/`` (any folder with an ``__init__.py``) is found automatically, and the
repository's ``images/`` folder is installed as ``nstlib.images`` (the bundled examples and their
CREDITS.md). Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["nstlib", "nstlib.*"]) + ["nstlib.images"],
      package_dir={"nstlib.images": "images"})
