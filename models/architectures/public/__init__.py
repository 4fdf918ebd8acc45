"""Modules that load the checkpoints public projects publish, key for key.

One module per project, each written from the project's public definition so that its
released ``state_dict`` files load with ``strict=True``:

- :mod:`.cyclegan` — CycleGAN ``ResnetGenerator`` (junyanz/pytorch-CycleGAN-and-pix2pix)
- :mod:`.pix2pix` — pix2pix ``UnetGenerator`` (same repository)
- :mod:`.dcgan` — DCGAN ``Generator`` (pytorch/examples ``dcgan/main.py``)
- :mod:`.realesrgan` — Real-ESRGAN ``SRVGGNetCompact`` and BasicSR ``RRDBNet``

:mod:`.compat` resolves the two historical PyTorch state_dict differences (InstanceNorm
running statistics of pre-0.4 saves, BatchNorm ``num_batches_tracked`` absent before 0.4)
the way those projects do. :mod:`vetrina.models.architectures.detect` names the format of a
bare state_dict.
"""
