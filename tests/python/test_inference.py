"""voxelytics.inference.TorchScriptModel: LibTorch in C++ must give what torch gives in Python."""

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
    assert repr(model) == f"TorchScriptModel({str(model_path)!r}, device='cpu')"


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
