"""Opening a model checks its contract against the model's own tensors (names, dtype, rank,
channels), so a hand-written or stale contract fails at open with the fix, not at a request."""

from __future__ import annotations

import dataclasses

import pytest

from vetrina.errors import ModelError
from vetrina.model import Model


def _with_input(contract, **changes):
    spec = dataclasses.replace(contract.inputs[0], **changes)
    return dataclasses.replace(contract, inputs=(spec, *contract.inputs[1:]))


def test_the_converted_contract_agrees_with_its_model(small_model):
    model = Model.open(small_model)
    assert Model(model.session, model.contract, model.path).contract == model.contract


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtype": "float16"}, r"input 'image' is float32 in the model; the contract says float16"),
        ({"channels": "L"}, r"input 'image' has 3 channels in the model; the contract says L"),
        (
            {"layout": "NC", "channels": "", "range": None},
            r"input 'image' has rank 4 in the model; the contract's layout NC has rank 2",
        ),
        ({"name": "photo"}, r"contract names input 'photo' but the model's inputs are \['image'\]"),
    ],
)
def test_a_contract_that_disagrees_with_the_model_is_refused(small_model, changes, message):
    model = Model.open(small_model)
    with pytest.raises(ModelError, match=message) as info:
        Model(model.session, _with_input(model.contract, **changes), model.path)
    assert "contract" in (info.value.hint or "") or "names input" in str(info.value)


def test_a_wrong_output_contract_is_refused(small_model):
    model = Model.open(small_model)
    out = dataclasses.replace(model.contract.outputs[0], channels="L")
    contract = dataclasses.replace(model.contract, outputs=(out,))
    with pytest.raises(ModelError, match=r"output '\w+' has 3 channels in the model"):
        Model(model.session, contract, model.path)
