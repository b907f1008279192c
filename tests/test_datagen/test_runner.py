"""The generation loop against the replay server: the requests it sends,
malformed replies retried then reported, seeded draws that do not depend on
order or resume, and output that mmllava's loader and checker accept."""
import asyncio
import json
from collections import Counter

import pytest

from mmllava.datagen.client import ChatClient, ChatError
from mmllava.datagen.context import format_context, load_simple_contexts
from mmllava.datagen.output import AppendOnlyJsonl
from mmllava.datagen.prompts import (DETAIL_INSTRUCTIONS, SYSTEM_PROMPTS,
                                     load_fewshot)
from mmllava.datagen.runner import generate_instructions, plan_image
from mmllava.datasets.checks import check_data_file
from mmllava.datasets.llava_dataset import LLaVADataset
from mmllava.templates import get_template
from mmllava.testing.replay_server import (ReplayServer, Reply, Status,
                                           by_marker, demo_reply)

KEY_ENV = 'MMLLAVA_TEST_API_KEY'


def generate(server, contexts, out_path, **kwargs):
    """Run the loop once; fast backoff so scripted 5xx cost little."""
    async def go():
        async with ChatClient(server.base_url, 'gen-model',
                              api_key_env=KEY_ENV, max_concurrency=3,
                              backoff_base=0.01) as client:
            with AppendOnlyJsonl(str(out_path)) as writer:
                return await generate_instructions(
                    contexts, client, writer, load_fewshot(), **kwargs)
    return asyncio.run(go())


def kind_of(request) -> str:
    (kind,) = [kind for kind, prompt in SYSTEM_PROMPTS.items()
               if request.body['messages'][0]['content'] == prompt]
    return kind


def test_requests_records_and_failures(make_contexts, tmp_path, api_key,
                                       tokenizer):
    contexts_file = make_contexts(6)
    contexts = load_simple_contexts(str(contexts_file))
    malformed = Reply('Sure, here you go: a dog.')
    script = {'img-00': [malformed],
              'img-01': [malformed, demo_reply],
              'img-02': [Status(429, {'Retry-After': '0'}), Status(502),
                         demo_reply],
              'img-03': [Reply('Q: a?\nA: b', finish_reason='length'),
                         demo_reply]}
    failures = []
    out = tmp_path / 'out.jsonl'
    with ReplayServer(by_marker(script, demo_reply)) as server:
        summary = generate(server, contexts, out, seed=3,
                           image_prefix='images', on_failure=failures.append)
    requests = Counter(request.body['messages'][-1]['content'].split()[1]
                       for request in server.requests)
    # img-00: the first try and 2 parse retries; img-02: 429, 502, then ok.
    assert requests == {'img-00': 3, 'img-01': 2, 'img-02': 3, 'img-03': 2,
                        'img-04': 1, 'img-05': 1}
    assert summary.written == 5 and summary.skipped == 0
    (failure,) = summary.failures
    assert failures == [failure] and failure.image_id == 'img-00'
    assert failure.reason.startswith("image 'img-00' (")
    assert 'the reply does not parse: text before the first "Q:"' in \
        failure.reason
    assert summary.usage.requests == 12
    assert summary.usage.prompt_tokens == 100 * 10  # replies that came

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r['id'] for r in records) == [f'img-0{i}' for i in
                                                range(1, 6)]
    for request in server.requests:
        context_id = request.body['messages'][-1]['content'].split()[1]
        (context,) = [c for c in contexts if c.image_id == context_id]
        assert request.body['model'] == 'gen-model'
        assert request.body['messages'][-1]['content'] == \
            format_context(context)
        assert kind_of(request) == plan_image(context_id, 3,
                                              ('conv', 'detail',
                                               'complex')).kind
    for record in records:
        plan = plan_image(record['id'], 3, ('conv', 'detail', 'complex'))
        assert record['type'] == plan.kind
        assert record['image'] == f'images/{record["id"]}.png'
        first = record['conversations'][0]['value']
        assert first.startswith('<image>\n')
        if plan.kind == 'detail':
            assert first == '<image>\n' + plan.instruction
            assert plan.instruction in DETAIL_INSTRUCTIONS

    # The output is training data: the checker (with the real tokenizer and
    # the LLaVA-1.5 template) finds nothing, and the dataset loads it.
    report = check_data_file(str(out), str(tmp_path),
                             tokenizer=tokenizer,
                             template=get_template('vicuna_v1'),
                             max_length=2048, num_image_tokens=16)
    assert report.problems == []
    dataset = LLaVADataset(str(out), image_folder=str(tmp_path),
                           check_images=True, serialize_data=False)
    assert len(dataset) == 5


def test_draws_do_not_depend_on_order_or_resume(make_contexts, tmp_path,
                                                api_key):
    contexts = load_simple_contexts(str(make_contexts(12)))
    with ReplayServer(demo_reply) as server:
        generate(server, contexts, tmp_path / 'once.jsonl', seed=5)
        # Reversed order, in two runs (a resume) into one file.
        generate(server, contexts[::-1][:5], tmp_path / 'twice.jsonl',
                 seed=5)
        summary = generate(server, contexts[::-1], tmp_path / 'twice.jsonl',
                           seed=5)
    assert (summary.skipped, summary.written) == (5, 7)

    def by_id(name):
        return {record['id']: record for record in map(
            json.loads, (tmp_path / name).read_text().splitlines())}

    assert by_id('once.jsonl') == by_id('twice.jsonl')
    assert len(by_id('twice.jsonl')) == 12


def test_plan_is_seeded_per_image():
    ids = [str(i) for i in range(300)]
    plans = [plan_image(i, 0, ('conv', 'detail', 'complex')) for i in ids]
    assert plans == [plan_image(i, 0, ('conv', 'detail', 'complex'))
                     for i in ids]
    assert plans != [plan_image(i, 1, ('conv', 'detail', 'complex'))
                     for i in ids]
    counts = Counter(plan.kind for plan in plans)
    assert set(counts) == {'conv', 'detail', 'complex'}
    assert min(counts.values()) > 60  # about 100 each
    instructions = {plan.instruction for plan in plans
                    if plan.kind == 'detail'}
    assert len(instructions) > 10
    assert {plan_image(i, 0, ('detail', )).kind for i in ids} == {'detail'}


def test_a_refused_key_stops_the_run(make_contexts, tmp_path, api_key):
    contexts = load_simple_contexts(str(make_contexts(4)))
    with ReplayServer(lambda body, index: Status(401)) as server:
        with pytest.raises(ChatError, match='HTTP 401'):
            generate(server, contexts, tmp_path / 'out.jsonl')
    assert len(server.requests) <= 3  # the requests already in flight
