"""LICENSE, CHANGELOG.md and SECURITY.md: present, and true to pyproject.toml and the code."""

from __future__ import annotations

import hashlib
import re
import tomllib

from config.settings import ENV_PREFIX, Settings
from tests.plugins.workers import ROOT

#: SHA-256 of the Apache License 2.0 text, byte for byte as Debian ships it in
#: /usr/share/common-licenses/Apache-2.0 (and tornado as its LICENSE).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_license_is_the_apache_2_text_that_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    first, _, rest = (ROOT / "LICENSE").read_text(encoding="utf-8").partition("\n")
    assert first == "Copyright 2026 o2c-workers contributors"
    assert hashlib.sha256(rest.encode()).hexdigest() == APACHE_2_SHA256


def test_changelog_has_an_unreleased_section_in_keep_a_changelog_form() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
    assert re.search(r"^### Added$", text, re.M)


def test_security_names_only_settings_that_exist() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert "security advisory" in text
    named = set(re.findall(r"\b(O2C_[A-Z0-9_]+)\b", text))
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert named - {"O2C_FLOWER_ALLOW_ANONYMOUS"} <= known, named - known
    for secret in ("O2C_WEBHOOK_TOKEN", "O2C_SALESFORCE_ORG_IDS", "O2C_ERP_WEBHOOK_SECRET",
                   "O2C_ADMIN_TOKEN", "O2C_MAX_BODY_BYTES"):
        assert secret in named
