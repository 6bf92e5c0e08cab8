"""The pure parts: the decision (rules in order, the allowlist and its expiry, worst first),
the facts' encoding, the input rules, and which manifests a policy applies to."""

from __future__ import annotations

import json

import pytest

from moorage.access.errors import Invalid
from moorage.blocking.kinds import subject_to_policy
from moorage.blocking.model import (MAX_EXEMPT, BlockingFinding, PullPolicy, ScanFacts,
                                    check_exempt, check_severity, decide, decode_findings,
                                    encode_findings, finding_text, is_cosign_tag)

OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CRIT = BlockingFinding(0, ("CVE-2024-1", "GHSA-AAAA-BBBB-CCCC"),
                       "critical vulnerability CVE-2024-1 in openssl 3.0.1 (fixed in 3.0.2)")
MED = BlockingFinding(2, ("PYSEC-2020-1",), "medium vulnerability PYSEC-2020-1 in x 1 (no fix yet)")


def test_the_rules_are_asked_in_order_and_name_what_to_fix() -> None:
    every = PullPolicy("team", "high", True, True)
    assert decide(every, None, False, {}, 0).reason == "not scanned yet"
    assert decide(every, ScanFacts("failed"), True, {}, 0).rule == "unscanned"
    refusal = decide(every, ScanFacts("done", (CRIT, MED)), False, {}, 0)
    assert refusal is not None and refusal.rule == "severity"
    assert refusal.reason == CRIT.text
    assert decide(every, ScanFacts("done", (MED,)), False, {}, 0).reason == \
        "no signature from a trusted key"
    assert decide(every, ScanFacts("done", (MED,)), True, {}, 0) is None
    assert decide(PullPolicy("team"), None, False, {}, 0) is None
    # a severity rule alone does not refuse what was never scanned (that is another rule)
    assert decide(PullPolicy("team", "low"), None, True, {}, 0) is None


def test_the_allowlist_accepts_by_id_or_alias_until_its_expiry() -> None:
    policy = PullPolicy("team", "critical")
    facts = ScanFacts("done", (CRIT,))
    assert decide(policy, facts, True, {"GHSA-AAAA-BBBB-CCCC": None}, 100) is None
    assert decide(policy, facts, True, {"CVE-2024-1": 200.0}, 100) is None
    assert decide(policy, facts, True, {"CVE-2024-1": 100.0}, 100).reason == CRIT.text
    assert decide(policy, facts, True, {"CVE-2024-9": None}, 100) is not None


def test_findings_below_the_threshold_never_refuse() -> None:
    assert decide(PullPolicy("t", "high"), ScanFacts("done", (MED,)), True, {}, 0) is None
    assert decide(PullPolicy("t", "medium"), ScanFacts("done", (MED,)), True, {}, 0) is not None


def test_facts_round_trip_worst_first_and_bad_text_reads_as_no_findings() -> None:
    text = encode_findings([MED, CRIT])
    assert decode_findings(text) == (CRIT, MED)
    assert decode_findings("not json") == () and decode_findings('[["x"]]') == ()


def test_a_finding_is_named_by_its_cve_when_it_has_one() -> None:
    assert finding_text("high", "PYSEC-2019-1", ["CVE-2019-10906"], "Jinja2", "2.10",
                        ["2.10.1"]) == \
        "high vulnerability CVE-2019-10906 in Jinja2 2.10 (fixed in 2.10.1)"
    assert finding_text("low", "GHSA-x", [], "p", "1", []).endswith("(no fix yet)")


def test_input_rules() -> None:
    assert check_severity(" HIGH ") == "high" and check_severity(None) is None
    with pytest.raises(Invalid, match="unknown severity"):
        check_severity("severe")
    assert check_exempt(["ci", "robot$team+scanner", "ci"], "team") == ("ci", "scanner")
    with pytest.raises(Invalid, match=f"at most {MAX_EXEMPT}"):
        check_exempt([f"r{i}" for i in range(MAX_EXEMPT + 1)], "team")
    for bad in ("", "UPPER", "a b", "x" * 65, "../x", "robot$other+ci"):
        with pytest.raises(Invalid):
            check_exempt([bad], "team")
    assert PullPolicy("team", exempt=("ci",)).exempt_usernames() == {"robot$team+ci"}


def _image(layers: list[str], **extra: object) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "1" * 64,
        "size": 2}, "layers": [{"mediaType": m, "digest": "sha256:" + "2" * 64, "size": 1}
                               for m in layers], **extra}).encode()


def test_what_a_policy_applies_to() -> None:
    tar = "application/vnd.oci.image.layer.v1.tar+gzip"
    assert subject_to_policy(_image([tar]), OCI)
    assert not subject_to_policy(_image(["application/vnd.dev.cosign.simplesigning.v1+json"]),
                                 OCI)
    assert not subject_to_policy(_image(["application/vnd.dsse.envelope.v1+json"]), OCI)
    assert not subject_to_policy(_image([tar], subject={"digest": "sha256:" + "3" * 64}), OCI)
    assert not subject_to_policy(_image([tar], artifactType="application/spdx+json"), OCI)
    chart = json.loads(_image([tar]))
    chart["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    assert not subject_to_policy(json.dumps(chart).encode(), OCI)
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": OCI, "digest": "sha256:" + "4" * 64, "size": 1,
         "platform": {"os": "unknown", "architecture": "unknown"}}]}
    assert not subject_to_policy(json.dumps(index).encode(), INDEX)  # attestations only
    index["manifests"].append({"mediaType": OCI, "digest": "sha256:" + "5" * 64, "size": 1,
                               "platform": {"os": "linux", "architecture": "amd64"}})
    assert subject_to_policy(json.dumps(index).encode(), INDEX)
    assert not subject_to_policy(b"{not json", OCI)
    assert not subject_to_policy(b"[]", OCI)
    assert is_cosign_tag("sha256-" + "a" * 64 + ".sig")
    assert is_cosign_tag("sha256-" + "a" * 64 + ".att")
    assert not is_cosign_tag("sha256-" + "a" * 63 + ".sig") and not is_cosign_tag(None)
