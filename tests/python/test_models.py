"""voxelytics.models: U-Net shape arithmetic, tiling exactness, heads, save/load with model cards."""

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import voxelytics as vx  # noqa: E402
import voxelytics.inference as vxi  # noqa: E402
from voxelytics import models  # noqa: E402


def small_config(**kw):
    kw.setdefault("width", 4)
    kw.setdefault("heads", models.standard_heads(affinity_offsets=((-1, 0, 0), (0, -1, 0), (0, 0, -1))))
    return models.UNetConfig(**kw)


def run(net, volume):
    """[x, y, z] numpy in, (C, x, y, z) numpy out."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(volume.T, np.float32))[None, None]
        return net(x)[0].numpy().transpose(0, 3, 2, 1)


@pytest.mark.parametrize("depth, anisotropic", [(1, 0), (2, 1), (2, 2), (3, 1)])
def test_output_shape_matches_the_network_and_context_is_constant(depth, anisotropic):
    config = small_config(depth=depth, anisotropic_levels=anisotropic)
    net = models.UNet(config).eval()
    for want in [(1, 1, 1), (30, 25, 12)]:
        shape = config.valid_input_shape(want)
        assert all(s >= w for s, w in zip(shape, want))
        out = run(net, np.zeros(shape, np.float32))
        assert out.shape[1:] == config.output_shape(shape)
        assert tuple(s - o for s, o in zip(shape, out.shape[1:])) == config.context()
    # In-plane levels do not convolve along z: less context there.
    if anisotropic:
        assert config.context()[2] < config.context()[0]


def test_invalid_input_shapes_name_the_axis():
    config = small_config(depth=2, anisotropic_levels=1)
    good = config.valid_input_shape((40, 40, 20))
    with pytest.raises(ValueError, match="axis y"):
        config.output_shape((good[0], good[1] + 1, good[2]))
    with pytest.raises(ValueError, match="field of view"):
        config.output_shape((4, 4, 4))


def test_tiles_predicted_with_context_equal_the_whole_prediction():
    config = small_config(depth=2, anisotropic_levels=1)
    net = models.UNet(config).eval()
    context = np.array(config.context())
    rng = np.random.default_rng(0)
    whole_in = config.valid_input_shape((70, 66, 30))
    volume = rng.random(whole_in, dtype=np.float32)
    whole = run(net, volume)
    out_shape = np.array(whole.shape[1:])
    # Two tiles split along x (and y), each input = its output box grown by half the context per side.
    tile_in = config.valid_input_shape(context + 1)
    tile_out = np.array(config.output_shape(tile_in))
    assert (tile_out < out_shape).all()
    for corner in [(0, 0, 0), tuple(out_shape - tile_out)]:
        corner = np.array(corner)
        box = tuple(slice(c, c + t) for c, t in zip(corner, tile_in))
        tile = run(net, volume[box])
        expected = whole[(slice(None),) + tuple(slice(c, c + t) for c, t in zip(corner, tile_out))]
        np.testing.assert_allclose(tile, expected, rtol=1e-4, atol=1e-5)


def test_heads_apply_their_activations():
    config = small_config()
    net = models.UNet(config).eval()
    out = run(net, np.random.default_rng(1).random(config.valid_input_shape((30, 30, 12)), dtype=np.float32))
    card_like = models.output_channels(config)
    index = {c.name: i for i, c in enumerate(card_like)}
    comp = [index[n] for n in models.COMPARTMENT_CLASSES]
    np.testing.assert_allclose(out[comp].sum(axis=0), 1.0, rtol=1e-5)
    sig = [i for i, c in enumerate(card_like) if c.activation == "sigmoid"]
    assert (out[sig] > 0).all() and (out[sig] < 1).all()
    assert out.shape[0] == config.out_channels == len(card_like) == 3 + 1 + 2 + 3 + 1 + 5


def test_save_and_load_round_trip(tmp_path):
    config = small_config()
    net = models.UNet(config)
    card = models.save(
        net, tmp_path / "m.pt", name="tiny", voxel_size=(11.24, 11.24, 30), patch_shape=(40, 40, 16)
    )
    assert card.input.patch_shape == config.valid_input_shape((40, 40, 16))
    assert card.output.context == config.context()
    assert card.affinity_offsets() == [(-1, 0, 0), (0, -1, 0), (0, 0, -1)]
    assert card.head_channels("synapses") == [4, 5]
    with pytest.raises(KeyError, match="no head 'mito'"):
        card.head_channels("mito")
    loaded, card2 = models.load(tmp_path / "m.pt")
    assert card2 == card
    assert models.config_from_card(card2) == config
    x = torch.rand(1, 1, *reversed(card.input.patch_shape))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), net.eval()(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not vxi.available(), reason="built without LibTorch")
def test_libtorch_runs_the_saved_model_as_torch_does(tmp_path):
    net = models.UNet(small_config())
    card = models.save(net, tmp_path / "m.pt", name="tiny", voxel_size=(1, 1, 1), patch_shape=(30, 30, 12))
    x = np.random.default_rng(2).random((1, 1, *reversed(card.input.patch_shape))).astype(np.float32)
    ours = vxi.TorchScriptModel(tmp_path / "m.pt")(x)
    with torch.no_grad():
        np.testing.assert_allclose(ours, net.eval()(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_cards_and_models_give_clear_errors(tmp_path):
    net = models.UNet(small_config())
    models.save(net, tmp_path / "m.pt", name="tiny", voxel_size=(1, 1, 1), patch_shape=(30, 30, 12))
    card_file = tmp_path / "m.json"
    good = json.loads(card_file.read_text())

    with pytest.raises(FileNotFoundError, match="model card not found"):
        models.read_card(tmp_path / "other.pt")
    bad = dict(good, input=dict(good["input"], patch_shape="big"))
    card_file.write_text(json.dumps(bad))
    with pytest.raises(vx.CorruptDataError, match=r"m\.json: input\.patch_shape"):
        models.read_card(card_file)
    bad = dict(good, output=dict(good["output"], patch_shape=[8, 8, 4]))
    card_file.write_text(json.dumps(bad))
    with pytest.raises(vx.CorruptDataError, match="not input.patch_shape minus output.context"):
        models.read_card(card_file)
    card_file.write_bytes(b"\xff{")
    with pytest.raises(vx.CorruptDataError, match="not valid UTF-8 JSON"):
        models.read_card(card_file)
    card_file.write_text(json.dumps(good))
    models.read_card(card_file)
    # A model file changed after its card was written: the card no longer describes it.
    (tmp_path / "m.pt").write_bytes((tmp_path / "m.pt").read_bytes() + b"x")
    with pytest.raises(vx.CorruptDataError, match="does not describe"):
        models.load(tmp_path / "m.pt")
    (tmp_path / "m.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model file not found"):
        models.read_card(card_file)


def test_head_and_config_validation():
    with pytest.raises(ValueError, match="activation"):
        models.Head("x", 1, "tanh")
    with pytest.raises(ValueError, match="2 offsets for 3 channels"):
        models.Head("affinities", 3, offsets=((1, 0, 0), (0, 1, 0)))
    with pytest.raises(ValueError, match="distinct names"):
        models.UNetConfig(heads=(models.Head("a", 1), models.Head("a", 2)))


def test_pretrained_names_what_ships():
    names = models.available()
    for name in names:  # every shipped model loads, its card checked against its file
        net, card = models.load(models.pretrained(name))
        assert card.name and models.pretrained(name).stat().st_size <= 10_000_000
    with pytest.raises(KeyError, match=re.escape(f"no pre-trained model 'cat'; shipped: {names}")):
        models.pretrained("cat")
