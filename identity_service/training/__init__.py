"""Training and evaluation: everything that fits or measures models on labelled data, kept
apart from the runtime packages (pipeline, detect, embed, attributes, service, index, store,
api, jobs, calibration, models, workers), none of which imports it.

* :mod:`.attributes`: the attribute heads, the tuned network and the emotion CNN
  (``faceid train-attributes``; torch for the tuned network and the CNN: the ``learn`` extra);
* :mod:`.metric`: metric learning, embedding adapters and small CNNs (``faceid learn ...``;
  torch and pytorch-metric-learning: the ``learn`` extra);
* :mod:`.eval`: the LFW verification protocol and the identification benchmark
  (``faceid eval ...``).

The CLI imports these only inside the commands that train or evaluate. What they produce (ONNX
heads, adapters) is read at run time by :mod:`identity_service.attributes`,
:mod:`identity_service.models.adapters` and :mod:`identity_service.embed.adapters`.
"""
