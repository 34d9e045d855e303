"""A problem found while importing legacy data: where it is and what is wrong."""

from __future__ import annotations

from attrs import frozen


@frozen
class Problem:
    """One message naming the file, the model and the field; `fatal` means the file was unusable."""

    file: str
    model: str | None
    field: str | None
    message: str
    fatal: bool = False

    def __str__(self) -> str:
        where = self.file
        if self.model is not None:
            where += f": model '{self.model}'"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"
