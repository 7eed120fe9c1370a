"""Hostile and careless input, re-driven: every attempt class of the reliability record against the tiny models.

Builds its own inputs in a scratch folder (tiny model folders through the pack's builders and save_pretrained,
broken copies of them, corrupt and unusual media, depth, mask and track files, weights manifests, SAT checkpoints,
a fake Hub on 127.0.0.1), then runs each attempt and classifies what happened by the rules below:

- CLI attempts run `vdp` from this environment as subprocesses (one at a time, niced, with a timeout and an
  address-space limit): past the timeout -> hang; a watched user file changed or gone -> data loss; a hidden
  temporary file or staging folder left -> partial-file; "Traceback" in stderr -> crash; exit 0 where a refusal
  (or a warning) was due, or an output video with NaN-free but all-black frames and no warning -> silent;
  a refusal whose message names the argument or file the attempt is about -> clear, else unclear (also unclear:
  a refusal printed after sampling had started, i.e. after the heavy work); Ctrl-C / SIGTERM -> exit 130/143 with
  one line and nothing left behind, else crash / partial-file; valid input that runs -> ok.
- Python-API attempts run in this process (fast): a refusal of type ValueError / TypeError / OSError whose message
  names the argument -> clear; an exception that names nothing, or of another type -> unclear; RuntimeError /
  MemoryError / IndexError from inside torch or a library -> crash; a returned result that is NaN, black or
  otherwise degenerate where a refusal was due -> silent.

Attempts that this machine cannot reproduce (an accelerator, an immutable or read-only or full file system while
running as root) are listed with the reason instead of being counted.

    nice -n 10 python benchmarks/reliability.py [--only PREFIX ...] [--keep DIR] [--timeout 180] [--json FILE]

(the vdp subprocesses inherit the niceness)
"""

import argparse
import contextlib
import io
import json
import logging
import math
import os
import pickle
import re
import resource
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
VDP = Path(sys.executable).with_name("vdp")
VERDICTS = ("clear", "unclear", "crash", "silent", "hang", "data-loss", "partial-file", "safety", "ok")
BEFORE = dict(clear=298, unclear=49, crash=53, silent=40, hang=3, **{"data-loss": 2, "partial-file": 5}, safety=1,
              ok=106)
MEMORY_LIMIT = 6 * 2**30  # address space of each vdp process unless the attempt sets its own


@dataclass
class Outcome:
    verdict: str
    detail: str


@dataclass
class Attempt:
    id: str
    section: str
    run: Callable[["World"], Outcome]
    not_reproducible: Optional[str] = None


ATTEMPTS: List[Attempt] = []


# ----------------------------------------------------------------------------------------------- the world


class World:
    """The scratch folder with every input the attempts use."""

    def __init__(self, root: Path, timeout: float):
        self.root = root
        self.timeout = timeout
        self.pipes: Dict[str, object] = {}

    def path(self, *parts) -> Path:
        return self.root.joinpath(*parts)

    def pipe(self, name: str):
        if name not in self.pipes:
            import torch

            if name == "vchitect":
                from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import build_tiny_vchitect_pipeline as b
            elif name == "das":
                from video_diffusion_pack.diffusers_pipelines.das.tiny import build_tiny_das_pipeline as b
            elif name == "lgvi":
                from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline as b
            else:
                from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import (
                    build_tiny_cogvideox_repvideo_pipeline as b,
                )
            pipe = b(weights="random")
            pipe.set_progress_bar_config(disable=True)
            torch.manual_seed(0)
            self.pipes[name] = pipe
        return self.pipes[name]


def _save_video(path: Path, frames, fps=8):
    from video_diffusion_pack.video_io import write_video

    write_video(path, frames, fps=fps)


def _moving(frames, height, width, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.random((height, width, 3), dtype=np.float32) * 0.6 + 0.2
    return np.stack([np.roll(base, shift=index, axis=1) for index in range(frames)])


def _truncate(path: Path, keep: int):
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])


class _Payload:
    """A pickle that would print if it ever ran (it must not)."""

    def __reduce__(self):
        return (print, ("PICKLE PAYLOAD RAN",))


def _write_pickle(path: Path):
    with open(path, "wb") as handle:
        pickle.dump({"x": _Payload()}, handle)


def build_world(world: World) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import load_file, save_file

    from video_diffusion_pack.diffusers_pipelines.das.tiny import save_tiny_das_layout
    from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import save_tiny_lgvi_official_layout
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import (
        build_tiny_vchitect_pipeline,
        save_tiny_official_layout,
    )

    root = world.root
    for folder in ("out", "das/o", "das/emptym", "inp/o", "inp/r", "inp/em", "inp/dirvid.mp4", "out/dir.mp4",
                   "models", "bad", "man", "sat/out", "cu/models", "cu/custom_nodes", "vio/r", "vio/o", "run"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    _save_video(root / "out/exist.mp4", _moving(3, 32, 32))

    # models: the tiny pipelines saved as users hold them
    build_tiny_vchitect_pipeline(weights="random").save_pretrained(root / "models/vch_saved")
    save_tiny_official_layout(root / "models/vch_official")
    save_tiny_das_layout(root / "models/das")
    save_tiny_lgvi_official_layout(root / "models/lgvi")

    # broken model folders
    def bad(name, source="vch_saved"):
        target = root / "bad" / name
        shutil.copytree(root / "models" / source, target)
        return target

    def weights_file(folder: Path) -> Path:
        return next(p for p in sorted(folder.glob("*.safetensors")))

    (root / "bad/M01_empty").mkdir()
    _truncate(weights_file(bad("M02_trunc_transformer") / "transformer"), 100)
    weights_file(bad("M03_garbage_transformer") / "transformer").write_bytes(os.urandom(4096))
    weights_file(bad("M04_zero_transformer") / "transformer").write_bytes(b"")
    for name, key, value in (("M06a_cfg_layers", "num_layers", 7), ("M06b_cfg_type", "num_attention_heads", "two"),
                             ("M06c_cfg_patch", "patch_size", -2), ("M06d_cfg_inch", "in_channels", 5)):
        config_path = bad(name) / "transformer/config.json"
        config = json.loads(config_path.read_text())
        config[key] = value
        config_path.write_text(json.dumps(config))
    (bad("M07_badindex") / "model_index.json").write_text("{'not': json")
    shutil.rmtree(bad("M08_missing_te3") / "text_encoder_3")
    _truncate(weights_file(bad("M09_trunc_vae") / "vae"), 200)
    config_path = bad("M10_vae_cfg") / "vae/config.json"
    config = json.loads(config_path.read_text())
    config["block_out_channels"] = [c * 2 for c in config["block_out_channels"]]
    config_path.write_text(json.dumps(config))
    folder = bad("M11_wrong_keys_te")
    shutil.copy(weights_file(folder / "vae"), weights_file(folder / "text_encoder"))
    folder = bad("M12_nan_weights")
    state = load_file(weights_file(folder / "transformer"))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
              weights_file(folder / "transformer"))
    (bad("M13_cfg_invalidjson") / "transformer/config.json").write_text("{not json")
    folder = bad("M14_shape_mismatch")
    state = load_file(weights_file(folder / "transformer"))
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, weights_file(folder / "transformer"))
    config_path = bad("DAS_cfg_layers", "das") / "transformer/config.json"
    config = json.loads(config_path.read_text())
    config["num_layers"] = config["num_layers"] + 1
    config_path.write_text(json.dumps(config))
    _truncate(weights_file(bad("DAS_trunc", "das") / "transformer"), 100)
    config_path = bad("LGVI_cfg_unet", "lgvi") / "unet/config.json"
    config = json.loads(config_path.read_text())
    config["block_out_channels"] = [c * 2 for c in config["block_out_channels"]]
    config_path.write_text(json.dumps(config))
    _truncate(weights_file(bad("LGVI_trunc_unet", "lgvi") / "unet"), 100)
    config_path = bad("LGVI_badsched", "lgvi") / "scheduler/scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "NoSuchScheduler"
    config_path.write_text(json.dumps(config))
    folder = bad("P_pickle_te", "lgvi")
    weights_file(folder / "text_encoder").unlink()
    _write_pickle(folder / "text_encoder/pytorch_model.bin")
    folder = bad("P_pickle_vae", "lgvi")
    weights_file(folder / "vae").unlink()
    _write_pickle(folder / "vae/diffusion_pytorch_model.bin")

    # DaS inputs
    das = root / "das"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 96, 3)) * 255).astype(np.uint8)).save(das / "img.png")
    depth = (1.0 + rng.random((64, 96))).astype(np.float32)
    np.save(das / "depth.npy", depth)
    nan_depth = depth.copy()
    nan_depth[3, 4] = np.nan
    np.save(das / "depth_nan.npy", nan_depth)
    inf_depth = depth.copy()
    inf_depth[5, 7] = np.inf
    np.save(das / "depth_inf.npy", inf_depth)
    np.save(das / "depth_zero.npy", np.zeros_like(depth))
    np.save(das / "depth_neg.npy", -np.ones_like(depth))
    np.save(das / "depth_3d.npy", np.ones((2, 64, 96), np.float32))
    np.save(das / "depth_1d.npy", np.ones(100, np.float32))
    np.save(das / "depth_empty.npy", np.zeros((0, 0), np.float32))
    np.save(das / "depth_tiny.npy", np.ones((1, 1), np.float32))
    np.save(das / "depth_int.npy", (depth * 10).astype(np.int64))
    np.save(das / "depth_bool.npy", np.ones((64, 96), bool))
    np.save(das / "depth_complex.npy", depth.astype(np.complex64))
    np.save(das / "depth_str.npy", np.full((64, 96), "a"))
    np.save(das / "depth_obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (das / "depth_text.npy").write_text("this is text, not an array\n")
    np.savez(das / "depth_two.npz", a=depth, b=depth)
    np.savez(das / "depth_one.npz", depth=depth)
    torch.save(torch.from_numpy(depth), das / "depth.pt")
    torch.save({"depth": torch.from_numpy(depth), "meta": "x"}, das / "depth_dict.pt")
    _write_pickle(das / "depth_evil.pt")
    torch.save(torch.from_numpy(depth), das / "depth_trunc.pt")
    _truncate(das / "depth_trunc.pt", 300)
    np.save(das / "disp_zero.npy", np.zeros_like(depth))
    mask = np.zeros((64, 96), np.uint8)
    mask[16:48, 24:72] = 255
    Image.fromarray(mask).save(das / "mask.png")
    Image.fromarray(np.zeros_like(mask)).save(das / "mask_empty.png")
    Image.fromarray(np.full_like(mask, 255)).save(das / "mask_full.png")
    (das / "mask_text.png").write_text("not a png\n")
    u, v = np.meshgrid(np.linspace(2, 30, 10), np.linspace(2, 30, 5))
    base = np.stack([u.ravel(), v.ravel(), np.full(50, 2.0)], -1).astype(np.float32)
    tracks = np.stack([base + [t, 0, 0] for t in range(9)])
    np.savez(das / "tracks_ok.npz", tracks=tracks, visibility=np.ones((9, 50), bool))
    np.savez(das / "tracks_2d.npz", pred_tracks=tracks[None, :, :, :2], pred_visibility=np.ones((1, 9, 50), bool))
    np.savez(das / "tracks_wrongT.npz", tracks=tracks[:5], visibility=np.ones((5, 50), bool))
    np.savez(das / "tracks_badshape.npz", tracks=tracks[..., :1])
    np.savez(das / "tracks_badvis.npz", tracks=tracks, visibility=np.ones((9, 51), bool))
    nan_tracks = tracks.copy()
    nan_tracks[:, :5] = np.nan
    np.savez(das / "tracks_nan.npz", tracks=nan_tracks, visibility=np.ones((9, 50), bool))
    behind = tracks.copy()
    behind[..., 2] = -1.0
    np.savez(das / "tracks_negdepth.npz", tracks=behind, visibility=np.ones((9, 50), bool))
    np.savez(das / "tracks_huge.npz", tracks=tracks * [1e30, 1e30, 1], visibility=np.ones((9, 50), bool))
    np.savez(das / "tracks_nokey.npz", foo=tracks)
    np.savez(das / "tracks_empty.npz", tracks=np.zeros((9, 0, 3), np.float32), visibility=np.ones((9, 0), bool))
    torch.save([torch.from_numpy(tracks)], das / "tracks_list.pt")
    torch.save(torch.from_numpy(tracks), das / "tracks_tensor.pt")
    (das / "tracks_text.npz").write_text("text named npz\n")
    _write_pickle(das / "tracks_evil.pt")
    torch.save({"tracks": torch.from_numpy(tracks)}, das / "tracks_trunc.pt")
    _truncate(das / "tracks_trunc.pt", 200)
    (das / "tracks_garbage.pt").write_bytes(os.urandom(2000))
    _save_video(das / "tv_ok.mp4", _moving(9, 32, 32))
    _save_video(das / "tv_frames.mp4", _moving(5, 32, 32))
    _save_video(das / "tv_size.mp4", _moving(9, 64, 48))
    (das / "fake.mp4").write_text("not a video\n")
    (das / "zero.mp4").write_bytes(b"")
    shutil.copy(das / "tv_ok.mp4", das / "tv_trunc_head.mp4")
    _truncate(das / "tv_trunc_head.mp4", 200)
    (das / "longcam.txt").write_text("; ".join(["rot y 1"] * 2000))
    (das / "longnum.txt").write_text("rot y " + "9" * 400)

    # inpainting inputs and corrupt media
    inp = root / "inp"
    _save_video(inp / "v.mp4", _moving(3, 32, 48))
    _save_video(inp / "v.gif", _moving(3, 32, 48))
    _save_video(inp / "v1.mp4", _moving(1, 32, 48))
    _save_video(inp / "vbig.mp4", _moving(4, 480, 640))
    _write_long_video(inp / "long720.mp4", frames=600, height=720, width=1280)
    (inp / "zero.mp4").write_bytes(b"")
    shutil.copy(das / "mask_text.png", inp / "fake.mp4")
    for folder in (inp / "r", root / "vio/r"):
        _corrupt_media(folder)
    shutil.copytree(root / "models", inp / "models")

    _write_manifests(root / "man")
    _write_sat(root / "sat")


def _write_long_video(path: Path, frames: int, height: int, width: int):
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        image = np.zeros((height, width, 3), np.uint8)
        for index in range(frames):
            image[:] = index % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _corrupt_media(folder: Path):
    import av
    import numpy as np
    from PIL import Image

    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("hello\n")
    _save_video(folder / "ok.mp4", _moving(10, 64, 64))
    data = (folder / "ok.mp4").read_bytes()
    (folder / "trunc_half.mp4").write_bytes(data[: len(data) // 2])
    (folder / "trunc_head.mp4").write_bytes(data[:200])
    with av.open(str(folder / "nofaststart.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 20, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = (folder / "nofaststart.mp4").read_bytes()
    (folder / "trunc_tail.mp4").write_bytes(data[:-300])
    with av.open(str(folder / "audio.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _save_video(folder / "ok.gif", _moving(4, 32, 32))
    data = (folder / "ok.gif").read_bytes()
    (folder / "trunc.gif").write_bytes(data[: len(data) // 2])
    _save_video(folder / "ok.webp", _moving(4, 32, 32))
    data = (folder / "ok.webp").read_bytes()
    (folder / "trunc.webp").write_bytes(data[: len(data) // 2])
    header = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    (folder / "bomb_header.gif").write_bytes(header + b",\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02D\x01\x00;")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "png.png")
    shutil.copy(folder / "png.png", folder / "png_as.gif")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "still.webp")


def _write_manifests(folder: Path):
    manifest = json.loads((REPO / "weights_manifest.json").read_text())

    def write(name, data=None, text=None, raw=None):
        path = folder / f"{name}.json"
        if raw is not None:
            path.write_bytes(raw)
        elif text is not None:
            path.write_text(text)
        else:
            path.write_text(json.dumps(data, indent=1))

    def changed(edit):
        copy = json.loads(json.dumps(manifest))
        edit(copy)
        return copy

    write("trunc", text=json.dumps(manifest)[:36] + "\n")
    write("empty", text="\n")
    write("list", data=[])
    write("binary", raw=b"\xff\xfe\x00garbage")
    names = [entry["name"] for entry in manifest["entries"]]
    first = manifest["entries"][0]

    def self_require(m):
        m["entries"][0]["requires"] = [m["entries"][0]["name"]]

    def cycle(m):
        by_name = {entry["name"]: entry for entry in m["entries"]}
        by_name["CogVideoX-2b"]["requires"] = ["RepVideo"]
        by_name["RepVideo"]["requires"] = ["CogVideoX-2b"]

    write("self_require", changed(self_require))
    write("cycle", changed(cycle))
    write("bad_sha", changed(lambda m: m["entries"][0].__setitem__("files", [{"path": "model_index.json", "size": None,
                                                                             "sha256": "ZZ"}])))
    write("bad_rev", changed(lambda m: m["entries"][0].__setitem__("revision", "main")))
    write("bad_repo", changed(lambda m: m["entries"][0].__setitem__("repo_id", "https://evil.example.com/x")))
    write("version2", changed(lambda m: m.__setitem__("manifest_version", 2)))
    write("dup", changed(lambda m: m["entries"].append(json.loads(json.dumps(m["entries"][0])))))
    write("folder_mismatch", changed(lambda m: m["entries"][0].__setitem__("comfyui_folder",
                                                                          "models/video_diffusion_pack/x/y")))
    sha = "0" * 64
    write("traversal_file", changed(lambda m: m["entries"][0].__setitem__(
        "files", [{"path": "../../../../etc/passwd", "size": None, "sha256": sha}])))
    write("traversal_name", changed(lambda m: m["entries"][0].__setitem__("name", "../evil")))
    write("traversal_newline", changed(lambda m: m["entries"][0].__setitem__(
        "files", [{"path": "ok\n/../../../x", "size": None, "sha256": sha}])))
    write("name_newline", changed(lambda m: m["entries"][0].__setitem__("name", "evil\n")))
    write("abs_file", changed(lambda m: m["entries"][0].__setitem__("files", [{"path": "/etc/passwd", "size": None,
                                                                              "sha256": sha}])))
    write("allow_traversal", changed(lambda m: (m["entries"][0].__setitem__("allow_patterns", ["../*"]),
                                                m["entries"][0].__setitem__("files", [{"path": "model_index.json", "size": None,
                                                                                       "sha256": sha}]))))
    assert names and first


def _write_sat(folder: Path):
    import torch

    from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import save_tiny_cogvideox_repvideo_pipeline
    from video_diffusion_pack.models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

    keys = json.loads((REPO / "tests/fixtures/repvideo_sat_tiny_keys.json").read_text())
    config = keys["metadata"]["diffusers_config"]
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in keys["shapes"].items()}
    positions = "model.diffusion_model.mixins.pos_embed.pos_embedding"
    state[positions] = CogVideoXRepVideoTransformer3DModel(**config).patch_embed.pos_embedding.float()

    def sat(name, payload=None, latest="35000", write=None):
        target = folder / name
        (target / "35000").mkdir(parents=True)
        if latest is not None:
            (target / "latest").write_bytes(latest if isinstance(latest, bytes) else latest.encode())
        checkpoint = target / "35000/mp_rank_00_model_states.pt"
        if write is not None:
            write(checkpoint)
        else:
            torch.save({"module": state} if payload is None else payload, checkpoint)
        return checkpoint

    sat("ok")
    sat("nolatest", latest=None)
    sat("latest_binary", latest=b"\xff\xfe\x00")
    sat("latest_missing_iter", latest="123")
    sat("latest_neg", latest="-5")
    sat("latest_traversal", latest="../../etc")
    sat("text_file", write=lambda p: p.write_text("not a checkpoint"))
    path = sat("truncated")
    _truncate(path, 100)
    path = sat("truncated_tail")
    _truncate(path, -500)
    sat("nomodule", payload={"state_dict": state})
    sat("module_list", payload={"module": [1, 2]})
    sat("tensor_only", payload=torch.zeros(3))
    sat("wrongkeys", payload={"module": {**state, "model.diffusion_model.bogus.weight": torch.zeros(2)}})
    qkv = next(k for k in state if k.endswith("query_key_value.weight"))
    sat("qkv_not_div3", payload={"module": {**state, qkv: torch.zeros(7, 5)}})
    sat("legacy", write=lambda p: torch.save({"module": state}, p, _use_new_zipfile_serialization=False))

    def plain_zip(p):
        import zipfile

        with zipfile.ZipFile(p, "w") as archive:
            archive.writestr("hello.txt", "hi")

    sat("plain_zip", write=plain_zip)
    sat("nan_weights", payload={"module": {k: torch.full_like(v, float("nan")) for k, v in state.items()}})
    sat("raw_pickle", write=lambda p: p.write_bytes(pickle.dumps({"module": {}})))
    sat("evil_pickle", write=lambda p: torch.save({"module": state, "x": _Payload()}, p))

    tiny = save_tiny_cogvideox_repvideo_pipeline(folder / "tiny")
    cog = folder / "cog"
    cog.mkdir()
    for name in ("text_encoder", "tokenizer", "vae"):
        shutil.copytree(tiny / name, cog / name)
    (cog / "transformer").mkdir()
    (cog / "transformer/config.json").write_text(json.dumps(config))
    for name, text in (("cog_badjson", "{'a': 1"), ("cog_badcfg", json.dumps({**config, "num_layers": -1})),
                       ("cog_listcfg", "[1, 2]")):
        shutil.copytree(cog, folder / name)
        (folder / name / "transformer/config.json").write_text(text)
    shutil.copytree(cog, folder / "cog_novae")
    shutil.rmtree(folder / "cog_novae/vae")
    shutil.copytree(cog, folder / "cog_big")
    with open(folder / "cog_big/text_encoder/extra.bin", "wb") as extra:  # copying it keeps staging open
        block = os.urandom(1 << 20)
        for _ in range(192):
            extra.write(block)


# ------------------------------------------------------------------------------------------- CLI attempts

PROGRESS = re.compile(r"\d+/\d+ \[|it/s\]|s/it\]")
TRACEBACK = "Traceback (most recent call last)"


def _after_bars(stderr: str) -> List[str]:
    """stderr's lines, a progress bar's text cut from a message printed on the bar's line."""
    lines = [re.sub(r"^.*?(it/s\]|s/it\]|\?it/s\])", "", line).strip() for line in re.split(r"[\r\n]", stderr)]
    return [line for line in lines if line]


def _last_message(stderr: str) -> str:
    lines = _after_bars(stderr)
    lines = [line for line in lines if not PROGRESS.search(line) and not line.startswith("warnings.warn")]
    return lines[-1] if lines else ""


def _sampling_started(stderr: str) -> bool:
    """Whether a denoising progress bar (diffusers' bar has no description: '  0%|...') was printed."""
    return any(re.match(r"^\s*\d+%\|", line) for line in re.split(r"[\r\n]", stderr))


def _digest(path: Path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _snapshot(folders) -> set:
    names = set()
    for folder in folders:
        if folder.is_dir():
            names |= {str(child) for child in folder.iterdir()}
    return names


def _video_problem(path: Path) -> Optional[str]:
    """Why a written video is degenerate (unreadable, NaN-like, all-black frames), or None."""
    from video_diffusion_pack.video_io import read_video

    try:
        frames = read_video(path).frames
    except Exception as error:  # noqa: BLE001 - any failure to read back is the finding
        return f"output {path.name} cannot be read back: {error}"
    black = [index for index in range(len(frames)) if frames[index].max() == 0]
    if black:
        return f"output {path.name}: {len(black)} of {len(frames)} frames are all black"
    return None


def _names_ok(message: str, names: Optional[str]) -> bool:
    if names is None:
        return "argument" in message or "'" in message
    return all(re.search(part, message, re.IGNORECASE | re.DOTALL) for part in names.split(" && "))


def classify_cli(expect: str, names: Optional[str], rc: Optional[int], stderr: str, *, timed_out: bool,
                 lost: List[str], left: List[str], outputs: List[Path], interrupted: bool,
                 warn: Optional[str], stdout: str = "") -> Outcome:
    message = _last_message(stderr)
    if timed_out:
        return Outcome("hang", f"still running after the timeout; {message[:150]}")
    if lost:
        return Outcome("data-loss", f"changed or removed: {', '.join(lost)}")
    if TRACEBACK in stderr:
        return Outcome("crash", f"rc {rc}, traceback: {message[:200]}")
    if left:
        return Outcome("partial-file", f"rc {rc}; left behind: {', '.join(left)}")
    if interrupted:
        lines = [line for line in _after_bars(stderr) if not PROGRESS.search(line) and "warn" not in line.lower()]
        if rc in (130, 143) and lines and lines[-1].startswith("vdp"):
            return Outcome("ok", f"rc {rc}: {message[:150]}")
        if rc == 0:
            return Outcome("ok", "finished before the signal")
        return Outcome("unclear", f"rc {rc}: {message[:150]}")
    if rc == 0:
        warned = warn is not None and re.search(warn, stderr + stdout, re.IGNORECASE)
        if expect in ("R", "W") and not warned:
            what = "no warning" if expect == "W" else "exit 0 where a refusal was due"
            return Outcome("silent", what)
        for output in outputs:
            problem = _video_problem(output) if output.suffix.lower() in (".mp4", ".webp", ".gif") else None
            if problem and not re.search(r"warn|black|nothing|no point|behind|off screen", stderr, re.I):
                return Outcome("silent", problem)
        return Outcome("ok", "rc 0" + (" with the warning" if warned else ""))
    if expect == "K":
        return Outcome("unclear", f"valid input refused: rc {rc}: {message[:200]}")
    if _sampling_started(stderr) and rc != 130:
        return Outcome("unclear", f"refused after sampling started: {message[:200]}")
    if not message.startswith("vdp"):
        return Outcome("unclear", f"rc {rc}, not the vdp one-line form: {message[:200]}")
    if _names_ok(message, names):
        return Outcome("clear", f"rc {rc}: {message[:200]}")
    return Outcome("unclear", f"rc {rc}, message does not name {names!r}: {message[:200]}")


def _limit(kib: int):
    def apply():
        os.setpgrp()
        resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))
        # a background job (`cmd &` without job control) starts with SIGINT ignored; a user's Ctrl-C is not
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return apply


def run_cli(world: World, cwd: str, command: str, expect: str, names: Optional[str], timeout: Optional[float],
            warn: Optional[str]) -> Outcome:
    folder = world.path(cwd)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONWARNINGS="default",
               VDP_MODELS_DIR=str(world.path("run/models")), HF_HOME=str(world.path("run/hf")))
    memory_kib = MEMORY_LIMIT // 1024
    signal_after = None
    custom_env = False
    created = set()  # files the command's own setup made (touch / cp): inputs, never stale outputs
    timeout = timeout or world.timeout
    # the shell-like prefixes the record's commands use
    while True:
        command = command.strip()
        match = re.match(r"^(mkdir -p|touch|cp) ([^;]+);\s*(.*)$", command)
        if match:
            words = shlex.split(match.group(2))
            if match.group(1) == "mkdir -p":
                (folder / words[0]).mkdir(parents=True, exist_ok=True)
            elif match.group(1) == "touch":
                (folder / words[0]).touch()
                created.add(folder / words[0])
            else:
                shutil.copy(folder / words[0], folder / words[1])
                created.add(folder / words[1])
            command = match.group(3)
            continue
        match = re.match(r"^ulimit -v (\d+);\s*(.*)$", command)
        if match:
            memory_kib, command = int(match.group(1)), match.group(2)
            continue
        match = re.match(r"^cd (\S+) &&\s*(.*)$", command)
        if match:
            folder, command = folder / match.group(1), match.group(2)
            continue
        match = re.match(r"^timeout (?:-s (\w+) )?(\d+) (.*)$", command)
        if match:
            if match.group(1):
                signal_after = (getattr(signal, "SIG" + match.group(1)), float(match.group(2)))
            else:
                timeout = float(match.group(2))
            command = match.group(3)
            continue
        match = re.match(r"^/usr/bin/time -f \S+ (.*)$", command)
        if match:
            command = match.group(1)
            continue
        match = re.match(r"^([A-Z_]+)=(\S+) (.*)$", command)
        if match:
            custom_env = True
            value = match.group(2)
            literal = value.startswith("/") or value.startswith("http") or value.isdigit()
            env[match.group(1)] = value if literal else str(folder / value)
            command = match.group(3)
            continue
        break
    argv = []
    for word in shlex.split(command):
        substitution = re.fullmatch(r"\$\(cat (\S+)\)", word)
        argv.append((folder / substitution.group(1)).read_text() if substitution else word)
    assert argv[0] == "vdp", command
    argv[0] = str(VDP)
    outputs, inputs = [], []
    for index, word in enumerate(argv[1:], 1):
        candidate = folder / word if not os.path.isabs(word) else Path(word)
        if argv[index - 1] in ("-o", "--output", "--save-tracking"):
            outputs.append(candidate)
        else:
            try:
                if "\0" not in word and candidate.is_file() and candidate.stat().st_size < 2**28:
                    inputs.append(candidate)
            except OSError:  # a word too long for a file name is no input file
                pass
    for output in outputs:
        if output.is_file() and output not in inputs and output not in created and output.name != "exist.mp4":
            output.unlink()
    digests = {path: _digest(path) for path in inputs}
    watched = {folder} | {output.parent for output in outputs}
    before = _snapshot(watched)
    started = time.monotonic()
    plain = signal_after is None and memory_kib == MEMORY_LIMIT // 1024 and not custom_env and FORK_CLI
    if plain:  # fork this process, which has imported torch and diffusers already: the child runs vdp's main()
        returncode, stdout, stderr, timed_out = _forked_vdp(argv[1:], folder, env, timeout)
    else:
        returncode, stdout, stderr, timed_out = _subprocess_vdp(argv, folder, env, timeout, memory_kib, signal_after,
                                                                started)
    lost = [path.name for path, digest in digests.items() if _digest(path) != digest]
    new = _snapshot(watched) - before
    left = sorted(Path(name).name for name in new if Path(name).name.startswith("."))
    for name in new:
        if Path(name).name.startswith("."):
            shutil.rmtree(name, ignore_errors=True) if Path(name).is_dir() else Path(name).unlink(missing_ok=True)
    outputs = [output for output in outputs if output.is_file()]
    return classify_cli(expect, names, returncode, stderr, timed_out=timed_out, lost=lost, left=left,
                        outputs=outputs, interrupted=signal_after is not None, warn=warn, stdout=stdout or "")


# Plain vdp commands (no signal, memory limit or environment of their own) run in a fork of this process, which has
# imported torch and diffusers once: the child calls vdp's main() as the console script does (exit status, one-line
# errors, tracebacks on stderr). Commands with their own environment, limits or signals run as real processes.
FORK_CLI = True


def _forked_vdp(arguments, folder: Path, env: dict, timeout: float):
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.setpgrp()
            os.dup2(out_write, 1)
            os.dup2(err_write, 2)
            for fd in (out_read, out_write, err_read, err_write):
                os.close(fd)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), write_through=True)
            os.chdir(folder)
            os.environ.clear()
            os.environ.update(env)
            with open("/proc/self/statm") as statm:  # the fork already maps what the harness imported
                mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (mapped + MEMORY_LIMIT, mapped + MEMORY_LIMIT))
            signal.signal(signal.SIGINT, signal.default_int_handler)
            logging.getLogger().handlers.clear()
            warnings.resetwarnings()
            from video_diffusion_pack.cli import main as vdp_main

            sys.argv = ["vdp", *arguments]
            try:
                code = vdp_main(arguments)
            except SystemExit as error:
                code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
                if error.code is not None and not isinstance(error.code, int):
                    print(error.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - the console script prints the traceback and exits 1
                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
    os.close(out_write)
    os.close(err_write)
    import select

    chunks = {out_read: [], err_read: []}
    deadline = time.monotonic() + timeout
    open_fds = [out_read, err_read]
    timed_out = False
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            os.killpg(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select(open_fds, [], [], min(remaining, 1.0))
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    _, status = os.waitpid(pid, 0)
    for fd in (out_read, err_read):
        os.close(fd)
    returncode = os.waitstatus_to_exitcode(status)
    text = {fd: b"".join(parts).decode(errors="replace") for fd, parts in chunks.items()}
    return returncode, text[out_read], text[err_read], timed_out


def _subprocess_vdp(argv, folder: Path, env: dict, timeout: float, memory_kib: int, signal_after, started: float):
    process = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace", preexec_fn=_limit(memory_kib))
    timed_out = False
    try:
        if signal_after is not None:
            try:
                process.wait(timeout=signal_after[1])
            except subprocess.TimeoutExpired:
                process.send_signal(signal_after[0])
        stdout, stderr = process.communicate(timeout=max(1.0, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    return process.returncode, stdout, stderr, timed_out


def cli(id: str, section: str, cwd: str, command: str, expect: str = "R", names: Optional[str] = None,
        timeout: Optional[float] = None, warn: Optional[str] = None, not_reproducible: Optional[str] = None):
    ATTEMPTS.append(Attempt(id, section, lambda world: run_cli(world, cwd, command, expect, names, timeout, warn),
                            not_reproducible))


# ------------------------------------------------------------------------------------------- API attempts

CLEAR_TYPES = (ValueError, TypeError, OSError, KeyError, LookupError)
CRASH_TYPES = (RuntimeError, MemoryError, IndexError, OverflowError, ZeroDivisionError, AttributeError)


class _Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run_api(world: World, function, expect: str, names: Optional[str], check, warn: Optional[str]) -> Outcome:
    handler = _Captured()
    loggers = [logging.getLogger(name) for name in ("", "diffusers", "transformers", "video_diffusion_pack")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = function(world)
            except Exception as error:  # noqa: BLE001 - the exception is what is classified
                text = f"{type(error).__name__}: {error}"
                in_pack = "video_diffusion_pack" in "".join(traceback.format_tb(error.__traceback__)[-1:])
                if expect == "K":
                    return Outcome("unclear" if isinstance(error, CLEAR_TYPES) else "crash",
                                   f"valid input refused: {text[:200]}")
                if isinstance(error, CLEAR_TYPES) and _names_ok(str(error), names):
                    return Outcome("clear", text[:200])
                if isinstance(error, CRASH_TYPES) and not in_pack:
                    return Outcome("crash", text[:200])
                return Outcome("unclear", f"does not name {names!r}: {text[:200]}")
            except BaseException as error:  # MemoryError / KeyboardInterrupt subclasses
                return Outcome("crash", f"{type(error).__name__}: {str(error)[:200]}")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    said = " | ".join([str(w.message) for w in caught] + handler.messages)
    warned = warn is not None and re.search(warn, said, re.IGNORECASE)
    problem = check(result) if check is not None else None
    if expect == "W" and not warned:
        return Outcome("silent", f"no warning ({problem or 'result returned'})")
    if expect == "R" and not warned:
        return Outcome("silent", f"returned where a refusal was due ({problem or 'no visible defect'})")
    if problem and not warned:
        return Outcome("silent", problem)
    return Outcome("ok", "returned" + (" with the warning" if warned else ""))


def api(id: str, section: str, function, expect: str = "R", names: Optional[str] = None, check=None,
        warn: Optional[str] = None, not_reproducible: Optional[str] = None):
    ATTEMPTS.append(Attempt(id, section, lambda world: run_api(world, function, expect, names, check, warn),
                            not_reproducible))


def frames_problem(output) -> Optional[str]:
    """NaN, out-of-range or all-black frames in a pipeline output (or a video tensor), else None."""
    import numpy as np
    import torch

    frames = getattr(output, "frames", output)
    array = frames.float().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames, np.float64)
    if np.isnan(array).any():
        return "NaN in the output"
    if not np.isfinite(array).all():
        return "inf in the output"
    if array.min() < 0 or array.max() > 1 + 1e-6:
        return f"values outside 0..1 ({array.min():.3g}..{array.max():.3g})"
    flat = array.reshape(-1, *array.shape[-3:]) if array.ndim >= 4 else array[None]
    black = sum(1 for frame in flat if frame.max() == 0)
    if black:
        return f"{black} of {len(flat)} frames all black"
    return None


# ------------------------------------------------------------------------------------ the CLI attempt table
# ID || folder || expectation || what a clear message names (regexes joined by ' && ') || command
# expectation: R refuse, K run, KR either (a bound may refuse it), W~regex run with that warning or refuse,
# I interrupted (exit 130/143 with one line, nothing left); @N: timeout in seconds.
# Paths are relative to the folder; `vdp das`/`track-video` rows run in das/, bare `vdp inpaint` rows in inp/.

NOT_ROOT_FS = ("needs an immutable, read-only or full file system; running as root here, where permission bits do "
               "not stop writes and no file system can be mounted")

CLI_TABLE = r"""
G01 || . || R || --steps && abc || vdp generate p -o out/a.mp4 --steps abc
G02 || . || R || --steps && 0 || vdp generate p -o out/a.mp4 --steps 0
G03 || . || R || --steps && -5 || vdp generate p -o out/a.mp4 --steps -5
G04 || . || R || --height && 17 || vdp generate p -o out/a.mp4 --height 17
G05 || . || R || --height && -16 || vdp generate p -o out/a.mp4 --height -16
G06 || . || R || --width && 0 || vdp generate p -o out/a.mp4 --width 0
G07 || . || R || --frames && 0 || vdp generate p -o out/a.mp4 --frames 0
G08 || . || R || --guidance && nan || vdp generate p -o out/a.mp4 --guidance nan
G09 || . || R || --guidance && inf || vdp generate p -o out/a.mp4 --guidance inf
G10 || . || R || --fps && nan || vdp generate p -o out/a.mp4 --fps nan
G11 || . || R || --fps || vdp generate p -o out/a.mp4 --fps 0
G12 || . || R || --fps || vdp generate p -o out/a.mp4 --fps -3
G13 || . || R || --fps && inf || vdp generate p -o out/a.mp4 --fps inf
G14 || . || R || --seed && -1 || vdp generate p -o out/a.mp4 --seed -1
G15 || . || R || --seed || vdp generate p -o out/a.mp4 --seed 18446744073709551616
G16 || . || R || --freeinit || vdp generate p -o out/a.mp4 --freeinit 0
G17 || . || R || -o/--output && \.avi || vdp generate p -o out/a.avi
G18 || . || R || -o/--output && nosuchdir || vdp generate p -o out/nosuchdir/a.mp4
G19 || . || R || -o/--output || vdp generate p -o out/a
G20 || . || R || --fastercache && bogus || vdp generate p -o out/a.mp4 --fastercache bogus
G21 || . || R || --steps && 1e3 || vdp generate p -o out/a.mp4 --steps 1e3
G22 || . || R || --guidance || vdp generate p -o out/a.mp4 --dynamic-cfg --guidance -1
G23 || . || R || --fps && gif || vdp generate p -o out/a.gif --fps 60
G24 || . || R || --model && nonexistent || vdp generate p -o out/a.mp4 --model out/nonexistent
G25 || . || R || argument --(height|width|frames) && 16000|10000 || /usr/bin/time -f maxrss=%MkB vdp generate p -o out/a.mp4 --height 16000 --width 16000 --frames 10000
G26 || . || R || argument --frames && 10000 || /usr/bin/time -f maxrss=%MkB vdp generate p -o out/a.mp4 --height 64 --width 64 --frames 10000 --steps 1
G27 || . || R || argument --frames && 10000 || ulimit -v 6000000; vdp generate p -o out/a.mp4 --height 64 --width 64 --frames 10000 --steps 1
G28 || . || R || prompt && empty || vdp generate '' -o out/empty.mp4 --steps 2
G29 || . || R || prompt && empty || vdp generate ' ' -o out/space.mp4 --steps 2
G30 || . || W~truncat || prompt || vdp generate "$(cat big_prompt.txt)" -o out/big.mp4 --steps 2
G31 || . || K || || vdp generate '🐼🔥 红熊猫 — naïve café \u202e RTL ﷽' -o out/emoji.mp4 --steps 2
G32 || . || K || || vdp generate p -o 'out/émoji 🐼 name.mp4' --steps 2
G33 || . || K || || vdp generate p -o out/x.MP4 --steps 2
G34 || . || R || -o/--output && dir\.mp4 && folder|directory || vdp generate p -o out/dir.mp4 --steps 2
G38 || . || K || || vdp generate p -o out/exist.mp4 --steps 2
G39 || . || R || -o/--output || vdp generate p -o out/ --steps 2
G40 || . || R || -o/--output || vdp generate p -o /dev/null --steps 2
X01_nosub || . || R || command || vdp
X02_version || . || K || || vdp --version
X03_unknown || . || R || frobnicate || vdp frobnicate
X04_fp16_cpu || . || K || || vdp generate p -o out/x4.mp4 --dtype fp16 --device cpu --steps 2
X05_bf16_cpu || . || K || || vdp generate p -o out/x5.mp4 --dtype bf16 --device cpu --steps 2
X06_cuda_absent || . || R || --device && cuda || vdp generate p -o out/x6.mp4 --device cuda
X07_das_fp16 || das || K || || vdp das --image img.png --depth depth.npy --prompt x --dtype fp16 -o o/x7.mp4
X08_inpaint_fp16 || . || K || || vdp inpaint inp/v.mp4 'remove it' -o out/x8.mp4 --dtype fp16
X09_freeinit_big || . || R || --freeinit && 1000000 || vdp generate p -o out/x9.mp4 --freeinit 1000000 --steps 1
X10_fastercache_1step || . || K || || vdp generate p -o out/x10.mp4 --fastercache --steps 1
X11_repvideo_dyn || . || K || || vdp generate p -o out/x11.mp4 --repvideo --dynamic-cfg --guidance 0 --steps 2
X12_inpaint_bf16 || . || K || || vdp inpaint inp/v.mp4 'remove it' -o out/x12.mp4 --dtype bf16
X13_inpaint_lgvii_fp16 || . || K || || vdp inpaint inp/v.mp4 'remove it' -o out/x13.mp4 --dtype fp16 --lgvi-i
X14_inpaint_model_fp16 || . || K || || vdp inpaint inp/v.mp4 'remove it' -o out/x14.mp4 --dtype fp16 --model models/lgvi --width 48 --height 32 --steps 2
I01_info || . || K || || vdp info
I02_info_badenv || . || W~is not a folder \(it is \$VDP_MODELS_DIR || || VDP_MODELS_DIR=/etc/passwd vdp info
I03_info_modelsdir_file || . || W~is not a folder \(it is \$VDP_MODELS_DIR || || VDP_MODELS_DIR=out/exist.mp4 vdp download --list
I04_info_extra || . || R || extra || vdp info extra
I05_info_badcache || . || K || || HF_HOME=hfbad vdp info
M00_ok || . || K || || vdp generate p -o out/m00.mp4 --model models/vch_saved --steps 2 --height 64 --width 64 --frames 4
M00b_official || . || K || || vdp generate p -o out/m00b.mp4 --model models/vch_official --steps 2 --height 64 --width 64 --frames 4
M01_empty || . || R || M01_empty || vdp generate p -o out/M01_empty.mp4 --model bad/M01_empty --steps 2 --height 64 --width 64 --frames 4
M02_trunc_transformer || . || R || transformer || vdp generate p -o out/M02.mp4 --model bad/M02_trunc_transformer --steps 2 --height 64 --width 64 --frames 4
M03_garbage_transformer || . || R || transformer || vdp generate p -o out/M03.mp4 --model bad/M03_garbage_transformer --steps 2 --height 64 --width 64 --frames 4
M04_zero_transformer || . || R || transformer || vdp generate p -o out/M04.mp4 --model bad/M04_zero_transformer --steps 2 --height 64 --width 64 --frames 4
M06a_cfg_layers || . || R || transformer || vdp generate p -o out/M06a.mp4 --model bad/M06a_cfg_layers --steps 2 --height 64 --width 64 --frames 4
M06b_cfg_type || . || R || num_attention_heads && two || vdp generate p -o out/M06b.mp4 --model bad/M06b_cfg_type --steps 2 --height 64 --width 64 --frames 4
M06c_cfg_patch || . || R || patch_size || vdp generate p -o out/M06c.mp4 --model bad/M06c_cfg_patch --steps 2 --height 64 --width 64 --frames 4
M06d_cfg_inch || . || R || transformer || vdp generate p -o out/M06d.mp4 --model bad/M06d_cfg_inch --steps 2 --height 64 --width 64 --frames 4
M07_badindex || . || R || model_index.json || vdp generate p -o out/M07.mp4 --model bad/M07_badindex --steps 2 --height 64 --width 64 --frames 4
M08_missing_te3 || . || R || text_encoder_3 || vdp generate p -o out/M08.mp4 --model bad/M08_missing_te3 --steps 2 --height 64 --width 64 --frames 4
M09_trunc_vae || . || R || vae || vdp generate p -o out/M09.mp4 --model bad/M09_trunc_vae --steps 2 --height 64 --width 64 --frames 4
M10_vae_cfg || . || R || vae || vdp generate p -o out/M10.mp4 --model bad/M10_vae_cfg --steps 2 --height 64 --width 64 --frames 4
M11_wrong_keys_te || . || R || text_encoder || vdp generate p -o out/M11.mp4 --model bad/M11_wrong_keys_te --steps 2 --height 64 --width 64 --frames 4
M12_nan_weights || . || R || transformer && finite|nan || vdp generate p -o out/M12.mp4 --model bad/M12_nan_weights --steps 2 --height 64 --width 64 --frames 4
M13_cfg_invalidjson || . || R || config.json || vdp generate p -o out/M13.mp4 --model bad/M13_cfg_invalidjson --steps 2 --height 64 --width 64 --frames 4
M14_shape_mismatch || . || R || transformer || vdp generate p -o out/M14.mp4 --model bad/M14_shape_mismatch --steps 2 --height 64 --width 64 --frames 4
M05_das || . || R || models/das || vdp generate p -o out/m05.mp4 --model models/das --steps 2 --height 64 --width 64 --frames 4
M05b_lgvi || . || R || models/lgvi || vdp generate p -o out/m05b.mp4 --model models/lgvi --steps 2 --height 64 --width 64 --frames 4
S01_int3 || . || I || || timeout -s INT 3 vdp generate p -o out/s01.mp4 --steps 50
S02_int9 || . || I || || timeout -s INT 9 vdp generate p -o out/s02.mp4 --steps 50
S03_int_sampling || . || I || || timeout -s INT 12 vdp generate p -o out/s03.mp4 --steps 400 --height 128 --width 128 --frames 8
S04_inpaint_int || . || R || --steps && 3000 || vdp inpaint inp/v.mp4 'remove it' -o out/s04.mp4 --steps 3000
S05_gen_term_sampling || . || I || || timeout -s TERM 12 vdp generate p -o out/s05.mp4 --steps 400 --height 128 --width 128
S06_das_steps2000 || das || R || --steps && 2000 || vdp das --image img.png --depth depth.npy --prompt x --steps 2000 -o o/s06.mp4
S04b_inpaint_int || . || R || --steps && 1000 || vdp inpaint inp/v.mp4 'remove it' -o out/s04.mp4 --steps 1000
S04c_inpaint_int || . || I || || timeout -s INT 12 vdp inpaint inp/v.mp4 'remove it' -o out/s04.mp4 --steps 900
TV00_ok || das || K || || vdp track-video --image img.png --depth depth.npy --camera 'rot y 30' -o o/tv.mp4 --frames 9 --height 32 --width 32
TV_depth_nan || das || R || --depth && row 3 && column 4 && nan || vdp track-video --image img.png --depth depth_nan.npy -o o/depth_nan.mp4 --frames 9 --height 32 --width 32
TV_depth_inf || das || R || --depth && row 5 && column 7 && inf || vdp track-video --image img.png --depth depth_inf.npy -o o/depth_inf.mp4 --frames 9 --height 32 --width 32
TV_depth_zero || das || R || --depth || vdp track-video --image img.png --depth depth_zero.npy -o o/depth_zero.mp4 --frames 9 --height 32 --width 32
TV_depth_neg || das || R || --depth || vdp track-video --image img.png --depth depth_neg.npy -o o/depth_neg.mp4 --frames 9 --height 32 --width 32
TV_depth_3d || das || R || --depth && shape || vdp track-video --image img.png --depth depth_3d.npy -o o/depth_3d.mp4 --frames 9 --height 32 --width 32
TV_depth_1d || das || R || --depth && shape || vdp track-video --image img.png --depth depth_1d.npy -o o/depth_1d.mp4 --frames 9 --height 32 --width 32
TV_depth_empty || das || R || --depth && depth_empty || vdp track-video --image img.png --depth depth_empty.npy -o o/depth_empty.mp4 --frames 9 --height 32 --width 32
TV_depth_tiny || das || KR || --depth && \(1, 1\)|1x1 || vdp track-video --image img.png --depth depth_tiny.npy -o o/depth_tiny.mp4 --frames 9 --height 32 --width 32
TV_depth_int || das || K || || vdp track-video --image img.png --depth depth_int.npy -o o/depth_int.mp4 --frames 9 --height 32 --width 32
TV_depth_bool || das || R || --depth && bool || vdp track-video --image img.png --depth depth_bool.npy -o o/depth_bool.mp4 --frames 9 --height 32 --width 32
TV_depth_complex || das || R || --depth && complex || vdp track-video --image img.png --depth depth_complex.npy -o o/depth_complex.mp4 --frames 9 --height 32 --width 32
TV_depth_str || das || R || --depth && depth_str || vdp track-video --image img.png --depth depth_str.npy -o o/depth_str.mp4 --frames 9 --height 32 --width 32
TV_depth_obj || das || R || --depth && depth_obj || vdp track-video --image img.png --depth depth_obj.npy -o o/depth_obj.mp4 --frames 9 --height 32 --width 32
TV_depth_text || das || R || --depth && depth_text && not a|array|npy file || vdp track-video --image img.png --depth depth_text.npy -o o/depth_text.mp4 --frames 9 --height 32 --width 32
TV_depth_two.npz || das || R || --depth && depth_two || vdp track-video --image img.png --depth depth_two.npz -o o/x.mp4 --frames 9 --height 32 --width 32
TV_depth_one.npz || das || K || || vdp track-video --image img.png --depth depth_one.npz -o o/x.mp4 --frames 9 --height 32 --width 32
TV_depth.pt || das || K || || vdp track-video --image img.png --depth depth.pt -o o/x.mp4 --frames 9 --height 32 --width 32
TV_depth_dict.pt || das || R || --depth && depth_dict || vdp track-video --image img.png --depth depth_dict.pt -o o/x.mp4 --frames 9 --height 32 --width 32
TV_disp_zero || das || R || --depth && disparity || vdp track-video --image img.png --depth disp_zero.npy --depth-meaning disparity -o o/x.mp4 --frames 9 --height 32 --width 32
TV_depth_png || das || R || --depth && img.png || vdp track-video --image img.png --depth img.png -o o/x.mp4 --frames 9 --height 32 --width 32
CAM01 || das || R || --camera && q || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot q 30'
CAM02 || das || R || --camera && trans || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'trans 1 2'
CAM03 || das || R || --camera && radius || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'spiral -1'
CAM04 || das || R || --camera && radius || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'spiral 0'
CAM05 || das || R || --camera && rot || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y'
CAM06 || das || R || --camera && abc || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y abc'
CAM07 || das || R || --camera && 100 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y 30 0 100'
CAM08 || das || R || --camera && 5\.\.2 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y 30 5 2'
CAM09 || das || R || --camera && 8\.5 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y 30 0 8.5'
CAM10 || das || R || --camera && nan || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'trans nan 0 0'
CAM11 || das || W~black|behind|off screen|outside || --camera || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'trans 1e38 1e38 1e38'
CAM12 || das || R || --camera && 1e39|1e\+39 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'trans 0 0 1e39'
CAM13 || das || KR || --camera || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y 1e300'
CAM14 || das || R || --camera && radius|1e\+?300 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'spiral 1e300'
CAM15 || das || R || --camera && zoom || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'zoom 2'
CAM16 || das || K || || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera ';;;;'
CAM17 || das || W~black|behind || --camera || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'trans 0 0 -100'
CAM18 || das || KR || --camera || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'trans 0 0 -1'
CAM19 || das || K || || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'ROT Y 30'
CAM20 || das || R || --camera && -1 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera 'rot y 30 -1 5'
CAM_long || das || K || || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera "$(cat longcam.txt)"
CAM_longnum || das || R || --camera || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/cam.mp4 --camera "$(cat longnum.txt)"
OM01_empty_mask || das || R || --object-mask || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om1.mp4 --object-mask mask_empty.png --object-motion up
OM02_full_mask || das || K || || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om2.mp4 --object-mask mask_full.png --object-motion rot
OM03_text_mask || das || R || --object-mask && mask_text || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om3.mp4 --object-mask mask_text.png --object-motion up
OM04_mask_nomotion || das || R || --object-motion || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om4.mp4 --object-mask mask.png
OM05_dist_nan || das || R || --object-distance && nan || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om5.mp4 --object-mask mask.png --object-motion up --object-distance nan
OM06_dist_huge || das || KR || --object-distance || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om6.mp4 --object-mask mask.png --object-motion front --object-distance 1e30
OM07_dist_neg || das || R || --object-distance && -1e6|= || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om7.mp4 --object-mask mask.png --object-motion back --object-distance -1e6
OM08_mask_is_dir || das || R || --object-mask || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/om8.mp4 --object-mask o --object-motion up
P01_fov0 || das || R || --fov || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p1.mp4 --fov 0
P02_fov180 || das || R || --fov || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p2.mp4 --fov 180
P03_fov_nan || das || R || --fov || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p3.mp4 --fov nan
P04_fov_tiny || das || R || --fov || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p4.mp4 --fov 1e-300
P05_grid0 || das || R || --grid-size || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p5.mp4 --grid-size 0
P06_grid_big || das || R || --grid-size && 1000 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p6.mp4 --grid-size 1000
P07_point0 || das || R || --point-size || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p7.mp4 --point-size 0
P08_point_huge || das || KR || --point-size && 100000 || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p8.mp4 --point-size 100000
P09_frames1 || das || R || --frames || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p9.mp4 --frames 1
P10_w0 || das || R || --width || vdp track-video --image img.png --depth depth.npy --frames 9 --height 32 --width 0 -o o/p10.mp4
P11_odd || das || K || || vdp track-video --image img.png --depth depth.npy --frames 9 --height 31 --width 33 -o o/p11.mp4
P12_noimage || das || R || --image || vdp track-video --depth depth.npy -o o/p12.mp4
P13_nothing || das || R || --depth|--tracks || vdp track-video -o o/p13.mp4
P14_image_text || das || R || --image && mask_text || vdp track-video --image mask_text.png --depth depth.npy --frames 9 --height 32 --width 32 -o o/p14.mp4
P15_image_dir || das || R || --image || vdp track-video --image o --depth depth.npy -o o/p15.mp4
TV_huge || das || R@120 || argument --(height|width|frames) && 16000|10000 || ulimit -v 8000000; vdp track-video --image img.png --depth depth.npy --height 16000 --width 16000 --frames 10000 -o o/huge.mp4
TV_huge_grid || das || R@120 || argument --(height|width|frames) && 16000|10000 || ulimit -v 8000000; vdp track-video --image img.png --depth depth.npy --height 16000 --width 16000 --frames 10000 --grid-size 10 -o o/huge2.mp4
TV_default_point_big || das || KR@180 || --point-size || ulimit -v 8000000; vdp track-video --image img.png --depth depth.npy --point-size 200 -o o/pbig.mp4
DAS00_ok || das || K || || vdp das --image img.png --depth depth.npy --camera 'rot y 10' --prompt 'a room' -o o/das0.mp4 --save-tracking o/das0_track.mp4
DAS01_tv_ok || das || K || || vdp das --image img.png --tracking-video tv_ok.mp4 --prompt x -o o/das1.mp4
DAS02_tv_frames || das || R || --tracking-video && 5 frames || vdp das --image img.png --tracking-video tv_frames.mp4 --prompt x -o o/das2.mp4
DAS03_tv_size || das || R || --tracking-video && 64x48 || vdp das --image img.png --tracking-video tv_size.mp4 --prompt x -o o/das3.mp4
DAS04_tv_text || das || R || --tracking-video && mask_text || vdp das --image img.png --tracking-video mask_text.png --prompt x -o o/das4.mp4
DAS05_tv_fake || das || R || --tracking-video && fake.mp4 || vdp das --image img.png --tracking-video fake.mp4 --prompt x -o o/das5.mp4
DAS06_tv_zero || das || R || --tracking-video && zero.mp4 || vdp das --image img.png --tracking-video zero.mp4 --prompt x -o o/das6.mp4
DAS07_tv_and_depth || das || R || --tracking-video || vdp das --image img.png --tracking-video tv_ok.mp4 --depth depth.npy --prompt x -o o/das7.mp4
DAS08_noinput || das || R || --depth || vdp das --image img.png --prompt x -o o/das8.mp4
DAS09_steps0 || das || R || --steps || vdp das --image img.png --depth depth.npy --prompt x --steps 0 -o o/das9.mp4
DAS10_guid_inf || das || R || --guidance || vdp das --image img.png --depth depth.npy --prompt x --guidance inf -o o/das10.mp4
DAS11_seed_neg || das || R || --seed || vdp das --image img.png --depth depth.npy --prompt x --seed -3 -o o/das11.mp4
DAS12_save_tracking_bad || das || R || --save-tracking || vdp das --image img.png --depth depth.npy --prompt x --save-tracking o/t.avi -o o/das12.mp4
DAS13_empty_prompt || das || R || prompt && empty || vdp das --image img.png --depth depth.npy --prompt '' -o o/das13.mp4
DAS14_model_empty || das || R || --model && emptym || vdp das --image img.png --depth depth.npy --prompt x --model emptym -o o/das14.mp4
DAS15_model_vchitect || das || R || --model|vch_saved || vdp das --image img.png --depth depth.npy --prompt x --model models/vch_saved -o o/das15.mp4
DAS16_model_das || das || K || || vdp das --image img.png --depth depth.npy --prompt x --model models/das --steps 2 -o o/das16.mp4
TR_tracks_ok.npz || das || K || || vdp track-video --tracks tracks_ok.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_2d.npz || das || K || || vdp track-video --tracks tracks_2d.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_wrongT.npz || das || R || --tracks && 5 frames || vdp track-video --tracks tracks_wrongT.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_badshape.npz || das || R || --tracks && shape || vdp track-video --tracks tracks_badshape.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_badvis.npz || das || R || --tracks && visibility || vdp track-video --tracks tracks_badvis.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_nan.npz || das || KR || --tracks && nan|finite || vdp track-video --tracks tracks_nan.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_negdepth.npz || das || W~black|behind || --tracks || vdp track-video --tracks tracks_negdepth.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_huge.npz || das || W~black|outside|off || --tracks || vdp track-video --tracks tracks_huge.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_nokey.npz || das || R || --tracks && foo || vdp track-video --tracks tracks_nokey.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_empty.npz || das || W~black|no point|empty || --tracks || vdp track-video --tracks tracks_empty.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_list.pt || das || R || --tracks && list || vdp track-video --tracks tracks_list.pt --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_tensor.pt || das || K || || vdp track-video --tracks tracks_tensor.pt --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_text.npz || das || R || --tracks && tracks_text && not a|npz|zip || vdp track-video --tracks tracks_text.npz --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_img.png || das || R || --tracks && \.png || vdp track-video --tracks img.png --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_das_depth_and_tracks || das || R || --tracks || vdp das --image img.png --depth depth.npy --tracks tracks_ok.npz --prompt x -o o/x.mp4
TR_tracks_trunc.pt || das || R || --tracks && tracks_trunc || vdp track-video --tracks tracks_trunc.pt --frames 9 --height 32 --width 32 -o o/tr.mp4
TR_tracks_garbage.pt || das || R || --tracks && tracks_garbage || vdp track-video --tracks tracks_garbage.pt --frames 9 --height 32 --width 32 -o o/tr.mp4
TV_depth_trunc.pt || das || R || --depth && depth_trunc && truncat|corrupt|not a || vdp track-video --image img.png --depth depth_trunc.pt --frames 9 --height 32 --width 32 -o o/x.mp4
RV_das_trunc_head || das || R || --tracking-video && tv_trunc_head || vdp das --image img.png --tracking-video tv_trunc_head.mp4 --prompt x -o o/x.mp4
TV_point_1e6_default || das || R@120 || --point-size && 1000000 || ulimit -v 8000000; vdp track-video --image img.png --depth depth.npy --point-size 1000000 -o o/pmax.mp4
M_DAS_cfg_layers || das || R || DAS_cfg_layers || vdp das --image img.png --depth depth.npy --prompt x --model ../bad/DAS_cfg_layers --steps 1 -o o/m.mp4
M_DAS_trunc || das || R || DAS_trunc || vdp das --image img.png --depth depth.npy --prompt x --model ../bad/DAS_trunc --steps 1 -o o/m.mp4
IN00_ok || inp || K || || vdp inpaint v.mp4 'remove the bird' -o o/i0.mp4
IN01_empty || inp || R || instruction && empty || vdp inpaint v.mp4 ' ' -o o/i1.mp4
IN02_missing || inp || R || input_video && nope.mp4 || vdp inpaint nope.mp4 'remove' -o o/i2.mp4
IN03_w7 || inp || R || --width || vdp inpaint v.mp4 'remove' -o o/i3.mp4 --width 7
IN04_h0 || inp || R || --height || vdp inpaint v.mp4 'remove' -o o/i4.mp4 --height 0
IN05_maxframes0 || inp || R || --max-frames || vdp inpaint v.mp4 'remove' -o o/i5.mp4 --max-frames 0
IN06_gs_nan || inp || R || --gs || vdp inpaint v.mp4 'remove' -o o/i6.mp4 --gs nan
IN07_igs_inf || inp || R || --igs || vdp inpaint v.mp4 'remove' -o o/i7.mp4 --igs inf
IN08_fps0 || inp || R || --fps || vdp inpaint v.mp4 'remove' -o o/i8.mp4 --fps 0
IN09_fake || inp || R || input_video && fake2.mp4 || cp fake.mp4 fake2.mp4; vdp inpaint fake2.mp4 'remove' -o o/i9.mp4
IN10_zero || inp || R || input_video && zero.mp4 || touch zero.mp4; vdp inpaint zero.mp4 'remove' -o o/i10.mp4
IN11_gif || inp || K || || vdp inpaint v.gif 'remove' -o o/i11.webp
IN12_1frame || inp || K || || vdp inpaint v1.mp4 'remove' -o o/i12.mp4
IN13_llava_nomodel || inp || R || --llava || vdp inpaint v.mp4 'remove' -o o/i13.mp4 --llava /some/folder
IN14_model_empty || inp || R || --model && em || mkdir -p em; vdp inpaint v.mp4 'remove' -o o/i14.mp4 --model em
IN15_model_lgvi || inp || K || || vdp inpaint v.mp4 'remove' -o o/i15.mp4 --model models/lgvi --steps 2 --width 48 --height 32
IN16_model_vch || inp || R || vch_saved && unet || vdp inpaint v.mp4 'remove' -o o/i16.mp4 --model models/vch_saved --steps 2
IN17_big_in || inp || K || || vdp inpaint vbig.mp4 'remove' -o o/i17.mp4
IN18_mp4_is_dir || inp || R || input_video || mkdir -p dirvid.mp4; vdp inpaint dirvid.mp4 'remove' -o o/i18.mp4
IN19_out_is_input || inp || R || -o/--output && same.mp4 || cp v.mp4 same.mp4; vdp inpaint same.mp4 'remove' -o same.mp4
IN20_text_ext || inp || R || input_video && /etc/passwd || vdp inpaint /etc/passwd 'remove' -o o/i20.mp4
IN21_max_new_tokens0 || inp || R || --max-new-tokens || vdp inpaint v.mp4 'remove' -o o/i21.mp4 --lgvi-i --max-new-tokens 0
IN22_long_video || inp || K@240 || || ulimit -v 5000000; /usr/bin/time -f maxrss=%MkB vdp inpaint long720.mp4 'remove the bird' -o o/i22.mp4 --max-frames 2
RV_inpaint_trunc_head.mp4 || vio || R || input_video && trunc_head || vdp inpaint r/trunc_head.mp4 'remove it' -o o/ri.mp4
RV_inpaint_audio.mp4 || vio || R || input_video && audio.mp4 && audio|no video || vdp inpaint r/audio.mp4 'remove it' -o o/ri.mp4
RV_inpaint_bomb_header.gif || vio || R || input_video && bomb_header || vdp inpaint r/bomb_header.gif 'remove it' -o o/ri.mp4
RV_inpaint_trunc.gif || vio || R || input_video && trunc.gif || vdp inpaint r/trunc.gif 'remove it' -o o/ri.mp4
RV_inpaint_trunc.webp || vio || R || input_video && trunc.webp && cannot decode|truncat|corrupt || vdp inpaint r/trunc.webp 'remove it' -o o/ri.mp4
RV_inpaint_trunc_half.mp4 || vio || R || input_video && trunc_half && truncat|corrupt || vdp inpaint r/trunc_half.mp4 'remove it' -o o/ri.mp4
M_LGVI_cfg_unet || . || R || LGVI_cfg_unet && unet || vdp inpaint inp/v.mp4 'remove it' --model bad/LGVI_cfg_unet --steps 1 --width 48 --height 32 -o out/m.mp4
M_LGVI_trunc_unet || . || R || LGVI_trunc_unet && unet || vdp inpaint inp/v.mp4 'remove it' --model bad/LGVI_trunc_unet --steps 1 --width 48 --height 32 -o out/m.mp4
M_LGVI_badsched || . || KR || LGVI_badsched && scheduler || vdp inpaint inp/v.mp4 'remove it' --model bad/LGVI_badsched --steps 1 --width 48 --height 32 -o out/m.mp4
D_man_trunc || . || R || --manifest && trunc.json || vdp download --list --manifest man/trunc.json
D_man_empty || . || R || --manifest && empty.json || vdp download --list --manifest man/empty.json
D_man_list || . || R || --manifest && list.json || vdp download --list --manifest man/list.json
D_man_binary || . || R || --manifest && binary.json || vdp download --list --manifest man/binary.json
D_man_self_require || . || KR || --manifest && cycle || vdp download --list --manifest man/self_require.json
D_man_cycle || . || KR || --manifest && cycle || vdp download --list --manifest man/cycle.json
D_man_bad_sha || . || R || --manifest && sha256 || vdp download --list --manifest man/bad_sha.json
D_man_bad_rev || . || R || --manifest && revision || vdp download --list --manifest man/bad_rev.json
D_man_bad_repo || . || R || --manifest && repo_id || vdp download --list --manifest man/bad_repo.json
D_man_version2 || . || R || --manifest && manifest_version || vdp download --list --manifest man/version2.json
D_man_dup || . || R || --manifest && twice || vdp download --list --manifest man/dup.json
D_man_folder_mismatch || . || R || --manifest && comfyui_folder || vdp download --list --manifest man/folder_mismatch.json
D_man_missing || . || R || --manifest && nope.json || vdp download --list --manifest man/nope.json
D_man_dir || . || R || --manifest && folder|directory|not a file || vdp download --list --manifest man
D01_unknown || . || R || NAME && Vchitect-2.0 || vdp download Vchitect-2.0
D02_empty_name || . || R || NAME || vdp download ''
D03_dest_file || . || R || --dest && exist.mp4 || vdp download Vchitect-2.0-2B --dest out/exist.mp4
D04_offline || . || R || HF_HUB_OFFLINE || vdp download Vchitect-2.0-2B --dest out/dl
D05_self_require || . || R || --manifest && cycle || vdp download Vchitect-2.0-2B --manifest man/self_require.json
D06_cycle || . || R || --manifest && cycle || vdp download RepVideo --manifest man/cycle.json
D07_rev_space || . || R || --revision || vdp download Vchitect-2.0-2B --revision ' main'
D08_list_and_name || . || R || --list || vdp download --list lgvi
D09_comfy_file || . || R || --comfyui-models || vdp download lgvi --comfyui-models out/exist.mp4
D10_comfy_root || . || R || --comfyui-models && cu/models || mkdir -p cu/models; vdp download lgvi --comfyui-models cu
D11_both || . || R || --comfyui-models && --dest || vdp download lgvi --dest x --comfyui-models cu/models
D12_repo_id || . || R || HF_HUB_OFFLINE|jianzongwu || vdp download jianzongwu/lgvi --dest out/dl2
D14_noendpoint || . || R || reach && 127.0.0.1:9 || HF_HUB_OFFLINE=0 HF_ENDPOINT=http://127.0.0.1:9 vdp download lgvi --dest out/dl3
CV00_ok || sat || K || || vdp convert repvideo --sat ok --cogvideox cog -o out/ok
CV00b_ok_norelease || sat || R || mp_rank_00_model_states.pt && CogVideoXRepVideoTransformer3DModel || vdp convert repvideo --sat ok -o out/ok_t
CV_nolatest || sat || R || --sat && latest || vdp convert repvideo --sat nolatest --cogvideox cog -o out/nolatest
CV_latest_binary || sat || R || latest_binary/latest || vdp convert repvideo --sat latest_binary --cogvideox cog -o out/latest_binary
CV_latest_missing_iter || sat || R || 123 || vdp convert repvideo --sat latest_missing_iter --cogvideox cog -o out/latest_missing_iter
CV_latest_neg || sat || R || -5 || vdp convert repvideo --sat latest_neg --cogvideox cog -o out/latest_neg
CV_text_file || sat || R || text_file || vdp convert repvideo --sat text_file --cogvideox cog -o out/text_file
CV_truncated || sat || R || truncated/ || vdp convert repvideo --sat truncated --cogvideox cog -o out/truncated
CV_truncated_tail || sat || R || truncated_tail || vdp convert repvideo --sat truncated_tail --cogvideox cog -o out/truncated_tail
CV_nomodule || sat || R || module || vdp convert repvideo --sat nomodule --cogvideox cog -o out/nomodule
CV_module_list || sat || R || module || vdp convert repvideo --sat module_list --cogvideox cog -o out/module_list
CV_tensor_only || sat || R || module || vdp convert repvideo --sat tensor_only --cogvideox cog -o out/tensor_only
CV_wrongkeys || sat || R || bogus || vdp convert repvideo --sat wrongkeys --cogvideox cog -o out/wrongkeys
CV_qkv_not_div3 || sat || R || query_key_value || vdp convert repvideo --sat qkv_not_div3 --cogvideox cog -o out/qkv_not_div3
CV_legacy || sat || R || legacy && legacy|old|zip || vdp convert repvideo --sat legacy --cogvideox cog -o out/legacy
CV_plain_zip || sat || R || plain_zip || vdp convert repvideo --sat plain_zip --cogvideox cog -o out/plain_zip
CV_nan || sat || R || nan_weights && finite || vdp convert repvideo --sat nan_weights --cogvideox cog -o out/nan
CV_cog_badjson || sat || R || cog_badjson && config.json || vdp convert repvideo --sat ok --cogvideox cog_badjson -o out/cog_badjson
CV_cog_badcfg || sat || R || cog_badcfg && num_layers || vdp convert repvideo --sat ok --cogvideox cog_badcfg -o out/cog_badcfg
CV_cog_novae || sat || R || vae || vdp convert repvideo --sat ok --cogvideox cog_novae -o out/cog_novae
CV_cog_listcfg || sat || R || cog_listcfg && config.json || vdp convert repvideo --sat ok --cogvideox cog_listcfg -o out/cog_listcfg
CV_out_exists || sat || R || -o/--output && exists || vdp convert repvideo --sat ok --cogvideox cog -o out/ok
CV_out_file || sat || R || -o/--output && afile || touch out/afile; vdp convert repvideo --sat ok --cogvideox cog -o out/afile
CV_out_noparent || sat || R || -o/--output && nope || vdp convert repvideo --sat ok --cogvideox cog -o out/nope/x
CV_sat_file || sat || R || --sat && latest || vdp convert repvideo --sat ok/latest --cogvideox cog -o out/y
CV_cog_file || sat || R || --cogvideox && latest || vdp convert repvideo --sat ok --cogvideox ok/latest -o out/y
CS1 || sat || I || || timeout -s TERM 5 vdp convert repvideo --sat ok --cogvideox cog_big -o out/cs1
CS2 || sat || I || || timeout -s TERM 6 vdp convert repvideo --sat ok --cogvideox cog_big -o out/cs2
CS3 || sat || I || || timeout -s TERM 7 vdp convert repvideo --sat ok --cogvideox cog_big -o out/cs3
CS4 || sat || I || || timeout -s INT 6 vdp convert repvideo --sat ok --cogvideox cog_big -o out/cs4
D_man_traversal_file || . || R || --manifest && path || vdp download --list --manifest man/traversal_file.json
D_man_traversal_name || . || R || --manifest && name || vdp download --list --manifest man/traversal_name.json
D_man_traversal_newline || . || R || --manifest || vdp download --list --manifest man/traversal_newline.json
D_man_name_newline || . || R || --manifest && name || vdp download --list --manifest man/name_newline.json
D_man_abs_file || . || R || --manifest && /etc/passwd || vdp download --list --manifest man/abs_file.json
D_man_allow_traversal || . || R || --manifest && allow_patterns || vdp download --list --manifest man/allow_traversal.json
D13_dotdot_name || . || R || NAME && \.\./\.\./etc || vdp download ../../etc
CV_latest_traversal || sat || R || latest_traversal/latest && \.\./\.\./etc || vdp convert repvideo --sat latest_traversal --cogvideox cog -o out/latest_traversal
CV_raw_pickle || sat || R || raw_pickle || vdp convert repvideo --sat raw_pickle --cogvideox cog -o out/raw_pickle
CV_evil_pickle || sat || R || evil_pickle && allow-pickle|refuse || vdp convert repvideo --sat evil_pickle --cogvideox cog -o out/evil_pickle
CV_allow_pickle_evil || sat || KR || || vdp convert repvideo --sat evil_pickle --cogvideox cog -o out/evil --allow-pickle
TR_tracks_evil.pt || das || R || --tracks && tracks_evil || vdp track-video --tracks tracks_evil.pt --frames 9 --height 32 --width 32 -o o/tr.mp4
TV_depth_evil.pt || das || R || --depth && depth_evil || vdp track-video --image img.png --depth depth_evil.pt --frames 9 --height 32 --width 32 -o o/x.mp4
P01_pickle_te || . || R || P_pickle_te && text_encoder || vdp inpaint inp/v.mp4 'remove' -o out/p1.mp4 --model bad/P_pickle_te --steps 1 --width 48 --height 32
P02_pickle_vae || . || R || P_pickle_vae/vae || vdp inpaint inp/v.mp4 'remove' -o out/p2.mp4 --model bad/P_pickle_vae --steps 1 --width 48 --height 32
"""


def _register_cli_table():
    for line in CLI_TABLE.strip().splitlines():
        id, cwd, expect, names, command = [part.strip() for part in re.split(r"\s*\|\|\s*", line, maxsplit=4)]
        timeout = None
        if "@" in expect:
            expect, seconds = expect.split("@")
            timeout = float(seconds)
        warn = None
        if expect.startswith("W~"):
            expect, warn = "W", expect[2:]
        section = _SECTIONS_BY_PREFIX(id)
        cli(id, section, cwd, command, expect, names or None, timeout, warn)
    for id, command in (("G35", "immutable output folder"), ("G36", "read-only file system"),
                        ("G37", "full disk"), ("CV_out_ro", "read-only file system"),
                        ("CV_out_full", "full disk")):
        ATTEMPTS.append(Attempt(id, _SECTIONS_BY_PREFIX(id), None, f"{command}: {NOT_ROOT_FS}"))


def _SECTIONS_BY_PREFIX(id: str) -> str:
    for prefixes, section in (
        (("D_man_trav", "D_man_abs", "D_man_allow", "D_man_name", "D13", "CV_latest_trav", "CV_raw", "CV_evil",
          "CV_allow", "TR_tracks_evil", "TV_depth_evil", "P01_pickle", "P02_pickle", "SG"), "6 safety"),
        (("G", "X"), "1a generate"), (("I0",), "1b info"), (("M0", "M1"), "1c model folders"),
        (("S0",), "1d interrupts, step limits"), (("TV", "CAM", "OM", "P0", "P1", "DAS", "TR_", "RV_das", "M_DAS"),
                                                  "1e das / track-video"),
        (("IN", "RV_inpaint", "M_LGVI"), "1f inpaint"), (("C01", "T01"), "1g concurrency, start-up"),
        (("D", "CV", "H0", "CS"), "4 download / convert"),
    ):
        if id.startswith(prefixes):
            return section
    return "other"


# ---------------------------------------------------------------------------- video I/O (section 2), in-process


def _frames(kind: str):
    import numpy as np
    import torch

    rng = np.random.default_rng(1)
    base = rng.random((4, 16, 16, 3)).astype(np.float32)
    table = {
        "nan": lambda: np.full_like(base, np.nan), "inf": lambda: np.full_like(base, np.inf), "f255": lambda: base * 255,
        "pm1": lambda: base * 2 - 1, "one_plus": lambda: np.where(base > 0.99, np.float32(1.0000001), base),
        "minus_tiny": lambda: np.where(base < 0.01, np.float32(-1e-7), base), "int64": lambda: (base * 255).astype(np.int64),
        "uint16": lambda: (base * 65535).astype(np.uint16), "bool": lambda: base > 0.5, "f16": lambda: base.astype(np.float16),
        "f64": lambda: base.astype(np.float64), "c64": lambda: base.astype(np.complex64), "obj": lambda: base.astype(object),
        "chw": lambda: base.transpose(0, 3, 1, 2), "chw_w3": lambda: rng.random((2, 3, 16, 3)).astype(np.float32),
        "one": lambda: base[:1], "zero": lambda: base[:0], "odd": lambda: rng.random((2, 15, 17, 3)).astype(np.float32),
        "px": lambda: rng.random((2, 1, 1, 3)).astype(np.float32), "hw3": lambda: base[0], "batch": lambda: base[None],
        "rgba": lambda: np.concatenate([base, base[..., :1]], -1), "gray": lambda: base[..., :1],
        "torch_bf16": lambda: torch.from_numpy(base).to(torch.bfloat16), "grad": lambda: torch.from_numpy(base).requires_grad_(),
        "torch_chw": lambda: torch.from_numpy(base).permute(0, 3, 1, 2), "negstride": lambda: base[:, ::-1],
        "fortran": lambda: np.asfortranarray(base), "same3": lambda: np.repeat(base[:1], 3, 0),
        "big": lambda: rng.integers(0, 255, (1, 8000, 8000, 3), dtype=np.uint8), "ok": lambda: base,
    }
    return table[kind]()


def _pil(kind: str):
    import numpy as np
    from PIL import Image

    if kind == "sizes":
        return [Image.new("RGB", (16, 16)), Image.new("RGB", (8, 8))]
    if kind == "arrays":
        return [np.zeros((16, 16, 3), np.uint8)] * 2
    if kind == "rgba":
        return [Image.new("RGBA", (16, 16), (255, 0, 0, 128))] * 2
    return []


def _write(name: str, frames, **kwargs):
    def run(world):
        from video_diffusion_pack.video_io import write_video

        return write_video(world.path("vio/o", name), frames() if callable(frames) else frames, **kwargs)
    return run


def _fps_readback(expected: float):
    def check(path):
        from video_diffusion_pack.video_io import read_video

        fps = read_video(path).fps
        if fps is None or not math.isclose(fps, expected, rel_tol=0.01):
            return f"written; reads back at fps={fps}, not {expected:g}"
        return None
    return check


def _video_ok(path):
    from video_diffusion_pack.video_io import read_video

    read_video(path)
    return None


WRITE_ROWS = [
    # id, file, frames, kwargs, expect, names
    ("W01", "w01.mp4", "nan", {}, "R", "nan"), ("W02", "w02.mp4", "inf", {}, "R", "inf"),
    ("W03", "w03.mp4", "f255", {}, "R", "0\\.\\.1"), ("W05", "w05.mp4", "pm1", {}, "R", "0\\.\\.1"),
    ("W05b", "w05b.mp4", "one_plus", {}, "R", "1\\.0000001"), ("W05c", "w05c.mp4", "minus_tiny", {}, "R", "1e-07"),
    ("W06", "w06.mp4", "int64", {}, "R", "int64"), ("W07", "w07.mp4", "uint16", {}, "R", "uint16"),
    ("W08", "w08.mp4", "bool", {}, "R", "bool"), ("W09", "w09.mp4", "f16", {}, "K", None),
    ("W10", "w10.mp4", "f64", {}, "K", None), ("W11", "w11.mp4", "c64", {}, "R", "complex64"),
    ("W12", "w12.mp4", "obj", {}, "R", "object"), ("W13", "w13.mp4", "chw", {}, "R", "permute|channels"),
    ("W14", "w14.mp4", "chw_w3", {}, "K", None), ("W15", "w15.mp4", "one", {}, "K", None),
    ("W16", "w16.mp4", "zero", {}, "R", "empty"), ("W17", "w17.mp4", "odd", {}, "K", None),
    ("W18", "w18.mp4", "px", {}, "K", None), ("W19", "w19.gif", "px", {}, "K", None),
    ("W20", "w20.mp4", "hw3", {}, "R", "4 dimensions"), ("W21", "w21.mp4", "batch", {}, "R", "batch"),
    ("W22", "w22.mp4", "rgba", {}, "R", "3\\]"), ("W23", "w23.mp4", "gray", {}, "R", "3\\]|channel"),
    ("W24", "w24.mp4", "torch_bf16", {}, "K", None), ("W25", "w25.mp4", "grad", {}, "K", None),
    ("W26", "w26.mp4", "torch_chw", {}, "R", "permute|channels"),
    ("W27", "w27.gif", "pil:sizes", {}, "R", "frames\\[1\\]"), ("W28", "w28.gif", "pil:arrays", {}, "R", "PIL"),
    ("W29", "w29.gif", "pil:empty", {}, "R", "empty"), ("W30", "w30.gif", "pil:rgba", {}, "K", None),
    ("W31", "w31.mp4", "ok", dict(fps=1e-4), "RC", "fps"), ("W32", "w32.mp4", "ok", dict(fps=1e6), "KR", "fps"),
    ("W33", "w33.webp", "ok", dict(fps=2000), "RC", "fps"), ("W34", "w34.gif", "ok", dict(fps=0.001), "RC", "fps"),
    ("W35", "w35.webp", "ok", dict(fps=1e-4), "RC", "fps"), ("W36", "w36.mp4", "ok", dict(fps="8"), "R", "fps"),
    ("W37", "w37.mp4", "ok", dict(fps=True), "R", "fps"), ("W38", "w38.mp4", "ok", dict(quality=101), "R", "quality"),
    ("W39", "w39.mp4", "ok", dict(quality=50.5), "R", "quality"),
    ("W40", "w40.gif", "ok", dict(quality=50), "R", "quality"), ("W41", "w41.mp4", "ok", dict(quality=100), "K", None),
    ("W43", "nosuch/w43.mp4", "ok", {}, "R", "nosuch"), ("W44", "w44.avi", "ok", {}, "R", "\\.avi"),
    ("W45", "w45.GIF", "ok", {}, "K", None), ("W49", "w49.mp4", "negstride", {}, "K", None),
    ("W50", "w50.mp4", "fortran", {}, "K", None), ("W51", "w51.webp", "same3", {}, "K", None),
    ("W52", "w52.mp4", "big", {}, "K", None), ("W54", "w" * 300 + ".mp4", "ok", {}, "R", "255|too long|characters"),
    ("W54b", "w" * 241 + ".mp4", "ok", {}, "K", None), ("W55", ".mp4", "ok", {}, "R", "extension"),
]


def _register_video_io():
    section = "2 video I/O"
    for id, name, kind, kwargs, expect, names in WRITE_ROWS:
        frames = (lambda k=kind: _pil(k[4:])) if kind.startswith("pil:") else (lambda k=kind: _frames(k))
        check = _video_ok
        if expect == "RC":  # refuse, or store the rate asked for
            expect, check = "KR", _fps_readback(kwargs["fps"])
        api(id, section, _write(name, frames, **kwargs), expect, names, check=check)

    def directory(world):
        from video_diffusion_pack.video_io import write_video

        (world.path("vio/o/w42.mp4")).mkdir(exist_ok=True)
        return write_video(world.path("vio/o/w42.mp4"), _frames("ok"))
    api("W42", section, directory, "R", "w42\\.mp4 && folder|directory")

    def bytes_path(world):
        from video_diffusion_pack.video_io import write_video

        return write_video(str(world.path("vio/o/w48.mp4")).encode(), _frames("ok"))
    api("W48", section, bytes_path, "KR", "path", check=_video_ok)

    def nul(world):
        from video_diffusion_pack.video_io import write_video

        folder = world.path("vio/o")
        before = set(os.listdir(folder))
        try:
            write_video(str(folder / "w\0x.mp4"), _frames("ok"))
        finally:
            stray = set(os.listdir(folder)) - before
            if stray:
                raise RuntimeError(f"stray files left: {sorted(stray)}")
    api("W53", section, nul, "R", "null|NUL|\\\\x00|\\\\0")

    def link(world):
        from video_diffusion_pack.video_io import write_video

        target = world.path("vio/o/w56_target.txt")
        target.write_text("keep")
        link_path = world.path("vio/o/w56.mp4")
        link_path.unlink(missing_ok=True)
        link_path.symlink_to(target)
        write_video(link_path, _frames("ok"))
        return "kept" if target.read_text() == "keep" else "the link's target was overwritten"
    api("W56", section, link, "K", check=lambda result: None if result == "kept" else result)

    def gif_rate(world):
        from video_diffusion_pack.video_io import read_video, write_video

        write_video(world.path("vio/o/w57.gif"), _frames("ok"), fps=40)
        return read_video(world.path("vio/o/w57.gif")).fps
    api("W57", section, gif_rate, "K", check=lambda fps: None if fps and 40 <= fps <= 50 else f"fps {fps}")

    for id, extension, sig in (("W58", "mp4", signal.SIGINT), ("W59", "mp4", signal.SIGTERM),
                               ("W60", "webp", signal.SIGTERM)):
        api(id, section, lambda world, e=extension, s=sig: _signal_during_write(world, e, s), "K",
            check=lambda left: f"left behind: {left}" if left else None)

    for id, name, expect, names, kwargs in (
        ("R01", "zero.mp4", "R", "zero\\.mp4", {}), ("R02", "text.mp4", "R", "text\\.mp4", {}),
        ("R03", "trunc_half.mp4", "KR", "trunc_half\\.mp4 && truncat|corrupt", {}),
        ("R04", "trunc_head.mp4", "R", "trunc_head\\.mp4", {}), ("R05", "trunc_tail.mp4", "KR", "trunc_tail", {}),
        ("R06", "audio.mp4", "R", "audio\\.mp4 && audio|video stream", {}),
        ("R08", "trunc.gif", "R", "trunc\\.gif", {}), ("R09", "trunc.webp", "R", "trunc\\.webp", {}),
        ("R10", "png_as.gif", "K", None, {}), ("R11", "still.webp", "K", None, {}),
        ("R12", "bomb_header.gif", "R", "bomb_header", {}), ("R13", "ok.mp4", "K", None, {}),
        ("R14", "nonexistent.mp4", "R", "nonexistent", {}),
    ):
        def read(world, n=name, k=kwargs):
            from video_diffusion_pack.video_io import read_video

            return read_video(world.path("vio/r", n), **k)
        ATTEMPTS.append(Attempt(f"{id} (read_video)", section,
                                lambda world, r=read, e=expect, n=names: run_api(world, r, e, n, None, None)))
    ATTEMPTS.append(Attempt("R07 (read_video)", section, _huge_read))
    api("W46", section, None, not_reproducible=f"read-only file system: {NOT_ROOT_FS}")
    api("W47", section, None, not_reproducible=f"full disk: {NOT_ROOT_FS}")


def _signal_during_write(world, extension, sig):
    folder = world.path("vio/o", f"sig_{extension}_{int(sig)}")
    folder.mkdir(exist_ok=True)
    code = ("import numpy as np, sys; from video_diffusion_pack.video_io import write_video; "
            "write_video(sys.argv[1], np.random.default_rng(0).integers(0, 255, (60, 256, 256, 3), dtype=np.uint8))")
    process = subprocess.Popen([sys.executable, "-c", code, str(folder / f"v.{extension}")],
                               stderr=subprocess.PIPE, preexec_fn=_limit(MEMORY_LIMIT // 1024))
    deadline = time.monotonic() + 60
    while not any(folder.iterdir()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(sig)
    process.communicate(timeout=300)
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def _huge_read(world) -> Outcome:
    """R07 at 3840x2160: decoding the first frame must not hold the whole file's frames (tracemalloc peak)."""
    import tracemalloc

    from video_diffusion_pack.video_io import read_video

    path = world.path("vio/r/huge.mp4")
    if not path.exists():
        _write_long_video(path, frames=12, height=2160, width=3840)
    tracemalloc.start()
    try:
        video = read_video(path, max_frames=1)
        _, peak = tracemalloc.get_traced_memory()
    except Exception as error:  # noqa: BLE001
        return Outcome("crash", f"{type(error).__name__}: {error}")
    finally:
        tracemalloc.stop()
    frame_bytes = 3840 * 2160 * 3
    if peak > 4 * frame_bytes:
        return Outcome("crash", f"peak {peak / 2**20:.0f} MiB for one {frame_bytes / 2**20:.0f} MiB frame")
    return Outcome("ok", f"{video.frames.shape}: peak {peak / 2**20:.0f} MiB for a {frame_bytes / 2**20:.0f} MiB frame")


# ------------------------------------------------------------------------------ pipelines (section 3), in-process


def _g(seed=0):
    import torch

    return torch.Generator().manual_seed(seed)


def _vch(**kwargs):
    def run(world):
        settings = dict(prompt="a panda", height=32, width=32, num_frames=2, num_inference_steps=2, generator=_g())
        settings.update(kwargs() if callable(kwargs.get("__lazy__")) else kwargs)
        settings.pop("__lazy__", None)
        return world.pipe("vchitect")(**settings)
    return run


def _lazy(pipeline: str, base: dict, make):
    def run(world):
        settings = dict(base)
        settings.update(make(world) if make else {})
        if pipeline == "das" and "image" not in settings:
            settings["image"] = _das_image()
        if pipeline == "lgvi" and "video" not in settings:
            settings["video"] = _rand(3, 32, 48, 3)
        return world.pipe(pipeline)(**settings)
    return run


def _rand(*shape, seed=0):
    import torch

    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _das_image():
    import numpy as np
    from PIL import Image

    return Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))


VCH = dict(prompt="a panda", height=32, width=32, num_frames=2, num_inference_steps=2)
DAS = dict(prompt="a room", height=32, width=32, num_frames=9, num_inference_steps=2)
LGVI = dict(prompt="remove the bird", height=32, width=48, num_inference_steps=2)
REP = dict(prompt="a panda", height=32, width=32, num_frames=9, num_inference_steps=2)


def _same_as_cfg_one(world):
    import numpy as np

    pipe = world.pipe("vchitect")
    nan = pipe(**VCH, guidance_scale=float("nan"), generator=_g()).frames
    one = pipe(**VCH, guidance_scale=1.0, generator=_g()).frames
    return "identical to guidance_scale=1 (guidance silently off)" if np.array_equal(nan, one) else None


def _register_pipelines():
    import numpy as np

    section = "3 pipelines"
    nan = float("nan")

    def row(id, pipeline, base, make, expect="R", names=None, check=frames_problem, warn=None):
        api(id, section, _lazy(pipeline, base, make), expect, names, check=check, warn=warn)

    def generators(count):
        return lambda w: dict(generator=[_g(i) for i in range(count)])

    # Vchitect-2.0
    row("V00", "vchitect", VCH, None, "K")
    row("V01", "vchitect", VCH, lambda w: dict(guidance_scale=nan), "R", "guidance_scale")
    row("V02", "vchitect", VCH, lambda w: dict(guidance_scale=float("inf")), "R", "guidance_scale")
    row("V03", "vchitect", VCH, lambda w: dict(guidance_scale="7.5"), "R", "guidance_scale")
    row("V04", "vchitect", VCH, lambda w: dict(latents=_rand(1, 2, 16, 3, 3)), "R", "latents")
    row("V05", "vchitect", VCH, lambda w: dict(latents=(_rand(1, 2, 16, 4, 4) * 3).long()), "KR", "latents")
    row("V06", "vchitect", VCH, lambda w: dict(latents=_rand(1, 2, 16, 4, 4) * nan), "R", "latents")
    row("V06b", "vchitect", VCH, lambda w: dict(latents=[[1.0]]), "R", "latents")
    row("V07", "vchitect", VCH, generators(3), "R", "generator")
    row("V08", "vchitect", VCH, lambda w: dict(num_videos_per_prompt=3, generator=[_g()]), "KR", "generator")
    row("V08b", "vchitect", VCH, lambda w: dict(generator=[]), "R", "generator")
    row("V08c", "vchitect", VCH, lambda w: dict(generator=42), "R", "generator")
    row("V09", "vchitect", VCH, lambda w: dict(num_videos_per_prompt=0), "R", "num_videos_per_prompt")
    row("V10", "vchitect", VCH, lambda w: dict(num_videos_per_prompt=True), "R", "num_videos_per_prompt")
    row("V11", "vchitect", VCH, lambda w: dict(height=32.0), "R", "height")
    row("V12", "vchitect", VCH, lambda w: dict(num_frames=np.int64(2)), "KR", "num_frames && int64|numpy")
    row("V13", "vchitect", {**VCH, "prompt": None}, None, "R", "prompt")
    row("V14", "vchitect", {**VCH, "prompt": []}, None, "R", "prompt")
    row("V15", "vchitect", {**VCH, "prompt": ["a", 3]}, None, "R", "prompt")
    row("V16", "vchitect", VCH, lambda w: dict(negative_prompt=["a", "b"]), "R", "negative_prompt")
    row("V17", "vchitect", {**VCH, "prompt": None},
        lambda w: dict(prompt_embeds=_rand(1, 5, 7), pooled_prompt_embeds=_rand(1, 7)), "R", "prompt_embeds")
    row("V17b", "vchitect", {**VCH, "prompt": None}, lambda w: dict(prompt_embeds=_rand(1, 5, 7)), "R",
        "pooled_prompt_embeds")
    row("V17c", "vchitect", VCH, lambda w: dict(negative_prompt_embeds=_rand(3, 5, 7),
                                                negative_pooled_prompt_embeds=_rand(3, 7)), "R",
        "negative_prompt_embeds")
    row("V18", "vchitect", VCH, lambda w: dict(output_type="bogus"), "R", "output_type")
    row("V19", "vchitect", VCH, lambda w: dict(decode_chunk_size=0), "R", "decode_chunk_size")
    row("V20", "vchitect", VCH, lambda w: dict(callback_on_step_end=lambda *a: []), "R", "callback")
    row("V20b", "vchitect", VCH, lambda w: dict(callback_on_step_end=lambda p, i, t, k: {"latents": _rand(1)}),
        "R", "callback && latents")
    row("V21", "vchitect", VCH, lambda w: dict(callback_on_step_end_tensor_inputs=["foo"]), "R", "foo")
    row("V22", "vchitect", VCH, lambda w: dict(height=None), "R", "height")
    row("V23", "vchitect", VCH, lambda w: dict(prompt="a panda " * 120000), "W", "prompt", warn="truncat")
    row("V24", "vchitect", VCH, lambda w: dict(guidance_scale=-3), "K")
    row("V25", "vchitect", VCH, lambda w: dict(num_inference_steps=1.5), "R", "num_inference_steps")
    row("V26", "vchitect", VCH, lambda w: dict(cfg_batching="no"), "R", "cfg_batching")
    row("V27", "vchitect", VCH, lambda w: dict(use_dynamic_cfg=True, guidance_scale=nan), "R", "guidance_scale")
    row("V28", "vchitect", VCH, lambda w: dict(output_type="latent"), "K", check=None)
    row("V29", "vchitect", VCH, lambda w: dict(width=1024), "R", "width")
    row("V30", "vchitect", VCH, lambda w: dict(num_inference_steps=10**9), "R", "num_inference_steps")

    # DaS
    tv = lambda **k: (lambda w: dict(tracking_video=_rand(9, 32, 32, 3), **k))  # noqa: E731
    row("D00", "das", DAS, tv(), "K")
    row("D01", "das", DAS, lambda w: dict(tracking_video=_rand(5, 32, 32, 3)), "R", "tracking_video && 5")
    row("D02", "das", DAS, lambda w: dict(tracking_video=_rand(9, 64, 48, 3)), "R", "tracking_video && 64x48")
    row("D03", "das", DAS, lambda w: dict(tracking_video=_rand(9, 32, 32, 3) * nan), "R", "tracking_video && nan")
    row("D04", "das", DAS, lambda w: dict(tracking_video=_rand(9, 32, 32, 3) * 255), "R", "tracking_video")
    row("D04b", "das", DAS, lambda w: dict(tracking_video=_rand(9, 3, 32, 32)), "R", "tracking_video")
    row("D04c", "das", DAS, lambda w: dict(tracking_video=np.ones((9, 32, 32, 3), np.int64)), "KR", "tracking_video")
    row("D05", "das", DAS, tv(image=_das_image().resize((200, 100))), "K")
    row("D06", "das", DAS, tv(image=_rand(3, 32, 32)), "K")
    row("D06b", "das", DAS, tv(image=_rand(32, 32, 3)), "K")
    row("D06d", "das", DAS, tv(image="img.png"), "R", "image")
    row("D07", "das", DAS, tv(image=_das_image().convert("RGBA")), "K")
    row("D07b", "das", DAS, tv(image=_das_image().convert("L")), "K")
    row("D08", "das", DAS, lambda w: dict(tracking_video=_rand(10, 32, 32, 3), num_frames=10), "R", "num_frames")
    row("D09", "das", DAS, lambda w: dict(tracking_video=_rand(9, 32, 32, 3), generator=[_g(), _g(1)]), "R",
        "generator")
    row("D10", "das", DAS, tv(num_videos_per_prompt=0), "R", "num_videos_per_prompt")
    row("D11", "das", DAS, lambda w: dict(tracking_video=[_das_image()] * 8 + [_das_image().resize((16, 16))]),
        "R", "tracking_video && size|\\[8\\]")
    row("D12", "das", DAS, tv(image=None), "R", "image")
    row("D13", "das", DAS, tv(latents=_rand(1, 3, 16, 4, 4)), "R", "latents")
    row("D14", "das", DAS, tv(guidance_scale=nan), "R", "guidance_scale")
    row("D15", "das", DAS, tv(tracking_image=_rand(64, 64, 3)), "R", "tracking_image")
    row("D15b", "das", DAS, tv(tracking_image=_rand(32, 32, 3) * nan), "R", "tracking_image")
    row("D16", "das", DAS, tv(eta=nan), "R", "eta")
    row("D17", "das", DAS, tv(max_sequence_length=0), "KR", "max_sequence_length")
    row("D17b", "das", DAS, tv(max_sequence_length=-5), "R", "max_sequence_length")
    row("D18", "das", DAS, tv(image=np.asarray(_das_image())), "K")
    row("D20", "das", DAS, tv(image=_rand(3, 32, 32) * nan), "R", "image && nan|finite")
    row("D21", "das", DAS, tv(image=_rand(3, 32, 32) * 255), "R", "image && 0\\.\\.1|range")
    row("D22", "das", DAS, lambda w: dict(tracking_video=_rand(9, 32, 32, 3), latents=_rand(1, 3, 16, 4, 4) * nan),
        "R", "latents")

    # LGVI
    row("I00", "lgvi", LGVI, None, "K")
    row("I01", "lgvi", LGVI, lambda w: dict(video=_rand(3, 32, 48, 3) * nan), "R", "video && nan")
    row("I02", "lgvi", LGVI, lambda w: dict(video=[_das_image(), _das_image().resize((48, 40))]), "K")
    row("I03", "lgvi", {**LGVI, "prompt": ["a", "b", "c"]}, lambda w: dict(video=_rand(2, 3, 32, 48, 3)), "R",
        "2 videos && 3 prompts")
    row("I04", "lgvi", LGVI, lambda w: dict(video=(_rand(3, 32, 48, 3) * 255).long()), "R", "video")
    row("I05", "lgvi", LGVI, lambda w: dict(video=_rand(3, 3, 32, 48)), "R", "video")
    row("I06", "lgvi", LGVI, lambda w: dict(video=_rand(3, 32, 48, 3) * 255), "R", "video")
    row("I07", "lgvi", LGVI, lambda w: dict(generator=[_g(), _g(1)]), "R", "generator")
    row("I08", "lgvi", LGVI, lambda w: dict(num_videos_per_prompt=0), "R", "num_videos_per_prompt")
    row("I09", "lgvi", LGVI, lambda w: dict(height=30), "R", "height")
    row("I10", "lgvi", LGVI, lambda w: dict(video=_rand(3, 1, 1, 3)), "K")
    row("I11", "lgvi", LGVI, lambda w: dict(latents=_rand(1, 4, 3, 3, 3)), "R", "latents")
    row("I12", "lgvi", LGVI, lambda w: dict(guidance_scale=nan), "R", "guidance_scale")
    row("I13", "lgvi", {**LGVI, "prompt": ""}, None, "R", "prompt && empty")
    row("I14", "lgvi", {**LGVI, "prompt": None}, lambda w: dict(prompt_embeds=_rand(1, 4, 13)), "R", "prompt_embeds")
    row("I15", "lgvi", LGVI, lambda w: dict(video=_rand(0, 32, 48, 3)), "R", "video && empty")
    row("I16", "lgvi", LGVI, lambda w: dict(video=np.random.default_rng(0).random((3, 32, 48, 3))[:, ::-1]), "K")
    row("I18", "lgvi", LGVI, lambda w: dict(eta=nan), "R", "eta")
    row("I19", "lgvi", {**LGVI, "prompt": ["a", "b"]},
        lambda w: dict(video=_rand(2, 3, 32, 48, 3), negative_prompt=["x", "y", "z"]), "R", "negative_prompt")

    def lgvi_half(world):
        import torch

        from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline

        pipe = build_tiny_inpaint_pipeline(weights="random").to(dtype=torch.float16)
        pipe.set_progress_bar_config(disable=True)
        return pipe(video=_rand(3, 32, 48, 3), **LGVI, generator=_g())
    api("I20", section, lgvi_half, "K", check=frames_problem)

    # CogVideoX-RepVideo
    row("R00a", "repvideo", REP, None, "K")
    row("R00", "repvideo", REP, lambda w: dict(max_sequence_length=16), "K")
    row("R01", "repvideo", REP, lambda w: dict(num_frames=10), "R", "num_frames")
    row("R02", "repvideo", REP, lambda w: dict(generator=[_g(), _g(1)]), "R", "generator")
    row("R03", "repvideo", REP, lambda w: dict(num_videos_per_prompt=0), "R", "num_videos_per_prompt")
    row("R04", "repvideo", REP, lambda w: dict(guidance_scale=float("inf")), "R", "guidance_scale")
    row("R05", "repvideo", REP, lambda w: dict(latents=_rand(1, 3, 16, 4, 4) * nan), "R", "latents")
    row("R06", "repvideo", REP, lambda w: dict(max_sequence_length=0), "R", "max_sequence_length")


# ------------------------------------------------------------------------- control and nodes (section 5)


def _ctl_image():
    return _rand(24, 32, 3)


def _ctl_depth():
    return _rand(24, 32) + 1


def _tracks(points=None, visibility=None, **kwargs):
    import torch

    from video_diffusion_pack.control import Tracks

    if points is None:
        u, v = torch.meshgrid(torch.linspace(2, 29, 8), torch.linspace(2, 21, 6), indexing="xy")
        base = torch.stack([u.flatten(), v.flatten(), torch.full((48,), 2.0)], -1)
        points = torch.stack([base + torch.tensor([float(t), 0, 0]) for t in range(5)])
    if visibility is None:
        visibility = torch.ones(points.shape[:2], dtype=torch.bool)
    settings = dict(height=24, width=32)
    settings.update(kwargs)
    return Tracks(points, visibility, **settings)


def _render(tracks_fn, **kwargs):
    def run(world):
        from video_diffusion_pack.control import render_tracking_video

        return render_tracking_video(tracks_fn(), **kwargs)
    return run


def _black_after_first(video) -> Optional[str]:
    problem = frames_problem(video)
    return problem


def _register_control():
    import torch

    from video_diffusion_pack import control

    section = "5 control, nodes"
    nan = float("nan")

    def row(id, function, expect="R", names=None, check=None, warn=None):
        api(id, section, lambda world: function(), expect, names, check=check, warn=warn)

    tfd = control.tracks_from_depth
    row("K01", lambda: tfd(_ctl_image(), _ctl_depth() * nan, num_frames=5), "R", "depth && finite")
    row("K02", lambda: tfd(_ctl_image(), _rand(32, 24) + 1, num_frames=5), "R", "depth && 32x24")
    row("K03", lambda: tfd(_ctl_image(), (_rand(24, 32) + 1)[None], num_frames=5), "K")
    row("K04", lambda: tfd(_ctl_image(), (_ctl_depth() * 10).long(), num_frames=5), "K")
    row("K07", lambda: tfd(_rand(3, 24, 32), _ctl_depth(), num_frames=5), "R", "image")
    row("K08", lambda: tfd(_ctl_image(), _ctl_depth(), intrinsics=torch.full((3, 3), nan), num_frames=5), "R",
        "intrinsics")
    row("K09", lambda: tfd(_ctl_image(), _ctl_depth(), intrinsics=torch.zeros(3, 3), num_frames=5), "R",
        "intrinsics && singular|invert")
    row("K10", lambda: tfd(_ctl_image(), _ctl_depth(), camera=torch.eye(3), num_frames=5), "R", "camera")
    row("K11", lambda: tfd(_ctl_image(), _ctl_depth(), camera=torch.full((5, 4, 4), nan), num_frames=5), "R",
        "camera|world_to_camera")
    row("K12", lambda: tfd(_ctl_image(), _ctl_depth(), num_frames=1), "R", "num_frames")
    row("K13", lambda: tfd(_ctl_image(), _ctl_depth(), grid_size=0, num_frames=5), "R", "grid_size")
    scene = lambda: tfd(_ctl_image(), _ctl_depth(), num_frames=5)  # noqa: E731
    move = control.apply_object_motion
    row("K14", lambda: move(scene(), torch.zeros(24, 32, dtype=torch.bool), "up"), "R", "mask")
    row("K15", lambda: move(scene(), torch.ones(25, 32, dtype=torch.bool), "up"), "R", "mask && 25x32")
    row("K16", lambda: move(scene(), torch.full((24, 32), nan), "up"), "R", "mask")
    row("K17", lambda: move(scene(), torch.full((24, 32), 255.0), "up"), "K")
    row("K18", lambda: move(scene(), torch.ones(24, 32, dtype=torch.bool), "sideways"), "R", "motion")
    row("K19", lambda: move(scene(), torch.ones(24, 32, dtype=torch.bool), "up", distance=nan), "R", "distance")
    row("K20", lambda: move(scene(), torch.ones(24, 32, dtype=torch.bool), "up", distance="50"), "KR", "distance")
    row("K21", lambda: move(scene(), torch.ones(24, 32, dtype=torch.bool), "front", distance=1e300), "R",
        "distance && 1e\\+300 && float32|too large|at most|<=")
    row("K22", lambda: move(scene(), torch.ones(24, 32, 4), "up"), "R", "mask")
    render = control.render_tracking_video
    row("K23", lambda: render(_tracks(), point_size=0), "R", "point_size")
    row("K24", lambda: render(_tracks(), point_size=10**6), "KR", "point_size")
    row("K25", lambda: render(_tracks(), colors=torch.full((48, 3), nan)), "R", "colors")
    row("K26", lambda: render(_tracks(), colors=torch.full((48, 3), 7.0)), "R", "colors")
    row("K27", lambda: render(_tracks(points=torch.full((5, 48, 3), nan))), "W", "points|tracks", warn="black")
    row("K28", lambda: _tracks(visibility=torch.ones(5, 48)), "R", "visibility")
    row("K29", lambda: _tracks(points=torch.zeros(5, 48, 2)), "R", "points")
    row("K30", lambda: render(_tracks(points=torch.zeros(5, 0, 3))), "K", check=None)
    row("K31", lambda: _tracks(height=0), "R", "height")
    row("K32", lambda: render(_tracks(points=torch.full((5, 48, 3), float("inf")))), "W", "points|tracks",
        warn="black")

    def behind():
        points = _tracks().points.clone()
        points[..., 2] = -1
        return render(_tracks(points=points))
    row("K33", behind, "W", "depth|behind", warn="behind|black")
    row("K34", lambda: control.camera_trajectory("rot y 30", 10**6), "K")
    row("K35", lambda: control.camera_trajectory(b"rot y 30"), "R", "command")
    row("K36", lambda: control.camera_trajectory("rot y 30 0 4 9", 5), "R", "rot")
    row("K37", lambda: control.camera_trajectory("trans 1 2 3 0", 5), "R", "trans")
    row("K38", lambda: control.camera_trajectory("spiral 1 2 2", 5), "K")
    row("K39", lambda: control.camera_trajectory("rot y 30;;trans", 5), "R", "trans")
    row("K40", lambda: control.camera_trajectory(";" * 100000, 5), "K")
    row("K41", lambda: control.camera_trajectory("rot y 0x1F", 5), "R", "0x1F")
    row("K42", lambda: [control.camera_trajectory(c, 5) for c in ("rot y 1_000", "rot y ٣٠", "rot y 30 ０ ４")], "K")
    row("K45", lambda: control.Camera(intrinsics=torch.eye(2), world_to_camera=torch.eye(4)[None]), "R",
        "intrinsics")
    row("K46", lambda: control.default_intrinsics(24, 32, fov_degrees=nan), "R", "fov")
    row("K47", lambda: control.default_intrinsics(24, 32, fov_degrees=1e-300), "R", "fov")
    row("K48", lambda: control.disparity_to_depth(_ctl_depth() * nan), "R", "disparity")
    row("K49", lambda: control.disparity_to_depth(-_ctl_depth()), "R", "disparity")
    row("K50", lambda: control.disparity_to_depth(torch.zeros(0, 0)), "R", "disparity && empty|0")
    camera = lambda: control.Camera(control.default_intrinsics(24, 32), torch.eye(4)[None].repeat(3, 1, 1))  # noqa
    verts = lambda: torch.tensor([[0.0, 0, 2], [1, 0, 2], [0, 1, 2]])  # noqa: E731
    mesh = control.render_mesh_tracking_video
    row("K51", lambda: mesh(verts(), torch.tensor([[0, 1, 5]]), camera(), 24, 32), "R", "faces")
    row("K52", lambda: mesh(verts(), torch.tensor([[0.0, 1, 2]]), camera(), 24, 32), "R", "faces")
    row("K53", lambda: [mesh(verts(), torch.zeros(0, 3, dtype=torch.long), camera(), 24, 32),
                        mesh(verts() * torch.tensor([1.0, 1, -1]), torch.tensor([[0, 1, 2]]), camera(), 24, 32)], "K")
    row("K54", lambda: mesh(verts() * nan, torch.tensor([[0, 1, 2]]), camera(), 24, 32), "R", "vertices")

    def missing_depth_model():
        return control.estimate_depth(_ctl_image(), tempfile.mkdtemp())
    row("K57", missing_depth_model, "R", "model|folder")
    row("K58", lambda: control.estimate_depth(_ctl_image(), tempfile.mkdtemp(), prediction="foo"), "R", "prediction")

    def saved_tracks(payload, name, **kwargs):
        def run():
            folder = Path(tempfile.mkdtemp())
            path = folder / name
            if name.endswith(".npz"):
                import numpy as np

                np.savez(path, **payload)
            else:
                torch.save(payload, path)
            return control.load_tracks(path, 24, 32, **kwargs)
        return run

    points2d = _tracks().points[..., :2]
    row("K59", saved_tracks({"tracks": _tracks().points, "extra": {"a": 1}}, "t.pth"), "K", check=None)
    row("K60", saved_tracks({"pred_tracks": points2d}, "t.pt", depth=_rand(3, 24, 32)), "R", "depth")
    row("K61", saved_tracks({"pred_tracks": points2d}, "t.pt", depth=_rand(5, 24, 32) * nan), "R", "depth")
    row("K62", saved_tracks({"tracks": _tracks().points, "visibility": _rand(5, 48)}, "t.pt",
                            visibility_threshold=nan), "R", "visibility_threshold")
    row("K63", lambda: saved_tracks({"tracks": _tracks().points}, "t.pt")().__class__(
        _tracks().points, _tracks().visibility, 0, 32), "R", "height")
    _register_nodes(section)


def _comfyui_root() -> Optional[Path]:
    for candidate in (os.environ.get("VDP_COMFYUI"), REPO / ".cache/comfyui/ComfyUI"):
        if candidate and (Path(candidate) / "folder_paths.py").is_file():
            return Path(candidate)
    return None


def _register_nodes(section: str):
    import torch

    root = _comfyui_root()
    reason = None if root else "needs ComfyUI's folder_paths (unpacked by the real-ComfyUI tests under .cache/comfyui)"

    def node(id, function, expect="R", names=None, check=None):
        api(id, section, function, expect, names, check=check, not_reproducible=reason)

    def nodes():
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
            from comfy.cli_args import args

            args.cpu = True  # as the ComfyUI tests start it on a machine without CUDA
        from video_diffusion_pack.custom_nodes import das_nodes, lgvi_nodes, vchitect_nodes

        return das_nodes, lgvi_nodes, vchitect_nodes

    def depth_to_tracks(image, depth, meaning="depth (white is far)"):
        return lambda w: nodes()[0].VDPDaSDepthToTracks().build(image, depth, meaning, "rot y 10", 55.0, 0)

    node("N01", depth_to_tracks(_rand(1, 32, 32, 3), _rand(1, 16, 16, 3) + 0.1), "R", "depth && 16x16")
    node("N02", depth_to_tracks(_rand(1, 32, 32, 3), torch.zeros(1, 32, 32, 3)), "R", "depth")
    node("N03", depth_to_tracks(_rand(0, 32, 32, 3), _rand(1, 32, 32, 3) + 0.1), "R", "image && empty|0")

    def motion(mask):
        def run(w):
            das_nodes = nodes()[0]
            (tracks,) = das_nodes.VDPDaSDepthToTracks().build(_rand(1, 32, 32, 3), _rand(1, 32, 32, 3) + 0.1,
                                                             "depth (white is far)", "rot y 10", 55.0, 0)
            return das_nodes.VDPDaSObjectMotion().move(tracks, mask, "up", 50.0)
        return run
    node("N04", motion(torch.ones(1, 16, 16)), "R", "mask")
    node("N05", motion(torch.zeros(1, 32, 32)), "R", "mask")

    def camera_validate(w):
        das_nodes = nodes()[0]
        message = das_nodes.VDPDaSCameraTrajectory.VALIDATE_INPUTS(command="rot q 30", frames=9)
        if message is not True:
            raise ValueError(message)
        return das_nodes.VDPDaSCameraTrajectory().build("rot q 30", 9)
    node("N06", camera_validate, "R", "axis|q")

    def load_outside(w):
        import folder_paths
        import numpy as np

        input_folder = w.path("run/comfy_input")
        input_folder.mkdir(parents=True, exist_ok=True)
        folder_paths.set_input_directory(str(input_folder))
        secret = w.path("run/secret")
        secret.mkdir(exist_ok=True)
        np.savez(secret / "private_tracks.npz", tracks=_tracks().points.numpy())
        nodes()
        return nodes()[0].VDPDaSLoadTracks().load("../secret/private_tracks.npz", 32, 24, 0.9)
    node("N07", load_outside, "R", "path && input")

    def das_sampler(image=None, tracking=None, **kwargs):
        def run(w):
            settings = dict(pipeline=w.pipe("das"), image=_rand(1, 32, 32, 3) if image is None else image,
                            tracking_video=_rand(9, 32, 32, 3) if tracking is None else tracking, prompt="a room",
                            negative_prompt="", seed=0, steps=2, cfg=6.0, dynamic_cfg=True)
            settings.update(kwargs)
            (frames,) = nodes()[0].VDPDaSSampler().sample(**settings)
            return frames
        return run
    node("N08", das_sampler(), "K", check=frames_problem)
    node("N09", das_sampler(tracking=_rand(5, 32, 32, 3)), "R", "tracking_video|frames")
    node("N10", das_sampler(image=_rand(0, 32, 32, 3)), "R", "image && empty|0")
    node("N11", das_sampler(tracking=_rand(9, 32, 32)), "R", "tracking_video")
    node("N12", das_sampler(tracking=_rand(9, 32, 32, 3) * float("nan")), "R", "tracking_video")
    node("N13", das_sampler(image=_rand(1, 32, 32, 3) * float("nan")), "R", "image")

    def vch_sampler(**kwargs):
        def run(w):
            vchitect_nodes = nodes()[2]
            settings = dict(pipeline=w.pipe("vchitect"), prompt="a panda", negative_prompt="", seed=0, steps=2, cfg=7.5,
                            frames=2, width=32, height=32, repvideo=False, dynamic_cfg=False)
            settings.update(kwargs)
            (frames,) = vchitect_nodes.VDPVchitectSampler().sample(**settings)
            return frames
        return run
    node("N15", vch_sampler(width=40), "R", "width")
    node("N16", vch_sampler(cfg=float("nan")), "R", "cfg|guidance")

    def inpaint(**kwargs):
        def run(w):
            lgvi_nodes = nodes()[1]
            settings = dict(pipeline=w.pipe("lgvi"), video=_rand(3, 32, 48, 3), instruction="remove the bird",
                            seed=0, steps=2, guidance_scale=7.5, image_guidance_scale=1.5, width=48, height=32)
            settings.update(kwargs)
            output = lgvi_nodes.VDPInpaintByInstruction().inpaint(**settings)
            return (output["result"] if isinstance(output, dict) else output)[0]
        return run

    def four_bad_inpaints(w):
        failures = []
        for kwargs in (dict(video=_rand(0, 32, 48, 3)), dict(width=50), dict(video=_rand(3, 32, 48, 3) * 255),
                       dict(video=_rand(3, 32, 48))):
            try:
                inpaint(**kwargs)(w)
                failures.append(f"{list(kwargs)} accepted")
            except ValueError:
                pass
        if failures:
            raise RuntimeError("; ".join(failures))
        raise ValueError("video / width: each refused with a ValueError")
    node("N17", four_bad_inpaints, "R", "video")
    node("N18", inpaint(steps=1000), "KR", "steps")

    def inpaint_half(w):
        from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline

        pipe = build_tiny_inpaint_pipeline(weights="random").to(dtype=torch.float16)
        pipe.set_progress_bar_config(disable=True)
        return inpaint(pipeline=pipe)(w)
    node("N19", inpaint_half, "K", check=frames_problem)


# ----------------------------------------------------------------- fake Hub, concurrency, start-up, source scan


def _hub_attempt(world, id, files, *, served=None, stall=None, sha=None, overwrite=False, victim_from=None,
                 expect="R", names=None) -> Outcome:
    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    from fake_hub import FakeHub, FakeRepo

    folder = world.path("run", id)
    folder.mkdir(parents=True, exist_ok=True)
    victim = world.path("run", f"victim_{id}.txt")
    victim.write_text("the user's own file\n")
    if victim_from is not None:  # the entry folder already holds what the name reaches
        (folder / "dest" / "weights").mkdir(parents=True, exist_ok=True)
    with FakeHub() as hub:
        repo = FakeRepo(f"org/{id.lower()}", files, served_content=served or {},
                        stall_first_transfer_after=stall or {})
        hub.add(repo)
        entry = {
            "name": "tiny", "description": "test weights", "repo_id": repo.repo_id, "revision": None,
            "allow_patterns": ["*"], "files": [{"path": "config.json", "size": None, "sha256": sha}],
            "approximate_download_gb": None, "licence": None, "gated": None,
            "pack_classes": ["VchitectRepVideoPipeline"], "layout": {"format": "diffusers-components",
                                                                      "description": "test layout"},
            "comfyui_folder": "models/video_diffusion_pack/tests/tiny", "requires": [], "conversion": None,
            "notes": "",
        }
        manifest = folder / "manifest.json"
        manifest.write_text(json.dumps({"manifest_version": 1, "entries": [entry]}))
        command = (f"HF_HUB_OFFLINE=0 HF_ENDPOINT={hub.url} vdp download tiny --manifest {manifest} "
                   f"--dest {folder / 'dest'}" + (" --overwrite" if overwrite else ""))
        if stall:
            first = run_cli(world, ".", "timeout -s INT 4 " + command, "I", None, 60, None)
            hub.release()
            if first.verdict != "ok":
                return first
            again = run_cli(world, ".", command, "K", None, 120, None)
            return Outcome(again.verdict, f"interrupted: {first.detail}; rerun: {again.detail}")
        outcome = run_cli(world, ".", command, expect, names, 120, None)
    if victim.read_text() != "the user's own file\n" or not victim.exists():
        return Outcome("data-loss", f"{victim.name} outside --dest was changed")
    return outcome


def _register_hub():
    section = "4 download / convert"
    config = b'{"a": 1}'

    def hub(id, expect, names, **kwargs):
        ATTEMPTS.append(Attempt(id, section, lambda world: _hub_attempt(world, id, expect=expect, names=names,
                                                                        **kwargs)))

    hub("H01", "K", None, files={"config.json": config})
    hub("H02", "R", "config.json && expected", files={"config.json": config}, served={"config.json": b'{"b": 22}'})
    hub("H03", "R", "config.json && sha256 && expected", files={"config.json": config}, sha="0" * 64)
    hub("H04", "I", None, files={"config.json": config, "weights/big.safetensors": os.urandom(3 << 20)},
        stall={"weights/big.safetensors": 1 << 20})
    hub("H05", "KR", "weights/\\.\\./victim", files={"config.json": config, "weights/../victim.txt": b"hub\n"})
    hub("H06", "R", "\\.\\./\\.\\./victim_H06", files={"config.json": config, "weights/../../victim_H06.txt": b"h\n"},
        victim_from=True)
    hub("H07", "R", "\\.\\./\\.\\./victim_H07", files={"config.json": config, "weights/../../victim_H07.txt": b"h\n"},
        victim_from=True, overwrite=True)

    def absolute(world):
        name = str(world.path("run", "victim_H08.txt"))
        return _hub_attempt(world, "H08", files={"config.json": config, name: b"hub\n"}, expect="KR",
                            names="victim_H08", overwrite=True)
    ATTEMPTS.append(Attempt("H08", section, absolute))


def _concurrent(world) -> Outcome:
    from video_diffusion_pack.video_io import read_video

    output = world.path("out/same.mp4")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen([str(VDP), "generate", prompt, "-o", str(output), "--steps", "2", "--seed", seed,
                              *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for prompt, seed, extra in (("p", "1", []), ("q", "2", ["--frames", "4"]))]
    results = [run.communicate(timeout=600) for run in runs]
    if any(run.returncode for run in runs) or any(TRACEBACK in err for _, err in results):
        return Outcome("crash", "; ".join(_last_message(err) for _, err in results))
    left = [path.name for path in output.parent.iterdir() if path.name.startswith(".")]
    if left:
        return Outcome("partial-file", f"left: {left}")
    frames = read_video(output).frames
    return Outcome("ok", f"both exit 0; one valid {len(frames)}-frame video; nothing hidden left")


def _startup(world) -> Outcome:
    code = ("import sys, time; start = time.perf_counter(); from video_diffusion_pack.cli import main\n"
            "for argv in (['--help'], ['generate', 'p', '-o', 'x.avi'], ['das', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('HEAVY' if {'torch', 'diffusers'} & set(sys.modules) else 'LIGHT', time.perf_counter() - start)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    verdict, seconds = result.stdout.split()[-2:]
    if verdict == "LIGHT":
        return Outcome("ok", f"--help, an argument error and das --help in {float(seconds):.2f} s without torch")
    return Outcome("unclear", f"torch or diffusers imported for --help / argument errors ({float(seconds):.2f} s)")


def _source_scan(world) -> Outcome:
    findings = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO)
        if relative.parts[0] in ("tests", "benchmarks", ".venv", ".cache") or ".cache" in relative.parts:
            continue
        text = path.read_text(errors="replace")
        for pattern, what in ((r"torch\.load\((?![^)]*weights_only)", "torch.load without weights_only"),
                              (r"np\.load\([^)]*allow_pickle\s*=\s*True", "np.load allow_pickle=True"),
                              (r"(?<![.\w])(eval|exec)\(", "eval/exec"), (r"shell\s*=\s*True", "shell=True"),
                              (r"yaml\.load\(", "yaml.load"), (r"os\.system\(", "os.system")):
            for match in re.finditer(pattern, text):
                line = text[: match.start()].count("\n") + 1
                findings.append(f"{relative}:{line} {what}")
    if findings:
        return Outcome("unclear", "; ".join(findings[:5]))
    return Outcome("ok", "every torch.load names weights_only, no allow_pickle=True, eval, exec, shell, os.system")


def _register_rest():
    ATTEMPTS.append(Attempt("C01", "1g concurrency, start-up", _concurrent))
    ATTEMPTS.append(Attempt("T01", "1g concurrency, start-up", _startup))
    ATTEMPTS.append(Attempt("SG1", "6 safety", _source_scan))


# ---------------------------------------------------------------------------------------------------- main


def register_all():
    _register_cli_table()
    _register_video_io()
    _register_pipelines()
    _register_control()
    _register_hub()
    _register_rest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only the attempts whose id starts with these")
    parser.add_argument("--keep", help="build the inputs in this folder and keep them")
    parser.add_argument("--timeout", type=float, default=180, help="seconds a vdp command may take (default 180)")
    parser.add_argument("--json", help="also write every outcome to this file")
    parser.add_argument("--previous", help="a --json file of an earlier run: its outcomes count for the attempts not "
                                           "run now (with --only: re-run some, keep the rest)")
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vdp-reliability-"))
    # the environment every vdp command gets, set before huggingface_hub reads it at import (forked commands
    # inherit this process's imports)
    os.environ.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(root / "run/hf"),
                      VDP_MODELS_DIR=str(root / "run/models"))
    logging.getLogger().setLevel(logging.WARNING)
    import diffusers  # noqa: F401 - imported once here, so that forked vdp commands start with it
    import torch

    import video_diffusion_pack.cli  # noqa: F401
    import video_diffusion_pack.diffusers_pipelines.das.pipeline  # noqa: F401
    import video_diffusion_pack.diffusers_pipelines.lgvi.pipeline  # noqa: F401
    import video_diffusion_pack.diffusers_pipelines.repvideo.pipeline  # noqa: F401
    import video_diffusion_pack.diffusers_pipelines.vchitect.pipeline  # noqa: F401

    torch.set_num_threads(1)
    register_all()
    chosen = [a for a in ATTEMPTS if not args.only or any(a.id.startswith(p) for p in args.only)]
    world = World(root, args.timeout)
    started = time.monotonic()
    if not (root / ".built").exists():
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            build_world(world)
        (root / "big_prompt.txt").write_text("a red panda eating bamboo in the snow " * 2700)
        for folder in ("das", "inp"):
            if not (root / folder / "models").exists():
                (root / folder / "models").symlink_to(root / "models")
        (root / ".built").touch()
    print(f"inputs built in {time.monotonic() - started:.0f} s under {root}", flush=True)
    results = []
    for attempt in chosen:
        if attempt.not_reproducible:
            results.append((attempt, None))
            print(f"{attempt.id:28s} not reproducible: {attempt.not_reproducible}", flush=True)
            continue
        began = time.monotonic()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                outcome = attempt.run(world)
        except Exception as error:  # noqa: BLE001 - a fault of the harness, reported as such
            outcome = Outcome("harness-error", f"{type(error).__name__}: {error}")
        results.append((attempt, outcome))
        print(f"{attempt.id:28s} {outcome.verdict:13s} {time.monotonic() - began:5.1f}s  {outcome.detail[:160]}",
              flush=True)
    if args.previous:
        rerun = {attempt.id for attempt, _ in results}
        by_id = {attempt.id: attempt for attempt in ATTEMPTS}
        for item in json.loads(Path(args.previous).read_text()):
            if item["id"] not in rerun:
                outcome = None if item["verdict"] == "not reproducible" else Outcome(item["verdict"], item["detail"])
                results.append((by_id[item["id"]], outcome))
        order = {attempt.id: index for index, attempt in enumerate(ATTEMPTS)}
        results.sort(key=lambda pair: order[pair[0].id])
    counted = [(a, o) for a, o in results if o is not None]
    totals = {verdict: sum(1 for _, o in counted if o.verdict == verdict) for verdict in VERDICTS}
    harness = [(a, o) for a, o in counted if o.verdict not in VERDICTS]
    print()
    print(f"{len(results)} attempts, {len(counted)} run, {len(results) - len(counted)} not reproducible here; "
          f"{time.monotonic() - started:.0f} s")
    print("| | attempts | clear error | unclear error | crash with traceback | silent wrong result | hang | data loss "
          "| partial/temp file left | other safety | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("| before | **557** | " + " | ".join(str(BEFORE[v]) for v in VERDICTS) + " |")
    print(f"| after | **{len(counted)}** | " + " | ".join(str(totals[v]) for v in VERDICTS) + " |")
    print()
    print("Not clear or ok:")
    for attempt, outcome in counted:
        if outcome.verdict not in ("clear", "ok"):
            print(f"- {attempt.id} [{attempt.section}] {outcome.verdict}: {outcome.detail}")
    print("Not reproducible here:")
    for attempt, outcome in results:
        if outcome is None:
            print(f"- {attempt.id}: {attempt.not_reproducible}")
    if args.json:
        Path(args.json).write_text(json.dumps([{"id": a.id, "section": a.section,
                                                "verdict": o.verdict if o else "not reproducible",
                                                "detail": o.detail if o else a.not_reproducible}
                                               for a, o in results], indent=1))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if harness else 0


if __name__ == "__main__":
    sys.exit(main())
