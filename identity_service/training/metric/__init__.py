"""Metric learning for faces (``pip install faceid[learn]``): embedding adapters and small CNNs
trained with contrastive/triplet losses and online mining (pytorch-metric-learning), evaluated in
the one-shot setting (test identities disjoint from training).

Submodules import torch; this package itself does not. What runs the results needs no torch:
an exported adapter is loaded by :mod:`identity_service.embed.adapters`, installed by
:mod:`identity_service.embed.adapter_install` and found through the store of
:mod:`identity_service.models.adapters` (``<base>+adapter-<sha8>`` model names).

Modules: ``data`` (datasets, identity-disjoint splits), ``models`` (adapter, CNN, softmax head),
``mining`` (losses and miners by name), ``train`` (``fit``, checkpoints), ``evaluate``
(MAP@R, P@1, verification), ``cnn`` + ``crops`` (end-to-end CNN on aligned crops), ``device``
(cpu / cuda checks), ``adapter`` (ONNX export), ``plot`` (2-D scatter).
"""
