"""Linear probes of a vision tower's features on the demo's scenes.

Whether the information a question kind needs is in the features at all, and
linearly readable, is the first thing to know when a model does not beat its
blind baseline. Each question kind of the demo becomes one or more
classification heads whose targets come from the scene's objects (e.g.
``colour``: for each of the 9 grid cells, the colour of the shape there or
``'none'``); one linear layer per head is fitted on the features of train
scenes and scored on held-out scenes, only where the question kind could ask
(a cell that holds a shape, a pair of shapes in different rows ...).
"""
import random
from dataclasses import dataclass
from itertools import permutations

import numpy as np
import torch

from mmllava.testing.demo.scenes import (COLOURS, SHAPES, SIZES, Scene,
                                         sample_scene)

CELLS = range(9)
IGNORE = -100


@dataclass(frozen=True)
class ProbeHead:
    """One classification target computed from a scene.

    Args:
        kind (str): The question kind it stands for.
        name (str): E.g. ``'colour@cell4'``.
        classes (tuple): The class names.
        balanced (bool): Score by the mean of per-class accuracies (yes/no
            heads, where one answer dominates).
    """

    kind: str
    name: str
    classes: tuple
    balanced: bool = False


def _cell(obj) -> int:
    return obj.row * 3 + obj.column


def probe_heads() -> list[ProbeHead]:
    """The heads of every question kind."""
    heads = []
    for cell in CELLS:
        heads += [
            ProbeHead('colour', f'colour@cell{cell}', ('none', *COLOURS)),
            ProbeHead('shape', f'shape@cell{cell}', ('none', *SHAPES)),
            ProbeHead('size', f'size@cell{cell}', ('none', *SIZES)),
        ]
    heads += [ProbeHead('position', f'cell_of_{colour}',
                        tuple(f'cell{cell}' for cell in CELLS))
              for colour in COLOURS]
    heads.append(ProbeHead('count', 'count', ('1', '2', '3')))
    heads += [ProbeHead('count_shape', f'count_{shape}', ('0', '1', '2', '3'))
              for shape in SHAPES]
    heads += [ProbeHead('exists', f'exists_{colour}_{shape}', ('no', 'yes'),
                        balanced=True)
              for colour in COLOURS for shape in SHAPES]
    heads += [ProbeHead('relation', f'{axis}_{first}_{second}',
                        ('before', 'after'), balanced=True)
              for axis in ('row', 'column')
              for first, second in permutations(COLOURS, 2)]
    return heads


def scene_targets(scene: Scene, heads: list[ProbeHead]) -> list[int]:
    """Each head's class index for a scene, :data:`IGNORE` where the head's
    question could not be asked of it (scored nowhere, trained nowhere)."""
    by_cell = {_cell(obj): obj for obj in scene.objects}
    by_colour = {obj.colour: obj for obj in scene.objects}
    targets = []
    for head in heads:
        if head.kind in ('colour', 'shape', 'size'):
            obj = by_cell.get(int(head.name.split('cell')[1]))
            value = 'none' if obj is None else getattr(obj, head.kind)
        elif head.kind == 'position':
            obj = by_colour.get(head.name[len('cell_of_'):])
            value = None if obj is None else f'cell{_cell(obj)}'
        elif head.kind == 'count':
            value = str(len(scene.objects))
        elif head.kind == 'count_shape':
            shape = head.name[len('count_'):]
            value = str(sum(obj.shape == shape for obj in scene.objects))
        elif head.kind == 'exists':
            _, colour, shape = head.name.split('_')
            value = 'yes' if any(obj.colour == colour and obj.shape == shape
                                 for obj in scene.objects) else 'no'
        else:
            axis, first, second = head.name.split('_')
            one, two = by_colour.get(first), by_colour.get(second)
            value = None
            if one is not None and two is not None and \
                    getattr(one, axis) != getattr(two, axis):
                value = 'before' if getattr(one, axis) < getattr(two, axis) \
                    else 'after'
        targets.append(IGNORE if value is None else head.classes.index(value))
    return targets


def scored(head: ProbeHead, target: int) -> bool:
    """Whether a question of the head's kind could be asked: attribute heads
    score only cells that hold a shape."""
    if target == IGNORE:
        return False
    return not (head.kind in ('colour', 'shape', 'size') and target == 0)


def demo_scenes(split: str, number: int, image_size: int,
                seed: int = 0) -> list[Scene]:
    """The scenes the demo generator makes for ``split`` (same seeds, so
    ``'train'`` gives its training scenes and ``'eval'`` its held-out ones).
    """
    return [sample_scene(random.Random(f'{seed}:{split}:{index}'),
                         f'{split}_{index:05d}', split, image_size)
            for index in range(number)]


def one_hot_targets(targets: torch.Tensor,
                    heads: list[ProbeHead]) -> torch.Tensor:
    """``(N, H)`` class indices -> ``(N, sum of classes)`` one-hot rows,
    all zero where a head's target is :data:`IGNORE`."""
    columns = []
    for index, head in enumerate(heads):
        column = torch.zeros(len(targets), len(head.classes))
        known = targets[:, index] != IGNORE
        column[known, targets[known, index]] = 1.0
        columns.append(column)
    return torch.cat(columns, 1)


def ridge_predictions(train_x: torch.Tensor, train_y: torch.Tensor,
                      test_x: torch.Tensor, penalty: float,
                      heads: list[ProbeHead]) -> torch.Tensor:
    """Least squares on one-hot targets with an L2 penalty (a ridge
    classifier): each head predicts its highest-scoring class.

    Returns:
        Tensor: ``(N_test, H)`` predicted class indices.
    """
    # The same solution through whichever Gram matrix is smaller:
    # (X'X + pI)^-1 X'Y = X'(XX' + pI)^-1 Y.
    if len(train_x) < train_x.shape[1]:
        gram = train_x @ train_x.T
        gram.diagonal().add_(penalty)
        weights = train_x.T @ torch.linalg.solve(gram, train_y)
    else:
        gram = train_x.T @ train_x
        gram.diagonal().add_(penalty)
        weights = torch.linalg.solve(gram, train_x.T @ train_y)
    scores = test_x @ weights
    predictions, start = [], 0
    for head in heads:
        predictions.append(scores[:, start:start + len(head.classes)]
                           .argmax(1))
        start += len(head.classes)
    return torch.stack(predictions, 1)


def kind_accuracy(predictions: torch.Tensor, targets: torch.Tensor,
                  heads: list[ProbeHead]) -> dict[str, float]:
    """Accuracy in percent per question kind over the scored targets (the
    mean per-class accuracy for balanced heads)."""
    hits: dict[str, list[float]] = {}
    for i, head in enumerate(heads):
        mask = torch.tensor([scored(head, int(target))
                             for target in targets[:, i]])
        if not mask.any():
            continue
        right = (predictions[:, i] == targets[:, i])[mask].float()
        if head.balanced:
            for value in targets[mask, i].unique():
                chosen = targets[mask, i] == value
                hits.setdefault(head.kind, []).append(
                    float(right[chosen].mean()))
        else:
            hits.setdefault(head.kind, []).extend(right.tolist())
    return {kind: 100 * float(np.mean(values))
            for kind, values in hits.items()}


def fit_probes(train_features: torch.Tensor, train_targets: torch.Tensor,
               test_features: torch.Tensor, test_targets: torch.Tensor,
               heads: list[ProbeHead],
               penalties: tuple = (1e1, 1e2, 1e3, 1e4)) -> dict[str, float]:
    """Fit the linear probes of every head and score them per kind.

    The L2 penalty is chosen on the last fifth of the train scenes, then
    the probes are refitted on all of them.

    Args:
        train_features (Tensor): ``(N, D)`` flattened image features.
        train_targets (Tensor): ``(N, H)`` class indices or :data:`IGNORE`.
        test_features, test_targets: The held-out scenes, likewise.
        heads (list[ProbeHead]): The ``H`` heads.
        penalties (tuple): The L2 penalties tried.

    Returns:
        dict: Held-out accuracy in percent per question kind.
    """
    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    train_x = (train_features - mean) / std
    test_x = (test_features - mean) / std
    train_y = one_hot_targets(train_targets, heads)
    split = len(train_x) * 4 // 5

    def score(penalty: float) -> float:
        predictions = ridge_predictions(train_x[:split], train_y[:split],
                                        train_x[split:], penalty, heads)
        return float(np.mean(list(kind_accuracy(
            predictions, train_targets[split:], heads).values())))

    penalty = max(penalties, key=score)
    predictions = ridge_predictions(train_x, train_y, test_x, penalty, heads)
    return kind_accuracy(predictions, test_targets, heads)
