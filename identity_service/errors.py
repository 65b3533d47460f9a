"""Typed errors. Every user-facing failure is one of these, with a stable ``code``.

The HTTP API maps ``http_status``; workers record ``code`` and ``message`` per image.
"""

from __future__ import annotations


class FaceIDError(Exception):
    code = "faceid_error"
    http_status = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.details}


class ImageError(FaceIDError):
    code = "bad_image"


class EmptyImageError(ImageError):
    code = "empty_image"


class UndecodableImageError(ImageError):
    code = "undecodable_image"


class UnsupportedFormatError(ImageError):
    code = "unsupported_format"


class ImageTooLargeError(ImageError):
    code = "image_too_large"
    http_status = 413


class NoFaceError(FaceIDError):
    code = "no_face"
    http_status = 422


class ManyFacesError(FaceIDError):
    code = "many_faces"
    http_status = 422


class ModelError(FaceIDError):
    code = "model_error"
    http_status = 500


class UnknownModelError(ModelError):
    code = "unknown_model"
    http_status = 400


class ModelFileMissingError(ModelError):
    code = "model_file_missing"
    http_status = 503


class ChecksumMismatchError(ModelError):
    code = "checksum_mismatch"
    http_status = 503


class ModelMismatchError(FaceIDError):
    code = "model_mismatch"
    http_status = 409


class NotFoundError(FaceIDError):
    code = "not_found"
    http_status = 404


class UnknownCollectionError(NotFoundError):
    code = "unknown_collection"


class UnknownIdentityError(NotFoundError):
    code = "unknown_identity"


class UnknownFaceError(NotFoundError):
    code = "unknown_face"


class InvalidIdentifierError(FaceIDError):
    """An external id that the rule in :mod:`identity_service.service.ids` refuses."""

    code = "invalid_id"
    http_status = 422


class InvalidMetadataError(FaceIDError):
    """Identity metadata that could not be stored and read back (see ``store.metadata``)."""

    code = "invalid_metadata"
    http_status = 422


class InvalidParameterError(FaceIDError):
    """A parameter outside its range: k, a target FPIR or FAR, an analyze action."""

    code = "invalid_parameter"
    http_status = 422


class CalibrationDataError(FaceIDError):
    """Labelled pairs a threshold cannot be calibrated on (mismatched, non-finite, one-sided)."""

    code = "calibration_data"
    http_status = 422


class NoThresholdError(FaceIDError):
    """Neither the call, the collection nor the model gives a threshold: calibrate one."""

    code = "no_threshold"
    http_status = 409


class ConfigurationError(FaceIDError):
    """The deployment's settings cannot do what was asked (e.g. a worker with no broker)."""

    code = "configuration_error"
    http_status = 500


class ConflictError(FaceIDError):
    code = "conflict"
    http_status = 409


class DuplicateError(ConflictError):
    code = "duplicate"


class OverloadedError(FaceIDError):
    """The server is at capacity (its queue of model work is full): shed, not queued. Retry
    after a moment, or on another node."""

    code = "overloaded"
    http_status = 503


class SchemaOutdatedError(FaceIDError):
    code = "schema_outdated"
    http_status = 503


class DatasetError(FaceIDError):
    code = "dataset_error"
