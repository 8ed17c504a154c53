"""Cache key and version parsing of delegated_aws.devenv.build (nothing is built)."""

from pathlib import Path

import pytest

from delegated_aws.devenv import build

K8S_GO_MOD = """module delegated-aws.dev/controlplane/kubernetes

go 1.26.0

require k8s.io/kubernetes v1.36.3

require (
\tcel.dev/expr v0.25.1 // indirect
\tk8s.io/api v0.36.3 // indirect
)
"""
ETCD_GO_MOD = """module delegated-aws.dev/controlplane/etcd

require (
\tgithub.com/beorn7/perks v1.0.1 // indirect
\tgo.etcd.io/etcd/server/v3 v3.6.8
\tgo.etcd.io/etcd/server/v3/extra v9.9.9 // indirect
)
"""


def _checkout(root: Path, *, etcd_sum: str = "sum\n") -> Path:
    for name, go_mod, go_sum in (
        ("kubernetes", K8S_GO_MOD, "sum\n"),
        ("etcd", ETCD_GO_MOD, etcd_sum),
    ):
        module = root / "controlplane" / name
        module.mkdir(parents=True)
        (module / "go.mod").write_text(go_mod)
        (module / "go.sum").write_text(go_sum)
    return root


def test_required_version_reads_single_line_and_block_requires() -> None:
    assert build.required_version(K8S_GO_MOD, "k8s.io/kubernetes") == "v1.36.3"
    assert build.required_version(ETCD_GO_MOD, build.ETCD_MODULE) == "v3.6.8"


def test_required_version_rejects_a_module_not_required() -> None:
    with pytest.raises(build.BuildError, match="does not require"):
        build.required_version(ETCD_GO_MOD, "k8s.io/kubernetes")


def test_cache_key_names_both_versions_and_a_short_digest(tmp_path: Path) -> None:
    spec = build.load_spec(_checkout(tmp_path))

    prefix, digest = spec.cache_key.rsplit("-", 1)
    assert prefix == "k8s-v1.36.3-etcd-v3.6.8"
    assert len(digest) == 12
    assert int(digest, 16) >= 0


def test_cache_key_changes_with_any_go_sum(tmp_path: Path) -> None:
    first = build.load_spec(_checkout(tmp_path / "a"))
    second = build.load_spec(_checkout(tmp_path / "b", etcd_sum="other\n"))
    again = build.load_spec(_checkout(tmp_path / "c"))

    assert first.cache_key != second.cache_key
    assert first.cache_key == again.cache_key


def test_source_root_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELEGATED_AWS_SOURCE", str(_checkout(tmp_path)))
    assert build.source_root() == tmp_path.resolve()


def test_the_repository_pins_are_found_from_the_package() -> None:
    spec = build.load_spec()
    assert spec.kubernetes_version.startswith("v1.")
    assert spec.etcd_version.startswith("v3.")


def test_cache_root_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELEGATED_AWS_CACHE", str(tmp_path))
    assert build.cache_root() == tmp_path / "controlplane"


def test_ldflags_stamp_kubernetes_and_client_go_versions() -> None:
    flags = build.kubernetes_ldflags("v1.36.3", build_date="2026-01-01T00:00:00Z")

    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.36.3" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=36" in flags
        assert f"-X {package}.gitTreeState=clean" in flags


def test_missing_go_is_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DELEGATED_AWS_GO", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(build, "GO_FALLBACKS", ())

    with pytest.raises(build.BuildError, match=r"go\.dev/dl"):
        build.find_go()
