"""Streaming, checked reading of CSV traces (libCacheSim CSV, Azure LLM inference), shared by readers.

A :class:`CsvTrace` resolves the columns a reader needs (by header name, or by 1-based column number
as libCacheSim numbers them) and streams the file in blocks of about ``BLOCK_BYTES`` with pyarrow's
serial CSV reader, so memory does not grow with the trace. Every problem is a
:class:`~exo_sim.errors.TraceError` naming the file and the line: a column the header does not have, a
row with a different number of fields than the first line, an empty value (or a blank line) or a
value of the wrong type in a column that is used. Quoted newlines are refused, so every row is one
line and line numbers are exact.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from exo_sim.errors import TraceError

BLOCK_BYTES = 1 << 18
"""Bytes per CSV block; pyarrow's streaming reader holds about 36 blocks read ahead (~10 MB)."""
_ROW = re.compile(r"Row #(\d+)")
_COLUMN = re.compile(r"column #(\d+)")
_VALUE = re.compile(r"invalid value '(.*)'")

TYPES: dict[str, pa.DataType] = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
"""The column types a reader may ask for."""


@dataclass(frozen=True)
class Column:
    """A column a reader uses: 0-based index, display name, the config key that chose it, its type."""

    index: int
    name: str
    key: str
    type: str = "int"


class CsvTrace:
    """One CSV trace file with a header (or none) and a one-character delimiter.

    Raises:
        TraceError: if the file is missing, empty, not UTF-8, or the delimiter is not one character.
    """

    def __init__(self, path: str, has_header: bool, delimiter: str) -> None:
        self.path = path
        self.has_header = has_header
        self.delimiter = delimiter
        if len(delimiter) != 1:
            raise TraceError(path, f"delimiter {delimiter!r} (workload.delimiter) must be one character")
        if not os.path.isfile(path):
            raise TraceError(path, "no such file (set workload.path)")
        if os.path.getsize(path) == 0:
            raise TraceError(path, "the file is empty")
        try:
            with open(path, newline="", encoding="utf-8") as f:
                first = next(csv.reader(f, delimiter=delimiter), [])
        except UnicodeDecodeError as err:
            raise TraceError(path, f"is not UTF-8 text ({err.reason})", 1) from None
        self.header: list[str] = [h.strip() for h in first]
        self.n_columns = len(first)
        self.first_data_line = 2 if has_header else 1

    def column(self, spec: str | int, key: str, type_: str = "int") -> Column:
        """Resolve a column given by header name or 1-based number (``"5"`` or ``5``).

        Raises:
            TraceError: naming ``key`` when the file has no such column.
        """
        text = str(spec).strip()
        if text.isdigit():
            number = int(text)
            if not 1 <= number <= self.n_columns:
                raise TraceError(
                    self.path,
                    f"has {self.n_columns} columns, so column {number} ({key}) does not exist",
                    1,
                )
            name = self.header[number - 1] if self.has_header else f"column {number}"
            return Column(number - 1, name, key, type_)
        if not self.has_header:
            raise TraceError(
                self.path,
                f"{key} names column {text!r}, but the trace has no header (give a 1-based column "
                "number, or set workload.has_header=true)",
            )
        if text not in self.header:
            raise TraceError(
                self.path,
                f"column {text!r} ({key}) does not exist; the header has {', '.join(self.header)}",
                1,
            )
        return Column(self.header.index(text), text, key, type_)

    def batches(
        self, columns: list[Column], max_rows: int | None = None
    ) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Yield ``(line of the first row, [values of each column])`` for consecutive rows.

        Integer and float columns come as int64 / float64 arrays, string columns as object arrays.

        Raises:
            TraceError: naming the line of the first malformed row or value.
        """
        names = [f"c{i}" for i in range(self.n_columns)]
        wanted = {names[c.index]: c for c in columns}
        invalid: list[TraceError] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            invalid.append(
                TraceError(
                    self.path,
                    f"has {row.actual_columns} fields where the first line has {row.expected_columns}",
                    row.number,
                )
            )
            return "error"

        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(
                    column_names=names,
                    skip_rows=1 if self.has_header else 0,
                    block_size=BLOCK_BYTES,
                    use_threads=False,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.delimiter,
                    ignore_empty_lines=False,
                    newlines_in_values=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: TYPES[c.type] for n, c in wanted.items()},
                    include_columns=list(wanted),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            line = self.first_data_line
            done = 0
            for batch in reader:
                rows = batch.num_rows
                if max_rows is not None and done + rows > max_rows:
                    batch = batch.slice(0, max_rows - done)
                    rows = batch.num_rows
                out: list[np.ndarray] = []
                for c in columns:
                    arr = batch.column(names[c.index])
                    if arr.null_count:
                        i = int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))
                        raise TraceError(self.path, f"has no value in column {c.name} ({c.key})", line + i)
                    out.append(arr.to_numpy(zero_copy_only=False))
                yield line, out
                line += rows
                done += rows
                if max_rows is not None and done >= max_rows:
                    return
        except pa.ArrowInvalid as err:
            if invalid:
                raise invalid[0] from None
            raise self._conversion_error(str(err), wanted) from None

    def _conversion_error(self, message: str, wanted: dict[str, Column]) -> TraceError:
        row = _ROW.search(message)
        line = int(row.group(1)) if row else None
        col_m = _COLUMN.search(message)
        col = None
        if col_m:
            position = int(col_m.group(1))  # 0-based, among all the file's columns
            col = next((c for c in wanted.values() if c.index == position), None)
        value = _VALUE.search(message)
        if col is not None and value is not None:
            kind = {"int": "an integer", "float": "a number", "str": "text"}[col.type]
            what = f"{col.name} {value.group(1)!r} is not {kind} ({col.key})"
        else:
            what = f"cannot be read as CSV ({message.splitlines()[0]})"
        return TraceError(self.path, what, line)
