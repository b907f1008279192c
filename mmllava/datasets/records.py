"""Reading LLaVA json/jsonl records and checking one record's structure."""
import json
import os.path as osp

from mmllava.templates import GPT, HUMAN


def read_json(path: str, what: str = 'File') -> object:
    """A json file; errors name the file (as ``what``) and the fault."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with open(path, encoding='utf-8') as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path}: not valid json ({error})') from None


def read_json_lines(path: str, what: str = 'File') -> list:
    """One json value per non-blank line, whatever the file's extension;
    errors name the file (as ``what``) and the line."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    entries = []
    with open(path, encoding='utf-8') as file:
        for line_number, line in enumerate(file, 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f'{path}, line {line_number}: not '
                                     f'valid json ({error})') from None
    return entries


def read_records(data_file: str) -> list[dict]:
    """Read a json list or a jsonl file of records.

    Errors name the file, and for jsonl the line, that could not be read.
    """
    what = 'LLaVA data file'
    if data_file.endswith('.jsonl'):
        return read_json_lines(data_file, what)
    records = read_json(data_file, what)
    if not isinstance(records, list):
        raise ValueError(f'{data_file}: expected a json list of records, got '
                         f'{type(records).__name__}')
    return records


def check_record(record: object, index: int, data_file: str) -> None:
    """Check a record's structure; the error names the record and the fault."""

    def fail(reason: str):
        record_id = record.get('id') if isinstance(record, dict) else None
        raise ValueError(
            f'{data_file}: record {index} (id={record_id!r}): {reason}')

    if not isinstance(record, dict):
        fail(f'expected an object, got {type(record).__name__}')
    if 'image' in record and not isinstance(record['image'], str):
        fail('"image" must be a path string')
    turns = record.get('conversations')
    if not isinstance(turns, list) or not turns:
        fail('"conversations" must be a non-empty list')
    for turn_index, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get('from') not in (HUMAN, GPT) \
                or not isinstance(turn.get('value'), str):
            fail(f'turn {turn_index} must be {{"from": "human"|"gpt", '
                 f'"value": str}}, got {turn!r:.200}')
    # A leading "gpt" turn is dropped when the conversation is rendered (as
    # in the official preprocessing), so it does not count as an answer.
    answers = turns[1:] if turns[0]['from'] == GPT else turns
    if not any(turn['from'] == GPT for turn in answers):
        fail('no "gpt" turn after a "human" turn, so nothing to learn')
