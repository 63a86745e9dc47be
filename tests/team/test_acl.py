"""The engine users `helm-monitor hosts` makes, against a real redis-server: design/TEAM_SCALE.md
5.6 cell by cell (7.3 test 2). A host writes its own keys and nothing else, reads nothing; the
web tier reads everything and writes only the epoch; every denial is in ACL LOG. What ACLs
cannot stop (a host trimming or jamming its own stream) is shown confined to that host.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import redis

from helm_monitor.team import admin, client, keys

OWN_EV, OWN_S = keys.stream_key("laptop"), keys.snapshot_key("laptop")
OWN_T = keys.transcript_key("laptop", "laptop:claude-code:s1")
OTHER_EV, OTHER_S = keys.stream_key("vm1"), keys.snapshot_key("vm1")
OTHER_T = keys.transcript_key("vm1", "vm1:claude-code:s9")
OWN_U, OTHER_U = keys.usage_key("laptop"), keys.usage_key("vm1")
KEY_DENIED = "no permissions to access one of the keys"
SCRIPT = "return redis.call('XADD', KEYS[1], '*', 't', 'hb')"


def made_url(server, *argv: str) -> str:
    """Run ``helm-monitor hosts ...`` against ``server``; the URL it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = admin.main(["--admin-url", server.url, *argv])
    assert code == 0, err.getvalue()
    line, = out.getvalue().splitlines()
    assert line.startswith("HELM_REDIS_URL=")
    return line.split("=", 1)[1]


@pytest.fixture
def engine(redis_server):
    """The engine with hosts laptop and vm1 and the web user; clients as each, and as admin."""
    users = {"laptop": made_url(redis_server, "add", "laptop"), "vm1": made_url(redis_server, "add", "vm1"),
             "web": made_url(redis_server, "web-user")}
    clients = {name: client.connect(url) for name, url in users.items()}
    clients["admin"] = redis_server.client()
    # vm1 publishes as its agent does: snapshot, change, transcript in one transaction
    with clients["vm1"].pipeline(transaction=True) as tx:
        tx.hset(OTHER_S, "vm1:claude-code:s9", '{"id": "s9"}')
        tx.xadd(OTHER_EV, {"t": "created", "k": "vm1:claude-code:s9", "d": '{"id": "s9"}', "b": "boot", "v": "1"},
                maxlen=keys.STREAM_MAXLEN, approximate=True)
        tx.set(OTHER_T, "[]", ex=keys.TRANSCRIPT_TTL_S)
        tx.execute()
    clients["admin"].execute_command("ACL", "LOG", "RESET")
    yield {**clients, "urls": users}
    for c in clients.values():
        c.close()


def other_host_state(admin_client) -> tuple:
    return (admin_client.hgetall(OTHER_S), admin_client.xrange(OTHER_EV), admin_client.get(OTHER_T))


# -- a host user -------------------------------------------------------------------

def test_host_writes_its_own_keys(engine):
    laptop, adm = engine["laptop"], engine["admin"]
    first = laptop.xadd(OWN_EV, {"t": "hb", "b": "boot", "v": "1"}, maxlen=keys.STREAM_MAXLEN, approximate=True)
    with laptop.pipeline(transaction=True) as tx:  # MULTI(HSET, XADD, SET EX): one pump batch
        tx.hset(OWN_S, "laptop:claude-code:s1", '{"id": "s1"}')
        tx.xadd(OWN_EV, {"t": "created", "k": "laptop:claude-code:s1", "b": "boot", "v": "1"})
        tx.set(OWN_T, "[]", ex=60)
        tx.expire(OWN_T, 120)
        replies = tx.execute()
    assert replies[0] == 1 and replies[2] is True and replies[3] is True
    assert adm.xlen(OWN_EV) == 2 and adm.xrange(OWN_EV)[0][0] == first
    assert adm.hget(OWN_S, "laptop:claude-code:s1") == b'{"id": "s1"}'
    assert 60 < adm.ttl(OWN_T) <= 120
    # a resync: DEL the hash and write it whole; HDEL a deleted session
    with laptop.pipeline(transaction=True) as tx:
        tx.delete(OWN_S)
        tx.hset(OWN_S, mapping={"laptop:claude-code:s1": "{}", "laptop:claude-code:s2": "{}"})
        tx.hdel(OWN_S, "laptop:claude-code:s1")
        tx.xadd(OWN_EV, {"t": "resync", "b": "boot", "v": "1"})
        tx.execute()
    assert adm.hkeys(OWN_S) == [b"laptop:claude-code:s2"]
    assert laptop.delete(OWN_T) == 1 and not adm.exists(OWN_T)
    assert laptop.ping() and laptop.time()[0] > 0


@pytest.mark.parametrize("command", [
    ("XADD", OTHER_EV, "*", "t", "hb"),
    ("XADD", OTHER_EV, "MAXLEN", "0", "*", "t", "hb"),
    ("HSET", OTHER_S, "vm1:claude-code:s9", "forged"),
    ("HDEL", OTHER_S, "vm1:claude-code:s9"),
    ("DEL", OTHER_S),
    ("DEL", OWN_S, OTHER_S),  # one foreign key among its own is enough
    ("SET", OTHER_T, "forged"),
    ("EXPIRE", OTHER_T, "1"),
    ("HSET", OTHER_U, "vm1:claude-code:s9@20423", "forged"),  # another host's usage
    ("HDEL", OTHER_U, "vm1:claude-code:s9@20423"),
    ("DEL", OWN_U, OTHER_U),
    ("HSET", keys.META, keys.EPOCH_FIELD, "forged"),  # the epoch is the web tier's
    ("SET", "somewhere-else", "x"),
], ids=lambda c: " ".join(c[:2]))
def test_host_is_denied_other_keys(engine, command):
    laptop, adm = engine["laptop"], engine["admin"]
    before = other_host_state(adm)
    with pytest.raises(redis.exceptions.NoPermissionError, match=KEY_DENIED):
        laptop.execute_command(*command)
    assert other_host_state(adm) == before
    assert not adm.exists(OWN_S) and not adm.exists("somewhere-else") and not adm.hget(keys.META, keys.EPOCH_FIELD)


def test_host_transaction_with_a_foreign_key_is_rejected_whole(engine):
    laptop, adm = engine["laptop"], engine["admin"]
    before = other_host_state(adm)
    with pytest.raises(redis.exceptions.ResponseError, match=KEY_DENIED):
        with laptop.pipeline(transaction=True) as tx:
            tx.hset(OWN_S, "laptop:claude-code:s1", "{}")
            tx.xadd(OTHER_EV, {"t": "hb"})
            tx.execute()
    assert not adm.exists(OWN_S) and other_host_state(adm) == before


@pytest.mark.parametrize("name, command", [
    ("xread", ("XREAD", "STREAMS", OWN_EV, "0")),
    ("xread", ("XREAD", "STREAMS", OTHER_EV, "0")),
    ("xrange", ("XRANGE", OTHER_EV, "-", "+")),
    ("hgetall", ("HGETALL", OTHER_S)),
    ("get", ("GET", OTHER_T)),
    ("flushall", ("FLUSHALL",)),
    ("flushdb", ("FLUSHDB",)),
    ("eval", ("EVAL", SCRIPT, "1", OTHER_EV)),  # scripts are not granted (and would run under this ACL)
    ("eval", ("EVAL", SCRIPT, "1", OWN_EV)),
    ("keys", ("KEYS", "*")),
    ("scan", ("SCAN", "0")),
    ("config|get", ("CONFIG", "GET", "*")),
    ("config|set", ("CONFIG", "SET", "appendonly", "yes")),
    ("acl|setuser", ("ACL", "SETUSER", "h-laptop", "~*", "+@all")),  # no way to widen its own rules
    ("acl|list", ("ACL", "LIST")),
    ("client|kill", ("CLIENT", "KILL", "USER", "h-vm1")),
    ("publish", ("PUBLISH", "hm", "x")),
    ("shutdown", ("SHUTDOWN", "ABORT")),
], ids=lambda v: v if isinstance(v, str) else None)
def test_host_is_denied_commands(engine, name, command):
    laptop, adm = engine["laptop"], engine["admin"]
    before = other_host_state(adm)
    denied = f"no permissions to run the '{re.escape(name)}' command"
    with pytest.raises(redis.exceptions.NoPermissionError, match=denied):
        laptop.execute_command(*command)
    assert other_host_state(adm) == before
    assert adm.config_get("appendonly") == {"appendonly": "no"}
    assert adm.acl_getuser("h-laptop")["keys"] == [f"~{keys.host_keys('laptop')}"]


def test_acl_log_records_each_denial(engine):
    laptop, web, adm = engine["laptop"], engine["web"], engine["admin"]
    for command in (("XADD", OTHER_EV, "*", "t", "hb"), ("XREAD", "STREAMS", OWN_EV, "0"), ("FLUSHALL",),
                    ("EVAL", SCRIPT, "1", OTHER_EV)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            laptop.execute_command(*command)
    for command in (("XADD", OWN_EV, "*", "t", "hb"), ("HSETNX", OWN_S, "k", "v")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            web.execute_command(*command)
    seen = {(e["username"], e["reason"], e["object"]) for e in adm.acl_log()}
    assert seen == {("h-laptop", "key", OTHER_EV), ("h-laptop", "command", "xread"),
                    ("h-laptop", "command", "flushall"), ("h-laptop", "command", "eval"),
                    ("web", "command", "xadd"), ("web", "key", OWN_S)}


def test_host_rules_are_keys_host_commands(engine):
    """Every command keys.HOST_COMMANDS names is granted on the host's keys, and no other: the
    roles cannot drift from what admin.py grants."""
    adm = engine["admin"]
    examples = {"xadd": ("XADD", OWN_EV, "*", "t", "hb"), "hset": ("HSET", OWN_S, "k", "v"),
                "hdel": ("HDEL", OWN_S, "k"),
                "del": ("DEL", OWN_S), "set": ("SET", OWN_T, "v", "EX", "5"), "expire": ("EXPIRE", OWN_T, "5"),
                "multi": ("MULTI",), "exec": ("EXEC",), "discard": ("DISCARD",), "ping": ("PING",),
                "hello": ("HELLO",), "time": ("TIME",), "client|setname": ("CLIENT", "SETNAME", "helm")}
    assert set(examples) == set(keys.HOST_COMMANDS), "keys.HOST_COMMANDS changed: name an example here"
    for name, command in examples.items():
        assert adm.execute_command("ACL", "DRYRUN", "h-laptop", *command) == b"OK", name
    for command in (("XRANGE", OWN_EV, "-", "+"), ("HGETALL", OWN_S), ("GET", OWN_T), ("HSETNX", OWN_S, "k", "v"),
                    ("XTRIM", OWN_EV, "MAXLEN", "0"), ("UNLINK", OWN_S), ("RENAME", OWN_S, OWN_T)):
        assert adm.execute_command("ACL", "DRYRUN", "h-laptop", *command) != b"OK", command
    user = adm.acl_getuser("h-laptop")
    assert user["keys"] == [f"~{keys.host_keys('laptop')}"] and user["channels"] == [] and user["selectors"] == []


# -- the web tier's user -----------------------------------------------------------

def test_web_reads_everything_it_needs(engine):
    web, laptop, adm = engine["web"], engine["laptop"], engine["admin"]
    laptop.xadd(OWN_EV, {"t": "hb", "b": "boot", "v": "1"})
    replies = web.xread({OWN_EV: "0-0", OTHER_EV: "0-0"}, count=100)
    assert {name.decode(): len(entries) for name, entries in replies} == {OWN_EV: 1, OTHER_EV: 1}
    # the init snapshot: (position, state) of one host, atomically
    with web.pipeline(transaction=True) as tx:
        tx.xrevrange(OTHER_EV, count=1)
        tx.hgetall(OTHER_S)
        (last,), state = tx.execute()
    assert last[1][b"t"] == b"created" and state == {b"vm1:claude-code:s9": b'{"id": "s9"}'}
    found = set(web.scan_iter(match=keys.STREAM_MATCH))
    assert {keys.host_of_stream(k) for k in found} == {"laptop", "vm1"}
    assert web.hsetnx(keys.META, keys.EPOCH_FIELD, "0a1b2c3d") == 1
    assert web.hsetnx(keys.META, keys.EPOCH_FIELD, "ffffffff") == 0  # a second worker agrees
    assert web.hget(keys.META, keys.EPOCH_FIELD) == b"0a1b2c3d"
    info = web.xinfo_stream(OTHER_EV)
    assert info["length"] == 1 and info["entries-added"] == 1
    assert web.get(OTHER_T) == b"[]"
    assert len(web.xrange(OTHER_EV, "-", "+")) == 1 and web.hmget(OTHER_S, ["vm1:claude-code:s9"])[0]
    assert web.ping() and web.time()[0] > 0
    # XREAD BLOCK, as the feed reads, on its own connection (its socket waits longer than the block)
    feed = client.connect_feed(engine["urls"]["web"], block_ms=100)
    try:
        assert not feed.xread({OWN_EV: "$"}, block=100)
    finally:
        feed.close()
    assert adm.acl_log() == []


def test_host_writes_its_usage_with_its_sessions_and_web_reads_it(engine):
    """Usage (SPEC 10, team/usage.py) needs no rule of its own: ``hm:h:H:u`` is one of the host's
    keys, written with the commands it already has, read with the web's."""
    laptop, web, adm = engine["laptop"], engine["web"], engine["admin"]
    field = keys.usage_field("laptop:claude-code:s1", 20423)
    with laptop.pipeline(transaction=True) as tx:  # a change: session, its usage, its entry
        tx.hset(OWN_S, "laptop:claude-code:s1", "{}")
        tx.hset(OWN_U, mapping={field: '{"m":[],"c":[]}'})
        tx.hdel(OWN_U, keys.usage_field("laptop:claude-code:s1", 20422))
        tx.xadd(OWN_EV, {"t": "updated", "k": "laptop:claude-code:s1", "d": "{}", "u": "{}", "b": "boot", "v": "1"})
        tx.execute()
    with laptop.pipeline(transaction=True) as tx:  # a resync
        tx.delete(OWN_S, OWN_U)
        tx.hset(OWN_U, mapping={field: '{"m":[],"c":[]}'})
        tx.xadd(OWN_EV, {"t": "resync", "b": "boot", "v": "1"})
        tx.execute()
    with web.pipeline(transaction=True) as tx:  # the snapshot of a host, its usage included
        tx.xrevrange(OWN_EV, count=1)
        tx.hgetall(OWN_S)
        tx.hgetall(OWN_U)
        _last, _state, usage = tx.execute()
    assert usage == {field.encode(): b'{"m":[],"c":[]}'}
    assert web.hmget(OWN_U, [field]) == [b'{"m":[],"c":[]}']  # the days an entry names
    assert adm.acl_log() == []


@pytest.mark.parametrize("command", [
    ("XADD", OTHER_EV, "*", "t", "hb"),
    ("HSET", OTHER_S, "k", "v"),
    ("HSET", OTHER_U, "k", "v"),
    ("HSET", keys.META, keys.EPOCH_FIELD, "forged"),  # the epoch can only be set once
    ("HDEL", keys.META, keys.EPOCH_FIELD),
    ("DEL", OTHER_S),
    ("DEL", keys.META),
    ("SET", OTHER_T, "x"),
    ("XTRIM", OTHER_EV, "MAXLEN", "0"),
    ("FLUSHALL",),
    ("EVAL", SCRIPT, "1", OTHER_EV),
    ("CONFIG", "GET", "*"),
], ids=lambda c: " ".join(c[:2]))
def test_web_is_denied_writes(engine, command):
    web, adm = engine["web"], engine["admin"]
    adm.hset(keys.META, keys.EPOCH_FIELD, "0a1b2c3d")
    before = other_host_state(adm)
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run"):
        web.execute_command(*command)
    assert other_host_state(adm) == before and adm.hget(keys.META, keys.EPOCH_FIELD) == b"0a1b2c3d"


@pytest.mark.parametrize("key", [OTHER_S, "hm:metadata", "elsewhere"])
def test_web_hsetnx_only_on_the_meta_key(engine, key):
    web, adm = engine["web"], engine["admin"]
    with pytest.raises(redis.exceptions.NoPermissionError, match=KEY_DENIED):
        web.hsetnx(key, "epoch", "x")
    assert adm.hget(key, "epoch") is None


def test_web_rules_are_keys_web_commands(engine):
    adm = engine["admin"]
    examples = {"xread": ("XREAD", "STREAMS", OTHER_EV, "0"), "xrange": ("XRANGE", OTHER_EV, "-", "+"),
                "xrevrange": ("XREVRANGE", OTHER_EV, "+", "-", "COUNT", "1"),
                "xinfo|stream": ("XINFO", "STREAM", OTHER_EV),
                "hgetall": ("HGETALL", OTHER_S), "hmget": ("HMGET", OTHER_S, "k"), "hget": ("HGET", keys.META, "epoch"),
                "get": ("GET", OTHER_T), "scan": ("SCAN", "0", "MATCH", keys.STREAM_MATCH), "time": ("TIME",),
                "ping": ("PING",), "hello": ("HELLO",), "multi": ("MULTI",), "exec": ("EXEC",),
                "discard": ("DISCARD",), "client|setname": ("CLIENT", "SETNAME", "helm")}
    assert set(examples) == set(keys.WEB_COMMANDS), "keys.WEB_COMMANDS changed: name an example here"
    for name, command in examples.items():
        assert adm.execute_command("ACL", "DRYRUN", "web", *command) == b"OK", name
    assert adm.execute_command("ACL", "DRYRUN", "web", "HSETNX", keys.META, "epoch", "x") == b"OK"
    user = adm.acl_getuser("web")
    assert user["keys"] == ["%R~hm:*"] and user["channels"] == []


# -- what ACLs cannot stop, confined to the host itself ------------------------------

def test_host_can_wipe_and_jam_only_its_own_stream(engine):
    """Arguments are not restricted (5.6): a host can XADD MAXLEN 0 or exhaust the ids of *its
    own* stream. Per-host streams keep that from any other host; the web tier's future-id
    guard and `hosts remove` are the defences."""
    laptop, vm1, adm = engine["laptop"], engine["vm1"], engine["admin"]
    laptop.xadd(OWN_EV, {"t": "hb"})
    laptop.xadd(OWN_EV, {"t": "hb"})
    laptop.xadd(OWN_EV, {"t": "hb"}, maxlen=0)  # allowed: its own stream, emptied
    assert adm.xlen(OWN_EV) == 0
    with pytest.raises(redis.exceptions.NoPermissionError, match=KEY_DENIED):
        laptop.xadd(OTHER_EV, {"t": "hb"}, maxlen=0)
    laptop.xadd(OWN_EV, {"t": "hb"}, id="18446744073709551615-18446744073709551614")
    laptop.xadd(OWN_EV, {"t": "hb"})  # takes the very last possible id
    with pytest.raises(redis.ResponseError, match="exhausted the last possible ID"):
        laptop.xadd(OWN_EV, {"t": "hb"})
    # vm1 is untouched and goes on publishing
    assert adm.xlen(OTHER_EV) == 1 and adm.hlen(OTHER_S) == 1
    assert keys.parse_id(vm1.xadd(OTHER_EV, {"t": "hb"}))[0] < 10 ** 14
    assert adm.xlen(OTHER_EV) == 2
