"""dataset=image_folder: items with image files on disk, read for real (PNG and JPEG written here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.cli import assert_one_line_error, run_cli
from recfit.cli import main
from recfit.data.sources.image_folder import read_image_folder
from recfit.errors import DataError

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 210, 40)]


def write_shop(folder: Path, num_items: int = 24, num_users: int = 30, per_user: int = 8) -> Path:
    """A small shop: items whose colour is their topic (PNG and JPEG files in subfolders), and users
    who prefer one colour and rate those items higher."""
    rng = np.random.default_rng(0)
    (folder / "img" / "png").mkdir(parents=True)
    (folder / "img" / "jpg").mkdir(parents=True)
    rows = ["item_id,image,title"]
    for item in range(num_items):
        colour = np.array(COLOURS[item % len(COLOURS)], dtype=float)
        pixels = np.clip(colour + rng.normal(0, 15, (20 + item % 3, 24, 3)), 0, 255).astype(np.uint8)
        relative = f"img/png/{item}.png" if item % 2 else f"img/jpg/{item}.jpg"
        Image.fromarray(pixels).save(folder / relative)
        rows.append(f"sku-{item:03d},{relative},colour {item % len(COLOURS)} item {item}")
    (folder / "items.csv").write_text("\n".join(rows) + "\n")
    lines = ["user,item,rating,timestamp"]
    for user in range(num_users):
        liked = user % len(COLOURS)
        preferred = [i for i in range(num_items) if i % len(COLOURS) == liked]
        chosen = rng.choice(preferred, size=per_user // 2, replace=False).tolist()
        others = [i for i in range(num_items) if i not in chosen]
        chosen += rng.choice(others, size=per_user - len(chosen), replace=False).tolist()
        for step, item in enumerate(chosen):
            rating = 5 if item % len(COLOURS) == liked else 2
            lines.append(f"u{user},sku-{item:03d},{rating},{step}")
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def shop(tmp_path) -> Path:
    return write_shop(tmp_path / "shop")


def test_reads_items_images_and_interactions(shop):
    data = read_image_folder(str(shop), text_column="title", image_size=16)
    assert (data.num_users, data.num_items) == (30, 24)
    assert data.item_images.shape == (24, 16, 16, 3) and data.item_images.dtype == np.uint8
    # item codes follow items.csv's rows: item 5 has colour 5 % 4 = 1, green
    assert data.item_images[5, :, :, 1].mean() > data.item_images[5, :, :, 0].mean() + 100
    assert data.item_text[5] == "colour 1 item 5"
    # raw ids, as `recfit recommend --user` takes them and `recfit embed` writes them
    assert data.item_ids[5] == "sku-005" and "u0" in set(data.user_ids)
    assert len(data.interactions) == 30 * 8
    assert set(data.interactions.columns) == {"user", "item", "rating", "timestamp"}
    assert data.interactions["rating"].isin([2.0, 5.0]).all()


def corrupt(shop: Path) -> None:
    (shop / "img" / "png" / "3.png").write_bytes(b"this is not a picture")


def truncate(shop: Path) -> None:
    file = shop / "img" / "jpg" / "4.jpg"
    file.write_bytes(file.read_bytes()[:200])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: (s / "img" / "png" / "1.png").unlink(), "line 3: image file not found for item 'sku-001'"),
        (corrupt, "line 5: cannot read image of item 'sku-003'"),
        (truncate, "line 6: cannot read image of item 'sku-004'"),
        (lambda s: (s / "items.csv").write_text("id,image\na,b.png\n"), "no column 'item_id' (columns: id"),
        (lambda s: (s / "interactions.csv").write_text("person,item\n1,sku-001\n"), "has no column 'user'"),
        (lambda s: (s / "interactions.csv").unlink(), "file not found"),
        (lambda s: (s / "interactions.csv").open("a").write("u1,sku-999,4,9\n"), "1 rows whose item is not"),
        (lambda s: (s / "interactions.csv").open("a").write("u1,sku-001,four,9\n"), "missing or non-numeric"),
    ],
    ids=["missing image", "corrupt image", "truncated jpeg", "items column", "user column", "no interactions",
         "unknown item", "bad rating"],
)  # fmt: skip
def test_bad_files_are_refused_in_one_line(shop, edit, message):
    edit(shop)
    with pytest.raises(DataError) as error:
        read_image_folder(str(shop), image_size=8)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unusable_images_can_be_skipped_and_are_counted(shop):
    corrupt(shop)
    (shop / "img" / "png" / "1.png").unlink()
    data = read_image_folder(str(shop), image_size=8, on_bad_rows="skip")
    assert data.num_items == 22 and data.item_images.shape[0] == 22
    assert data.skipped_rows["whose image is missing or unreadable"] == 2
    assert sum(data.skipped_rows.values()) == 2 + (  # their interactions go as well
        data.skipped_rows.get("whose item is not in items.csv", 0)
    )


@pytest.mark.slow
def test_cli_reports_a_corrupt_image_in_one_line(shop, tmp_path, capsys):
    corrupt(shop)
    result = run_cli(capsys, "train", "dataset=image_folder", f"dataset.reader.path={shop}",
                    "backbone=tiny_resnet", "trainer.max_epochs=1",
                    f"paths.output_dir={tmp_path / 'out'}")  # fmt: skip
    assert_one_line_error(result, "cannot read image of item 'sku-003'")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ranking", "rating"])
def test_tiny_resnet_trains_and_evaluates_on_real_image_files(shop, tmp_path, task):
    loss = "cross_entropy" if task == "ranking" else "mse"
    main(["train", "dataset=image_folder", f"dataset.reader.path={shop}", "backbone=tiny_resnet",
          f"task={task}", f"loss={loss}", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
          "dataset.batch_size=16", f"paths.output_dir={tmp_path / 'out'}"])  # fmt: skip
    (path,) = (tmp_path / "out").glob("runs/*/*/metrics.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed", record.get("error")
    assert record["data"] == "shop: 240 interactions, 30 users, 24 items"
    metric = "test/ndcg@10" if task == "ranking" else "test/rmse"
    assert record["metrics"][metric] is not None and record["metrics"][metric] >= 0
