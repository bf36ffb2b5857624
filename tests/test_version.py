"""The version is the Cargo workspace's, and shows in `hg version` and in `hg vault`."""

from __future__ import annotations

import json
import re

from project import workspace_version


def test_hg_version_lists_keyvault_with_the_workspace_version(bed, tmp_path):
    client = bed.client(tmp_path)

    verbose = client.hg("version", "-v")
    assert verbose.returncode == 0, verbose.output
    line = rf"^\s+keyvault\s+external\s+{re.escape(workspace_version())}$"
    assert re.search(line, verbose.stdout, re.M), verbose.stdout

    data = client.hg("version", "-T", "json")
    [info] = json.loads(data.stdout)
    [keyvault] = [e for e in info["extensions"] if e["name"] == "keyvault"]
    assert keyvault["ver"] == workspace_version()


def test_vault_status_shows_the_workspace_version(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path)

    plain = client.hg("vault")
    assert plain.returncode == 0, plain.output
    assert plain.stdout.splitlines()[0] == f"extension:  hg-keyvault {workspace_version()}"

    data = client.hg("vault", "-T", "json")
    assert data.returncode == 0, data.output
    [status] = json.loads(data.stdout)
    assert status["extension_version"] == workspace_version()
