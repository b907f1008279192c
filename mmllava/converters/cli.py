"""What the scripts in tools/model_converters share: progress lines with
the elapsed time, and errors as one line naming the file and the problem."""
import argparse
import sys
import time
from typing import Callable

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)
from mmllava.utils.safe_load import UnsafePickleError


def progress_logger() -> Callable[[str], None]:
    start = time.time()

    def log(line: str) -> None:
        print(f'[{time.time() - start:7.1f}s] {line}', flush=True)

    return log


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse with ``--allow-unsafe-pickle`` added and applied."""
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def run(main: Callable[[], None]) -> None:
    """Run ``main``; a conversion error ends the script with its message
    (exit code 1) instead of a traceback."""
    try:
        main()
    except (FileNotFoundError, ValueError, KeyError,
            UnsafePickleError) as error:
        message = error.args[0] if isinstance(error, KeyError) and \
            error.args else error
        print(f'error: {message}', file=sys.stderr)
        sys.exit(1)
