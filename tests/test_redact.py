"""Credentials are masked wherever transcript text is shown (titles, prompts, the
conversation), and ordinary text is left alone (SPEC section 6)."""

from __future__ import annotations

import pytest

from helm_monitor.sources.claude.catalog import Catalog
from helm_monitor.sources.redact import MASK, redact

# Fake credentials in the real shapes (none of them is, or was, a real key).
ANTHROPIC = "sk-ant-api03-" + "Xq3vB7kP9mZ2wL5tR8yN1cF4hJ6dS0aG" * 3 + "-AbCdEfAA"
SECRETS = {
    "anthropic": ANTHROPIC,
    "anthropic-admin": "sk-ant-admin01-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "openai-project": "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 4,
    "openai-legacy": "sk-" + "T3BlbkFJ" + "q9W8e7R6t5Y4u3I2o1P0aSdF",
    "github-classic": "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a",
    "github-oauth": "gho_" + "16C7e42F292c6912E7710c838347Ae178B4a",
    "github-fine-grained": "github_pat_11ABCDEFG0" + "abcdefghijklmnopqrstuv_" + "W" * 59,
    "aws-access-key": "AKIAIOSFODNN7EXAMPLE",
    "slack-bot": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "gitlab": "glpat-xY9z8W7v6U5t4S3r2Q1p",
    "google": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "huggingface": "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
    "npm": "npm_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize("name", list(SECRETS))
def test_vendor_keys_are_masked(name):
    secret = SECRETS[name]
    text = f"here is my key {secret} please use it"
    out = redact(text)
    assert secret not in out
    assert MASK in out
    assert out.startswith("here is my key ") and out.endswith(" please use it")
    # No long piece of the secret survives (a short recognisable prefix may).
    assert not any(secret[i:i + 12] in out for i in range(4, len(secret) - 12))


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer 7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c", "7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c"),
    ("curl -H 'Authorization: Basic dXNlcjpodW50ZXIyMjI=' https://x", "dXNlcjpodW50ZXIyMjI="),
    ("curl -H \"authorization: token 9aK2mPq7Rs4Tv8Wx1Yz3\" api", "9aK2mPq7Rs4Tv8Wx1Yz3"),
    ("git clone https://alice:hunter2hunter2@git.example.com/repo.git", "hunter2hunter2"),
    ("postgres://app:S3cr3t!pw@db.internal:5432/app", "S3cr3t!pw"),
    ("redis://:Sup3rSecret@cache:6379", None),
    ("export PASSWORD=correcthorsebattery", "correcthorsebattery"),
    ("password: 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
    ('{"api_key": "abcd1234efgh5678"}', "abcd1234efgh5678"),
    ("DB_PASSWORD=p4ssw0rd123 ./run", "p4ssw0rd123"),
    ("client_secret=Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E7710c838347Ae178B4a"),
])
def test_assignments_headers_and_urls_are_masked(text, secret):
    out = redact(text)
    assert MASK in out
    if secret is not None:
        assert secret not in out


def test_pem_private_keys_are_masked():
    body = "MIIEowIBAAKCAQEA7V2yZk9q\nb3BlbnNzaC1rZXktdjEAAAAA\nBG5vbmUAAAAEbm9uZQAAAAAAAAAB\n"
    for kind in ("RSA ", "OPENSSH ", "EC ", ""):
        pem = f"-----BEGIN {kind}PRIVATE KEY-----\n{body}-----END {kind}PRIVATE KEY-----"
        out = redact(f"key:\n{pem}\ndone")
        assert "MIIEowIBAAKCAQEA" not in out and "BG5vbmUAAAAE" not in out
        assert out.startswith("key:\n-----BEGIN") and out.endswith("\ndone")
    # Cut off (a page or a clip ends inside it): still masked to the end.
    out = redact("-----BEGIN RSA PRIVATE KEY-----\n" + body)
    assert "MIIEowIBAAKCAQEA" not in out


ORDINARY = [
    "9d2ae2de-0093-442a-adf0-da57dd454d42",
    "/home/alice/code/webapp/src/components/SessionList.tsx",
    "commit 0690c013a23ec54cf94d63b0fd21817355afb1f246d6ab18d3b55a09734319c1",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "msg_01itbFVhtZ4FCZbCT7VmFOPkCt toolu_01pRLIkc4CZwGLKOQIqRWmlzjG",
    "req_011CUsomeRequestId12345",
    "Risk-taking is part of the job; ask-me-anything; task-management-system-overview",
    "a desk-lamp, the disk-usage report, the kiosk-mode-for-everyone setting",
    "sk- is a prefix, sk-1234 is short, so is sk-ant-",
    "I have a basic understanding of authentication and basic configuration",
    "Each token represents a word; token authentication works; bearer instruments",
    "the password field is required; set your password in settings",
    "max_tokens=4096, input_tokens: 12, cache_read_input_tokens: 18152",
    "https://github.com/anthropics/claude-code/issues/1234",
    "git@github.com:alice/webapp.git and ssh://git@host:22/repo",
    "http://localhost:5003/api/claude-sessions/all?offset=0&limit=100",
    "AKIA is a prefix; AKIAshort; THEAKIAIOSFODNN7EXAMPLEX",
    "ok yes no hi the a an of at",
    "ghp_short gho_ xoxb- hf_x npm_x",
    "Run `npm install` then `pytest -q`; the -----BEGIN CERTIFICATE----- block is public",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_empty_and_idempotent():
    assert redact("") == ""
    once = redact(f"a {ANTHROPIC} b https://u:pw12345@h/x")
    assert redact(once) == once


# ----------------------------------------------------------------------------- where it is shown

def test_titles_prompts_and_conversation_are_masked(claude):
    s = claude.session()
    s.turn(f"use {ANTHROPIC} to call the API", f"I will not echo {SECRETS['github-classic']}.")
    s.write(s.tool_result_record("toolu_1", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
    s.write(s.assistant_records(None, tool_use={"name": "Bash", "input": {
        "command": "curl -H 'Authorization: Bearer 7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c' https://api"}}))
    s.prompt("and the database is postgres://app:S3cr3t!pw@db.internal/app")
    cat = Catalog(claude.root)
    cat.full_scan()
    got = cat.session(s.id)
    assert ANTHROPIC not in got["title"] and MASK in got["title"]
    assert ANTHROPIC not in got["firstPrompt"] and MASK in got["firstPrompt"]
    assert "S3cr3t!pw" not in got["lastPrompt"] and MASK in got["lastPrompt"]
    text = repr(cat.messages(s.id, 0, 500))
    for secret in (ANTHROPIC, SECRETS["github-classic"], "wJalrXUtnFEMI/K7MDENG", "7f8e9d0c1b2a3f4e5d6c",
                   "S3cr3t!pw"):
        assert secret not in text
    # A custom title and an AI title are masked too.
    s.rename(f"deploy with {SECRETS['slack-bot']}")
    cat.apply(str(s.path))
    assert SECRETS["slack-bot"] not in cat.session(s.id)["title"]


@pytest.mark.parametrize("pad", range(150, 200, 7))
def test_secret_cut_by_the_prompt_limit_is_still_masked(claude, pad):
    """firstPrompt is at most 200 characters and the title 120: a secret that straddles
    the cut must be masked as a whole, not shown in part because the cut left it short."""
    s = claude.session()
    prompt = "x" * pad + " https://alice:Hunter2Hunter2@git.example.com/repo " + ANTHROPIC
    s.prompt(prompt)
    cat = Catalog(claude.root)
    cat.full_scan()
    got = cat.session(s.id)
    for field in ("firstPrompt", "lastPrompt", "title"):
        shown = got[field]
        assert "Hunter2" not in shown, (field, shown)
        assert not any(ANTHROPIC[i:i + 6] in shown for i in range(13, len(ANTHROPIC) - 6)), (field, shown)


@pytest.mark.parametrize("pad", range(19_966, 19_990, 3))
def test_secret_cut_by_the_conversation_text_limit_is_still_masked(claude, pad):
    """Reply text is shown up to 20 000 characters, tool results up to 4 000."""
    s = claude.session()
    secrets = " postgres://app:S3cr3tPassw0rd@db/app " + ANTHROPIC
    s.turn("show me", "y" * pad + secrets)
    s.write(s.tool_result_record("toolu_1", "z" * (pad - 16_000) + secrets))
    cat = Catalog(claude.root)
    cat.full_scan()
    msgs = cat.messages(s.id)["messages"]
    for text in (msgs[1]["blocks"][0]["text"], msgs[2]["blocks"][0]["text"]):
        assert text.endswith("\u2026")
        assert "S3cr3t" not in text
        assert not any(ANTHROPIC[i:i + 6] in text for i in range(13, len(ANTHROPIC) - 6))
    assert msgs[2]["blocks"][0]["truncated"] is True


def test_redaction_of_a_huge_text_is_bounded_and_masks_the_window(claude):
    s = claude.session()
    s.turn("dump", "q" * 100 + " password=hunter2hunter2 " + "w" * 30_000_000)
    cat = Catalog(claude.root)
    cat.full_scan()
    text = cat.messages(s.id)["messages"][1]["blocks"][0]["text"]
    assert "hunter2" not in text and len(text) == 20_001
