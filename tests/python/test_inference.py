"""voxelytics.inference.TorchScriptModel: LibTorch in C++ must give what torch gives in Python."""

import json

import numpy as np
import pytest

import voxelytics as vx
import voxelytics.inference as vxi

if not vxi.available():
    pytest.skip("this voxelytics build has no LibTorch inference", allow_module_level=True)

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, kernel_size=3, padding=1)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def model_path(tmp_path, tiny_net):
    path = tmp_path / "tiny.pt"
    torch.jit.script(tiny_net).save(str(path))
    return path


def reference(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def test_output_matches_torch(tiny_net, model_path):
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 10, 12)).astype(np.float32)
    model = vxi.TorchScriptModel(model_path)
    out = model(x)
    expected = reference(tiny_net, x)
    assert out.dtype == np.float32
    assert out.shape == (1, 2, 8, 10, 12)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert (out == 0).any() and (out > 0).any()  # the ReLU clipped something, and not everything


def test_float64_and_fortran_inputs_are_converted(tiny_net, model_path):
    x = np.random.default_rng(1).standard_normal((1, 1, 6, 7, 5))
    model = vxi.TorchScriptModel(model_path)
    expected = reference(tiny_net, x.astype(np.float32))
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(np.asfortranarray(x, dtype=np.float32)), expected, rtol=1e-5, atol=1e-6)
    assert x.dtype == np.float64  # the caller's array is untouched


def test_path_device_and_repr(model_path):
    model = vxi.TorchScriptModel(model_path)
    assert model.path == str(model_path)
    assert model.device == "cpu"
    assert model.precision == "float32" and not model.optimized
    assert (
        repr(model)
        == f"TorchScriptModel({str(model_path)!r}, device='cpu', optimize=False, precision='float32')"
    )


def test_optimized_and_bfloat16_models_agree_with_the_plain_one(model_path):
    x = np.random.default_rng(0).random((1, 1, 6, 7, 8), dtype=np.float32)
    expected = vxi.TorchScriptModel(model_path)(x)
    optimized = vxi.TorchScriptModel(model_path, optimize=True)
    assert optimized.optimized
    np.testing.assert_allclose(optimized(x), expected, rtol=1e-5, atol=1e-6)
    half = vxi.TorchScriptModel(model_path, precision="bfloat16")
    assert half.precision == "bfloat16"
    out = half(x)
    assert out.dtype == np.float32  # outputs come back as float32
    np.testing.assert_allclose(out, expected, rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="unknown precision 'float8'"):
        vxi.TorchScriptModel(model_path, precision="float8")


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        vxi.TorchScriptModel(missing)


def test_garbage_file_is_corrupt_data(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a TorchScript archive\x00\x01\x02" * 10)
    with pytest.raises(vx.CorruptDataError, match="garbage.pt"):
        vxi.TorchScriptModel(path)


def test_wrong_rank_input(model_path):
    model = vxi.TorchScriptModel(model_path)
    with pytest.raises(ValueError, match=r"\(8, 10\)"):
        model(np.zeros((8, 10), dtype=np.float32))


@pytest.mark.parametrize("device", ["banana", "cpu:x", ""])
def test_unknown_device(model_path, device):
    with pytest.raises(ValueError, match="device"):
        vxi.TorchScriptModel(model_path, device=device)


# --- Predictor: tiled inference of saved voxelytics models -------------------------------------

from voxelytics import models  # noqa: E402


def whole_prediction(net, config, volume, offset, shape):
    """The network run once over the box's input, mirrored (symmetric) beyond the volume."""
    half = np.array(config.context()) // 2
    need = np.array(config.valid_input_shape(np.array(shape) + 2 * half))
    lo = np.array(offset) - half
    index = [np.arange(start, start + n) for start, n in zip(lo, need)]
    mirrored = [np.where(i < 0, -i - 1, i) % (2 * s) for i, s in zip(index, volume.shape)]
    mirrored = [np.where(m >= s, 2 * s - 1 - m, m) for m, s in zip(mirrored, volume.shape)]
    block = volume[np.ix_(*mirrored)].astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(((block - 127.5) / 127.5).T))[None, None]
    with torch.no_grad():
        out = net(x)[0].numpy().transpose(0, 3, 2, 1)
    return out[:, : shape[0], : shape[1], : shape[2]]


@pytest.fixture(scope="module")
def saved_unet(tmp_path_factory):
    torch.manual_seed(3)
    config = models.UNetConfig(
        width=4, heads=models.standard_heads(affinity_offsets=((-1, 0, 0),), synapses=False)
    )
    net = models.UNet(config).eval()
    path = tmp_path_factory.mktemp("unet") / "unet.pt"
    models.save(net, path, name="tiny-unet", voxel_size=(1, 1, 1), patch_shape=(48, 48, 20))
    return net, config, path


@pytest.mark.parametrize("tile", [None, "card", (1, 1, 1), (5, 3, 2)])  # explicit: x the alignment
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("box", [((0, 0, 0), None), ((-5, 7, 3), (33, 20, 9)), ((2, 1, 0), (3, 2, 1))])
def test_predictor_tiles_equal_one_whole_pass(saved_unet, tile, batch, box):
    net, config, path = saved_unet
    volume = np.random.default_rng(4).integers(0, 256, (70, 45, 27)).astype(np.uint8)
    offset, shape = box
    shape = volume.shape if shape is None else shape
    card = models.read_card(path)
    if tile == "card":
        tile = card.output.patch_shape
    elif tile is not None:
        tile = tuple(t * a for t, a in zip(tile, card.output.alignment))
    predictor = vxi.Predictor(path, batch=batch, threads=2, tile=tile)
    out = predictor.predict(volume, offset=offset, shape=shape)
    assert out.shape == (config.out_channels, *shape) and out.dtype == np.float32 and out.flags.f_contiguous
    np.testing.assert_allclose(
        out, whole_prediction(net, config, volume, offset, shape), rtol=1e-4, atol=1e-5
    )
    comp = predictor.channels("compartments")
    np.testing.assert_allclose(out[comp].sum(axis=0), 1, rtol=1e-5)


def test_predictor_default_tiles_split_the_box_evenly(saved_unet):
    _, _, path = saved_unet
    predictor = vxi.Predictor(path)
    align = tuple(predictor.card.output.alignment)
    assert vxi.TILE == (64, 64, 32)
    for shape in [(128, 128, 128), (100, 65, 20), (1, 2, 3), (300, 64, 33)]:
        tile = predictor.tile_for(shape)
        pieces = [-(-n // t) for n, t in zip(shape, tile)]
        assert all(t % a == 0 and t >= a for t, a in zip(tile, align)), (shape, tile)
        # the fewest tiles of at most TILE voxels, each no larger than an even split needs
        assert pieces == [max(1, -(-n // m)) for n, m in zip(shape, vxi.TILE)], (shape, tile)
        assert all(t < -(-n // p) + a for n, t, p, a in zip(shape, tile, pieces, align)), (shape, tile)
    assert vxi.Predictor(path, tile=(8, 8, 8)).tile_for((128, 128, 128)) == (8, 8, 8)
    with pytest.raises(ValueError, match="multiples of the model's alignment"):
        vxi.Predictor(path, tile=(align[0] + 1, align[1], align[2]))


def test_predictor_takes_volumes_smaller_than_its_field_of_view(saved_unet):
    net, config, path = saved_unet
    tiny = np.full((3, 2, 1), 200, np.uint8)
    out = vxi.Predictor(path).predict(tiny)
    assert out.shape == (config.out_channels, 3, 2, 1)
    np.testing.assert_allclose(
        out, whole_prediction(net, config, tiny, (0, 0, 0), tiny.shape), rtol=1e-4, atol=1e-5
    )


def test_predictor_refuses_bad_inputs_and_cards(saved_unet, tmp_path):
    net, config, path = saved_unet
    predictor = vxi.Predictor(path)
    with pytest.raises(ValueError, match="2 channel\\(s\\), the model 'tiny-unet' takes 1"):
        predictor.predict(np.zeros((2, 8, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="uint8 or float32"):
        predictor.predict(np.zeros((8, 8, 8), np.int16))
    bad = np.zeros((8, 8, 8), np.float32)
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity at voxel \(1, 2, 3\)"):
        predictor.predict(bad)
    with pytest.raises(KeyError, match="no head 'synapses'"):
        predictor.channels("synapses")
    with pytest.raises(FileNotFoundError, match="model card not found"):
        vxi.Predictor(tmp_path / "none.pt")
    # Another model under the card's name: the card does not describe it.
    other = tmp_path / "unet.pt"
    models.save(net, other, name="x", voxel_size=(1, 1, 1), patch_shape=(48, 48, 20))
    torch.jit.script(TinyNet()).save(str(other))
    with pytest.raises(vx.CorruptDataError, match="does not describe"):
        vxi.Predictor(other)


class _Blowup(torch.nn.Module):
    def forward(self, x):
        return torch.log(x[:, :, 1:-1, 1:-1, 1:-1] * 0 - 1)  # NaN everywhere


def test_predictor_reports_nan_outputs(saved_unet, tmp_path):
    _, _, path = saved_unet
    card = models.read_card(path).model_copy(deep=True)
    model = tmp_path / "nan.pt"
    torch.jit.script(_Blowup()).save(str(model))
    fields = card.model_dump()
    fields["input"]["patch_shape"] = (12, 12, 12)
    fields["output"].update(patch_shape=(10, 10, 10), context=(2, 2, 2), alignment=(1, 1, 1))
    fields["output"]["channels"] = fields["output"]["channels"][:1]
    fields.update(model_file="nan.pt", model_sha256=models.card.sha256(model))
    models.write_card(models.ModelCard.model_validate(fields), tmp_path / "nan.json")
    with pytest.raises(ValueError, match="produced nan in channel 0 at output voxel"):
        vxi.Predictor(model).predict(np.zeros((5, 5, 5), np.uint8))


def test_predict_dataset_block_by_block_equals_one_pass_and_resumes(saved_unet, tmp_path, monkeypatch):
    import json

    net, config, _ = saved_unet
    path = tmp_path / "big-patch.pt"  # fewer, larger tiles than the fixture's: a quicker test
    models.save(net, path, name="tiny-unet", voxel_size=(1, 1, 1), patch_shape=(72, 64, 32))
    volume = np.random.default_rng(6).integers(0, 256, (70, 45, 27)).astype(np.uint8)
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(1, 1, 1))
    ds.add_layer("color", "color", "uint8").add_mag(1).write(volume)
    predictor = vxi.Predictor(path, batch=2)
    whole = predictor.predict(volume)

    calls = []
    real = vxi.Predictor.predict

    def failing(self, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(vxi.Predictor, "predict", failing)
    with pytest.raises(KeyboardInterrupt):
        vxi.predict_dataset(ds, "color", predictor, "pred", block_shape=(32, 24, 16), progress=False)
    marker = json.loads((tmp_path / "ds" / "pred" / ".voxelytics-predict.json").read_text())
    assert marker["complete"] is False and len(marker["done"]) == 3
    monkeypatch.setattr(vxi.Predictor, "predict", real)
    counted = []
    monkeypatch.setattr(
        vxi.Predictor, "predict", lambda self, *a, **k: counted.append(1) or real(self, *a, **k)
    )
    layer = vxi.predict_dataset(
        ds, "color", predictor, "pred", block_shape=(32, 24, 16), resume=True, progress=False
    )
    assert len(counted) == 3 * 2 * 2 - 3  # 12 blocks of (32, 24, 16) over (70, 45, 27), 3 already done
    marker = json.loads((tmp_path / "ds" / "pred" / ".voxelytics-predict.json").read_text())
    assert marker["complete"] is True
    assert layer.num_channels == config.out_channels and layer.dtype == np.float32
    np.testing.assert_allclose(layer.get_mag(1).read(), whole, rtol=1e-5, atol=1e-6)

    quantised = vxi.predict_dataset(ds, "color", predictor, "pred8", dtype="uint8", block_shape=(64, 64, 32),
                                    progress=False)  # fmt: skip
    np.testing.assert_array_equal(
        quantised.get_mag(1).read(), np.clip(np.rint(whole * 255), 0, 255).astype(np.uint8)
    )
    with pytest.raises(ValueError, match="output layer 'pred8' .* exists with .* uint8"):
        vxi.predict_dataset(ds, "color", predictor, "pred8", progress=False)
    ds.add_layer("rgb", "color", "uint8", num_channels=3)
    with pytest.raises(ValueError, match="layer 'rgb' .* has 3 channel\\(s\\), model 'tiny-unet' takes 1"):
        vxi.predict_dataset(ds, "rgb", predictor, "x", progress=False)


def test_predict_dataset_writes_each_head_to_its_own_layer(saved_unet, tmp_path):
    net, config, path = saved_unet
    volume = np.random.default_rng(7).integers(0, 256, (40, 36, 22)).astype(np.uint8)
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(1, 1, 1))
    ds.add_layer("color", "color", "uint8").add_mag(1).write(volume)
    predictor = vxi.Predictor(path, batch=2)
    whole = predictor.predict(volume)
    layers = vxi.predict_dataset(ds, "color", predictor, {"boundaries": "bnd", "compartments": "comp"},
                                 block_shape=(32, 32, 16), dtype="uint8", progress=False)  # fmt: skip
    assert set(layers) == {"boundaries", "compartments"} and "affinities" not in ds.layers
    for head, layer in layers.items():
        expected = whole[predictor.channels(head)]
        assert layer.num_channels == len(expected)
        np.testing.assert_array_equal(layer.get_mag(1).read(), np.clip(np.rint(expected * 255), 0, 255))
        assert json.loads((tmp_path / "ds" / layer.name / ".voxelytics-predict.json").read_text())["complete"]
    with pytest.raises(KeyError, match="no head 'synapses'; its heads"):
        vxi.predict_dataset(ds, "color", predictor, {"synapses": "syn"}, progress=False)
    with pytest.raises(ValueError, match="two heads to one layer"):
        vxi.predict_dataset(ds, "color", predictor, {"soma": "x", "boundaries": "x"}, progress=False)


def test_predict_dataset_refuses_uint8_for_heads_without_activation(tmp_path):
    torch.manual_seed(0)
    config = models.UNetConfig(
        width=4, heads=models.standard_heads(affinity_offsets=(), soma=False, compartments=False)
    )
    models.save(
        models.UNet(config), tmp_path / "s.pt", name="syn", voxel_size=(1, 1, 1), patch_shape=(48, 48, 20)
    )
    ds = vx.Dataset.create(tmp_path / "ds", voxel_size=(1, 1, 1))
    ds.add_layer("color", "color", "uint8").add_mag(1).write(np.zeros((8, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="heads \\['direction'\\] .* have no activation"):
        vxi.predict_dataset(ds, "color", tmp_path / "s.pt", "p", dtype="uint8", progress=False)


class _Equivariant(torch.nn.Module):
    """Hand-built heads that commute with flips and transposes: a boundary (the voxel), affinities
    to the -x/-y/-z neighbours (products of the pair) and a direction field (central differences)."""

    def forward(self, x):
        c = x[:, :, 1:-1, 1:-1, 1:-1]
        xm, xp = x[:, :, 1:-1, 1:-1, :-2], x[:, :, 1:-1, 1:-1, 2:]
        ym, yp = x[:, :, 1:-1, :-2, 1:-1], x[:, :, 1:-1, 2:, 1:-1]
        zm, zp = x[:, :, :-2, 1:-1, 1:-1], x[:, :, 2:, 1:-1, 1:-1]
        return torch.cat([torch.sigmoid(c), c * xm, c * ym, c * zm, xp - xm, yp - ym, zp - zm], 1)


@pytest.mark.parametrize("augment", [2, 8, 16])
def test_test_time_augmentation_transforms_each_head_back(tmp_path, augment):
    path = tmp_path / "eq.pt"
    torch.jit.script(_Equivariant()).save(str(path))
    channels = [models.OutputChannel(head="boundaries", name="boundary", activation="sigmoid")]
    channels += [models.OutputChannel(head="affinities", name=f"aff{k}", activation="sigmoid", offset=o)
                 for k, o in enumerate([(-1, 0, 0), (0, -1, 0), (0, 0, -1)])]  # fmt: skip
    channels += [
        models.OutputChannel(head="direction", name=n, activation="none") for n in ("dx", "dy", "dz")
    ]
    card = models.ModelCard(
        name="equivariant", voxel_size=(1, 1, 1),
        input=models.InputSpec(channels=1, patch_shape=(12, 10, 9)),
        output=models.OutputSpec(patch_shape=(10, 8, 7), context=(2, 2, 2), channels=channels),
        model_file="eq.pt", model_sha256=models.sha256(path),
    )  # fmt: skip
    models.write_card(card, tmp_path / "eq.json")
    predictor = vxi.Predictor(path)
    volume = np.random.default_rng(2).integers(0, 256, (23, 17, 11)).astype(np.uint8)
    plain = predictor.predict(volume, offset=(2, 1, 3), shape=(19, 14, 6))
    augmented = predictor.predict(volume, offset=(2, 1, 3), shape=(19, 14, 6), augment=augment)
    np.testing.assert_allclose(augmented, plain, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="augment must be one of"):
        predictor.predict(volume, augment=3)


def test_output_channels_equal_numpy_quantisation():
    rng = np.random.default_rng(8)
    pred = rng.random((6, 33, 20, 9), dtype=np.float32)
    pred[:, :4] = (np.arange(4 * 6 * 20 * 9).reshape(6, 4, 20, 9) % 256 + 0.5).astype(
        np.float32
    ) / 255  # ties
    pred[0, 0, 0, 0], pred[1, 0, 0, 0] = -0.2, 1.3  # clipped
    pred = np.asfortranarray(pred)
    for channels in ([0, 1, 2, 3, 4, 5], [4, 1], [5]):
        expected = np.clip(np.rint(pred[channels] * 255), 0, 255).astype(np.uint8)
        got = vxi.output_channels(pred, channels, np.uint8, threads=3)
        assert got.flags.f_contiguous and got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(vxi.output_channels(pred, channels, np.float32), pred[channels])
    with pytest.raises(ValueError, match="channel 6 of a prediction with 6"):
        vxi.output_channels(pred, [6], np.uint8)
    with pytest.raises(ValueError, match="float32 or uint8"):
        vxi.output_channels(pred, [0], np.float64)
