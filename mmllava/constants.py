"""Constants shared by the data path and the model, defined once."""

#: Label value that the loss ignores (PyTorch's cross-entropy default).
IGNORE_INDEX = -100

#: The image placeholder as it appears in conversation text.
IMAGE_PLACEHOLDER = '<image>'

#: The id that stands for one image in ``input_ids`` (the official LLaVA
#: value). The model replaces it with that image's feature rows.
IMAGE_TOKEN_INDEX = -200
