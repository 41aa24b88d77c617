"""Labelled image sets: MedMNIST npz files and image folders (labels.csv or class folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.errors import EmptyInputError, InputError, UnsupportedFormatError
from radlens.io.datasets import LabelledImages, read_image_file, read_labelled


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def write_gray_png(path: Path, value: int, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.full((size, size), value, np.uint8)).save(path)


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_npz(
        tmp_path / "toymnist.npz",
        train_images=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        train_labels=np.array([[0], [1], [0], [1], [1], [0]]),
        val_images=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        val_labels=np.array([[1], [0], [1]]),
    )


def test_npz_with_n_by_1_labels_gives_flat_int_labels(npz: Path) -> None:
    data = read_labelled(npz, "val")
    assert len(data) == 3
    assert data.labels.tolist() == [1, 0, 1]
    assert data.labels.dtype == np.int64
    assert data.label_names == ("0", "1")
    assert data.ids == ("val[0]", "val[1]", "val[2]")
    assert data.images[0].shape == (28, 28)
    assert (data.split, data.source) == ("val", str(npz))


def test_npz_uses_the_given_label_names(npz: Path) -> None:
    data = read_labelled(npz, "train", ("NORMAL", "PNEUMONIA"))
    assert data.class_counts() == {"NORMAL": 3, "PNEUMONIA": 3}


def test_npz_missing_split_names_the_splits_it_has(npz: Path) -> None:
    with pytest.raises(
        InputError, match=r"no split 'test' in this file; it has \['train', 'val'\]"
    ):
        read_labelled(npz, "test")


def test_npz_labels_beyond_the_names_are_an_error(npz: Path) -> None:
    with pytest.raises(InputError, match="labels go up to 1 but 1 names given"):
        read_labelled(npz, "val", ("ONLY",))


def multi_npz(tmp_path: Path, labels: np.ndarray) -> Path:
    return write_npz(
        tmp_path / "chesty.npz",
        val_images=np.zeros((len(labels), 8, 8), np.uint8),
        val_labels=labels,
    )


def test_npz_with_n_by_k_labels_is_multi_label(tmp_path: Path) -> None:
    path = multi_npz(tmp_path, np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]], np.uint8))
    data = read_labelled(path, "val")
    assert data.multilabel
    assert data.labels.shape == (3, 3) and data.labels.dtype == np.int64
    assert data.labels.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 1]]
    assert data.label_names == ("0", "1", "2")
    assert data.class_counts() == {"0": 1, "1": 1, "2": 2}
    named = read_labelled(path, "val", ("Effusion", "Nodule", "Mass"), multilabel=True)
    assert named.class_counts() == {"Effusion": 1, "Nodule": 1, "Mass": 2}


def test_single_label_data_is_not_multi_label(npz: Path) -> None:
    assert not read_labelled(npz, "val").multilabel


def test_npz_multi_label_names_must_match_the_columns(tmp_path: Path) -> None:
    path = multi_npz(tmp_path, np.array([[0, 1, 1], [1, 0, 0]]))
    with pytest.raises(InputError, match="3 label columns but 2 names given") as caught:
        read_labelled(path, "val", ("A", "B"))
    assert caught.value.path == str(path)


def test_npz_multi_label_entries_must_be_zero_or_one(tmp_path: Path) -> None:
    path = multi_npz(tmp_path, np.array([[0, 2, 1], [1, 0, 0]]))
    with pytest.raises(InputError, match="must hold only 0 and 1"):
        read_labelled(path, "val")


def test_npz_labels_of_three_dimensions_are_refused(tmp_path: Path) -> None:
    path = multi_npz(tmp_path, np.zeros((2, 3, 2), np.int64))
    with pytest.raises(InputError, match=r"neither \(N,\) nor \(N, K\)"):
        read_labelled(path, "val")


def test_expecting_the_other_kind_of_labels_is_an_input_error(tmp_path: Path, npz: Path) -> None:
    path = multi_npz(tmp_path, np.array([[0, 1, 1], [1, 0, 0]]))
    with pytest.raises(InputError, match="multi-label but single-label ones were expected"):
        read_labelled(path, "val", multilabel=False)
    with pytest.raises(InputError, match="single-label but multi-label ones were expected"):
        read_labelled(npz, "val", multilabel=True)


def test_labels_csv_with_joined_labels_is_multi_label(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_gray_png(tmp_path / name, 50)
    (tmp_path / "labels.csv").write_text(
        "file,label,split\na.png,Effusion|Nodule,val\nb.png,,val\nc.png,Nodule,val\n"
        "d.png,Mass,train\n",
        "utf-8",
    )
    val = read_labelled(tmp_path, "val")
    assert val.multilabel
    # Names come from every split, so train and val agree on the columns.
    assert val.label_names == ("Effusion", "Mass", "Nodule")
    assert val.labels.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 1]]
    assert val.ids == ("a.png", "b.png", "c.png")
    assert val.class_counts() == {"Effusion": 1, "Mass": 0, "Nodule": 2}
    train = read_labelled(tmp_path, "train", ("Nodule", "Mass", "Effusion", "Hernia"))
    assert train.labels.tolist() == [[0, 1, 0, 0]]


def test_labels_csv_multi_label_unknown_names_and_empty_split(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "a.png", 5)
    (tmp_path / "labels.csv").write_text("file,label,split\na.png,A|B,train\n", "utf-8")
    with pytest.raises(InputError, match=r"labels \['B'\] are not among") as caught:
        read_labelled(tmp_path, "train", ("A", "C"))
    assert caught.value.path == str(tmp_path / "labels.csv")
    with pytest.raises(EmptyInputError, match="no labelled images for split 'val'"):
        read_labelled(tmp_path, "val")


def test_labelled_images_label_columns_must_match_the_names() -> None:
    with pytest.raises(ValueError, match="2 label columns but 3 label names"):
        LabelledImages([np.zeros((2, 2))], np.array([[0, 1]]), ("a", "b", "c"), ("x",))


def test_unreadable_npz_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read npz"):
        read_labelled(bad, "val")


def test_folder_with_labels_csv_reads_only_the_split(tmp_path: Path) -> None:
    for name, value in (("a.png", 10), ("b.png", 200), ("c.png", 30), ("sub/d.png", 250)):
        write_gray_png(tmp_path / name, value)
    (tmp_path / "labels.csv").write_text(
        "file,label,split\na.png,NORMAL,train\nb.png,PNEUMONIA,val\n"
        "c.png,NORMAL,val\nsub/d.png,PNEUMONIA,train\n",
        "utf-8",
    )
    val = read_labelled(tmp_path, "val")
    assert val.ids == ("b.png", "c.png")
    assert val.labels.tolist() == [1, 0]
    assert val.label_names == ("NORMAL", "PNEUMONIA")
    assert val.images[0].shape == (12, 12)
    assert int(val.images[0][0, 0]) == 200
    train = read_labelled(tmp_path, "train", ("PNEUMONIA", "NORMAL"))
    assert train.labels.tolist() == [1, 0]


def test_labels_csv_without_split_column_serves_every_split(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "a.png", 5)
    (tmp_path / "labels.csv").write_text("file,label\na.png,X\n", "utf-8")
    assert len(read_labelled(tmp_path, "test", ("X", "Y"))) == 1


def test_labels_csv_needs_file_and_label_columns(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path,class\na.png,X\n", "utf-8")
    with pytest.raises(InputError, match="needs columns file,label"):
        read_labelled(tmp_path, "val")


def test_labels_csv_split_with_no_rows_is_empty_input(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "a.png", 5)
    (tmp_path / "labels.csv").write_text("file,label,split\na.png,X,train\n", "utf-8")
    with pytest.raises(EmptyInputError, match="no labelled images for split 'val'"):
        read_labelled(tmp_path, "val")


def test_class_subfolders_are_the_labels(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "PNEUMONIA" / "p1.jpeg", 200)
    write_gray_png(tmp_path / "NORMAL" / "n1.png", 10)
    write_gray_png(tmp_path / "NORMAL" / "n2.png", 20)
    (tmp_path / "NORMAL" / "notes.txt").write_text("ignored", "utf-8")
    data = read_labelled(tmp_path, "val")
    assert data.label_names == ("NORMAL", "PNEUMONIA")
    assert data.class_counts() == {"NORMAL": 2, "PNEUMONIA": 1}
    assert data.ids == ("NORMAL/n1.png", "NORMAL/n2.png", "PNEUMONIA/p1.jpeg")


def test_folder_labels_not_among_the_names_are_an_error(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "CAT" / "c.png", 10)
    with pytest.raises(InputError, match=r"labels \['CAT'\] are not among"):
        read_labelled(tmp_path, "val", ("NORMAL", "PNEUMONIA"))


def test_empty_folder_is_empty_input(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError):
        read_labelled(tmp_path, "val")


def test_a_path_that_is_neither_npz_nor_folder_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x", "utf-8")
    with pytest.raises(InputError, match="expected a MedMNIST .npz"):
        read_labelled(tmp_path / "data.csv", "val")


def test_rgb_with_equal_channels_reads_as_gray(tmp_path: Path) -> None:
    gray_rgb = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 3, axis=2)
    PILImage.fromarray(gray_rgb).save(tmp_path / "g.png")
    colour = gray_rgb.copy()
    colour[0, 0] = (255, 0, 0)
    PILImage.fromarray(colour).save(tmp_path / "c.png")
    assert read_image_file(tmp_path / "g.png").shape == (8, 8)
    assert read_image_file(tmp_path / "c.png").shape == (8, 8, 3)


def test_unreadable_and_missing_images_raise_typed_errors(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(UnsupportedFormatError, match="not a readable image"):
        read_image_file(tmp_path / "x.png")
    with pytest.raises(InputError, match="file not found"):
        read_image_file(tmp_path / "missing.png")


def test_labelled_images_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        LabelledImages([np.zeros((2, 2))], np.array([0, 1]), ("a", "b"), ("x",))


def test_sample_keeps_order_is_reproducible_and_leaves_small_sets_alone() -> None:
    from radlens.io.datasets import LabelledImages

    data = LabelledImages(
        [np.full((2, 2), i) for i in range(10)], np.arange(10) % 2, ("a", "b"), tuple("0123456789")
    )
    part = data.sample(4, seed=3)
    assert len(part) == 4 and list(part.ids) == sorted(part.ids)
    assert [int(im[0, 0]) for im in part.images] == [int(i) for i in part.ids]
    assert part.ids == data.sample(4, seed=3).ids
    assert data.sample(20) is data


def test_split_and_class_folders_read_one_split_with_numeric_classes_as_indices(
    tmp_path: Path,
) -> None:
    from PIL import Image as PILImage

    for split, grade, name in [("train", 0, "a"), ("train", 3, "b"), ("val", 4, "c")]:
        (tmp_path / split / str(grade)).mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(np.full((8, 8), grade * 10, np.uint8)).save(
            tmp_path / split / str(grade) / f"{name}.png"
        )
    # A labels.csv without a label column (the knee set's own table) does not get in the way.
    (tmp_path / "labels.csv").write_text("file,kl_grade,split\ntrain/0/a.png,0,train\n")
    names = ("KL 0", "KL 1", "KL 2", "KL 3", "KL 4")
    train = read_labelled(tmp_path, "train", names)
    assert train.labels.tolist() == [0, 3] and train.label_names == names
    assert train.ids == ("train/0/a.png", "train/3/b.png")
    val = read_labelled(tmp_path, "val", names)
    assert val.labels.tolist() == [4] and int(val.images[0][0, 0]) == 40
    with pytest.raises(InputError, match="neither one of"):
        read_labelled(tmp_path, "train", ("KL 0", "KL 1"))
    with pytest.raises(EmptyInputError):
        (tmp_path / "test").mkdir()
        read_labelled(tmp_path, "test", names)
