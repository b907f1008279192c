"""mmengine's runners with a quiet start.

mmengine's runners log the whole environment (compiler flags included), the
whole config and the table of hooks before the first iteration: some 400
lines on the console of a small run. These runners write them to the run's
log file only and print one line saying where they are; everything else
(the build line saying what was loaded from where, warnings, iterations)
reaches the console as before. Configs select them with
``runner_type = 'mmllava.LLaVARunner'`` (``default_runtime.py``) or
``'mmllava.LLaVAFlexibleRunner'`` (the strategy configs).
"""
import logging

from mmengine.logging import MMLogger
from mmengine.runner import FlexibleRunner, Runner

from mmllava.registry import RUNNERS

#: How the messages that go to the log file only begin.
FILE_ONLY_PREFIXES = ('\n' + '-' * 60 + '\nSystem environment:',
                      'Config:\n',
                      'Hooks will be executed in the following order:')


class FileOnlyFilter(logging.Filter):
    """Keeps the start-up dumps (:data:`FILE_ONLY_PREFIXES`) off a
    handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(FILE_ONLY_PREFIXES)


def quiet_console(logger: MMLogger) -> None:
    """Keep the start-up dumps off ``logger``'s console handlers and say
    in one line which file holds them."""
    files = [handler.baseFilename for handler in logger.handlers
             if isinstance(handler, logging.FileHandler)]
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.addFilter(FileOnlyFilter())
    if files:
        logger.info(f'Environment, config and hook order: {files[0]}')


@RUNNERS.register_module()
class LLaVARunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner`, quiet at the start."""

    def _log_env(self, *args) -> None:
        quiet_console(self.logger)
        super()._log_env(*args)


@RUNNERS.register_module()
class LLaVAFlexibleRunner(FlexibleRunner):
    """mmengine's :class:`~mmengine.runner.FlexibleRunner` (DeepSpeed,
    FSDP), quiet at the start."""

    def _log_env(self, *args) -> None:
        quiet_console(self.logger)
        super()._log_env(*args)
