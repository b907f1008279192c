"""Synthetic shape scenes for the embedded demo, written as LLaVA json.

A scene holds one to three shapes on a plain light background. Each shape
lies wholly inside its own cell of a 3 x 3 grid, so shapes never overlap and
the position word of each (left, centre or right; top, middle or bottom, read
from its box centre) is plain to see. Every text is computed from the
objects and their boxes, the way the LLaVA paper writes its instruction data
from COCO captions and boxes, so every answer is true to the drawn image.

The files mirror the official LLaVA data: ``pretrain.json`` is shaped like
``blip_laion_cc_sbu_558k.json`` (stage 1), ``instruct.json`` like
``llava_v1_5_mix665k.json`` (stage 2).
"""
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from PIL import Image, ImageDraw

from mmllava.constants import IMAGE_PLACEHOLDER

SHAPES = ('circle', 'square', 'triangle')
CORNERS = {'circle': 0, 'square': 4, 'triangle': 3}
# Saturated colours far apart in RGB and all dark enough to stand out on
# the background; yellow is a deep gold for that reason.
COLOURS = {
    'red': (220, 40, 40),
    'green': (40, 160, 60),
    'blue': (40, 80, 220),
    'yellow': (230, 190, 0),
    'purple': (140, 60, 180),
    'orange': (245, 125, 20),
}
BACKGROUND = (245, 244, 238)
# Side of a shape as a fraction of the image side. A large shape must fit a
# grid cell (a third of the side) at 32 px; a small one still shows its
# corners there.
SIZES = {'small': 0.18, 'large': 0.28}
MIN_IMAGE_SIZE = 32
SUPERSAMPLE = 4
COLUMNS = ('left', 'centre', 'right')
ROWS = ('top', 'middle', 'bottom')
NUMBER_WORDS = ('no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
                'eight', 'nine', 'ten', 'eleven', 'twelve')

# The stage-1 prompts of the LLaVA paper (brief image description).
BRIEF_PROMPTS = (
    'Describe the image concisely.',
    'Provide a brief description of the given image.',
    'Offer a succinct explanation of the picture presented.',
    'Summarize the visual content of the image.',
    'Give a short and clear explanation of the subsequent image.',
    'Share a concise interpretation of the image provided.',
    'Relay a brief, clear account of the picture shown.',
    'Write a terse but informative summary of the picture.',
)
# A subset of the LLaVA paper's detailed-description prompts.
DETAIL_PROMPTS = (
    'Describe the following image in detail.',
    'Provide a detailed description of the given image.',
    'Give an elaborate explanation of the image you see.',
    'Explain the various aspects of the image before you.',
    'Walk through the important details of the image.',
    'Examine the image closely and share its details.',
)
# The prompts LLaVA-1.5 appends to short-answer and caption data.
SHORT_ANSWER_PROMPT = 'Answer the question using a single word or phrase.'
CAPTION_PROMPT = 'Provide a one-sentence caption for the provided image.'

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
class SceneObject:
    """One drawn shape.

    Args:
        shape (str): One of :data:`SHAPES`.
        colour (str): One of :data:`COLOURS`, unique within its scene, so
            ``"the red circle"`` names one object.
        size (str): ``'small'`` or ``'large'``.
        box (tuple): ``(x1, y1, x2, y2)`` in pixels; ``x2`` and ``y2`` are
            exclusive, so the width is ``x2 - x1``.
        row (int): 0, 1 or 2 for top, middle or bottom, from the box centre.
        column (int): 0, 1 or 2 for left, centre or right, from the box
            centre.
    """

    shape: str
    colour: str
    size: str
    box: tuple[int, int, int, int]
    row: int
    column: int

    @property
    def name(self) -> str:
        """The name that refers to this object, e.g. ``'red circle'``."""
        return f'{self.colour} {self.shape}'

    @property
    def full_name(self) -> str:
        """Size, colour and shape, e.g. ``'large red circle'``."""
        return f'{self.size} {self.colour} {self.shape}'

    @property
    def position(self) -> str:
        """Where the object is: ``'top left'``, ``'left'``, ``'centre'``..."""
        if self.row == 1:
            return COLUMNS[self.column]
        if self.column == 1:
            return ROWS[self.row]
        return f'{ROWS[self.row]} {COLUMNS[self.column]}'


@dataclass(frozen=True)
class Scene:
    """A generated image and what is in it.

    Args:
        id (str): ``'{split}_{index:05d}'``.
        split (str): ``'train'`` or ``'eval'``.
        image (str): The image path relative to the output directory.
        image_size (int): Side of the square image in pixels.
        objects (tuple): The :class:`SceneObject` s in reading order (top to
            bottom, then left to right).
    """

    id: str
    split: str
    image: str
    image_size: int
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict:
        """The scene as written to ``scenes.json``."""
        side = self.image_size
        return dict(
            id=self.id,
            split=self.split,
            image=self.image,
            objects=[
                dict(
                    shape=obj.shape,
                    colour=obj.colour,
                    size=obj.size,
                    position=obj.position,
                    box=list(obj.box),
                    box_norm=[round(v / side, 3) for v in obj.box])
                for obj in self.objects
            ])


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


def grid_cell(box: tuple[int, int, int, int],
              image_size: int) -> tuple[int, int]:
    """Return the ``(row, column)`` of the 3 x 3 grid cell that holds the
    centre of ``box``."""
    x1, y1, x2, y2 = box
    # 3 * centre / side, with the centre at (x1 + x2) / 2.
    return int(1.5 * (y1 + y2) / image_size), int(1.5 * (x1 + x2) /
                                                  image_size)


def _place(rng: random.Random, cell: int, side: int, image_size: int) -> int:
    """Pick the first pixel of a ``side``-pixel span inside grid cell
    ``cell`` along one axis, one pixel clear of the cell's edges where the
    cell has room, so that neighbouring shapes do not touch."""
    low = -(-cell * image_size // 3)
    high = (cell + 1) * image_size // 3 - side
    if high - low >= 2:
        low, high = low + 1, high - 1
    if high < low:
        raise ValueError(f'A {side} px shape does not fit a grid cell of a '
                         f'{image_size} px image')
    return rng.randint(low, high)


def sample_scene(rng: random.Random, scene_id: str, split: str,
                 image_size: int) -> Scene:
    """Draw a random scene layout.

    Args:
        rng (random.Random): The source of randomness.
        scene_id (str): The scene id; the image is ``images/{scene_id}.png``.
        split (str): ``'train'`` or ``'eval'``.
        image_size (int): Side of the square image in pixels.

    Returns:
        Scene: One to three shapes with distinct colours in distinct cells.
    """
    num_objects = rng.randint(1, 3)
    cells = sorted(rng.sample(range(9), num_objects))
    colours = rng.sample(list(COLOURS), num_objects)
    objects = []
    for cell, colour in zip(cells, colours):
        size = rng.choice(tuple(SIZES))
        side = round(SIZES[size] * image_size)
        row, column = divmod(cell, 3)
        x1 = _place(rng, column, side, image_size)
        y1 = _place(rng, row, side, image_size)
        box = (x1, y1, x1 + side, y1 + side)
        objects.append(
            SceneObject(rng.choice(SHAPES), colour, size, box,
                        *grid_cell(box, image_size)))
    return Scene(scene_id, split, f'images/{scene_id}.png', image_size,
                 tuple(objects))


def shape_mask(shape: str, side: int) -> Image.Image:
    """A ``side`` x ``side`` mode-'L' mask of a shape filling its box: 255
    inside, 0 outside.

    The shape is drawn at :data:`SUPERSAMPLE` times the size and a pixel
    belongs to it if the shape covers at least half of the pixel: small
    shapes keep a truer outline than PIL's direct rasterization gives, and
    the edges stay hard, so every shape pixel has exactly its colour's RGB
    value.
    """
    big = side * SUPERSAMPLE
    mask = Image.new('L', (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if shape == 'circle':
        draw.ellipse((0, 0, big - 1, big - 1), fill=255)
    elif shape == 'square':
        draw.rectangle((0, 0, big - 1, big - 1), fill=255)
    else:
        # A flat top one output pixel wide keeps the apex row, which
        # coverage alone would drop for even sides, so the box stays tight.
        top = (big - SUPERSAMPLE) / 2
        draw.polygon([(top, 0), (big - top, 0), (big, big), (0, big)],
                     fill=255)
    return mask.resize((side, side), Image.BOX).point(
        lambda value: 255 if value >= 128 else 0)


def draw_scene(scene: Scene) -> Image.Image:
    """Render a scene as an RGB image."""
    image = Image.new('RGB', (scene.image_size, scene.image_size), BACKGROUND)
    for obj in scene.objects:
        x1, y1, x2, _ = obj.box
        image.paste(COLOURS[obj.colour], (x1, y1),
                    mask=shape_mask(obj.shape, x2 - x1))
    return image


def _cap(text: str) -> str:
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
    return _cap(_join(parts)) + '.'


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
        sentence = (f'{_cap(_a(obj.full_name))} is '
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
            f'{_cap(_join(large))} {"is" if len(large) == 1 else "are"} '
            f'large, while {_join(small)} '
            f'{"is" if len(small) == 1 else "are"} small.')
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
               f'{_cap(where)} is {obj.colour}.', obj.colour))
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
        answer = (f'{_cap(_count(len(rest), "shape"))} would remain. There '
                  f'are {NUMBER_WORDS[len(scene.objects)]} shapes now, and '
                  f'removing the {removed.name} leaves '
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
        'reasoning', question, f'Yes. {_cap(_join(names))} are '
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


def _text_only_question(rng: random.Random) -> tuple[str, str]:
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


def _turns(pairs: list[tuple[str, str]]) -> list[dict]:
    """LLaVA conversation turns from ``(question, answer)`` pairs."""
    turns = []
    for question, answer in pairs:
        turns += [{'from': 'human', 'value': question},
                  {'from': 'gpt', 'value': answer}]
    return turns


def _with_image(text: str, rng: random.Random) -> str:
    """Put the image placeholder before or after the text, as both occur in
    the official LLaVA files."""
    if rng.random() < 0.5:
        return f'{IMAGE_PLACEHOLDER}\n{text}'
    return f'{text}\n{IMAGE_PLACEHOLDER}'


def _image_record(record_id: str, scene: Scene, pairs: list[tuple[str, str]],
                  rng: Optional[random.Random] = None) -> dict:
    """An image record whose first question carries the placeholder: placed
    at random with ``rng``, else first (as in LLaVA's eval prompts)."""
    turns = _turns(pairs)
    first = turns[0]['value']
    turns[0]['value'] = (_with_image(first, rng) if rng else
                         f'{IMAGE_PLACEHOLDER}\n{first}')
    return dict(id=record_id, image=scene.image, conversations=turns)


def _pick(questions: dict[str, list[QA]], number: int,
          rng: random.Random) -> list[QA]:
    """One question from each of ``number`` different kinds."""
    kinds = rng.sample(sorted(questions), min(number, len(questions)))
    return [rng.choice(questions[kind]) for kind in kinds]


def pretrain_record(scene: Scene, rng: random.Random) -> dict:
    """A stage-1 caption record (``blip_laion_cc_sbu_558k.json`` style)."""
    return _image_record(scene.id, scene,
                         [(rng.choice(BRIEF_PROMPTS), caption(scene))], rng)


def instruct_records(scene: Scene, rng: random.Random) -> list[dict]:
    """Stage-2 records of one train scene: a conversation, short answers,
    a detailed description, a reasoning question and a caption."""
    questions = scene_questions(scene, rng)
    conversation = _pick(questions, rng.randint(2, 4), rng)
    short = _pick(questions, rng.randint(2, 4), rng)
    reasoning = reasoning_question(scene, rng)
    return [
        _image_record(f'{scene.id}_conversation', scene,
                      [(qa.question, qa.answer) for qa in conversation], rng),
        _image_record(f'{scene.id}_short', scene,
                      [(f'{qa.question}\n{SHORT_ANSWER_PROMPT}',
                        _cap(qa.short)) for qa in short]),
        _image_record(
            f'{scene.id}_detail', scene,
            [(rng.choice(DETAIL_PROMPTS), detailed_description(scene))], rng),
        _image_record(f'{scene.id}_reasoning', scene,
                      [(reasoning.question, reasoning.answer)], rng),
        _image_record(f'{scene.id}_caption', scene,
                      [(CAPTION_PROMPT, caption(scene))]),
    ]


def text_only_record(record_id: str, rng: random.Random) -> dict:
    """A record with no image: one or two general questions."""
    pairs, number = [], rng.randint(1, 2)
    while len(pairs) < number:
        pair = _text_only_question(rng)
        if pair not in pairs:
            pairs.append(pair)
    return dict(id=record_id, conversations=_turns(pairs))


def eval_records(scene: Scene, rng: random.Random,
                 num_questions: int = 4) -> list[dict]:
    """Single-turn eval records of one held-out scene: a caption and
    ``num_questions`` short-answer questions of different kinds.

    Each record adds ``question_id``, ``type`` (``'caption'`` or the question
    kind) and ``answer``, the reference (the text of the gpt turn).
    """
    pairs = [('caption', CAPTION_PROMPT, caption(scene))]
    pairs += [
        (qa.kind, f'{qa.question}\n{SHORT_ANSWER_PROMPT}', _cap(qa.short))
        for qa in _pick(scene_questions(scene, rng), num_questions, rng)
    ]
    records = []
    for kind, question, answer in pairs:
        record = _image_record(f'{scene.id}_{kind}', scene,
                               [(question, answer)])
        records.append(
            dict(record, question_id=record['id'], type=kind, answer=answer))
    return records


def _answers(record: dict) -> list[str]:
    """The gpt turns of a record."""
    return [
        turn['value'] for turn in record['conversations']
        if turn['from'] == 'gpt'
    ]


def _dump(data: Union[dict, list], path: Path) -> None:
    """Write json the stdlib reads back, one item per line for grepping."""
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + '\n')


def generate_demo_dataset(out_dir: Union[str, Path],
                          num_train: int = 2000,
                          num_eval: int = 200,
                          image_size: int = 64,
                          seed: int = 0) -> dict:
    """Generate the demo dataset and write it under ``out_dir``.

    Each scene draws from its own generator seeded by ``(seed, split,
    index)``, so a scene does not change with the number of scenes asked
    for, and the same arguments always write the same files.

    Args:
        out_dir (str | Path): Where to write; created if missing. Files of
            an earlier run are overwritten.
        num_train (int): Train scenes (stage-1 and stage-2 data, corpus).
        num_eval (int): Held-out scenes for ``eval.json``.
        image_size (int): Side of the square images in pixels, at least
            :data:`MIN_IMAGE_SIZE`.
        seed (int): The seed of all randomness.

    Returns:
        dict: The paths written and the number of records in each.
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f'image_size must be at least {MIN_IMAGE_SIZE} px '
                         f'for shapes to fit a 3 x 3 grid, got {image_size}')
    out_dir = Path(out_dir)
    (out_dir / 'images').mkdir(parents=True, exist_ok=True)
    scenes, pretrain, instruct, evaluation, corpus = [], [], [], [], []
    for split, number in (('train', num_train), ('eval', num_eval)):
        for index in range(number):
            rng = random.Random(f'{seed}:{split}:{index}')
            scene = sample_scene(rng, f'{split}_{index:05d}', split,
                                 image_size)
            draw_scene(scene).save(out_dir / scene.image)
            scenes.append(scene.to_dict())
            if split == 'eval':
                evaluation += eval_records(scene, rng)
                continue
            pretrain.append(pretrain_record(scene, rng))
            records = instruct_records(scene, rng)
            instruct += records
            # The short answers and the caption repeat in the other texts.
            corpus.append(caption(scene))
            for record in records:
                if record['id'].endswith(('_conversation', '_detail',
                                          '_reasoning')):
                    corpus += _answers(record)
    # Text-only records are a tenth of the file, as the text share of the
    # LLaVA-1.5 mix is about that.
    rng = random.Random(f'{seed}:text')
    text_only = [
        text_only_record(f'text_{index:05d}', rng)
        for index in range(round(len(instruct) / 9))
    ]
    for record in text_only:
        corpus += _answers(record)
    instruct += text_only
    random.Random(f'{seed}:shuffle').shuffle(instruct)

    paths = {
        name: out_dir / f'{name}.{"txt" if name == "corpus" else "json"}'
        for name in ('scenes', 'pretrain', 'instruct', 'eval', 'corpus')
    }
    _dump(dict(image_size=image_size, seed=seed, scenes=scenes),
          paths['scenes'])
    _dump(pretrain, paths['pretrain'])
    _dump(instruct, paths['instruct'])
    _dump(evaluation, paths['eval'])
    paths['corpus'].write_text('\n'.join(corpus) + '\n')
    return dict(
        out_dir=str(out_dir),
        **{f'{name}_file': str(path) for name, path in paths.items()},
        num_train_scenes=num_train,
        num_eval_scenes=num_eval,
        num_images=len(scenes),
        num_pretrain_records=len(pretrain),
        num_instruct_records=len(instruct),
        num_text_only_records=len(text_only),
        num_eval_records=len(evaluation),
        num_corpus_lines=len(corpus))
