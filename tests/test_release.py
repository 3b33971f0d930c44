"""The package's version, where it is named: it takes over kinto-elasticsearch's name on
PyPI, so pip must see it as newer than 0.3's last release, or nobody upgrades to it."""

import configparser
import re
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).parent.parent
# kinto-elasticsearch 0.3's last release on PyPI.
LAST_0_3_RELEASE = Version("0.3.1")


def _version():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return Version(setup["metadata"]["version"])


def test_the_version_is_newer_than_0_3s_last_release():
    assert _version() > LAST_0_3_RELEASE


def test_the_changelogs_first_section_is_this_version():
    titles = re.findall(r"^(\S+) \((.+)\)\n-+$", (ROOT / "CHANGELOG.rst").read_text(), re.M)
    number, when = titles[0]
    version = _version()
    assert Version(number) == Version(version.base_version)
    assert (when == "unreleased") == version.is_devrelease
