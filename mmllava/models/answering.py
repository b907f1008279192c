"""Answer already-transformed samples in one batch: collate, run the data
preprocessor, generate. Shared by the inference API, the server and the
sample-answers hook."""
from typing import Sequence

from mmengine.dataset import pseudo_collate


def answer_samples(model, samples: Sequence[dict],
                   **generation_kwargs) -> list[str]:
    """Generate an answer for each sample, as one batch.

    Args:
        model (LLaVA): The model (its ``data_preprocessor`` batches).
        samples (Sequence[dict]): Outputs of a test pipeline ending in
            :class:`PackLLaVAInputs`, each with a human turn to answer.
        **generation_kwargs: Passed to ``model.generate_answers``.

    Returns:
        list[str]: One answer per sample, in order.
    """
    batch = model.data_preprocessor(pseudo_collate(list(samples)))
    # Prompts carry no labels; every other field is a generation input.
    batch.pop('labels', None)
    return model.generate_answers(**batch, **generation_kwargs)
