"""Gender, race and age from dlib's ResNet with its 256-channel stages fine-tuned: the facts
:mod:`.analyze` answers with. The network up to its pooled features runs as one ONNX graph
(:mod:`.tuned_features`), each attribute's output layer as a head on those features
(``faceid-attr-<action>-tuned.onnx``), chip and mirror averaged; for gender averaged with the
embedding head (:data:`AVERAGED_WITH_HEAD`). ``identity_service.training.attributes.tuned``
trains and exports them (torch).
"""

from __future__ import annotations

FEATURE_CHANNELS = 256  # dlib's last stage: the pooled features the output layers read
TUNED_ACTIONS = ("gender", "race", "age")
# Where analyze averages the tuned network with the embedding head instead of answering with it
# alone, chosen on a validation split of the training side (lab/attributes_validation.py):
# for gender the average beat the tuned network on UTKFace (89.1 against 89.0 %) and on LFW (99.1
# against 98.9 %); for race (87.5 against 87.8 %) and age (MAE 4.06 against 3.95 y) it did not.
# A third gender member (dlib's gender network, 8 views, a second seed) did not beat it, nor
# did training on random views or answering under equal class priors (bench/attributes_*).
AVERAGED_WITH_HEAD = frozenset({"gender"})
