from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name: str) -> list[str]:
    """Read a requirements file, following ``-r`` includes."""
    lines = []
    for line in Path('requirements', name).read_text().splitlines():
        line = line.split('#')[0].strip()
        if line.startswith('-r '):
            lines += read_requirements(line[3:].strip())
        elif line:
            lines.append(line)
    return lines


setup(
    name='mmllava',
    version='0.1.0',
    description='LLaVA (visual instruction tuning) on mmengine',
    long_description=Path('README.md').read_text(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['mmllava', 'mmllava.*']),
    # The instruction-data generator's default few-shot examples; the
    # server's chat page.
    package_data={'mmllava.datagen': ['fewshot/*/*.json'],
                  'mmllava.serving': ['static/*.html']},
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'demo': read_requirements('demo.txt'),
        'deepspeed': read_requirements('deepspeed.txt'),
        'logging': read_requirements('logging.txt'),
        'tests': read_requirements('tests.txt'),
    },
)
