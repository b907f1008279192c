"""The demo dataset written as LLaVA json: records built from scenes and
their texts, and the files.

The files mirror the official LLaVA data: ``pretrain.json`` is shaped like
``blip_laion_cc_sbu_558k.json`` (stage 1), ``instruct.json`` like
``llava_v1_5_mix665k.json`` (stage 2).
"""
import json
import random
from pathlib import Path
from typing import Optional, Union

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.testing.demo.scene_text import (QA, caption, detailed_description,
                                             reasoning_question,
                                             scene_questions,
                                             text_only_question, upper_first)
from mmllava.testing.demo.scenes import (MIN_IMAGE_SIZE, Scene, draw_scene,
                                         sample_scene)

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


def image_record(record_id: str, scene: Scene, pairs: list[tuple[str, str]],
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
    return image_record(scene.id, scene,
                         [(rng.choice(BRIEF_PROMPTS), caption(scene))], rng)


def instruct_records(scene: Scene, rng: random.Random) -> list[dict]:
    """Stage-2 records of one train scene: a conversation, short answers
    to one question of every kind, a detailed description or a reasoning
    question (one of the two, at random) and a caption.

    The short answers carry most of what the images teach per token (the
    answer is the visual fact, nothing else), so each scene asks them all,
    in a random order, as LLaVA-1.5 packs many VQA questions about one image
    into one conversation; the long descriptions and reasoning answers cost
    many tokens each for a few visual facts, so each scene has one of them
    (see docs/get_started.md, "Why it learns").
    """
    questions = scene_questions(scene, rng)
    conversation = _pick(questions, rng.randint(2, 4), rng)
    short = _pick(questions, len(questions), rng)
    if rng.random() < 0.5:
        long_record = image_record(
            f'{scene.id}_detail', scene,
            [(rng.choice(DETAIL_PROMPTS), detailed_description(scene))], rng)
    else:
        reasoning = reasoning_question(scene, rng)
        long_record = image_record(f'{scene.id}_reasoning', scene,
                                    [(reasoning.question, reasoning.answer)],
                                    rng)
    return [
        image_record(f'{scene.id}_conversation', scene,
                      [(qa.question, qa.answer) for qa in conversation], rng),
        image_record(f'{scene.id}_short', scene,
                      [(f'{qa.question}\n{SHORT_ANSWER_PROMPT}',
                        upper_first(qa.short)) for qa in short]),
        long_record,
        image_record(f'{scene.id}_caption', scene,
                      [(CAPTION_PROMPT, caption(scene))]),
    ]


def text_only_record(record_id: str, rng: random.Random) -> dict:
    """A record with no image: one or two general questions."""
    pairs, number = [], rng.randint(1, 2)
    while len(pairs) < number:
        pair = text_only_question(rng)
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
        (qa.kind, f'{qa.question}\n{SHORT_ANSWER_PROMPT}',
         upper_first(qa.short))
        for qa in _pick(scene_questions(scene, rng), num_questions, rng)
    ]
    records = []
    for kind, question, answer in pairs:
        record = image_record(f'{scene.id}_{kind}', scene,
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
