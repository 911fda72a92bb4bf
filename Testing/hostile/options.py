"""Bad option values: devices that do not exist or are absent, batch sizes and case counts below 1,
synthesis settings files that are missing, not JSON or hold unknown keys."""

from __future__ import annotations

import os
from collections.abc import Callable

from . import Case, Kit, Run


def _segment(*options: str, names: str) -> Callable[[Kit], Run]:
    return lambda kit: Run(["-q", "segment", str(kit.study), "--model", str(kit.model), "-o", str(kit.root / "out"),
                            *options], names=names)


def _synth(config_text: bytes | None, *options: str, names: str = "settings") -> Callable[[Kit], Run]:
    def build(kit: Kit) -> Run:
        argv = ["synth", str(kit.root / "synthetic"), *options]
        if config_text is not None:
            config = kit.path("settings.json")
            config.write_bytes(config_text)
            argv += ["--config", str(config)]
        return Run(argv, names=names)
    return build


def _synth_config_fifo(kit: Kit) -> Run:
    config = kit.path("settings.json")
    os.mkfifo(config)
    return Run(["synth", str(kit.root / "synthetic"), "--cases", "1", "--config", str(config)], names="settings.json")


def _torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cases() -> list[Case]:
    builders: dict[str, Callable[[Kit], Run]] = {
        "device-foo": _segment("--device", "foo", names="--device"),
        "device-empty": _segment("--device", "", names="--device"),
        "device-cuda-index-text": _segment("--device", "cuda:x", names="--device"),
        "batch-size-0": _segment("--batch-size", "0", names="--batch-size"),
        "batch-size-negative": _segment("--batch-size", "-1", names="--batch-size"),
        "batch-size-text": _segment("--batch-size", "many", names="--batch-size"),
        "batch-size-float": _segment("--batch-size", "2.5", names="--batch-size"),
        "fat-method-unknown": _segment("--fat-method", "magic", names="--fat-method"),
        "synth-cases-negative": _synth(None, "--cases", "-1", names="--cases"),
        "synth-cases-zero": _synth(None, "--cases", "0", names="--cases"),
        "synth-config-missing": lambda kit: Run(["synth", str(kit.root / "s"), "--cases", "1", "--config",
                                                 str(kit.root / "missing.json")], names="missing.json"),
        "synth-config-not-json": _synth(b"{seed: 1", "--cases", "1"),
        "synth-config-a-list": _synth(b"[1, 2]", "--cases", "1"),
        "synth-config-unknown-key": _synth(b'{"bogus": 1}', "--cases", "1"),
        "synth-config-wrong-type": _synth(b'{"snr": 5}', "--cases", "1"),
        "synth-config-not-utf8": _synth(b"\xff\xfe{", "--cases", "1"),
        "synth-config-fifo": _synth_config_fifo,
        "evaluate-device-foo": lambda kit: Run(["evaluate", str(kit.model), str(kit.root), "--device", "foo"],
                                               names="--device"),
        "train-device-foo": lambda kit: Run(["train", str(kit.root), "--out", str(kit.root / "run"), "--device", "tpu"],
                                            names="--device"),
    }
    found = [Case(f"option-{name}", build) for name, build in builders.items()]
    if not _torch_has_cuda():
        found.append(Case("option-device-cuda-absent", _segment("--device", "cuda", names="--device cuda")))
    return found
