"""The SNMP client's failures: every one says its cause with a word from a fixed set (a bounded metric label).

Peers are real: Net-SNMP's snmpd, with a wrong key, an unknown user, a security level the user does not have,
and a port where nothing listens.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from monitor.demo.snmpsim import free_udp_port
from probes._snmp_engine import _Failure
from probes.snmp import FAILURES, SnmpProbe
from tests.probes.conftest import Snmpd
from tests.probes.test_snmp import cycle, make_config, settings, snmp_link, targets_of


@pytest.fixture
async def snmp_probe() -> Any:
    probe = SnmpProbe()
    yield probe
    await probe.close()


def test_failures_are_a_fixed_set() -> None:
    """Every failure word the SNMP modules write is in FAILURES (a bounded metric label); any other becomes error."""
    assert _Failure("made_up", "x").failure == "error"
    probes_dir = Path(__file__).resolve().parents[2] / "probes"
    words = set()
    for path in [probes_dir / "snmp.py", *probes_dir.glob("_snmp_*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                args = node.args[:1] if name == "_Failure" else node.args[2:3] if name == "failed" else []
                words |= {a.value for a in args if isinstance(a, ast.Constant)}
    assert words and words <= set(FAILURES), words - set(FAILURES)
    assert len(FAILURES) == len(set(FAILURES))


# --- causes, against Net-SNMP -----------------------------------------------------------------------------


async def test_snmpd_tells_wrong_keys_unknown_users_and_silence_apart(snmpd: Snmpd, snmp_probe: SnmpProbe) -> None:
    """Net-SNMP with a wrong authentication key, an unknown user, a privacy level the user does not have, and a
    port where no agent listens: each its own failure code and reason from FAILURES, the USM report named, no
    key anywhere. A wrong privacy key is either reported or ignored (a timeout that says it may be that)."""
    good = {"version": "3", "user": snmpd.user, "auth_protocol": "SHA256", "auth_key": snmpd.auth_key,
            "priv_protocol": "AES", "priv_key": snmpd.priv_key}
    wrong_auth, wrong_priv = "NotTheAuthKey-5e1f", "NotThePrivKey-77ab"
    auths = {"wrong-auth": {**good, "auth_key": wrong_auth}, "unknown-user": {**good, "user": "nobody-here"},
             "no-priv-at-agent": {**good, "user": snmpd.auth_only_user}, "v2": {"community": snmpd.community}}
    dead = free_udp_port()
    sites = [(name.upper(), [snmp_link("primary", snmpd.port, name, if_name="lo")], []) for name in auths]
    config = make_config(auths, *sites, ("DEAD", [snmp_link("primary", dead, "v2", if_index=1)], []))
    s = settings(timeout_seconds=1.0)
    obs = {k.split("/")[0]: o for k, o in (await cycle(snmp_probe, targets_of(config), s)).items()}
    assert obs["V2"].ok, obs["V2"].reason
    got = {name: (o.failure, o.reason) for name, o in obs.items() if name != "V2"}
    assert got["WRONG-AUTH"] == ("auth_failed", "user readiness: wrong digest, the agent rejects the authentication "
                                                "key (usmStatsWrongDigests)")
    assert got["UNKNOWN-USER"][0] == "auth_failed" and "usmStatsUnknownUserNames" in got["UNKNOWN-USER"][1], got
    assert got["NO-PRIV-AT-AGENT"][0] == "auth_failed", got
    assert "usmStatsUnsupportedSecLevels" in got["NO-PRIV-AT-AGENT"][1], got
    assert got["DEAD"][0] == "timeout" and got["DEAD"][1].startswith("no answer within 1s x 1 tries"), got
    assert len(set(got.values())) == 4

    # pysnmp holds one set of keys per user name: the wrong privacy key needs a probe of its own.
    config = make_config({"wrong-priv": {**good, "priv_key": wrong_priv}},
                         ("WRONG-PRIV", [snmp_link("primary", snmpd.port, "wrong-priv", if_name="lo")], []))
    other = SnmpProbe()
    try:
        obs["WRONG-PRIV"] = (await cycle(other, targets_of(config), s))["WRONG-PRIV/primary/snmp"]
    finally:
        await other.close()
    failure, reason = obs["WRONG-PRIV"].failure, obs["WRONG-PRIV"].reason
    assert (failure == "auth_failed" and "usmStatsDecryptionErrors" in reason) or (
        failure == "timeout" and "a wrong privacy key looks the same" in reason), (failure, reason)
    assert all(o.failure in FAILURES for o in obs.values() if not o.ok)
    shown = repr(obs)
    for secret in (snmpd.auth_key, snmpd.priv_key, snmpd.community, wrong_auth, wrong_priv):
        assert secret not in shown
