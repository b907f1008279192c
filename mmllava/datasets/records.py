"""Reading LLaVA json/jsonl records (the rules they keep are
:mod:`mmllava.templates.rules`)."""
import json
import os.path as osp


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

