"""The README's zoo pictures are drawn from the committed checkpoints, reproducibly."""

from __future__ import annotations

import numpy as np

from vetrina.cli import main
from vetrina.imageio import read_image
from vetrina.models import showcase
from vetrina.models.zoo import load_module


def test_a_request_and_its_seed_reproduce_the_same_product():
    gan = load_module("gan")
    a = showcase.generate(gan, "sneaker", "red", seed=7)
    b = showcase.generate(gan, "sneaker", "red", seed=7)
    c = showcase.generate(gan, "sneaker", "red", seed=8)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_zoo_sheet_command_draws_both_sheets(tmp_path, capsys):
    assert main(["zoo", "sheet", "-o", str(tmp_path)]) == 0
    assert "zoo-sheet.png" in capsys.readouterr().out
    sheet = read_image(tmp_path / "zoo-sheet.png").pixels
    rows = 2 + 1 + 1 + 1 + 1 + 2  # generators, detector, enhancer, inpainter, upscaler, looks
    pad, tile = 4, showcase.TILE
    assert sheet.shape[0] == pad + rows * (tile + pad)
    chain = read_image(tmp_path / "zoo-chain.png").pixels
    label = 110  # contact_sheet's label column
    assert chain.shape == (pad + 2 * (tile + pad), label + pad + 4 * (tile + pad), 3)
    # every tile of the generated rows shows a product, not a blank background
    first_row = sheet[pad : pad + tile]
    assert first_row.std() > 20
