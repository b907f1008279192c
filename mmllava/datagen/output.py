"""Append-only jsonl output that survives a kill and resumes.

Each record is written as one line, flushed and fsynced before the next, so a
kill loses at most the line being written. Opening an existing file reads
the records already there (a rerun skips their keys) and cuts off a torn
last line, which a kill mid-write leaves behind.
"""
import json
import os
from pathlib import Path
from typing import Iterable


class AppendOnlyJsonl:
    """A jsonl file records are only ever appended to.

    Args:
        path (str): The file; created with its folders if missing.
        key (str): The field that identifies a record (``'id'`` for LLaVA
            records, ``'question_id'`` for reviews).

    Attributes:
        records (list[dict]): Records in the file, old and new.
        torn_line (str | None): The torn last line that was cut off, if any.
    """

    def __init__(self, path: str, key: str = 'id') -> None:
        self.path = Path(path)
        self.key = key
        self.records = []
        self.torn_line = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._recover()
        self._file = open(self.path, 'a', encoding='utf-8')

    @property
    def done(self) -> set:
        """Keys of the records in the file."""
        return {record[self.key] for record in self.records}

    def _recover(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b'\n')
        # Everything before the last newline was written whole; what follows
        # it (if anything) is the line a kill interrupted.
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, 1):
            if line.strip():
                self.records.append(self._parse(line, number))
        if tail.strip():
            try:
                self.records.append(self._parse(tail, len(lines)))
                with open(self.path, 'ab') as file:
                    file.write(b'\n')
            except ValueError:
                self.torn_line = tail.decode('utf-8', 'replace')
                with open(self.path, 'r+b') as file:
                    file.truncate(len(data) - len(tail))

    def _parse(self, line: bytes, number: int) -> dict:
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f'{self.path}, line {number}: not valid json '
                             f'({error}); only the last line may be torn')
        if not isinstance(record, dict) or self.key not in record:
            raise ValueError(f'{self.path}, line {number}: a record needs '
                             f'a {self.key!r} field')
        return record

    def records_for(self, keys: Iterable) -> list[dict]:
        """The records of ``keys`` that the file holds, in ``keys``'
        order (the input's order, whatever order requests finished in)."""
        by_key = {record[self.key]: record for record in self.records}
        return [by_key[key] for key in keys if key in by_key]

    def append(self, record: dict) -> None:
        """Write ``record`` as one line and make it durable."""
        self._file.write(json.dumps(record, ensure_ascii=False) + '\n')
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records.append(record)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> 'AppendOnlyJsonl':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def write_failures(failures: Iterable, path: str) -> None:
    """One json line per failure (a dataclass), replacing ``path``."""
    with open(path, 'w', encoding='utf-8') as file:
        for failure in failures:
            file.write(json.dumps(vars(failure)) + '\n')


def export_json(records: Iterable[dict], path: str) -> None:
    """Write ``records`` as one json list, replacing ``path`` atomically."""
    temporary = Path(f'{path}.tmp')
    temporary.write_text(json.dumps(list(records), ensure_ascii=False,
                                    indent=1) + '\n', encoding='utf-8')
    os.replace(temporary, path)
