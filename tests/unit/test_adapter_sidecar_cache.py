"""find_installed parses an adapter's sidecar once and again only when the file changes."""

from __future__ import annotations

from dataclasses import replace

from identity_service.config import ModelSettings, Settings
from identity_service.models import adapters as inst


def _adapter(threshold: float) -> inst.InstalledAdapter:
    return inst.InstalledAdapter(
        sha256="ab" * 32,
        base="dlib-resnet-v1",
        in_dim=128,
        out_dim=64,
        threshold=threshold,
        threshold_source="test",
        source="run/adapter.onnx",
        report=None,
        training_data=None,
        seed=None,
        recipe=None,
        installed_at="2026-11-29T00:00:00+00:00",
    )


def test_sidecar_is_read_once_then_again_after_a_rewrite(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, models=ModelSettings(adapter_dir=tmp_path / "adapters"))
    adapter = _adapter(0.2)
    sidecar = adapter.sidecar_path(settings)
    sidecar.parent.mkdir(parents=True)
    inst.write_atomic(sidecar, adapter.to_json())
    reads = []
    real_read = inst.InstalledAdapter.read.__func__
    monkeypatch.setattr(
        inst.InstalledAdapter,
        "read",
        classmethod(lambda cls, path: reads.append(path) or real_read(cls, path)),
    )
    for _ in range(5):
        assert inst.find_installed(adapter.sha8, settings) == adapter
    assert len(reads) == 1

    changed = replace(adapter, threshold=0.3)
    inst.write_atomic(sidecar, changed.to_json())  # as a reinstall does
    assert inst.find_installed(adapter.sha8, settings).threshold == 0.3
    assert len(reads) == 2

    sidecar.unlink()
    assert inst.find_installed(adapter.sha8, settings) is None
