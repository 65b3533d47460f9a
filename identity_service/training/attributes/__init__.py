"""Training the attribute models that :mod:`identity_service.attributes` runs: the heads on
embeddings (:mod:`.fit`, :mod:`.train`), the tuned network (:mod:`.tuned`, :mod:`.train_tuned`,
:mod:`.chips`) and the emotion head and CNN on FER2013 (:mod:`.fer`, :mod:`.emotion_cnn`,
:mod:`.train_emotion`), on the labelled data of :mod:`.data`. Run by ``faceid train-attributes``.
"""
