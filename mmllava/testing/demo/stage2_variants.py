"""Other stage-2 data for the demo's training scenes, for experiments on
what the demo model learns from (``tools/analysis/demo_learning_curves.py``).

- ``single``: one record per question kind of each scene, one question each,
  asked as the held-out test asks it. In the demo's own multi-turn records
  an earlier turn can give a later answer away (a scene's colours are
  unique, so "Is the green square large or small?" answers "What shape is
  the green object?"); here no record holds two questions.
- ``text``: the same, with the scene's caption written in the prompt in
  place of the image: how fast the LLM learns to look an object up by the
  words of a question when nothing has to be seen.

Both add nothing about the held-out scenes: the scenes are the generator's
training scenes, drawn again from its own seeds.
"""
import json
import random
from pathlib import Path
from typing import Callable

from mmllava.testing.demo.feature_probe import demo_scenes
from mmllava.testing.demo.scene_text import (caption, scene_questions,
                                             upper_first)
from mmllava.testing.demo.scenes import Scene
from mmllava.testing.demo.synthetic_scenes import (CAPTION_PROMPT,
                                                   SHORT_ANSWER_PROMPT,
                                                   image_record)

#: How a text-only question gives the scene in place of the image.
SCENE_PREFIX = 'Scene: '


def single_question_records(scene: Scene, rng: random.Random) -> list[dict]:
    """One record per question kind, one question each, and the caption."""
    records = [
        image_record(f'{scene.id}_{kind}', scene,
                      [(f'{qa.question}\n{SHORT_ANSWER_PROMPT}',
                        upper_first(qa.short))])
        for kind, questions in sorted(scene_questions(scene, rng).items())
        for qa in [rng.choice(questions)]
    ]
    records.append(image_record(f'{scene.id}_caption', scene,
                                 [(CAPTION_PROMPT, caption(scene))]))
    return records


def text_prompt(scene_caption: str, question: str) -> str:
    """A question with the scene written out in place of the image."""
    return f'{SCENE_PREFIX}{scene_caption}\n{question}'


def text_scene_records(scene: Scene, rng: random.Random) -> list[dict]:
    """One text-only record per question kind: the caption, then one
    question of that kind."""
    return [
        dict(id=f'{scene.id}_text_{kind}', conversations=[
            {'from': 'human',
             'value': text_prompt(caption(scene), f'{qa.question}\n'
                                  f'{SHORT_ANSWER_PROMPT}')},
            {'from': 'gpt', 'value': upper_first(qa.short)}])
        for kind, questions in sorted(scene_questions(scene, rng).items())
        for qa in [rng.choice(questions)]
    ]


#: The variants by name.
VARIANTS: dict[str, Callable[[Scene, random.Random], list[dict]]] = dict(
    single=single_question_records, text=text_scene_records)


def write_variant(name: str, out_file: str, num_train: int,
                  image_size: int, seed: int = 0) -> int:
    """Write variant ``name`` for the demo's ``num_train`` training scenes
    (made with ``image_size`` and ``seed`` as the demo made them).

    Returns:
        int: The number of records written.
    """
    if name not in VARIANTS:
        raise ValueError(f'Unknown stage-2 variant {name!r}; choose from '
                         f'{sorted(VARIANTS)}.')
    rng = random.Random(f'{seed}:{name}')
    records = [
        record
        for scene in demo_scenes('train', num_train, image_size, seed)
        for record in VARIANTS[name](scene, rng)
    ]
    rng.shuffle(records)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    Path(out_file).write_text(json.dumps(records))
    return len(records)
