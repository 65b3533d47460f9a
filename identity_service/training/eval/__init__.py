"""Evaluation on labelled data: the LFW verification protocol (:mod:`.lfw`) and the open-set
identification benchmark (:mod:`.identification`, :mod:`.identification_run`). Run by
``faceid eval ...``; the metrics and the embedding cache they share with calibration are in
:mod:`identity_service.calibration`."""
