"""``radlens learn`` pieces: warm start from ONNX (parity), the recipe, reading cases."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.errors import ConfigError, InputError
from train_helpers import minimal_recipe

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("onnx")

from radlens.models.card import Training, write_card  # noqa: E402
from radlens.models.registry import load_model  # noqa: E402
from radlens.training.export import export_onnx, parity  # noqa: E402
from radlens.training.learn import (  # noqa: E402
    STATE_FILE,
    learn_recipe,
    onnx_state,
    read_case_image,
    read_cases,
    transfer_state,
    warm_start,
)
from radlens.training.nets import build_net  # noqa: E402
from radlens.training.recipe import NetSpec  # noqa: E402
from radlens.training.train import draft_card  # noqa: E402

LOG = logging.getLogger("tests.learn")
SMALL = NetSpec(arch="resnet", layers=(1, 1, 1, 1), widths=(4, 8, 8, 16), stem_kernel=3,
                stem_stride=1, max_pool=False, dropout=0.0)  # fmt: skip


def recipe_16px():  # type: ignore[no-untyped-def]
    recipe = minimal_recipe("binary", ["NORMAL", "PNEUMONIA"])
    return replace(recipe, net=SMALL, input=replace(recipe.input, size=(16, 16)))


def trained_like(seed: int = 0):  # type: ignore[no-untyped-def]
    """A small net whose batch norms hold non-trivial statistics and scales, as after
    training (a fresh net's norms are the identity, which would hide mistakes)."""
    torch.manual_seed(seed)
    net = build_net(SMALL, 1, 2, 2)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n) * 0.3)
                module.running_var.copy_(torch.rand(n) + 0.5)
                module.weight.copy_(torch.rand(n) + 0.5)
                module.bias.copy_(torch.randn(n) * 0.2)
    return net.eval()


@pytest.fixture
def probe():  # type: ignore[no-untyped-def]
    return torch.from_numpy(
        np.random.default_rng(1).normal(size=(64, 1, 16, 16)).astype(np.float32)
    )


@pytest.fixture
def exported(tmp_path: Path, probe):  # type: ignore[no-untyped-def]
    net = trained_like()
    path = tmp_path / "model.onnx"
    export_onnx(net, probe[:2], path)
    return net, path


def test_onnx_weights_load_into_the_recipe_network_with_parity(exported, probe) -> None:  # type: ignore[no-untyped-def]
    original, path = exported
    fresh = build_net(SMALL, 1, 2, 2)
    assert parity(fresh, path, probe) > 1e-2  # a random net is far off
    onnx_state(fresh, path, probe)
    assert parity(fresh, path, probe) < 1e-4
    with torch.no_grad():
        np.testing.assert_allclose(
            fresh.eval()(probe)[0].numpy(), original(probe)[0].numpy(), atol=1e-4
        )


def test_the_loaded_norms_give_the_same_outputs_in_training_mode_on_the_probe(
    exported,  # type: ignore[no-untyped-def]
    probe,  # type: ignore[no-untyped-def]
) -> None:
    _, path = exported
    net = build_net(SMALL, 1, 2, 2)
    onnx_state(net, path, probe)
    with torch.no_grad():
        evaluated = net.eval()(probe)[1]
        trained = net.train()(probe)[1]  # batch statistics = the probe's: the same function
    np.testing.assert_allclose(trained.numpy(), evaluated.numpy(), atol=1e-3)


def test_onnx_weights_of_another_network_are_refused(exported, probe) -> None:  # type: ignore[no-untyped-def]
    _, path = exported
    wider = build_net(replace(SMALL, widths=(8, 8, 16, 16)), 1, 2, 2)
    with pytest.raises(ConfigError, match="pass the model's recipe"):
        onnx_state(wider, path, probe)


def model_folder(folder: Path, net, probe) -> Path:  # type: ignore[no-untyped-def]
    """A model folder (model.onnx + card.json) of ``net`` for the 16 px recipe."""
    folder.mkdir(parents=True)
    export_onnx(net, probe[:2], folder / "model.onnx")
    training = Training("tests", "synthetic", "CC0", commercial_use=True)
    write_card(draft_card(recipe_16px(), folder / "model.onnx", training), folder / "card.json")
    return folder


def test_warm_start_reproduces_the_current_version_or_refuses(tmp_path: Path, probe) -> None:  # type: ignore[no-untyped-def]
    folder = model_folder(tmp_path / "model", trained_like(), probe)
    parent = load_model(folder)
    state = warm_start(parent, recipe_16px(), probe, LOG)
    net = build_net(SMALL, 1, 2, 2)
    net.load_state_dict(state)
    assert parity(net, parent.weights, probe) < 1e-3
    # A state dict kept beside the weights is used first, and must match them too.
    torch.save(trained_like(seed=5).state_dict(), folder / STATE_FILE)
    from radlens.errors import ModelIntegrityError

    with pytest.raises(ModelIntegrityError, match="warm start differs from ONNX Runtime"):
        warm_start(parent, recipe_16px(), probe, LOG)
    torch.save(state, folder / STATE_FILE)
    assert warm_start(parent, recipe_16px(), probe, LOG).keys() == state.keys()


def test_warm_start_refuses_ensembles(tmp_path: Path, probe) -> None:  # type: ignore[no-untyped-def]
    parent = load_model(model_folder(tmp_path / "model", trained_like(), probe))
    recipe = recipe_16px()
    ensemble = replace(recipe, schedule=replace(recipe.schedule, ensemble=2))
    with pytest.raises(ConfigError, match="single classification networks"):
        warm_start(parent, ensemble, probe, LOG)


def test_transfer_takes_the_trunk_and_leaves_the_head(tmp_path: Path, probe) -> None:  # type: ignore[no-untyped-def]
    source_net = trained_like()
    source = load_model(model_folder(tmp_path / "model", source_net, probe))
    recipe = replace(recipe_16px(), labels=("0", "1", "2"))
    state = transfer_state(source, recipe, probe, LOG)
    assert state and all(key.startswith("trunk.") for key in state)
    torch.manual_seed(3)
    net = build_net(SMALL, 1, 3, 2)
    head = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("fc.")}
    net.load_state_dict({**net.state_dict(), **state})
    with torch.no_grad():
        np.testing.assert_allclose(
            net.eval().features(probe).numpy(), source_net.features(probe).numpy(), atol=1e-4
        )
    for key, value in head.items():
        torch.testing.assert_close(net.state_dict()[key], value)  # the seed's head


def test_transfer_from_another_network_is_refused(tmp_path: Path, probe) -> None:  # type: ignore[no-untyped-def]
    source = load_model(model_folder(tmp_path / "model", trained_like(), probe))
    wider = replace(recipe_16px(), net=replace(SMALL, widths=(8, 8, 16, 16)))
    with pytest.raises(ConfigError, match="net.init 't': its network is not the recipe's"):
        transfer_state(source, wider, probe, LOG)


def test_learn_recipe_lowers_the_learning_rate_and_takes_overrides(tmp_path: Path) -> None:
    path = Path("recipes/cxr_pneumonia_128.toml")
    recipe = learn_recipe(path)
    assert recipe.schedule.epochs == 2
    assert recipe.schedule.lr == pytest.approx(2e-3 * 0.2)
    assert learn_recipe(path, {"schedule.epochs": 2, "schedule.lr": 1e-4}).schedule.lr == 1e-4
    with pytest.raises(ConfigError, match="pass --recipe"):
        learn_recipe(tmp_path / "missing.toml")


def write_cases(folder: Path, rows: list[str], header: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.full((12, 12), 80, np.uint8)).save(folder / "a.png")
    header = (
        header or "file,label,site,scanner,patient_key,n_readers,agreement,study_key,finding_id"
    )
    (folder / "cases.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder


def test_read_cases_reads_labels_keys_and_hashes(tmp_path: Path, make_card) -> None:  # type: ignore[no-untyped-def]
    folder = write_cases(tmp_path / "export", ["a.png,1,s,x,k1,2,1.0,,", "a.png,0,s,x,k2,1,1.0,,"])
    cases = read_cases([folder], make_card())
    assert cases.data.labels.tolist() == [1, 0]
    assert cases.patient_keys == ("k1", "k2")
    assert cases.data.ids == ("export/a.png", "export/a.png")
    assert cases.image_sha256[0] == cases.image_sha256[1]
    assert cases.folders[0]["n"] == 2 and len(cases.folders[0]["cases_csv_sha256"]) == 64


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["a.png,2,s,x,k1,1,1,,"], "", "label '2' is not a class index"),
        (["a.png,PNEUMONIA,s,x,k1,1,1,,"], "", "is not a class index"),
        (["a.png,1,s,x,,1,1,,"], "", "no patient_key"),
        (["a.png,1"], "file,label", "missing column"),
        (["missing.png,1,s,x,k1,1,1,,"], "", "file not found"),
    ],
)
def test_read_cases_refuses_bad_rows_naming_the_file(
    tmp_path: Path,
    make_card,  # type: ignore[no-untyped-def]
    rows: list[str],
    header: str,
    message: str,
) -> None:
    folder = write_cases(tmp_path / "export", rows, header)
    with pytest.raises(InputError, match=message):
        read_cases([folder], make_card())
    with pytest.raises(InputError, match="no cases.csv"):
        read_cases([tmp_path], make_card())


def test_a_dicom_case_is_read_through_the_dicom_reader(pydicom_data_dir: Path, make_card) -> None:  # type: ignore[no-untyped-def]
    pixels = read_case_image(pydicom_data_dir / "RG1_UNCR.dcm", make_card())  # CR, MONOCHROME1
    assert pixels.shape == (1955, 1841)
    assert pixels.min() == 0.0 and pixels.max() == pytest.approx(255.0)
