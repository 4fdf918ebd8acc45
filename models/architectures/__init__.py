"""Registry of the architectures vetrina can build, convert and describe.

Each entry says how to build the module (imported lazily: this registry needs no torch)
and the contract its exports carry: role, tensors, size rules.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from vetrina.contract import SpatialRules, TensorSpec
from vetrina.errors import CheckpointError
from vetrina.models.catalog import CATEGORIES, COLOURS


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to build one architecture and what its exported model promises."""

    name: str
    factory: str  # "module:callable" returning an nn.Module from keyword config
    role: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    spatial: SpatialRules
    description: str
    default_config: dict[str, Any] = field(default_factory=dict)
    size_factor: str | None = None
    """A config key (e.g. ``inner_scale``) that multiplies the size rules' step and minimum:
    a net run at 1/k inside needs sides k times the multiple it needs itself."""

    def for_config(self, config: dict[str, Any]) -> ArchitectureSpec:
        """This spec with the size rules ``config`` implies (see :attr:`size_factor`)."""
        k = int(config.get(self.size_factor, 1)) if self.size_factor else 1
        if k == 1:
            return self
        rules = self.spatial
        return dataclasses.replace(
            self,
            spatial=SpatialRules(
                multiple_of=rules.multiple_of * k,
                min_size=rules.min_size * k,
                max_size=None if rules.max_size is None else rules.max_size * k,
                scale=rules.scale,
            ),
        )

    def build(self, config: dict[str, Any] | None = None) -> Any:
        """Instantiate the torch module with ``config`` over the defaults (imports torch)."""
        module_name, _, attr = self.factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        merged = {**self.default_config, **(config or {})}
        try:
            return factory(**merged)
        except TypeError as exc:
            raise CheckpointError(
                f"architecture {self.name!r} does not accept config {merged} ({exc})"
            ) from None


_IMAGE_01 = TensorSpec(name="image", semantic="image", channels="RGB", range=(0.0, 1.0))
_MASK_01 = TensorSpec(name="mask", semantic="mask", channels="L", range=(0.0, 1.0))
_Z = TensorSpec(name="z", semantic="z", layout="NC", channels="", range=None)
_CATEGORY = TensorSpec(
    name="category",
    semantic="label",
    layout="N",
    channels="",
    range=None,
    dtype="int64",
    labels=tuple(CATEGORIES),
)
_COLOUR = TensorSpec(
    name="colour",
    semantic="label",
    layout="N",
    channels="",
    range=None,
    dtype="int64",
    labels=tuple(COLOURS),
)
_GENERATED = TensorSpec(name="image", semantic="image", channels="RGB", range=(-1.0, 1.0))
# Public formats (models/architectures/public): latent z as the public DCGAN takes it, and
# images in [-1, 1] (CycleGAN, pix2pix) or [0, 1] (Real-ESRGAN).
_Z_NCHW = TensorSpec(name="z", semantic="z", layout="NCHW", channels="", range=None)
_TRANSLATED = TensorSpec(name="translated", semantic="image", channels="RGB", range=(-1.0, 1.0))
_UPSCALED = TensorSpec(name="upscaled", semantic="image", channels="RGB", range=(0.0, 1.0))
_PUBLIC = "vetrina.models.architectures.public"
# Salient-object alpha (U²-Net): one channel in [0, 1], 1 on the product.
_ALPHA = TensorSpec(name="alpha", semantic="mask", channels="L", range=(0.0, 1.0))
_U2NET_NOTE = (
    "; xuebinqin/U-2-Net {file} (a bare state_dict) is detected with imagenet_input=True: the "
    "graph takes RGB in [0, 1] and applies ImageNet's mean/std itself, as that net was trained"
)
_CYCLEGAN_REPO = "junyanz/pytorch-CycleGAN-and-pix2pix"

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec(
            name="enhancer",
            factory="vetrina.models.architectures.enhancer:Enhancer",
            role="editor",
            inputs=(_IMAGE_01,),
            outputs=(
                TensorSpec(name="enhanced", semantic="image", channels="RGB", range=(0.0, 1.0)),
            ),
            spatial=SpatialRules(multiple_of=2, min_size=8),
            description="residual CNN enhancer: fixes contrast, colour cast, exposure, noise, blur",
            default_config={"channels": 16, "blocks": 4},
        ),
        ArchitectureSpec(
            name="catalog-classifier",
            factory="vetrina.models.architectures.classifier:CatalogClassifier",
            role="classifier",
            inputs=(_IMAGE_01,),
            outputs=(
                TensorSpec(
                    name="category_logits", semantic="label", layout="NC", channels="", range=None
                ),
                TensorSpec(
                    name="colour_logits", semantic="label", layout="NC", channels="", range=None
                ),
            ),
            spatial=SpatialRules(multiple_of=1, min_size=32),
            description="CNN that names a product photo's category and colour (judges generators)",
            default_config={"channels": 32},
        ),
        ArchitectureSpec(
            name="cgan-generator",
            factory="vetrina.models.architectures.gan:ConditionalGenerator",
            role="generator",
            inputs=(_Z, _CATEGORY, _COLOUR),
            outputs=(_GENERATED,),
            spatial=SpatialRules(multiple_of=1, min_size=64, max_size=64),
            description="class-conditional GAN generator: (z, category, colour) -> 64x64 photo",
            default_config={"z_dim": 64, "channels": 64},
        ),
        ArchitectureSpec(
            name="cvae-decoder",
            factory="vetrina.models.architectures.vae:ConditionalDecoder",
            role="generator",
            inputs=(_Z, _CATEGORY, _COLOUR),
            outputs=(_GENERATED,),
            spatial=SpatialRules(multiple_of=1, min_size=64, max_size=64),
            description="conditional VAE decoder: (z, category, colour) -> 64x64 photo",
            default_config={"z_dim": 32, "channels": 64},
        ),
        ArchitectureSpec(
            name="transformer-net",
            factory="vetrina.models.architectures.transformer_net:TransformerNet",
            role="editor",
            inputs=(
                TensorSpec(name="image", semantic="image", channels="RGB", range=(0.0, 255.0)),
            ),
            outputs=(
                TensorSpec(name="styled", semantic="image", channels="RGB", range=(0.0, 255.0)),
            ),
            spatial=SpatialRules(multiple_of=4, min_size=16),
            description="Johnson et al. fast-neural-style TransformerNet (pytorch/examples names)",
            default_config={"channels": 32, "blocks": 5},
        ),
        ArchitectureSpec(
            name="defect-detector",
            factory="vetrina.models.architectures.defects:DefectDetector",
            role="detector",
            inputs=(_IMAGE_01,),
            outputs=(TensorSpec(name="mask", semantic="mask", channels="L", range=(0.0, 1.0)),),
            spatial=SpatialRules(multiple_of=8, min_size=16),
            description="U-Net that marks scratches, dust, stains, watermarks and JPEG blocks",
            default_config={"channels": 16},
        ),
        ArchitectureSpec(
            name="inpainter",
            factory="vetrina.models.architectures.defects:Inpainter",
            role="inpainter",
            inputs=(_IMAGE_01, _MASK_01),
            outputs=(
                TensorSpec(name="restored", semantic="image", channels="RGB", range=(0.0, 1.0)),
            ),
            spatial=SpatialRules(multiple_of=8, min_size=16),
            description="U-Net that repaints the masked defects of a photo",
            default_config={"channels": 24},
        ),
        ArchitectureSpec(
            name="compact-upscaler",
            factory="vetrina.models.architectures.upscaler:CompactUpscaler",
            role="upscaler",
            inputs=(_IMAGE_01,),
            outputs=(
                TensorSpec(name="upscaled", semantic="image", channels="RGB", range=(0.0, 1.0)),
            ),
            spatial=SpatialRules(multiple_of=1, min_size=8, scale=2),
            description="x2 super-resolution, SRVGGNetCompact-style convs + PixelShuffle",
            default_config={"channels": 32, "convs": 8},
        ),
        ArchitectureSpec(
            name="cyclegan-resnet",
            factory=f"{_PUBLIC}.cyclegan:resnet_generator",
            role="editor",
            inputs=(_GENERATED,),
            outputs=(_TRANSLATED,),
            spatial=SpatialRules(multiple_of=4, min_size=8),
            description=f"CycleGAN ResnetGenerator ({_CYCLEGAN_REPO} latest_net_G.pth)",
            default_config={"ngf": 64, "n_blocks": 9, "norm": "instance", "use_dropout": False},
        ),
        ArchitectureSpec(
            name="pix2pix-unet256",
            factory=f"{_PUBLIC}.pix2pix:unet_256",
            role="editor",
            inputs=(_GENERATED,),
            outputs=(_TRANSLATED,),
            spatial=SpatialRules(multiple_of=256, min_size=256),
            description=f"pix2pix UnetGenerator unet_256, 8 levels ({_CYCLEGAN_REPO})",
            default_config={"ngf": 64, "norm": "batch", "use_dropout": False, "num_downs": 8},
        ),
        ArchitectureSpec(
            name="pix2pix-unet128",
            factory=f"{_PUBLIC}.pix2pix:unet_128",
            role="editor",
            inputs=(_GENERATED,),
            outputs=(_TRANSLATED,),
            spatial=SpatialRules(multiple_of=128, min_size=128),
            description=f"pix2pix UnetGenerator unet_128, 7 levels ({_CYCLEGAN_REPO})",
            default_config={"ngf": 64, "norm": "batch", "use_dropout": False, "num_downs": 7},
        ),
        ArchitectureSpec(
            name="dcgan-generator",
            factory=f"{_PUBLIC}.dcgan:dcgan_generator",
            role="generator",
            inputs=(_Z_NCHW,),
            outputs=(_GENERATED,),
            spatial=SpatialRules(multiple_of=1, min_size=64, max_size=64),
            description="DCGAN Generator, z (N, nz, 1, 1) -> 64x64 (pytorch/examples dcgan)",
            default_config={"nz": 100, "ngf": 64},
        ),
        ArchitectureSpec(
            name="srvgg-compact-x4",
            factory=f"{_PUBLIC}.realesrgan:srvgg_compact_x4",
            role="upscaler",
            inputs=(_IMAGE_01,),
            outputs=(_UPSCALED,),
            spatial=SpatialRules(multiple_of=1, min_size=4, scale=4),
            description="Real-ESRGAN SRVGGNetCompact x4 (xinntao/Real-ESRGAN realesr-*v3.pth)",
            default_config={"num_feat": 64, "num_conv": 16, "act_type": "prelu", "upscale": 4},
        ),
        ArchitectureSpec(
            name="srvgg-compact-x2",
            factory=f"{_PUBLIC}.realesrgan:srvgg_compact_x2",
            role="upscaler",
            inputs=(_IMAGE_01,),
            outputs=(_UPSCALED,),
            spatial=SpatialRules(multiple_of=1, min_size=4, scale=2),
            description="Real-ESRGAN SRVGGNetCompact x2 (xinntao/Real-ESRGAN)",
            default_config={"num_feat": 64, "num_conv": 16, "act_type": "prelu", "upscale": 2},
        ),
        ArchitectureSpec(
            name="rrdbnet-x4",
            factory=f"{_PUBLIC}.realesrgan:rrdbnet_x4",
            role="upscaler",
            inputs=(_IMAGE_01,),
            outputs=(_UPSCALED,),
            spatial=SpatialRules(multiple_of=1, min_size=4, scale=4),
            description="ESRGAN RRDBNet x4 (XPixelGroup/BasicSR; Real-ESRGAN RealESRGAN_x4plus)",
            default_config={"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4},
        ),
        ArchitectureSpec(
            name="rrdbnet-x2",
            factory=f"{_PUBLIC}.realesrgan:rrdbnet_x2",
            role="upscaler",
            inputs=(_IMAGE_01,),
            outputs=(_UPSCALED,),
            spatial=SpatialRules(multiple_of=2, min_size=4, scale=2),
            description="ESRGAN RRDBNet x2, pixel-unshuffled input (Real-ESRGAN RealESRGAN_x2plus)",
            default_config={"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 2},
        ),
        ArchitectureSpec(
            name="u2netp",
            factory="vetrina.models.architectures.u2net:u2netp",
            role="matting",
            inputs=(_IMAGE_01,),
            outputs=(_ALPHA,),
            spatial=SpatialRules(multiple_of=32, min_size=32),
            description="U²-Net-p salient-object matting (1.1 M params), fused sigmoid map d0"
            + _U2NET_NOTE.format(file="u2netp.pth"),
            size_factor="inner_scale",
        ),
        ArchitectureSpec(
            name="u2net",
            factory="vetrina.models.architectures.u2net:u2net",
            role="matting",
            inputs=(_IMAGE_01,),
            outputs=(_ALPHA,),
            spatial=SpatialRules(multiple_of=32, min_size=32),
            description="U²-Net salient-object matting (44 M params), fused sigmoid map d0"
            + _U2NET_NOTE.format(file="u2net.pth"),
            size_factor="inner_scale",
        ),
    )
}


def get_architecture(name: str) -> ArchitectureSpec:
    """The architecture ``name``; a :class:`CheckpointError` lists the known ones if absent."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise CheckpointError(
            f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
