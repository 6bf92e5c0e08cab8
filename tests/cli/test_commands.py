"""The management commands against a real server: tables for people, --json for scripts,
secrets shown once, refusals as one line with exit code 1, usage errors with 2.

Set-up that is not under test (namespaces, images) goes through the API directly: each
`moorage` process costs about half a second.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import httpx

from tests.cli.conftest import Cli, Result
from tests.web.conftest import People
from tests.web.helpers import (OCI_MANIFEST, USER_PASSWORD, api, make_namespace, push_image,
                               unique)
from tests.web.test_api_documents import BUILT_FEATURES, UNBUILT_FEATURES, UNBUILT_QUOTAS


def rows(table: str) -> dict[str, str]:
    """A table's lines by their first cell."""
    return {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}


def test_namespace_commands(admin_cli: Cli) -> None:
    private, public = unique("cli"), unique("clipub")
    assert f"Created private namespace {private}." in admin_cli.ok("namespace", "create", private)
    admin_cli.ok("namespace", "create", public, "--public", "--description", "shared [images]",
                 "--credential-free-pull")

    table = admin_cli.ok("namespace", "list")
    assert table.splitlines()[0].split()[:3] == ["NAME", "VISIBILITY", "ROLE"]
    found = rows(table)
    assert found[private].split()[1:3] == ["private", "owner"]
    assert "public" in found[public] and "shared [images]" in found[public]

    listed = {n["name"]: n for n in json.loads(admin_cli.ok("namespace", "list", "--json"))}
    assert listed[public]["visibility"] == "public"
    assert listed[public]["credential_free_pull"] is True
    assert listed[public]["description"] == "shared [images]"

    unconfirmed = admin_cli("namespace", "delete", private)
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.stderr
    assert json.loads(admin_cli.ok("namespace", "delete", private, "--yes", "--json")) == \
        {"deleted": private}
    gone = admin_cli("namespace", "show", private)
    assert gone.code == 1
    assert gone.stderr == f"moorage: namespace {private} does not exist\n"


def test_robot_secret_is_shown_once(admin_cli: Cli) -> None:
    ns = make_namespace(admin_cli.server)
    out = admin_cli.ok("robot", "create", ns, "ci", "--role", "guest", "--expires-in-days", "7")
    assert f"robot${ns}+ci" in out and "shown this once" in out
    secret = out.strip().splitlines()[-1]
    assert len(secret) >= 32 and " " not in secret
    me = httpx.get(f"{admin_cli.server.url}/api/v1/user", auth=(f"robot${ns}+ci", secret))
    assert me.status_code == 200 and me.json()["roles"] == {ns: "guest"}

    listing = admin_cli.ok("robot", "list", ns)
    assert rows(listing)["ci"].split()[1:3] == [f"robot${ns}+ci", "guest"]
    assert secret not in listing
    admin_cli.ok("robot", "delete", ns, "ci")
    assert httpx.get(f"{admin_cli.server.url}/api/v1/user",
                     auth=(f"robot${ns}+ci", secret)).status_code == 401


def test_token_commands(admin_cli: Cli) -> None:
    name = unique("script")
    out = admin_cli.ok("token", "create", name, "--expires-in-days", "5")
    token = out.strip().splitlines()[-1]
    assert token.startswith("mrg_p_")
    token_id = token.split("_")[2]
    listing = admin_cli.ok("token", "list")
    assert rows(listing)[token_id].split()[1:3] == [name, "active"]
    assert token not in listing

    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{admin_cli.server.url}/api/v1/user", headers=bearer).status_code == 200
    assert f"Revoked access token {token_id}." in admin_cli.ok("token", "revoke", token_id)
    assert httpx.get(f"{admin_cli.server.url}/api/v1/user", headers=bearer).status_code == 401


def on_a_terminal(cli: Cli, args: list[str], answer: str) -> Result:
    """Run with stdin and stdout on a pseudo-terminal (as a person would), typing `answer`."""
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"XDG_CONFIG_HOME": str(cli.config_home), "NO_COLOR": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "moorage", *args], stdin=child,
                            stdout=child, stderr=subprocess.PIPE, env=env)
    os.close(child)
    os.write(main, answer.encode())
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    return Result(proc.wait(timeout=60), output.decode(errors="replace"), stderr)


def test_user_commands(admin_cli: Cli) -> None:
    name = unique("dave")
    created = admin_cli.ok("user", "create", name, "--password-stdin",
                           input=USER_PASSWORD + "\n")
    assert f"Created user {name}." in created
    assert rows(admin_cli.ok("user", "list"))[name].split()[1:3] == ["local", "no"]
    # no directory is configured here: the account cannot be switched to one
    switch = admin_cli("user", "source", name, "ldap")
    assert switch.code == 1 and "not configured on this instance" in switch.stderr, switch

    as_dave = {"MOORAGE_URL": admin_cli.server.url, "MOORAGE_USERNAME": name,
               "MOORAGE_PASSWORD": USER_PASSWORD}
    refused = admin_cli("user", "create", unique("eve"), "--password-stdin",
                        input="another-password\n", env=as_dave)
    assert refused.code == 1
    assert refused.stderr == "moorage: only instance administrators may do this\n"
    admin_cli.ok("user", "passwd", name, "--password-stdin", input="the-new-password\n",
                 env=as_dave)
    as_dave["MOORAGE_PASSWORD"] = "the-new-password"
    assert json.loads(admin_cli.ok("whoami", "--json", env=as_dave))["username"] == name
    # Deleting an account asks first; with no terminal to ask on, only --yes will do.
    unconfirmed = admin_cli("user", "delete", name)
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.stderr, unconfirmed
    assert rows(admin_cli.ok("user", "list"))[name]
    # On a terminal it asks, and "n" keeps the account.
    declined = on_a_terminal(admin_cli, ["user", "delete", name], answer="n\n")
    assert declined.code == 1 and f"Delete user {name}" in declined.stdout, declined
    assert rows(admin_cli.ok("user", "list"))[name]
    assert f"Deleted user {name}." in admin_cli.ok("user", "delete", name, "--yes")


def test_repo_commands(admin_cli: Cli) -> None:
    ns = make_namespace(admin_cli.server)
    digest = push_image(admin_cli.server, f"{ns}/web/app", "1.0")
    push_image(admin_cli.server, f"{ns}/db", "latest")

    table = admin_cli.ok("repo", "list", "--namespace", ns)
    assert table.splitlines()[0].split()[:3] == ["NAME", "VISIBILITY", "TAGS"]
    assert rows(table)[f"{ns}/web/app"].split()[1:3] == ["private", "1"]
    listed = json.loads(admin_cli.ok("repo", "list", "--namespace", ns, "--json"))
    assert sorted(r["name"] for r in listed) == [f"{ns}/db", f"{ns}/web/app"]
    tags = admin_cli.ok("repo", "tags", f"{ns}/web/app")
    assert rows(tags)["1.0"].split()[1] == digest  # the digest whole, on one line

    assert admin_cli("repo", "delete", f"{ns}/db").code == 2  # no --yes, no terminal
    admin_cli.ok("repo", "delete", f"{ns}/db", "--yes")
    assert api(admin_cli.server, "GET", f"/repositories/{ns}/db").status_code == 404


def test_repo_tags_and_show_a_manifest(admin_cli: Cli) -> None:
    from tests.web.test_repository_browsing import OCI_INDEX, artifact, image, put_manifest

    server = admin_cli.server
    ns = make_namespace(server)
    repo = f"{ns}/app"
    single, size, total = image(server, repo, "1.0", env=["A=1"], labels={"team": "shop"})
    arm, arm_size, _ = image(server, repo, None, "arm64")
    put_manifest(server, repo, "multi", {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                         "manifests": [{"mediaType": OCI_MANIFEST,
                                                        "digest": arm, "size": arm_size,
                                                        "platform": {"os": "linux",
                                                                     "architecture": "arm64",
                                                                     "variant": "v8"}}]},
                 OCI_INDEX)
    sbom = artifact(server, repo, (single, size, OCI_MANIFEST), "application/spdx+json", b"{}")

    tags = admin_cli.ok("repo", "tags", repo)
    assert tags.splitlines()[0].split() == ["TAG", "DIGEST", "KIND", "PLATFORMS", "SIZE",
                                            "PUSHED", "PULLED", "LOCKED", "VULNERABILITIES",
                                            "SIGNED"]
    assert rows(tags)["1.0"].split()[1:3] == [single, "image"]
    assert rows(tags)["multi"].split()[2:4] == ["index", "linux/arm64/v8"]
    listed = json.loads(admin_cli.ok("repo", "tags", repo, "--json", "--search", "MUL"))
    assert [t["name"] for t in listed] == ["multi"]
    assert listed[0]["platforms"][0]["digest"] == arm
    assert len(json.loads(admin_cli.ok("repo", "tags", repo, "--json", "--limit", "1"))) == 1

    shown = admin_cli.ok("repo", "show", f"{repo}:1.0")
    assert single in shown and "A=1" in shown and "team" in shown and "/bin/app" in shown
    assert sbom in shown and "sbom" in shown  # the referrers tree
    by_digest = json.loads(admin_cli.ok("repo", "show", f"{repo}@{single}", "--json"))
    assert by_digest["digest"] == single and by_digest["total_size"] == total
    assert by_digest["config"]["labels"] == {"team": "shop"}
    index = admin_cli.ok("repo", "show", f"{repo}:multi")
    assert "linux/arm64/v8" in index and arm in index
    missing = admin_cli("repo", "show", f"{repo}:nope")
    assert missing.code == 1 and "manifest" in missing.stderr.lower()
    assert json.loads(admin_cli.ok("repo", "show", repo, "--json"))["tag_count"] == 2
    found = json.loads(admin_cli.ok("repo", "list", "--search", repo, "--sort", "-pushed",
                                    "--json"))
    assert [r["name"] for r in found] == [repo]


def test_member_and_network_commands(admin_cli: Cli, people: People) -> None:
    ns = make_namespace(admin_cli.server)
    user = people.bob[0]
    assert f"{user} is developer in namespace {ns}." in admin_cli.ok("member", "set", ns, user,
                                                                     "developer")
    assert rows(admin_cli.ok("member", "list", ns))[user].split()[1:] == ["user", "developer"]
    as_bob = {"MOORAGE_URL": admin_cli.server.url, "MOORAGE_USERNAME": user,
              "MOORAGE_PASSWORD": people.bob[1]}
    denied = admin_cli("namespace", "delete", ns, "--yes", env=as_bob)
    assert denied.code == 1
    assert denied.stderr == (f"moorage: user {user} has role developer in namespace {ns}; "
                             f"this needs owner or higher\n")
    admin_cli.ok("member", "remove", ns, user)

    lockout = admin_cli("network", "add", "10.0.0.0/8")
    assert lockout.code == 1 and "lock you out" in lockout.stderr
    rule = json.loads(admin_cli.ok("network", "add", "192.168.7.0/24", "--namespace", ns,
                                   "--description", "office", "--json"))
    assert rule["namespace"] == ns and rule["kind"] == "allow"
    assert rows(admin_cli.ok("network", "list"))[str(rule["id"])].split()[1:4] == \
        ["allow", "192.168.7.0/24", ns]
    assert f"Deleted network rule {rule['id']}." in admin_cli.ok("network", "delete",
                                                                 str(rule["id"]))


def test_info_and_usage_errors(admin_cli: Cli) -> None:
    info = json.loads(admin_cli.ok("info", "--json"))
    assert info["edition"] == "advanced" and "namespaces" in info["quotas"]
    table = admin_cli.ok("info")
    assert "advanced" in rows(table).get("edition", "")
    # Only what this version builds: nothing of the product plan that is still to come.
    for listing in (table, json.dumps(info)):
        for name in UNBUILT_FEATURES | UNBUILT_QUOTAS:
            assert name not in listing, name
    assert set(info["features"]) == BUILT_FEATURES and "webhooks" in table
    bad_role = admin_cli("member", "set", "ns", "someone", "king")
    assert bad_role.code == 2 and bad_role.stderr.startswith("moorage: ")
    assert bad_role.stderr.count("\n") == 1
    unknown = admin_cli("frobnicate")
    assert unknown.code == 2 and "No such command" in unknown.stderr
    # The environment wins over the stored login: here, a server that is not there.
    unreachable = admin_cli("info", env={"MOORAGE_URL": "http://127.0.0.1:9"})
    assert unreachable.code == 1
    assert unreachable.stderr.startswith("moorage: cannot reach http://127.0.0.1:9")


def test_errors_under_json_are_json(admin_cli: Cli) -> None:
    """Under --json every failure is one JSON object on stderr (stdout holds only results),
    with the exit code it always had: refusals by the server, usage errors found before the
    command runs, and an unreachable server."""
    missing = unique("nosuch")
    refused = admin_cli("namespace", "show", missing, "--json")
    assert refused.code == 1 and refused.stdout == ""
    assert json.loads(refused.stderr) == {"error": f"namespace {missing} does not exist",
                                          "exit_code": 1, "code": "NOT_FOUND", "status": 404}
    assert refused.stderr.count("\n") == 1

    bad_role = admin_cli("member", "set", "ns", "someone", "king", "--json")
    assert bad_role.code == 2
    body = json.loads(bad_role.stderr)
    assert body["exit_code"] == 2 and "king" in body["error"]

    unconfirmed = admin_cli("namespace", "delete", missing, "--json")
    assert unconfirmed.code == 2 and "--yes" in json.loads(unconfirmed.stderr)["error"]

    unreachable = admin_cli("info", "--json", env={"MOORAGE_URL": "http://127.0.0.1:9"})
    assert unreachable.code == 1
    assert json.loads(unreachable.stderr)["error"].startswith("cannot reach http://127.0.0.1:9")
    # Without --json, the one line for people, as before.
    plain = admin_cli("namespace", "show", missing)
    assert plain.stderr == f"moorage: namespace {missing} does not exist\n"
