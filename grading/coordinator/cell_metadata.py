"""nbgrader's check of its cell metadata, with the metadata's JSON schema checked once per process, not per cell.

nbgrader validates each cell's metadata with jsonschema.validate(metadata, schema), and jsonschema.validate first
checks the schema itself against JSON Schema's metaschema: on every cell, each time. That is most of the 20 ms
CheckCellMetadata takes per notebook, and it runs twice per notebook (before and after execution), plus once per
cell where the course restores cell flags (restore_cell_flags.py). Here the schema is checked once and its
validator kept; everything else is nbgrader's MetadataValidator: the same checks, errors and messages.
"""

from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from nbformat.notebooknode import NotebookNode
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import CheckCellMetadata

_VALIDATORS: dict[int, Any] = {}  # schema version -> jsonschema validator of that version's schema, checked once


class _SchemaCheckedOnce(BaseMetadataValidator):
    """nbgrader's per-cell schema validation, with the schema's validator made (and the schema checked) once."""

    def validate_cell(self, cell: NotebookNode) -> None:
        meta = cell.metadata.get("nbgrader")
        if not (isinstance(meta, dict) and meta.get("schema_version", 0) == self.schema_version):
            super().validate_cell(cell)  # no metadata, or another version: nbgrader says what is wrong
            return
        validator = _VALIDATORS.get(self.schema_version)
        if validator is None:
            kind = jsonschema.validators.validator_for(self.schema)
            kind.check_schema(self.schema)
            validator = _VALIDATORS[self.schema_version] = kind(self.schema)
        error = best_match(validator.iter_errors(meta))  # as jsonschema.validate picks the error it raises
        if error is not None:
            raise error


class CellMetadataValidator(MetadataValidator, _SchemaCheckedOnce):
    """nbgrader's MetadataValidator (grade ids, points, cell types, duplicates), its schema validation done by
    _SchemaCheckedOnce (which its validate_cell reaches through super())."""


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's CheckCellMetadata preprocessor, validating with CellMetadataValidator."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        try:
            CellMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.exception("the notebook's nbgrader metadata did not validate")
            raise ValidationError("Notebook failed to validate; the nbgrader metadata may be corrupted.") from None
        return nb, resources
