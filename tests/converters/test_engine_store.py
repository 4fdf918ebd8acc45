"""The content-addressed engine store, with injected TensorRT/GPU environments (no GPU needed)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from vetrina.contract import Contract, TensorSpec
from vetrina.converters.engine_store import (
    CONTRACT_FILE,
    KEY_FILE,
    PLAN_FILE,
    BuildEnvironment,
    EngineKey,
    EngineMismatchError,
    EngineNotFoundError,
    EngineStore,
    EngineStoreError,
    default_store_dir,
    key_of_parts,
)

H100 = BuildEnvironment("10.9.0.34", "NVIDIA H100 80GB HBM3", (9, 0))
A100 = BuildEnvironment("11.1.0.106", "NVIDIA A100-SXM4-40GB", (8, 0))
H100_TRT11 = BuildEnvironment("11.1.0.106", "NVIDIA H100 80GB HBM3", (9, 0))
H200 = BuildEnvironment("10.9.0.34", "NVIDIA H200", (9, 0))
CONTRACT = Contract(
    role="editor",
    inputs=(TensorSpec(name="image"),),
    outputs=(TensorSpec(name="out"),),
    provenance={"precision": "fp16"},
)
PROFILES = (
    [{"name": "image", "min": [1, 3, 8, 8], "opt": [4, 3, 64, 64], "max": [8, 3, 128, 128]}],
)
OPTIONS = {"precision": "auto", "workspace_mib": None}
PLAN = b"\x00plan-bytes\xff" * 1000


def _key(env: BuildEnvironment = H100, **changes) -> EngineKey:
    fields = {"onnx_sha256": "ab" * 32, "profiles": PROFILES, "options": OPTIONS}
    fields.update(changes)
    return EngineKey(fields["onnx_sha256"], tuple(fields["profiles"]), env, dict(fields["options"]))


@pytest.fixture
def store(tmp_path):
    return EngineStore(tmp_path / "store")


def test_key_covers_every_part():
    base = _key().digest
    assert len(base) == 64 and base == _key().digest
    variants = [
        _key(onnx_sha256="cd" * 32),
        _key(profiles=([{**PROFILES[0][0], "max": [8, 3, 256, 256]}],)),
        _key(options={**OPTIONS, "precision": "fp32"}),
        _key(options={**OPTIONS, "workspace_mib": 512}),
        _key(H100_TRT11),
        _key(H200),
        _key(BuildEnvironment("10.9.0.34", "NVIDIA H100 80GB HBM3", (9, 1))),
    ]
    digests = {v.digest for v in variants}
    assert base not in digests and len(digests) == len(variants)


def test_key_is_the_hash_of_the_written_parts():
    key = _key()
    parts = key.parts()
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    assert key.digest == hashlib.sha256(text.encode()).hexdigest() == key_of_parts(parts)
    assert EngineKey.from_parts(parts).digest == key.digest
    assert parts["tensorrt"] == "10.9.0.34" and parts["compute_capability"] == "9.0"


def test_put_then_load_round_trip(store):
    key = _key()
    path = store.put(key, PLAN, CONTRACT, {"precision": {"built": "fp16"}})
    digest = key.digest
    assert path == store.root / digest[:2] / digest
    assert sorted(p.name for p in path.iterdir()) == [CONTRACT_FILE, PLAN_FILE, KEY_FILE]
    record = json.loads((path / KEY_FILE).read_text())
    assert record["parts"]["gpu"] == "NVIDIA H100 80GB HBM3"
    assert record["plan"] == {"sha256": hashlib.sha256(PLAN).hexdigest(), "bytes": len(PLAN)}
    got = store.load(digest, H100)
    assert got.plan == PLAN and got.contract == CONTRACT and got.build["precision"]["built"]
    assert got.environment == H100
    assert store.lookup(key).plan == PLAN
    assert store.lookup(_key(onnx_sha256="ef" * 32)) is None
    # nothing temporary is left behind, and the files are readable by others like open() makes
    assert [p.name for p in path.parent.iterdir()] == [digest]
    mask = os.umask(0)
    os.umask(mask)
    assert (path / PLAN_FILE).stat().st_mode & 0o777 == 0o666 & ~mask


def test_put_replaces_an_entry(store):
    key = _key()
    store.put(key, PLAN, CONTRACT)
    store.put(key, b"new plan", CONTRACT)
    assert store.load(key.digest, H100).plan == b"new plan"
    assert len(list((store.root / key.digest[:2]).iterdir())) == 1


def test_mismatch_names_both_environments(store):
    key = _key()
    store.put(key, PLAN, CONTRACT)
    with pytest.raises(EngineMismatchError) as info:
        store.load(key.digest, A100)
    text = str(info.value)
    assert "built with TensorRT 10.9.0.34 on sm_90 NVIDIA H100 80GB HBM3" in text
    assert "this is TensorRT 11.1.0.106 on sm_80 NVIDIA A100-SXM4-40GB" in text
    assert "TensorRT version and GPU architecture" in text
    assert text.endswith("rebuild with vetrina build")
    with pytest.raises(EngineMismatchError, match=r"different TensorRT version\)"):
        store.load(key.digest, H100_TRT11)
    with pytest.raises(EngineMismatchError, match="different GPU model"):
        store.load(key.digest, H200)


def test_find_explains_what_is_missing(store):
    with pytest.raises(EngineNotFoundError, match="no engine for this model"):
        store.find("ab" * 32, PROFILES, OPTIONS, H100)
    store.put(_key(), PLAN, CONTRACT)
    assert store.find("ab" * 32, PROFILES, OPTIONS, H100).plan == PLAN
    with pytest.raises(EngineMismatchError, match=r"built with TensorRT 10.9.0.34 on sm_90"):
        store.find("ab" * 32, PROFILES, OPTIONS, A100)
    with pytest.raises(EngineNotFoundError, match="none with these profiles"):
        store.find("ab" * 32, PROFILES, {**OPTIONS, "precision": "fp32"}, H100)


def test_truncated_and_corrupt_plans_are_refused(store):
    key = _key()
    path = store.put(key, PLAN, CONTRACT)
    (path / PLAN_FILE).write_bytes(PLAN[:100])
    with pytest.raises(EngineStoreError, match=r"truncated .*100 bytes; the build wrote 12000"):
        store.load(key.digest, H100)
    (path / PLAN_FILE).write_bytes(PLAN[:-1] + b"\x00")
    with pytest.raises(EngineStoreError, match=r"corrupt plan .*sha256"):
        store.lookup(key)
    (path / PLAN_FILE).unlink()
    with pytest.raises(EngineStoreError, match=r"no engine.plan"):
        store.load(key.digest, H100)


def test_missing_or_bad_contract_and_key_files(store):
    key = _key()
    path = store.put(key, PLAN, CONTRACT)
    (path / CONTRACT_FILE).unlink()
    with pytest.raises(EngineStoreError, match=r"has no contract.json"):
        store.load(key.digest, H100)
    (path / CONTRACT_FILE).write_text('{"version": 1, "role": "nope"}')
    with pytest.raises(EngineStoreError, match="unreadable contract"):
        store.load(key.digest, H100)
    record = json.loads((path / KEY_FILE).read_text())
    record["parts"]["gpu"] = "edited"
    (path / KEY_FILE).write_text(json.dumps(record))
    with pytest.raises(EngineStoreError, match="do not hash to the folder's key"):
        store.load(key.digest, H100)
    (path / KEY_FILE).write_text("{not json")
    with pytest.raises(EngineStoreError, match=r"key.json: unreadable"):
        store.load(key.digest, H100)
    (path / KEY_FILE).unlink()
    with pytest.raises(EngineNotFoundError):
        store.load(key.digest, H100)


def test_entries_lists_good_and_broken(store):
    assert store.entries() == []
    a = store.put(_key(), PLAN, CONTRACT, {"created": "2026-01-01T00:00:00+00:00"})
    b = store.put(_key(A100), b"x" * 10, CONTRACT, {"created": "2026-02-01T00:00:00+00:00"})
    (store.root / "zz").mkdir()  # not a shard of the store
    (a.parent / ".tmpdir.tmp").mkdir()  # an interrupted write
    entries = store.entries()
    assert [e.path for e in entries] == [a, b]
    assert entries[1].plan_bytes == 10 and entries[1].parts["gpu"] == A100.gpu_name
    (a / KEY_FILE).write_text("garbage")
    broken = [e for e in store.entries() if e.error]
    assert len(broken) == 1 and broken[0].path == a and "unreadable" in broken[0].error


def test_remove_and_bad_keys(store):
    key = _key()
    store.put(key, PLAN, CONTRACT)
    assert store.remove(key.digest) is True
    assert store.remove(key.digest) is False
    assert store.lookup(key) is None
    with pytest.raises(EngineStoreError, match="not an engine key"):
        store.load("../../etc", H100)
    with pytest.raises(EngineStoreError, match="empty plan"):
        store.put(key, b"", CONTRACT)


def test_failed_write_leaves_nothing(store, monkeypatch):
    import vetrina.converters.engine_store as es

    def broken(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(es, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        store.put(_key(), PLAN, CONTRACT)
    shard = store.root / _key().digest[:2]
    assert list(shard.iterdir()) == []


def test_default_store_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VETRINA_ENGINE_STORE", str(tmp_path / "a"))
    assert default_store_dir() == tmp_path / "a"
    monkeypatch.delenv("VETRINA_ENGINE_STORE")
    monkeypatch.setenv("VETRINA_CACHE_DIR", str(tmp_path / "c"))
    assert default_store_dir() == tmp_path / "c" / "engines"
    monkeypatch.delenv("VETRINA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_store_dir() == tmp_path / "x" / "vetrina" / "engines"
