"""The language of the demo data: captions, descriptions and questions
about a scene.

Every text is computed from the objects and their boxes, the way the LLaVA
paper writes its instruction data from COCO captions and boxes, so every
answer is true to the drawn image.
"""
import random
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from mmllava.testing.demo.scenes import (COLOURS, SHAPES, SIZES, Scene,
                                         SceneObject)

CORNERS = {'circle': 0, 'square': 4, 'triangle': 3}
NUMBER_WORDS = ('no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
                'eight', 'nine', 'ten', 'eleven', 'twelve')

# General knowledge for the text-only samples, in the scenes' vocabulary.
FACTS = (
    ('How many corners does a triangle have?',
     'A triangle has three corners.'),
    ('How many corners does a square have?', 'A square has four corners.'),
    ('How many corners does a circle have?',
     'A circle has no corners, because it is round.'),
    ('How many sides does a triangle have?', 'A triangle has three sides.'),
    ('How many sides does a square have?',
     'A square has four sides of the same length.'),
    ('Which shape is round?', 'A circle is round.'),
    ('Which shape has three sides?', 'A triangle has three sides.'),
    ('Which shape has four equal sides?', 'A square has four equal sides.'),
    ('What colour do you get when you mix red and yellow?',
     'Mixing red and yellow gives orange.'),
    ('What colour do you get when you mix blue and yellow?',
     'Mixing blue and yellow gives green.'),
    ('What colour do you get when you mix red and blue?',
     'Mixing red and blue gives purple.'),
    ('What colour is the sky on a clear day?',
     'The sky is blue on a clear day.'),
    ('What colour is fresh grass?', 'Fresh grass is green.'),
    ('What colour is a ripe banana?', 'A ripe banana is yellow.'),
    ('What is the opposite of left?', 'The opposite of left is right.'),
    ('What is the opposite of top?', 'The opposite of top is bottom.'),
    ('What is the opposite of above?', 'The opposite of above is below.'),
    ('What is the opposite of large?', 'The opposite of large is small.'),
    ('Is a large square bigger than a small square?',
     'Yes, a large square is bigger than a small square.'),
    ('Name the three primary colours.',
     'The three primary colours are red, yellow and blue.'),
)


@dataclass(frozen=True)
class QA:
    """A question about a scene with its answers.

    Args:
        kind (str): The question family, e.g. ``'colour'``; the eval files
            report accuracy per kind.
        question (str): The question text, without the image placeholder.
        answer (str): A full-sentence answer.
        short (str, optional): A one-word or one-phrase answer, for the
            LLaVA-1.5 short-answer format. None for open questions.
    """

    kind: str
    question: str
    answer: str
    short: Optional[str] = None


def upper_first(text: str) -> str:
    """Upper-case the first letter only (``str.capitalize`` lowers the
    rest)."""
    return text[0].upper() + text[1:]


def _a(phrase: str) -> str:
    """Prefix the indefinite article: ``'an orange square'``."""
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def _join(items: list[str]) -> str:
    """``'a'``, ``'a and b'``, ``'a, b and c'``."""
    if len(items) == 1:
        return items[0]
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def _count(number: int, noun: str) -> str:
    """``'no circles'``, ``'one circle'``, ``'two circles'``."""
    return f'{NUMBER_WORDS[number]} {noun}{"" if number == 1 else "s"}'


def position_phrase(position: str, of_image: bool = False) -> str:
    """Turn a position word into a phrase.

    Args:
        position (str): A :attr:`SceneObject.position` value.
        of_image (bool): Whether to say ``'at the top of the image'``
            rather than ``'at the top'``.

    Returns:
        str: E.g. ``'in the centre'``, ``'on the left'``, ``'at the top
        right'``.
    """
    if position == 'centre':
        phrase = 'in the centre'
    elif position in ('left', 'right'):
        phrase = f'on the {position}' + (' side' if of_image else '')
    else:
        phrase = f'at the {position}'
    return phrase + ' of the image' if of_image else phrase


def relation(obj: SceneObject, other: SceneObject) -> str:
    """Where ``obj`` lies as seen from ``other``, e.g. ``'below and to the
    right of the red circle'``; the two must be in different cells."""
    parts = []
    if obj.row != other.row:
        parts.append('above' if obj.row < other.row else 'below')
    if obj.column != other.column:
        parts.append('to the left of'
                     if obj.column < other.column else 'to the right of')
    return f'{" and ".join(parts)} the {other.name}'


def caption(scene: Scene) -> str:
    """A one-sentence caption naming every object, e.g. ``'A large red
    circle on the left and a small blue triangle at the bottom right.'``"""
    parts = [
        f'{_a(obj.full_name)} {position_phrase(obj.position)}'
        for obj in scene.objects
    ]
    return upper_first(_join(parts)) + '.'


def detailed_description(scene: Scene) -> str:
    """A paragraph giving each object's size, colour, shape and place, and
    where it lies relative to the object described before it."""
    objects = scene.objects
    if len(objects) == 1:
        sentences = ['The image shows a single shape on a plain light '
                     'background.']
    else:
        sentences = [f'The image shows {_count(len(objects), "shape")} on '
                     'a plain light background.']
    for index, obj in enumerate(objects):
        sentence = (f'{upper_first(_a(obj.full_name))} is '
                    f'{position_phrase(obj.position, of_image=True)}')
        if index > 0:
            sentence += f', {relation(obj, objects[index - 1])}'
        sentences.append(sentence + '.')
    if len(objects) == 1:
        sentences.append('It is the only shape in the image.')
        return ' '.join(sentences)
    by_size = {
        size: [f'the {obj.name}' for obj in objects if obj.size == size]
        for size in SIZES
    }
    if not by_size['small'] or not by_size['large']:
        size = objects[0].size
        sentences.append(f'{"Both" if len(objects) == 2 else "All"} shapes '
                         f'are {size}.')
    else:
        large, small = by_size['large'], by_size['small']
        sentences.append(
            f'{upper_first(_join(large))} '
            f'{"is" if len(large) == 1 else "are"} large, while '
            f'{_join(small)} {"is" if len(small) == 1 else "are"} small.')
    kinds = Counter(obj.shape for obj in objects)
    sentences.append('The image contains ' + _join(
        [_count(number, shape) for shape, number in kinds.items()]) + '.')
    return ' '.join(sentences)


def _object_questions(scene: Scene) -> dict[str, list[QA]]:
    """Questions about single objects' colour, shape, size and place."""
    shape_counts = Counter(obj.shape for obj in scene.objects)
    kinds: dict[str, list[QA]] = dict(
        colour=[], shape=[], size=[], position=[])
    for obj in scene.objects:
        where = f'the shape {position_phrase(obj.position)}'
        kinds['colour'].append(
            QA('colour', f'What colour is {where}?',
               f'{upper_first(where)} is {obj.colour}.', obj.colour))
        if shape_counts[obj.shape] == 1:
            kinds['colour'].append(
                QA('colour', f'What colour is the {obj.shape}?',
                   f'The {obj.shape} is {obj.colour}.', obj.colour))
        kinds['shape'].append(
            QA('shape', f'What shape is the {obj.colour} object?',
               f'The {obj.colour} object is {_a(obj.shape)}.', obj.shape))
        kinds['size'].append(
            QA('size', f'Is the {obj.name} large or small?',
               f'The {obj.name} is {obj.size}.', obj.size))
        kinds['position'].append(
            QA('position', f'Where is the {obj.name}?',
               f'The {obj.name} is '
               f'{position_phrase(obj.position, of_image=True)}.',
               obj.position))
    return kinds


def _count_questions(scene: Scene) -> dict[str, list[QA]]:
    """Questions about how many shapes, in all and of each kind."""
    total = len(scene.objects)
    verb = 'is' if total == 1 else 'are'
    kinds = dict(
        count=[
            QA('count', 'How many shapes are there in the image?',
               f'There {verb} {_count(total, "shape")} in the image.',
               str(total))
        ],
        count_shape=[])
    for shape in SHAPES:
        number = sum(obj.shape == shape for obj in scene.objects)
        verb = 'is' if number == 1 else 'are'
        kinds['count_shape'].append(
            QA('count_shape', f'How many {shape}s are there in the image?',
               f'There {verb} {_count(number, shape)} in the image.',
               str(number)))
    return kinds


def _yes_no_questions(scene: Scene,
                      rng: random.Random) -> dict[str, list[QA]]:
    """Existence and relation questions, as many answered yes as no."""
    shown = rng.choice(scene.objects)
    present = {(obj.colour, obj.shape) for obj in scene.objects}
    colours = {colour for colour, _ in present}
    shapes = {shape for _, shape in present}
    # Absent pairs that share a colour or a shape with the scene make the
    # model bind colour to shape rather than spot either alone.
    absent = [(colour, shape) for colour in COLOURS for shape in SHAPES
              if (colour, shape) not in present and (colour in colours
                                                     or shape in shapes)]
    colour, shape = rng.choice(absent)
    kinds = dict(exists=[
        QA('exists', f'Is there {_a(shown.name)} in the image?',
           f'Yes, there is {_a(shown.name)} '
           f'{position_phrase(shown.position, of_image=True)}.', 'yes'),
        QA('exists', f'Is there {_a(f"{colour} {shape}")} in the image?',
           f'No, there is no {colour} {shape} in the image.', 'no'),
    ])
    if len(scene.objects) < 2:
        return kinds
    first, second = rng.sample(scene.objects, 2)
    pairs = []
    if first.column != second.column:
        pairs.append(('to the left of', 'to the right of',
                      first.column < second.column))
    if first.row != second.row:
        pairs.append(('above', 'below', first.row < second.row))
    kinds['relation'] = []
    for word, opposite, first_is_word in pairs:
        truth, lie = (word, opposite) if first_is_word else (opposite, word)
        kinds['relation'] += [
            QA('relation', f'Is the {first.name} {truth} the {second.name}?',
               f'Yes, the {first.name} is {truth} the {second.name}.', 'yes'),
            QA('relation', f'Is the {first.name} {lie} the {second.name}?',
               f'No, the {first.name} is {truth} the {second.name}.', 'no'),
        ]
    return kinds


def scene_questions(scene: Scene, rng: random.Random) -> dict[str, list[QA]]:
    """All questions with exact answers about a scene, grouped by kind, so
    a caller can draw kinds evenly whatever the number of objects."""
    return {
        **_object_questions(scene),
        **_count_questions(scene),
        **_yes_no_questions(scene, rng)
    }


def _edge_questions(scene: Scene) -> list[QA]:
    """'Which shape is closest to the top edge, and why?' for each edge that
    one shape alone is nearest to."""
    questions = []
    for edge, axis, pick in (('top', 'row', min), ('bottom', 'row', max),
                             ('left', 'column', min),
                             ('right', 'column', max)):
        nearest = pick(getattr(obj, axis) for obj in scene.objects)
        winners = [
            obj for obj in scene.objects if getattr(obj, axis) == nearest
        ]
        if len(winners) > 1:
            continue
        winner = winners[0]
        others = _join([
            f'the {obj.name} is {position_phrase(obj.position)}'
            for obj in scene.objects if obj is not winner
        ])
        questions.append(
            QA('reasoning',
               f'Which shape is closest to the {edge} edge of the image, '
               'and why?', f'The {winner.name} is closest to the {edge} '
               f'edge. It is {position_phrase(winner.position, True)}, while '
               f'{others}.'))
    return questions


def _removal_question(scene: Scene, rng: random.Random) -> QA:
    """'If the red circle were removed, how many shapes would remain?'"""
    removed = rng.choice(scene.objects)
    rest = [f'the {obj.name}' for obj in scene.objects if obj is not removed]
    question = f'If the {removed.name} were removed, how many shapes would ' \
               'remain?'
    if not rest:
        answer = (f'No shapes would remain, because the {removed.name} is '
                  'the only shape in the image.')
    else:
        answer = (f'{upper_first(_count(len(rest), "shape"))} would remain. '
                  f'There are {NUMBER_WORDS[len(scene.objects)]} shapes now, '
                  f'and removing the {removed.name} leaves '
                  f'{"only " if len(rest) == 1 else ""}{_join(rest)}.')
    return QA('reasoning', question, answer)


def _corner_question(scene: Scene) -> QA:
    """Corners in total, with each shape's share as the reason."""
    if len(scene.objects) == 1:
        obj = scene.objects[0]
        return QA(
            'reasoning', 'How many corners does the shape in the image have?',
            f'The {obj.name} has {_count(CORNERS[obj.shape], "corner")}, '
            f'because it is {_a(obj.shape)}.')
    total = sum(CORNERS[obj.shape] for obj in scene.objects)
    shares = _join([
        f'the {obj.name} has {_count(CORNERS[obj.shape], "corner")}'
        for obj in scene.objects
    ])
    return QA('reasoning',
              'How many corners do the shapes in the image have in total?',
              f'The shapes have {_count(total, "corner")} in total: '
              f'{shares}.')


def _size_question(scene: Scene, rng: random.Random) -> QA:
    """'Which is larger, the red circle or the blue square?'"""
    first, second = rng.sample(scene.objects, 2)
    question = f'Which is larger, the {first.name} or the {second.name}?'
    if first.size == second.size:
        return QA(
            'reasoning', question, 'They are the same size. Both the '
            f'{first.name} and the {second.name} are {first.size}.')
    large, small = (first, second) if first.size == 'large' else (second,
                                                                   first)
    return QA(
        'reasoning', question, f'The {large.name} is larger. It is a large '
        f'shape, while the {small.name} is small.')


def _repeat_question(scene: Scene) -> QA:
    """'Does any kind of shape appear more than once?'"""
    question = 'Does any kind of shape appear more than once in the image?'
    kinds = Counter(obj.shape for obj in scene.objects)
    repeated = [shape for shape, number in kinds.items() if number > 1]
    if not repeated:
        return QA(
            'reasoning', question,
            'No. The image has ' + _join([_a(obj.shape) for obj in
                                          scene.objects]) +
            ', and each kind appears only once.')
    shape = repeated[0]
    names = [f'the {obj.name}' for obj in scene.objects if obj.shape == shape]
    return QA(
        'reasoning', question, f'Yes. {upper_first(_join(names))} are '
        f'{"both" if len(names) == 2 else "all"} {shape}s.')


def _part_question(scene: Scene, rng: random.Random) -> QA:
    """'What would you see in only the left part of the image?'"""
    part = rng.choice(('left', 'right', 'top', 'bottom'))
    axis, index = dict(left=('column', 0), right=('column', 2),
                       top=('row', 0), bottom=('row', 2))[part]
    seen = [obj for obj in scene.objects if getattr(obj, axis) == index]
    question = (f'What would you see if you looked only at the {part} part '
                'of the image?')
    if not seen:
        return QA(
            'reasoning', question, 'You would see only the plain '
            f'background, because no shape lies in the {part} part of the '
            'image.')
    return QA(
        'reasoning', question, 'You would see ' +
        _join([_a(obj.full_name) for obj in seen]) +
        f', which {"lies" if len(seen) == 1 else "lie"} in the {part} part '
        'of the image.')


def reasoning_question(scene: Scene, rng: random.Random) -> QA:
    """One complex-reasoning question, drawn from those that suit the
    scene; the answer gives its reason from the boxes."""
    candidates = [
        _removal_question(scene, rng),
        _corner_question(scene),
        _part_question(scene, rng)
    ]
    if len(scene.objects) > 1:
        candidates += [
            _size_question(scene, rng),
            _repeat_question(scene), *_edge_questions(scene)
        ]
    return rng.choice(candidates)


def text_only_question(rng: random.Random) -> tuple[str, str]:
    """A general question on shapes and colours, half of them counting
    sums computed on the spot."""
    if rng.random() < 0.5:
        return rng.choice(FACTS)
    shape = rng.choice(('square', 'triangle'))
    number = rng.randint(1, 3)
    if rng.random() < 0.5:
        total = number * CORNERS[shape]
        return (f'I have {_count(number, shape)}. How many corners are there '
                'in total?', f'There are {_count(total, "corner")} in '
                f'total, because each {shape} has '
                f'{_count(CORNERS[shape], "corner")}.')
    other = rng.choice([kind for kind in SHAPES if kind != shape])
    extra = rng.randint(1, 3)
    group = f'{_count(number, shape)} and {_count(extra, other)}'
    return (f'I have {group}. How many shapes do I have?',
            f'You have {_count(number + extra, "shape")}: {group}.')
