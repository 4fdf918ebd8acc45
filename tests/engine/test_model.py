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


def test_a_graph_without_shapes_opens_with_a_sidecar_contract(tmp_path):
    """ONNX inputs may carry no shape at all (ONNX Runtime reports ``[]``): nothing to check
    the layout against, so only the dtype is checked."""
    from onnx import TensorProto, helper, save

    from vetrina.contract import Contract, TensorSpec
    from vetrina.foreign import sidecar_path

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["out"])], "g", [x], [y])
    path = tmp_path / "shapeless.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    contract = Contract("editor", (TensorSpec("image"),), (TensorSpec("out"),))
    sidecar_path(path).write_text(contract.to_json(), encoding="utf-8")
    assert Model.open(path).contract == contract
    half = Contract("editor", (TensorSpec("image", dtype="float16"),), (TensorSpec("out"),))
    sidecar_path(path).write_text(half.to_json(), encoding="utf-8")
    with pytest.raises(ModelError, match="is float32 in the model; the contract says float16"):
        Model.open(path)
