"""Pretrained encoder files: round trip, and clear errors for damaged or foreign files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from crysatom_featurizers.nn import CGCNNEncoder, EncoderFileError, load_encoder, save_encoder  # noqa: E402

META = {
    "input_embedding": "cgcnn",
    "graph": {"radius": 8.0, "max_neighbors": 12, "gaussian_step": 0.2, "gaussian_width": 0.2},
    "config": "tiny",
}


def tiny_encoder(seed: int = 0, **kwargs) -> CGCNNEncoder:
    torch.manual_seed(seed)
    encoder = CGCNNEncoder(in_dim=5, hidden_dim=8, num_layers=2, edge_dim=4, **kwargs)
    encoder.train()
    x, edges = torch.randn(6, 5), torch.randint(0, 6, (2, 18))
    encoder(x, edges, torch.randn(18, 4))  # move the BatchNorm running statistics
    return encoder


def test_round_trip_gives_the_same_encoder(tmp_path):
    encoder = tiny_encoder(outer_softplus=False).eval()
    path = save_encoder(encoder, tmp_path / "enc.pt", META)
    loaded, metadata = load_encoder(path)
    assert not loaded.training
    assert metadata["config"] == "tiny" and len(metadata["checksum"]) == 64
    assert loaded.num_layers == 2 and loaded.hidden_dim == 8
    assert not loaded.convs[0].outer_softplus
    x, edges, attr = torch.randn(7, 5), torch.randint(0, 7, (2, 20)), torch.randn(20, 4)
    with torch.no_grad():
        assert torch.equal(loaded(x, edges, attr), encoder(x, edges, attr))


def test_metadata_must_say_what_the_encoder_reads(tmp_path):
    with pytest.raises(ValueError, match="input_embedding"):
        save_encoder(tiny_encoder(), tmp_path / "enc.pt", {"graph": {}})


def test_truncated_corrupt_and_foreign_files(tmp_path):
    path = save_encoder(tiny_encoder(), tmp_path / "enc.pt", META)
    data = path.read_bytes()
    (tmp_path / "short.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(EncoderFileError, match="truncated or corrupt"):
        load_encoder(tmp_path / "short.pt")
    (tmp_path / "noise.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(EncoderFileError, match="short.pt|noise.pt"):
        load_encoder(tmp_path / "noise.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(EncoderFileError, match="not a 'crysatom-featurizers/cgcnn-encoder' file"):
        load_encoder(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_encoder(tmp_path / "missing.pt")


def test_edited_weights_fail_the_checksum(tmp_path):
    path = save_encoder(tiny_encoder(), tmp_path / "enc.pt", META)
    document = torch.load(path, weights_only=True)
    document["state_dict"]["input.weight"][0, 0] += 1.0
    torch.save(document, path)
    with pytest.raises(EncoderFileError, match="checksum mismatch"):
        load_encoder(path)


def test_edited_metadata_or_architecture_fail_the_checksum(tmp_path):
    import json

    path = save_encoder(tiny_encoder(), tmp_path / "enc.pt", META)
    original = torch.load(path, weights_only=True)
    assert original["format_version"] == 3
    for edit in ("radius", "input_embedding", "architecture"):
        document = torch.load(path, weights_only=True)
        metadata = json.loads(document["metadata"])
        if edit == "radius":
            metadata["graph"]["radius"] = 6.0
        elif edit == "input_embedding":
            metadata["input_embedding"] = "crysatom"
        else:
            document["architecture"]["outer_softplus"] = False
        document["metadata"] = json.dumps(metadata)
        torch.save(document, tmp_path / f"{edit}.pt")
        with pytest.raises(EncoderFileError, match="metadata or architecture were edited") as info:
            load_encoder(tmp_path / f"{edit}.pt")
        assert f"{edit}.pt" in str(info.value) and "\n" not in str(info.value)


def test_format_1_files_still_load(tmp_path):
    import json

    path = save_encoder(tiny_encoder(), tmp_path / "enc.pt", META)
    document = torch.load(path, weights_only=True)
    metadata = json.loads(document["metadata"])
    del metadata["content_checksum"]  # as written before the metadata was checksummed
    document.update(format_version=1, metadata=json.dumps(metadata))
    torch.save(document, tmp_path / "v1.pt")
    encoder, loaded = load_encoder(tmp_path / "v1.pt")
    assert loaded["checksum"] == metadata["checksum"] and encoder.hidden_dim == 8
    # a format-3 file relabelled as format 1 still has its content checksum checked
    edited = torch.load(path, weights_only=True)
    meta2 = json.loads(edited["metadata"])
    meta2["graph"]["radius"] = 6.0
    edited.update(format_version=1, metadata=json.dumps(meta2))
    torch.save(edited, tmp_path / "relabelled.pt")
    with pytest.raises(EncoderFileError, match="metadata or architecture were edited"):
        load_encoder(tmp_path / "relabelled.pt")
    for version, message in (
        (4, "format 4; this release reads format 1, 3: upgrade"),
        (2, "format 2 is no longer read"),
        ("x", "'x' is not a version number"),
    ):
        document["format_version"] = version
        torch.save(document, tmp_path / "other.pt")
        with pytest.raises(EncoderFileError, match=message):
            load_encoder(tmp_path / "other.pt")


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_encoder(tiny_encoder(0), tmp_path / "enc.pt", META)
    before = path.read_bytes()
    from crysatom_featurizers.nn import pretrained

    def broken(target, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pretrained, "atomic_write_bytes", broken)
    with pytest.raises(OSError, match="No space"):
        save_encoder(tiny_encoder(1), path, META)
    assert path.read_bytes() == before


def test_shipped_names_resolve_and_missing_files_say_how_to_make_them(tmp_path, monkeypatch):
    from crysatom_featurizers.nn import available_encoders, pretrained

    monkeypatch.setattr(pretrained, "ENCODER_DATA_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "SHIPPED_ENCODERS", {"tiny": ("tiny.pt", "make it so")})
    with pytest.raises(FileNotFoundError, match="has not been generated.*make it so"):
        load_encoder("tiny")
    assert available_encoders()[0]["present"] is False
    save_encoder(tiny_encoder(), tmp_path / "tiny.pt", {**META, "description": "a tiny one"})
    encoder, metadata = load_encoder("TINY")
    assert encoder.hidden_dim == 8 and metadata["description"] == "a tiny one"
    assert available_encoders() == [
        {
            "name": "tiny",
            "file": str(tmp_path / "tiny.pt"),
            "present": True,
            "description": "a tiny one",
        }
    ]
    with pytest.raises(FileNotFoundError, match="neither a shipped encoder"):
        load_encoder("nope")
    # a shipped file whose bytes are not the pinned ones is refused, naming the file
    monkeypatch.setattr(pretrained, "SHIPPED_ENCODER_SHA256", {"tiny": "0" * 64})
    with pytest.raises(EncoderFileError, match="tiny.pt.*not the one this release pins"):
        load_encoder("tiny")
    monkeypatch.setattr(
        pretrained, "SHIPPED_ENCODER_SHA256", {"tiny": pretrained.file_sha256(tmp_path / "tiny.pt")}
    )
    assert load_encoder("tiny")[0].hidden_dim == 8


def test_cli_lists_the_encoders(capsys):
    from crysatom_featurizers import cli

    assert cli.main(["embeddings", "list"]) == 0
    out = capsys.readouterr().out
    assert "encoders (pretrained CGCNN encoders" in out and "crysatom" in out


def test_shipped_crysatom_encoder_loads():
    from crysatom_featurizers.nn import available_encoders

    row = next(r for r in available_encoders() if r["name"] == "crysatom")
    if not row["present"]:
        pytest.skip("the crysatom encoder file has not been generated")
    encoder, metadata = load_encoder("crysatom")
    assert (encoder.in_dim, encoder.hidden_dim, encoder.num_layers) == (92, 200, 5)
    assert metadata["input_embedding"] == "cgcnn"
    for key in ("config", "corpus_checksum", "epochs_in_checkpoint", "train_wall_time_s"):
        assert key in metadata


@pytest.mark.parametrize("name", ["crysatom", "uae"])
def test_a_copy_of_a_shipped_encoder_with_an_edited_radius_is_refused(name, tmp_path):
    import json

    from crysatom_featurizers.nn.pretrained import encoder_path

    document = torch.load(encoder_path(name), weights_only=True)
    assert document["format_version"] == 3  # the content checksum covers the metadata
    metadata = json.loads(document["metadata"])
    assert metadata["upgraded_from"][0]["format_version"] == 1
    metadata["graph"]["radius"] = 6.0
    document["metadata"] = json.dumps(metadata)
    torch.save(document, tmp_path / "copy.pt")
    with pytest.raises(EncoderFileError, match="metadata or architecture were edited"):
        load_encoder(tmp_path / "copy.pt")
