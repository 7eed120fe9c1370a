"""Specification of `vdp download` and `download_entry`, run by the real huggingface_hub client against a local Hub.

The Hub is `fake_hub.FakeHub`: a real HTTP server on 127.0.0.1 serving the Hub's own API and file endpoints, with
HF_ENDPOINT pointing at it. No test reaches the internet.
"""

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.fake_hub import FakeHub, FakeRepo
from helpers.vdp import vdp_executable

from video_diffusion_pack.weights import (
    MANIFEST_PATH,
    PRESENT,
    VERIFIED,
    GatedRepoAccessError,
    LocalFilesDifferError,
    UnsafeFileNameError,
    WeightsDownloadError,
    download_entry,
    load_manifest,
    local_state,
)

# Larger than huggingface_hub's 10 MiB read chunk, so that a transfer cut after 11 MiB has written bytes to disk.
LARGE_BYTES = 12 * 2**20
CONFIG = b'{"num_layers": 2}\n'
WEIGHTS = random.Random(0).randbytes(3000)
GRANTED_TOKEN = "hf_granted_token"
PINNED_VCHITECT_REVISION = load_manifest().get("Vchitect-2.0-2B").revision


def entry_json(name, repo_id, *, files=("config.json", "weights/model.safetensors"), requires=(), **overrides):
    """A manifest entry in the shipped format, fetching config.json and weights/ of `repo_id`."""
    return {
        "name": name,
        "description": f"test weights {name}",
        "repo_id": repo_id,
        "revision": None,
        "allow_patterns": ["config.json", "weights/*"],
        "files": [{"path": path, "size": None, "sha256": None} for path in files],
        "approximate_download_gb": None,
        "licence": None,
        "gated": None,
        "pack_classes": ["VchitectRepVideoPipeline"],
        "layout": {"format": "diffusers-components", "description": "test layout"},
        "comfyui_folder": f"models/video_diffusion_pack/tests/{name}",
        "requires": list(requires),
        "conversion": None,
        "notes": "",
        **overrides,
    }


def write_manifest(tmp_path: Path, *entries) -> Path:
    path = tmp_path / "test_manifest.json"
    path.write_text(json.dumps({"manifest_version": 1, "entries": list(entries)}))
    return path


def tiny_repo(repo_id="org/tiny", **faults) -> FakeRepo:
    return FakeRepo(repo_id, {"config.json": CONFIG, "weights/model.safetensors": WEIGHTS, "README.md": b"card"}, **faults)


def corrupted(content: bytes) -> bytes:
    return bytes(byte ^ 0xFF for byte in content)


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


@pytest.fixture
def env(tmp_path, hub):
    """The environment of a user whose HF_ENDPOINT is the local Hub: no token, empty caches, weights under tmp_path."""
    variables = {k: v for k, v in os.environ.items()
                 if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT")}
    variables.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
        VDP_MODELS_DIR=str(tmp_path / "models"),
    )
    return variables


def run_vdp(*arguments, env) -> subprocess.CompletedProcess:
    return subprocess.run([vdp_executable(), *map(str, arguments)], capture_output=True, text=True, timeout=300, env=env)


def download_quietly(entry, folder, hub, tmp_path, **kwargs):
    return download_entry(entry, folder, endpoint=hub.url, cache_dir=tmp_path / "hf-cache", log=lambda line: None, **kwargs)


def wait_for(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def state_line(listing: str, name: str) -> str:
    (line,) = [line for line in listing.splitlines() if line.split()[:1] == [name]]
    return line


# ---------------------------------------------------------------------------------------------- downloads


def test_download_puts_the_selected_files_verified_in_the_comfyui_layout(tmp_path, hub, env):
    hub.add(tiny_repo())
    comfyui_models = tmp_path / "ComfyUI" / "models"
    comfyui_models.mkdir(parents=True)
    manifest = write_manifest(tmp_path, entry_json("tiny", "org/tiny"))

    result = run_vdp("download", "tiny", "--comfyui-models", comfyui_models, "--manifest", manifest, env=env)

    folder = comfyui_models / "video_diffusion_pack" / "tests" / "tiny"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(folder)
    assert (folder / "config.json").read_bytes() == CONFIG
    assert (folder / "weights" / "model.safetensors").read_bytes() == WEIGHTS
    assert not (folder / "README.md").exists(), "only files matching allow_patterns are fetched"
    assert "tiny: 2 files verified against org/tiny at commit" in result.stderr
    listing = run_vdp("download", "--list", "--comfyui-models", comfyui_models, "--manifest", manifest, env=env)
    assert state_line(listing.stdout, "tiny").split()[1] == "verified"


def test_official_entry_downloads_at_its_pinned_revision_and_loads_from_the_comfyui_folder(tmp_path, hub, env):
    from video_diffusion_pack import VchitectRepVideoPipeline
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import (
        save_tiny_official_layout,
        tiny_transformer_config,
    )

    layout = save_tiny_official_layout(tmp_path / "layout")
    files = {path.relative_to(layout).as_posix(): path.read_bytes() for path in layout.rglob("*") if path.is_file()}
    hub.add(FakeRepo("Vchitect/Vchitect-2.0-2B", {**files, "README.md": b"card"}, commit_id=PINNED_VCHITECT_REVISION))
    comfyui = tmp_path / "ComfyUI"
    (comfyui / "models").mkdir(parents=True)
    (comfyui / "custom_nodes").mkdir()

    result = run_vdp("download", "Vchitect-2.0-2B", "--comfyui-models", comfyui / "models", env=env)

    assert result.returncode == 0, result.stderr
    assert f"{len(files)} files verified against Vchitect/Vchitect-2.0-2B at commit {PINNED_VCHITECT_REVISION}" in result.stderr
    pipe = VchitectRepVideoPipeline.from_pretrained(comfyui)
    assert pipe.transformer.config.num_layers == tiny_transformer_config()["num_layers"]


def test_a_pinned_revision_the_hub_does_not_have_is_reported_with_the_way_out(tmp_path, hub, env):
    hub.add(FakeRepo("Vchitect/Vchitect-2.0-2B", {"model_index.json": b"{}"}))

    result = run_vdp("download", "Vchitect-2.0-2B", env=env)

    assert result.returncode == 1
    assert (f"revision '{PINNED_VCHITECT_REVISION}' (pinned in the weights manifest) of Vchitect/Vchitect-2.0-2B does "
            "not exist on the Hub; pass --revision main") in result.stderr


def test_required_entries_are_downloaded_first_into_their_own_folders(tmp_path, hub, env):
    hub.add(tiny_repo("org/base"))
    hub.add(tiny_repo("org/finetune"))
    manifest = write_manifest(tmp_path, entry_json("finetune", "org/finetune", requires=["base"]),
                              entry_json("base", "org/base"))

    result = run_vdp("download", "finetune", "--manifest", manifest, env=env)

    assert result.returncode == 0, result.stderr
    models = tmp_path / "models" / "tests"
    assert result.stdout.split() == [str(models / "base"), str(models / "finetune")]
    for name in ("base", "finetune"):
        assert local_state(load_manifest(manifest).get(name), models / name).status == VERIFIED


# ---------------------------------------------------------------------------------------------- resume


def test_a_transfer_cut_by_the_network_resumes_from_the_bytes_received(tmp_path, hub):
    large = random.Random(1).randbytes(LARGE_BYTES)
    hub.add(FakeRepo("org/large", {"config.json": CONFIG, "weights/model.safetensors": large},
                     cut_first_transfer_after={"weights/model.safetensors": LARGE_BYTES - 2**20}))
    entry = load_manifest(write_manifest(tmp_path, entry_json("large", "org/large"))).get("large")

    download_quietly(entry, tmp_path / "large", hub, tmp_path)

    transfers = [r for r in hub.file_requests("org/large") if r.path.endswith("model.safetensors")]
    assert len(transfers) == 2 and transfers[0].range is None
    resumed_from = int(re.fullmatch(r"bytes=(\d+)-", transfers[1].range).group(1))
    assert 0 < resumed_from < LARGE_BYTES
    assert (tmp_path / "large" / "weights" / "model.safetensors").read_bytes() == large
    assert local_state(entry, tmp_path / "large").status == VERIFIED


def test_an_interrupted_download_keeps_finished_files_and_the_next_run_fetches_the_rest(tmp_path, hub, env):
    large = random.Random(2).randbytes(LARGE_BYTES)
    hub.add(FakeRepo("org/large", {"config.json": CONFIG, "weights/model.safetensors": large},
                     stall_first_transfer_after={"weights/model.safetensors": LARGE_BYTES - 2**20}))
    manifest = write_manifest(tmp_path, entry_json("large", "org/large"))
    folder = tmp_path / "models" / "tests" / "large"

    def partial_bytes():
        return sum(p.stat().st_size for p in folder.rglob("*.incomplete"))

    process = subprocess.Popen([vdp_executable(), "download", "large", "--manifest", str(manifest)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.stalled.wait(timeout=60), "the transfer of the large file never started"
        wait_for(lambda: (folder / "config.json").is_file() and partial_bytes() >= 10 * 2**20)
        process.send_signal(signal.SIGINT)
        _, interrupted_stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        hub.release()
    assert process.returncode == 130
    assert "interrupted during large. Finished files are kept" in interrupted_stderr
    assert not (folder / "weights" / "model.safetensors").exists()

    result = run_vdp("download", "large", "--manifest", manifest, env=env)

    assert result.returncode == 0, result.stderr
    assert "(1 fetched, 1 already there)" in result.stderr
    assert len([r for r in hub.file_requests("org/large") if r.path.endswith("config.json")]) == 1
    assert (folder / "weights" / "model.safetensors").read_bytes() == large
    assert partial_bytes() == 0, "partial files of the interrupted run are removed"


# ---------------------------------------------------------------------------------------------- verification


def test_a_downloaded_file_with_the_wrong_hash_is_reported_with_the_expected_hash_and_deleted(tmp_path, hub, env):
    repo = hub.add(tiny_repo(served_content={"weights/model.safetensors": corrupted(WEIGHTS)}))
    manifest = write_manifest(tmp_path, entry_json("tiny", "org/tiny"))

    result = run_vdp("download", "tiny", "--manifest", manifest, env=env)

    folder = tmp_path / "models" / "tests" / "tiny"
    assert result.returncode == 1
    actual = hashlib.sha256(corrupted(WEIGHTS)).hexdigest()
    assert (f"weights/model.safetensors: sha256 is {actual}, expected {repo.sha256('weights/model.safetensors')}"
            in result.stderr)
    assert "failed verification and were deleted" in result.stderr
    assert not (folder / "weights" / "model.safetensors").exists()
    listing = run_vdp("download", "--list", "--manifest", manifest, env=env)
    assert state_line(listing.stdout, "tiny").split()[1] == "missing"


def test_a_manifest_hash_the_hub_disagrees_with_stops_before_any_transfer(tmp_path, hub):
    repo = hub.add(tiny_repo())
    expected = "0" * 64
    entry = load_manifest(write_manifest(tmp_path, entry_json("tiny", "org/tiny") | {"files": [
        {"path": "weights/model.safetensors", "size": None, "sha256": expected}]})).get("tiny")

    with pytest.raises(WeightsDownloadError) as raised:
        download_quietly(entry, tmp_path / "tiny", hub, tmp_path)

    assert (f"weights/model.safetensors has sha256 {repo.sha256('weights/model.safetensors')} on the Hub, the "
            f"manifest expects {expected}") in str(raised.value)
    assert hub.file_requests("org/tiny", "GET") == hub.file_requests("org/tiny", "HEAD") == []
    assert not (tmp_path / "tiny").exists()


def test_a_local_file_that_differs_is_never_replaced_without_overwrite(tmp_path, hub):
    hub.add(tiny_repo())
    entry = load_manifest(write_manifest(tmp_path, entry_json("tiny", "org/tiny"))).get("tiny")
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_bytes(b'{"num_layers": 9}\n')

    with pytest.raises(LocalFilesDifferError) as raised:
        download_quietly(entry, folder, hub, tmp_path)

    assert "config.json: git blob id is" in str(raised.value) and "pass --overwrite" in str(raised.value)
    assert (folder / "config.json").read_bytes() == b'{"num_layers": 9}\n'
    assert hub.file_requests("org/tiny") == []


def test_overwrite_replaces_a_differing_file_and_says_so(tmp_path, hub):
    hub.add(tiny_repo())
    entry = load_manifest(write_manifest(tmp_path, entry_json("tiny", "org/tiny"))).get("tiny")
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_bytes(b'{"num_layers": 9}\n')
    lines = []

    report = download_entry(entry, folder, overwrite=True, endpoint=hub.url, cache_dir=tmp_path / "hf-cache",
                            log=lines.append)

    assert report.replaced == ["config.json"]
    assert any(line.startswith("tiny: replacing config.json (git blob id is") for line in lines)
    assert (folder / "config.json").read_bytes() == CONFIG


def test_files_already_there_with_the_hubs_content_are_verified_not_fetched(tmp_path, hub):
    hub.add(tiny_repo())
    entry = load_manifest(write_manifest(tmp_path, entry_json("tiny", "org/tiny"))).get("tiny")
    folder = tmp_path / "tiny"
    (folder / "weights").mkdir(parents=True)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "weights" / "model.safetensors").write_bytes(WEIGHTS)
    assert local_state(entry, folder).status == PRESENT

    report = download_quietly(entry, folder, hub, tmp_path)

    assert (sorted(report.kept), report.fetched) == (["config.json", "weights/model.safetensors"], [])
    assert hub.file_requests("org/tiny", "GET") == hub.file_requests("org/tiny", "HEAD") == []
    assert local_state(entry, folder).status == VERIFIED


# ---------------------------------------------------------------------------------------------- gated repositories


def test_a_gated_repository_without_a_token_says_how_to_get_access(tmp_path, hub, env):
    hub.add(tiny_repo("org/gated", gated=True, tokens_with_access={GRANTED_TOKEN}))
    manifest = write_manifest(tmp_path, entry_json("gated", "org/gated"))

    result = run_vdp("download", "gated", "--manifest", manifest, env=env)

    assert result.returncode == 1
    assert "the Hub repository org/gated is gated and no token was sent: HF_TOKEN is not set" in result.stderr
    assert f"Accept its conditions at {hub.url}/org/gated" in result.stderr and "set HF_TOKEN" in result.stderr
    assert not (tmp_path / "models" / "tests" / "gated" / "config.json").exists()


def test_a_gated_repository_with_a_token_without_access_says_access_is_not_granted(tmp_path, hub):
    hub.add(tiny_repo("org/gated", gated=True, tokens_with_access={GRANTED_TOKEN}))
    entry = load_manifest(write_manifest(tmp_path, entry_json("gated", "org/gated"))).get("gated")

    with pytest.raises(GatedRepoAccessError, match="the token was sent, but its account has not been granted access yet"):
        download_quietly(entry, tmp_path / "gated", hub, tmp_path, token="hf_other_token")


def test_a_gated_repository_downloads_with_hf_token(tmp_path, hub, env):
    hub.add(tiny_repo("org/gated", gated=True, tokens_with_access={GRANTED_TOKEN}))
    manifest = write_manifest(tmp_path, entry_json("gated", "org/gated"))

    result = run_vdp("download", "gated", "--manifest", manifest, env={**env, "HF_TOKEN": GRANTED_TOKEN})

    assert result.returncode == 0, result.stderr
    transfers = hub.file_requests("org/gated")
    assert transfers and all(r.authorization == f"Bearer {GRANTED_TOKEN}" for r in transfers)


# ---------------------------------------------------------------------------------------------- --list


def test_list_works_offline_and_names_every_entry_of_the_shipped_manifest(tmp_path, env):
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}

    result = run_vdp("download", "--list", env=offline)

    assert result.returncode == 0, result.stderr
    for entry in load_manifest(MANIFEST_PATH):
        source = entry.repo_id or entry.urls[0].url.split("/")[2]  # the Hub repo, or the host of the URLs
        assert state_line(result.stdout, entry.name).split()[1:3] == ["missing", source]
        assert f"get it with `vdp download {entry.name}`" in result.stdout


def test_list_tells_missing_present_and_verified_apart_and_notices_changes(tmp_path, hub, env):
    hub.add(tiny_repo("org/verified"))
    manifest = write_manifest(tmp_path, entry_json("verified", "org/verified"), entry_json("present", "org/present"),
                              entry_json("missing", "org/missing"))
    models = tmp_path / "models" / "tests"
    download_quietly(load_manifest(manifest).get("verified"), models / "verified", hub, tmp_path)
    (models / "present" / "weights").mkdir(parents=True)
    (models / "present" / "config.json").write_bytes(CONFIG)
    (models / "present" / "weights" / "model.safetensors").write_bytes(WEIGHTS)
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}

    before = run_vdp("download", "--list", "--manifest", manifest, env=offline).stdout
    (models / "verified" / "config.json").write_bytes(b'{"num_layers": 3}\n')
    after = run_vdp("download", "--list", "--manifest", manifest, env=offline).stdout

    assert [state_line(before, name).split()[1] for name in ("verified", "present", "missing")] == [
        "verified", "present", "missing"]
    assert "not verified; get it with `vdp download present`" in before
    assert state_line(after, "verified").split()[1] == "present"
    assert "changed since verified: config.json" in after


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "argument NAME: give the entry to download (one of: Vchitect-2.0-2B, RepVideo,"),
        (["nope"], "argument NAME: name='nope' is not in weights_manifest.json; choose one of: Vchitect-2.0-2B"),
        (["--list", "lgvi"], "argument --list: lists every entry and takes no NAME (got name='lgvi')"),
        (["lgvi", "--comfyui-models", "{tmp}/absent"], "argument --comfyui-models: comfyui_models='{tmp}/absent' is not a folder"),
        (["lgvi", "--comfyui-models", "{tmp}/ComfyUI"],
         "argument --comfyui-models: comfyui_models='{tmp}/ComfyUI' is ComfyUI's own folder; pass its models folder"),
        (["lgvi", "--dest", "{tmp}/a_file"], "argument --dest: dest='{tmp}/a_file' is a file, not a folder"),
        (["--list", "--manifest", "{tmp}/a_file"], "argument --manifest: weights manifest '{tmp}/a_file' is not valid JSON"),
        (["lgvi", "--revision", " main"], "argument --revision: revision=' main' must be a branch, tag or commit name"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument_and_value(tmp_path, env, arguments, message):
    (tmp_path / "ComfyUI" / "models").mkdir(parents=True)
    (tmp_path / "ComfyUI" / "custom_nodes").mkdir()
    (tmp_path / "a_file").write_text("not json")

    result = run_vdp("download", *[a.format(tmp=tmp_path) for a in arguments], env=env)

    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_download_with_hf_hub_offline_says_the_hub_is_not_contacted(tmp_path, hub, env):
    hub.add(tiny_repo())
    manifest = write_manifest(tmp_path, entry_json("tiny", "org/tiny"))

    result = run_vdp("download", "tiny", "--manifest", manifest, env={**env, "HF_HUB_OFFLINE": "1"})

    assert result.returncode == 1
    assert "tiny: HF_HUB_OFFLINE is set, so the Hub is not contacted; unset it to download" in result.stderr
    assert hub.requests == []


def test_generate_names_the_download_command_when_the_named_weights_are_not_there(tmp_path, env):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--model", "Vchitect-2.0-2B", env=env)

    assert result.returncode == 2
    assert (f"argument --model: model='Vchitect-2.0-2B' is not a folder (the Vchitect-2.0-2B weights are not in "
            f"{tmp_path / 'models' / 'vchitect' / 'Vchitect-2.0-2B'}: `vdp download Vchitect-2.0-2B`)") in result.stderr


# ---------------------------------------------------------------------------------------------- hostile listings


def escaping_names(tmp_path: Path) -> dict:
    """Hub file names that would reach tmp_path/victim.txt from the entry folder tmp_path/models/tests/tiny."""
    return {
        "dotdot": "weights/../../../../victim.txt",
        "absolute": str(tmp_path / "victim.txt"),
        "backslash": "weights\\..\\..\\..\\..\\victim.txt",
    }


def hostile_setup(tmp_path: Path, hub: FakeHub, kind: str):
    """A Hub repo listing one escaping name, an entry fetching every file, and the victim file outside the folder."""
    name = escaping_names(tmp_path)[kind]
    hub.add(FakeRepo("org/hostile", {"config.json": CONFIG, name: b"the Hub's content\n"}))
    manifest = write_manifest(tmp_path, entry_json("tiny", "org/hostile", files=("config.json",), allow_patterns=["*"]))
    folder = tmp_path / "models" / "tests" / "tiny"
    (folder / "weights").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"the user's own file\n")
    return name, manifest, folder, victim


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "backslash"])
def test_download_with_overwrite_refuses_hub_names_that_escape_the_folder_and_touches_nothing(tmp_path, hub, env, kind):
    name, manifest, folder, victim = hostile_setup(tmp_path, hub, kind)

    result = run_vdp("download", "tiny", "--manifest", manifest, "--overwrite", env=env)

    assert result.returncode == 1
    assert (f"tiny: org/hostile at commit {hub.repos['org/hostile'].commit} lists a file name that is not a plain path "
            f"inside the folder: {name!r}") in result.stderr
    assert "Nothing was written." in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert victim.read_bytes() == b"the user's own file\n"
    assert sorted(path.name for path in folder.rglob("*")) == ["weights"]
    assert hub.file_requests("org/hostile", "GET") == hub.file_requests("org/hostile", "HEAD") == []


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "backslash"])
def test_download_entry_refuses_hub_names_that_escape_the_folder_before_comparing_local_files(tmp_path, hub, kind):
    name, manifest, folder, victim = hostile_setup(tmp_path, hub, kind)
    entry = load_manifest(manifest).get("tiny")

    with pytest.raises(UnsafeFileNameError) as raised:
        download_quietly(entry, folder, hub, tmp_path)

    assert repr(name) in str(raised.value)
    assert "differ" not in str(raised.value), "a file outside the folder was compared with the Hub's"
    assert victim.read_bytes() == b"the user's own file\n"


@pytest.mark.parametrize("name", ["weights/./model.safetensors", "weights//model.safetensors", "weights/\nmodel.bin", ""])
def test_download_entry_refuses_hub_names_with_empty_dot_or_control_parts(tmp_path, hub, name):
    hub.add(FakeRepo("org/odd", {"config.json": CONFIG, name: b"x"}))
    entry = load_manifest(write_manifest(tmp_path, entry_json("odd", "org/odd", files=("config.json",),
                                                              allow_patterns=["*"]))).get("odd")

    with pytest.raises(UnsafeFileNameError, match=re.escape(repr(name))):
        download_quietly(entry, tmp_path / "odd", hub, tmp_path)

    assert not (tmp_path / "odd").exists()


def test_a_hostile_name_the_patterns_do_not_select_still_stops_the_download(tmp_path, hub):
    hub.add(FakeRepo("org/hostile", {"config.json": CONFIG, "../outside.txt": b"x"}))
    entry = load_manifest(write_manifest(tmp_path, entry_json("tiny", "org/hostile", files=("config.json",),
                                                              allow_patterns=["config.json"]))).get("tiny")

    with pytest.raises(UnsafeFileNameError, match=re.escape("'../outside.txt'")):
        download_quietly(entry, tmp_path / "tiny", hub, tmp_path)


# ---------------------------------------------------------------------------------------------- models root


def test_list_says_when_vdp_models_dir_is_a_file(tmp_path, env):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")

    result = run_vdp("download", "--list", env={**env, "VDP_MODELS_DIR": str(a_file)})

    assert result.returncode == 0, result.stderr
    assert (f"no folder: '{a_file}' is not a folder (it is $VDP_MODELS_DIR; point the variable at a folder)"
            in result.stdout)


def test_local_state_of_a_folder_under_a_file_names_the_file(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    entry = load_manifest().get("lgvi")

    state = local_state(entry, entry.folder_in(a_file))

    assert state.detail == f"no folder: '{a_file}' is not a folder"


def test_local_state_of_an_absent_folder_says_only_no_folder(tmp_path):
    entry = load_manifest().get("lgvi")

    assert local_state(entry, entry.folder_in(tmp_path / "absent")).detail == "no folder"


def test_download_into_a_models_dir_that_is_a_file_stops_before_contacting_the_hub(tmp_path, hub, env):
    hub.add(tiny_repo())
    manifest = write_manifest(tmp_path, entry_json("tiny", "org/tiny"))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")

    result = run_vdp("download", "tiny", "--manifest", manifest, env={**env, "VDP_MODELS_DIR": str(a_file)})

    assert result.returncode == 1
    assert (f"tiny: cannot make the folder '{a_file / 'tests' / 'tiny'}': '{a_file}' is not a folder (it is "
            f"$VDP_MODELS_DIR; point the variable at a folder)") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert hub.requests == []
