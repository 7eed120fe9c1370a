"""VBench's evaluator checkpoints in the weights manifest: every file a scorer reads is an entry, and `vdp download`
puts it (from a URL, a zip archive member or a Hub repository) where `vdp eval vbench` looks by default.

No test reaches the internet: URL entries are pointed at local files (file://) or a local HTTP server, Hub entries at
`fake_hub.FakeHub`."""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
import zipfile

import pytest
from helpers.fake_hub import FakeHub, FakeRepo
from helpers.vdp import vdp_executable

from video_diffusion_pack.evaluation.vbench import WEIGHTS_KIND, resolve_checkpoints
from video_diffusion_pack.evaluation.vbench.registry import available_dimensions, checkpoint_files
from video_diffusion_pack.weights import (
    MANIFEST_PATH,
    VERIFIED,
    HashMismatchError,
    LocalFilesDifferError,
    WeightsDownloadError,
    download_entry,
    load_manifest,
    local_state,
    missing_dimensions,
)

MANIFEST = load_manifest()
# the entries the scorers of this version and of the dimensions still to come name in their messages
EVALUATOR_ENTRIES = {
    "vbench-dino-vitb16": "dino_vitbase16_pretrain.pth",
    "vbench-clip-vit-b-32": "ViT-B-32.pt",
    "vbench-musiq-spaq": "musiq_spaq_ckpt-358bb6af.pth",
    "vbench-amt-s": "amt-s.pth",
    "vbench-raft-things": "raft-things.pth",
    "vbench-clip-vit-l-14": "ViT-L-14.pt",
    "vbench-laion-aesthetic-head": "sa_0_4_vit_l_14_linear.pth",
    "vbench-viclip": "ViClip-InternVid-10M-FLT.pth",
    "vbench-umt-l16": "l16_ptk710_ftk710_ftk400_f16_res224.pth",
    "vbench-grit": "grit_b_densecap_objectdet.pth",
    "vbench-tag2text": "tag2text_swin_14m.pth",
}


def test_every_evaluator_checkpoint_is_an_entry_of_the_vbench_kind_with_its_official_file():
    for name, file_name in EVALUATOR_ENTRIES.items():
        entry = MANIFEST.get(name)
        assert [file.path for file in entry.files] == [file_name]
        assert entry.kind == WEIGHTS_KIND and entry.evaluates and not entry.pack_classes
        assert bool(entry.urls) == (entry.repo_id is None)


@pytest.mark.parametrize("dimension", available_dimensions())
def test_every_checkpoint_a_scorer_reads_is_the_file_of_the_entry_it_names(dimension):
    for file_name, entry_name in checkpoint_files(dimension).values():
        entry = MANIFEST.get(entry_name)
        assert file_name in [file.path for file in entry.files]
        assert dimension in entry.evaluates
        assert dimension not in missing_dimensions(entry)


def test_openai_clip_entries_carry_the_sha256_of_their_url():
    for name in ("vbench-clip-vit-b-32", "vbench-clip-vit-l-14"):
        entry = MANIFEST.get(name)
        assert entry.files[0].sha256 == entry.urls[0].url.split("/")[-2]


def test_raft_is_the_things_member_of_the_released_zip():
    entry = MANIFEST.get("vbench-raft-things")
    assert entry.urls[0].url.endswith("/models.zip") and entry.urls[0].archive_member == "models/raft-things.pth"


def _manifest_with(tmp_path, name, change):
    """A copy of the shipped manifest whose entry `name` is changed by `change(entry dict)`."""
    document = json.loads(MANIFEST_PATH.read_text())
    change(next(entry for entry in document["entries"] if entry["name"] == name))
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(document))
    return path


def _point_at(tmp_path, name, url, sha256=None, member=None):
    def change(entry):
        entry["urls"][0]["url"] = url
        if member is not None:
            entry["urls"][0]["archive_member"] = member
        entry["files"][0]["sha256"] = sha256

    return load_manifest(_manifest_with(tmp_path, name, change)).get(name)


def test_a_url_entry_lands_where_vbench_looks_and_is_verified(tmp_path):
    source = tmp_path / "published" / "ViT-B-32.pt"
    source.parent.mkdir()
    source.write_bytes(b"clip weights" * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    entry = _point_at(tmp_path, "vbench-clip-vit-b-32", source.as_uri(), sha256=digest)
    root = tmp_path / "models"

    report = download_entry(entry, entry.folder_in(root), log=lambda line: None)

    assert report.fetched == ["ViT-B-32.pt"] and report.kept == []
    found = resolve_checkpoints("background_consistency", root)["clip_vit_b_32"]
    assert open(found, "rb").read() == source.read_bytes()
    assert local_state(entry, entry.folder_in(root)).status == VERIFIED
    assert not (entry.folder_in(root) / ".cache" / "video_diffusion_pack" / "partial").exists()
    # a second run keeps the verified file without fetching it
    source.unlink()
    again = download_entry(entry, entry.folder_in(root), log=lambda line: None)
    assert again.kept == ["ViT-B-32.pt"] and again.fetched == []


def test_an_archive_entry_extracts_only_its_member(tmp_path):
    archive = tmp_path / "models.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("models/raft-things.pth", b"things")
        bundle.writestr("models/raft-sintel.pth", b"sintel")
    entry = _point_at(tmp_path, "vbench-raft-things", archive.as_uri())
    folder = entry.folder_in(tmp_path / "models")

    download_entry(entry, folder, log=lambda line: None)

    assert (folder / "raft-things.pth").read_bytes() == b"things"
    assert sorted(path.name for path in folder.iterdir()) == [".cache", "raft-things.pth"]
    assert resolve_checkpoints("dynamic_degree", tmp_path / "models")["raft_things"] == str(folder / "raft-things.pth")


def test_an_archive_without_the_member_names_what_it_holds(tmp_path):
    archive = tmp_path / "models.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("models/raft-small.pth", b"small")
    entry = _point_at(tmp_path, "vbench-raft-things", archive.as_uri())

    with pytest.raises(WeightsDownloadError, match=r"holds no models/raft-things\.pth \(it holds: models/raft-small"):
        download_entry(entry, tmp_path / "out", log=lambda line: None)
    assert not (tmp_path / "out" / "raft-things.pth").exists()


def test_a_download_with_another_hash_is_deleted_and_named(tmp_path):
    source = tmp_path / "ViT-L-14.pt"
    source.write_bytes(b"not the released file")
    entry = _point_at(tmp_path, "vbench-clip-vit-l-14", source.as_uri(), sha256="0" * 64)
    folder = tmp_path / "out"

    with pytest.raises(HashMismatchError, match=r"ViT-L-14\.pt downloaded from file://.* sha256 is [0-9a-f]{64}, "
                                                r"expected 0{64}"):
        download_entry(entry, folder, log=lambda line: None)
    assert not (folder / "ViT-L-14.pt").exists()
    assert not list((folder / ".cache" / "video_diffusion_pack" / "partial").glob("*"))


def test_a_file_already_there_that_nothing_vouches_for_is_kept_unless_overwrite(tmp_path):
    source = tmp_path / "amt.pth"
    source.write_bytes(b"published")
    entry = _point_at(tmp_path, "vbench-dino-vitb16", source.as_uri())
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "dino_vitbase16_pretrain.pth").write_bytes(b"mine")

    with pytest.raises(LocalFilesDifferError, match=r"dino_vitbase16_pretrain\.pth: no verified download recorded"):
        download_entry(entry, folder, log=lambda line: None)
    assert (folder / "dino_vitbase16_pretrain.pth").read_bytes() == b"mine"

    report = download_entry(entry, folder, overwrite=True, log=lambda line: None)
    assert report.replaced == ["dino_vitbase16_pretrain.pth"]
    assert (folder / "dino_vitbase16_pretrain.pth").read_bytes() == b"published"


def test_an_http_transfer_works_and_a_missing_address_is_one_message(tmp_path):
    published = tmp_path / "site"
    published.mkdir()
    (published / "head.pth").write_bytes(b"aesthetic head")
    handler = functools.partial(_QuietHandler, directory=str(published))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            entry = _point_at(tmp_path, "vbench-laion-aesthetic-head", f"{base}/head.pth")
            download_entry(entry, tmp_path / "out", log=lambda line: None)
            missing = _point_at(tmp_path, "vbench-laion-aesthetic-head", f"{base}/gone.pth")
            with pytest.raises(WeightsDownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/gone\.pth "
                                                           r"\(HTTPError: HTTP Error 404"):
                download_entry(missing, tmp_path / "other", log=lambda line: None)
        finally:
            server.shutdown()
    assert (tmp_path / "out" / "sa_0_4_vit_l_14_linear.pth").read_bytes() == b"aesthetic head"
    assert not (tmp_path / "other" / "sa_0_4_vit_l_14_linear.pth").exists()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.mark.parametrize("change, where", [
    (lambda entry: entry["urls"][0].update(archive_member="../../escape.pth"), "urls/0/archive_member"),
    (lambda entry: entry["urls"][0].update(path="/etc/raft-things.pth"), "urls/0/path"),
    (lambda entry: entry["urls"][0].update(url="ftp://example.com/models.zip"), "urls/0/url"),
    (lambda entry: entry.update(repo_id="princeton-vl/RAFT"), ""),
    (lambda entry: entry.pop("urls"), ""),
], ids=["member-escape", "absolute-path", "ftp", "urls-and-repo", "no-source"])
def test_the_schema_refuses_urls_that_could_escape_or_an_entry_without_one_source(tmp_path, change, where):
    path = _manifest_with(tmp_path, "vbench-raft-things", change)

    with pytest.raises(ValueError, match=rf"does not follow weights_manifest\.schema\.json at entries/\d+{'/' + where if where else ''}"):
        load_manifest(path)


def test_a_url_for_a_file_the_entry_does_not_list_is_refused(tmp_path):
    path = _manifest_with(tmp_path, "vbench-raft-things", lambda entry: entry["urls"][0].update(path="other.pth"))

    with pytest.raises(ValueError, match=r"'vbench-raft-things' has urls for \['other\.pth'\] but lists the files "
                                         r"\['raft-things\.pth'\]"):
        load_manifest(path)


def _env(tmp_path, **extra):
    variables = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT")}
    variables.update(VDP_MODELS_DIR=str(tmp_path / "models"), HF_HOME=str(tmp_path / "hf-home"),
                     HF_HUB_CACHE=str(tmp_path / "hf-cache"), HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return variables


def _vdp(*arguments, env):
    return subprocess.run([vdp_executable(), *map(str, arguments)], capture_output=True, text=True, timeout=300,
                          env=env)


def test_vdp_download_puts_a_url_entry_where_vdp_eval_looks_by_default(tmp_path):
    archive = tmp_path / "models.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("models/raft-things.pth", b"raft")
    manifest = _manifest_with(tmp_path, "vbench-raft-things",
                              lambda entry: entry["urls"][0].update(url=archive.as_uri()))
    env = _env(tmp_path)

    done = _vdp("download", "vbench-raft-things", "--manifest", manifest, env=env)

    assert done.returncode == 0, done.stderr
    folder = tmp_path / "models" / "vbench" / "vbench-raft-things"
    assert done.stdout.strip() == str(folder)
    assert f"1 files verified against {archive.as_uri()}" in done.stderr
    assert resolve_checkpoints("dynamic_degree", str(tmp_path / "models"))["raft_things"] == str(folder / "raft-things.pth")
    listed = _vdp("download", "--list", "--manifest", manifest, env=env)
    line = next(line for line in listed.stdout.splitlines() if line.startswith("vbench-raft-things "))
    assert line.split()[1] == "verified" and "dl.dropboxusercontent.com" not in line
    refused = _vdp("download", "vbench-raft-things", "--revision", "main", "--manifest", manifest, env=env)
    assert refused.returncode == 2 and "has no revisions" in refused.stderr


def test_vdp_download_fetches_a_hub_evaluator_entry_into_the_vbench_folder(tmp_path):
    with FakeHub() as hub:
        hub.add(FakeRepo("lalala125/AMT", {"amt-s.pth": b"amt weights", "amt-l.pth": b"other"}))
        env = _env(tmp_path, HF_ENDPOINT=hub.url)

        done = _vdp("download", "vbench-amt-s", env=env)

    assert done.returncode == 0, done.stderr
    folder = tmp_path / "models" / "vbench" / "vbench-amt-s"
    assert sorted(path.name for path in folder.iterdir() if path.name != ".cache") == ["amt-s.pth"]
    assert resolve_checkpoints("motion_smoothness", str(tmp_path / "models"))["amt_s"] == str(folder / "amt-s.pth")
