"""Export the trained demo model to llava-hf and ask it a question in
transformers, beside the same question asked in mmllava.

Run from the repository root after the demo has trained its model:

    python tools/run_demo.py
    python examples/export_to_hf.py [--out work_dirs/llava-tiny_demo_hf]

The folder it writes loads with ``LlavaForConditionalGeneration`` and
``AutoProcessor`` as they are (see docs/checkpoints.md).
"""
import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

CONFIG = 'configs/llava/llava-tiny_demo_vqa.py'
WORK_DIR = Path('work_dirs/llava-tiny_demo_ft')
IMAGE = Path('data/demo/images/eval_00000.png')
WEIGHTS_DIR = Path('checkpoints/demo')
QUESTION = 'What shapes are in the image?'


def check_demo_files(image: Path) -> None:
    """Exit with a clear message when the demo has not been run here."""
    needed = [WORK_DIR / 'last_checkpoint', image, WEIGHTS_DIR / 'llm',
              WEIGHTS_DIR / 'vision_encoder', WEIGHTS_DIR / 'tokenizer']
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        sys.exit(f'Missing {", ".join(missing)} (in {Path.cwd()}).\n'
                 'This example exports the model the demo trains: run '
                 '`python tools/run_demo.py` first, then run this example '
                 'from the same folder.')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/llava-tiny_demo_hf')
    parser.add_argument('--image', default=str(IMAGE))
    parser.add_argument('--question', default=QUESTION)
    args = parser.parse_args()
    check_demo_files(Path(args.image))

    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from mmllava.apis import get_model, inference_model
    from mmllava.converters.cli import progress_logger
    from mmllava.converters.llava_hf import convert_mmllava_to_hf

    convert_mmllava_to_hf(CONFIG, str(WORK_DIR), args.out,
                          log=progress_logger())

    # The same model in mmllava, loaded back from the exported folder.
    ours = get_model(CONFIG, pretrained=args.out, device='cpu')
    our_answer = inference_model(ours, args.image, args.question,
                                 max_new_tokens=32)['pred_answer']
    # The recipe asks for a short answer after each question.
    question = args.question + ours.cfg.inference.get('prompt_suffix', '')

    # transformers, with nothing from mmllava.
    model = LlavaForConditionalGeneration.from_pretrained(args.out).eval()
    processor = AutoProcessor.from_pretrained(args.out)
    conversation = [dict(role='user', content=[
        dict(type='image'), dict(type='text', text=question)])]
    prompt = processor.apply_chat_template(conversation,
                                           add_generation_prompt=True)
    inputs = processor(images=Image.open(args.image).convert('RGB'),
                       text=prompt, return_tensors='pt')
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=32,
                                   do_sample=False)
    answer = processor.tokenizer.decode(
        generated[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)
    print(f'prompt:       {prompt!r}')
    print(f'transformers: {answer.strip()!r}')
    print(f'mmllava:      {our_answer!r}')
    print('(the llava-hf processor tokenizes the text after <image> without '
          'the space piece the official code puts there, so on a tiny model '
          'the answers may differ; given the same ids the logits agree to '
          '1e-5, see docs/checkpoints.md.)')


if __name__ == '__main__':
    main()
