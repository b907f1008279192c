"""Fit the parameter schedulers' configs to the length of the training run.

The recipes give warm-up in fractions of an epoch (``end=0.03`` with
``convert_to_iter_based=True``) and mmengine turns a fraction into iterations
with ``int(x * len(train_dataloader))``. On a small dataset the warm-up
rounds to no iteration at all (mmengine stops with "end should be larger than
begin") or to one: a ``LinearLR`` over one iteration applies
``start_factor`` and never undoes it, and the cosine after it decays from
there, so the whole run trains at ``lr * start_factor`` without a word.
:func:`fit_to_iterations` lengthens such a scheduler to the fewest
iterations it works with (two for ``LinearLR`` and ``ConstantLR``, whose
first iteration applies their factor and whose last takes it back; one for
the rest), moves the begin of the schedulers that started where it ended,
and says so. When the whole run is shorter than that, it raises instead.

:func:`early_end_message` warns when the schedulers stop before training
does: the rest of the run trains at their final value (about 0 after a cosine
decay to ``eta_min=0``).

Why in the train loop: mmengine's ``Runner.train()`` builds the train loop
before the schedulers, so ``ResumableEpochBasedTrainLoop.__init__`` sees
``runner.param_schedulers`` still as configs, together with the length of
the dataloader and ``max_epochs``: it hands them to
:func:`check_param_schedulers` and logs the messages. These functions take
and return configs only, so they are tested without a runner.

``param_scheduler`` may be one config, a list of them, or mmengine's
dict of those per optimizer (its ``OptimWrapperDict`` form); each list is
fitted and checked on its own. Schedulers given already built are left as
they are; their ``end`` still counts for :func:`early_end_message`. The
check for an early end looks at the latest end over all the schedulers of
an optimizer, not per parameter (``lr``, ``momentum``).
"""
import copy
from typing import Any, Optional, Union

from mmengine.optim.scheduler import (ConstantParamScheduler,
                                      LinearParamScheduler)
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS

Scheduler = Union[dict, _ParamScheduler]


def check_param_schedulers(param_scheduler: Any, iters_per_epoch: int,
                           max_epochs: int) -> tuple[Any, list[str]]:
    """Fit ``param_scheduler`` to the run and say what was changed or looks
    wrong.

    Args:
        param_scheduler (dict | list | dict[str, dict | list]): The
            ``param_scheduler`` config: one scheduler, a list of them, or
            either per optimizer name.
        iters_per_epoch (int): Iterations per epoch (the length of the
            training dataloader).
        max_epochs (int): Epochs the run trains (``train_cfg.max_epochs``).

    Returns:
        tuple: The fitted config, in the form it came in (the input is not
        modified), and the warnings to log.

    Raises:
        ValueError: If the run has fewer iterations than a scheduler needs.
    """
    # An empty dataloader trains nothing; mmengine rejects converting
    # schedulers against it on its own.
    if iters_per_epoch < 1:
        return param_scheduler, []
    if isinstance(param_scheduler, dict) and 'type' not in param_scheduler:
        fitted, messages = {}, []
        for name, schedulers in param_scheduler.items():
            fitted[name], found = _check(schedulers,
                                         f'param_scheduler.{name}',
                                         iters_per_epoch, max_epochs)
            messages += found
        return type(param_scheduler)(fitted), messages
    return _check(param_scheduler, 'param_scheduler', iters_per_epoch,
                  max_epochs)


def _check(schedulers: Union[Scheduler, list], key: str,
           iters_per_epoch: int,
           max_epochs: int) -> tuple[Any, list[str]]:
    """Fit and check the schedulers of one optimizer, named under ``key``."""
    single = not isinstance(schedulers, (list, tuple))
    listed = [schedulers] if single else list(schedulers)
    keys = [key] if single else [f'{key}[{index}]'
                                 for index in range(len(listed))]
    fitted, messages = fit_to_iterations(listed, iters_per_epoch, max_epochs,
                                         keys)
    early = early_end_message(fitted, iters_per_epoch, max_epochs, keys)
    if early is not None:
        messages.append(early)
    return (fitted[0] if single else fitted), messages


def fit_to_iterations(
        schedulers: list[Scheduler], iters_per_epoch: int, max_epochs: int,
        keys: Optional[list[str]] = None) -> tuple[list[Scheduler], list[str]]:
    """Lengthen the schedulers that an epoch's length rounds too short.

    Only configs given in epochs and converted to iterations
    (``by_epoch=True, convert_to_iter_based=True``) round; a scheduler that
    begins where a lengthened one ended (the same ``begin`` as its ``end``)
    moves with it. New bounds are written in epochs, as
    ``(iteration + 0.5) / iters_per_epoch`` so that mmengine's ``int()``
    gives the iteration back whatever the float rounding.

    Args:
        schedulers (list[dict | _ParamScheduler]): The schedulers of one
            optimizer, in order.
        iters_per_epoch (int): Iterations per epoch.
        max_epochs (int): Epochs the run trains.
        keys (list[str], optional): The config key of each scheduler, for
            the messages. Defaults to ``param_scheduler[i]``.

    Returns:
        tuple[list, list[str]]: Copies of the schedulers, fitted, and one
        message per scheduler that was lengthened.

    Raises:
        ValueError: If a scheduler that begins inside the run needs more
            iterations than the run has left.
    """
    keys = keys or _default_keys(len(schedulers))
    fitted = [copy.deepcopy(scheduler) if isinstance(scheduler, dict)
              else scheduler for scheduler in schedulers]
    # For the messages, as the config wrote them.
    written = [(scheduler.get('begin', 0), scheduler.get('end', max_epochs))
               if isinstance(scheduler, dict) else None
               for scheduler in schedulers]
    run_iters = max_epochs * iters_per_epoch
    messages = []
    for index, scheduler in enumerate(fitted):
        if not _converted(scheduler) or scheduler.get('end') == INF:
            continue
        # mmengine's default end is the end of the run.
        end_epochs = scheduler.get('end', max_epochs)
        begin = int(scheduler.get('begin', 0) * iters_per_epoch)
        end = int(end_epochs * iters_per_epoch)
        needed = _fewest_iterations(scheduler['type'])
        if end - begin >= needed:
            continue
        key, name = keys[index], _type_name(scheduler['type'])
        spans = (f'{key} ({name}) spans epochs {written[index][0]:g} to '
                 f'{written[index][1]:g}: iterations {begin} to {end} at '
                 f'{iters_per_epoch} iterations per epoch, but a {name} '
                 f'needs at least {needed}')
        if begin < run_iters < begin + needed:
            raise ValueError(
                f'{spans}, and the run has {run_iters} in all '
                f'(train_cfg.max_epochs={max_epochs}). Train longer '
                '(train_cfg.max_epochs, more data or a smaller '
                f'train_dataloader.batch_size), or change {key}.end or drop '
                f'{key}.')
        scheduler['end'] = (begin + needed + 0.5) / iters_per_epoch
        followers = [
            position for position in range(index + 1, len(fitted))
            if _converted(fitted[position])
            and fitted[position].get('begin', 0) == end_epochs]
        for position in followers:
            fitted[position]['begin'] = scheduler['end']
        moved = [f'{keys[position]}.begin' for position in followers]
        message = (f'{spans}. Lengthened it to iterations {begin} to '
                   f'{begin + needed} ({key}.end={scheduler["end"]:.4g})')
        if moved:
            message += f'; {", ".join(moved)} moved with it'
        if begin >= run_iters:
            message += (f'. It begins at or after the end of the run '
                        f'({run_iters} iterations), so it never acts')
        messages.append(f'{message}. To choose the span yourself, set '
                        f'{", ".join([f"{key}.end"] + moved)} for this '
                        'dataset size.')
    return fitted, messages


def early_end_message(schedulers: list[Scheduler], iters_per_epoch: int,
                      max_epochs: int,
                      keys: Optional[list[str]] = None) -> Optional[str]:
    """Say whether the schedulers stop before the run does.

    A scheduler without an ``end``, or with mmengine's default ``INF``, runs
    to the end of training.

    Args:
        schedulers (list[dict | _ParamScheduler]): The schedulers of one
            optimizer.
        iters_per_epoch (int): Iterations per epoch.
        max_epochs (int): Epochs the run trains.
        keys (list[str], optional): The config key of each scheduler, for
            the message. Defaults to ``param_scheduler[i]``.

    Returns:
        str, optional: The warning, or None when the latest end reaches the
        end of the run (or there is no scheduler).
    """
    if not schedulers:
        return None
    keys = keys or _default_keys(len(schedulers))
    run_iters = max_epochs * iters_per_epoch
    ends = [_end_iteration(scheduler, iters_per_epoch, run_iters)
            for scheduler in schedulers]
    last = max(range(len(schedulers)), key=ends.__getitem__)
    if ends[last] >= run_iters:
        return None
    scheduler, key = schedulers[last], keys[last]
    if isinstance(scheduler, dict):
        end, by_epoch = scheduler['end'], scheduler.get('by_epoch', True)
    else:
        end, by_epoch = scheduler.end, scheduler.by_epoch
    unit = 'epoch' if by_epoch else 'iteration'
    return (f'The parameter schedulers end at {unit} {end:g} ({key}.end), '
            f'before the run does (train_cfg.max_epochs={max_epochs}, '
            f'{run_iters} iterations at {iters_per_epoch} per epoch): the '
            f'last {run_iters - ends[last]:g} iterations train at the '
            'schedulers\' final values (about 0 after a cosine decay to '
            f'eta_min=0). Change {key}.end and train_cfg.max_epochs '
            'together.')


def _default_keys(count: int) -> list[str]:
    return [f'param_scheduler[{index}]' for index in range(count)]


def _converted(scheduler: Scheduler) -> bool:
    """Whether mmengine converts the scheduler's epochs to iterations."""
    return (isinstance(scheduler, dict) and scheduler.get('by_epoch', True)
            and scheduler.get('convert_to_iter_based', False))


def _fewest_iterations(scheduler_type: Union[str, type]) -> int:
    """The shortest span, in iterations, a scheduler of this type works
    with."""
    if isinstance(scheduler_type, str):
        scheduler_type = PARAM_SCHEDULERS.get(scheduler_type)
    # Over one iteration these apply their factor and never take it back.
    if isinstance(scheduler_type, type) and issubclass(
            scheduler_type, (LinearParamScheduler, ConstantParamScheduler)):
        return 2
    return 1


def _type_name(scheduler_type: Union[str, type]) -> str:
    return getattr(scheduler_type, '__name__', str(scheduler_type))


def _end_iteration(scheduler: Scheduler, iters_per_epoch: int,
                   run_iters: int) -> float:
    """The iteration at which a scheduler stops, as mmengine will build
    it."""
    if isinstance(scheduler, dict):
        end = scheduler.get('end', INF)
        by_epoch = scheduler.get('by_epoch', True)
        if _converted(scheduler) and end != INF:
            end, by_epoch = int(end * iters_per_epoch), False
    else:
        end, by_epoch = scheduler.end, scheduler.by_epoch
    if end >= INF:
        return run_iters
    return end * iters_per_epoch if by_epoch else end
