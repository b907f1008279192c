"""Convert a ScienceQA split to LLaVA training json and/or test questions.

Example::

    python tools/data/convert_scienceqa.py \\
        --problems data/scienceqa/problems.json \\
        --pid-splits data/scienceqa/pid_splits.json --split train \\
        --out-train data/scienceqa/llava_train_QCM-LEA.json
    python tools/data/convert_scienceqa.py \\
        --problems data/scienceqa/problems.json \\
        --pid-splits data/scienceqa/pid_splits.json --split test \\
        --out-questions data/scienceqa/llava_test_questions.jsonl

Image paths are written as ``<pid>/image.png``, relative to the split's
image folder (``images/<split>`` in ScienceQA's layout).
"""
import argparse
import time


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--problems', required=True,
                        help="ScienceQA's problems.json")
    parser.add_argument('--pid-splits', required=True,
                        help="ScienceQA's pid_splits.json")
    parser.add_argument('--split', required=True,
                        help='a split of pid_splits.json: train, val, test, '
                        '...')
    parser.add_argument('--out-train',
                        help='write the split as LLaVA training json '
                        '(QCM-LEA format) here')
    parser.add_argument('--out-questions',
                        help='write the split as a question jsonl (with '
                        'answer and num_choices) here')
    args = parser.parse_args()
    if args.out_train is None and args.out_questions is None:
        parser.error('give --out-train and/or --out-questions')
    return args


def main() -> None:
    """Convert and say what was written."""
    args = parse_args()
    # Imports mmllava's datasets (seconds): only once parsed.
    from mmllava.datasets.scienceqa import convert_scienceqa
    print(f'converting the {args.split!r} split of {args.problems} ...',
          flush=True)
    start = time.perf_counter()
    try:
        counts = convert_scienceqa(args.problems, args.pid_splits,
                                   args.split, out_train=args.out_train,
                                   out_questions=args.out_questions)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f'error: {error}') from None
    seconds = time.perf_counter() - start
    print(f'{counts["num_problems"]} problems ({counts["num_with_image"]} '
          f'with an image) in {seconds:.1f} s')
    for path in (args.out_train, args.out_questions):
        if path is not None:
            print(f'wrote {path}')


if __name__ == '__main__':
    main()
