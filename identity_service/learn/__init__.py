"""Metric learning for faces (``pip install faceid[learn]``): embedding adapters and small CNNs
trained with contrastive/triplet losses and online mining (pytorch-metric-learning), evaluated in
the one-shot setting (test identities disjoint from training).

Submodules import torch; this package itself does not, so ``identity_service.learn.adapter``
(onnxruntime only) works without the ``learn`` extra.

Modules: ``data`` (datasets, identity-disjoint splits), ``models`` (adapter, CNN, softmax head),
``mining`` (losses and miners by name), ``train`` (``fit``, checkpoints), ``evaluate``
(MAP@R, P@1, verification), ``cnn`` + ``crops`` (end-to-end CNN on aligned crops), ``device``
(cpu / cuda checks), ``adapter`` (export, attach to an Embedder), ``installed`` (the
installed-adapters store behind ``<base>+adapter-<sha8>`` model names; no torch), ``plot`` (2-D
scatter).
"""
