"""Defaults of the captioning pipeline that tools/data/caption_images.py's
``--help`` shows: the largest image side sent, the records' instructions and
the local captioner's prompt. :mod:`mmllava.datagen.captioning` imports them
from here; this module is light on purpose (no torch, no datasets), so that
the tool answers ``--help`` at once.
"""

#: OpenAI's high-detail mode first fits an image into 2048 x 2048, so larger
#: uploads only cost bandwidth.
DEFAULT_MAX_SIDE = 2048

#: The human turn of a stage-1 record, one drawn per image.
CAPTION_INSTRUCTIONS = {
    'detailed': [
        'Describe this image in detail.',
        'Give a thorough description of what the picture shows.',
        'What is in this image? Describe it as fully as you can.',
        'Write a detailed account of the scene in this photo.',
        'Explain everything you can see in this picture.',
        'Describe the contents of the image, including the small details.',
        'Walk me through this image, describing each part of it.',
        'Provide an in-depth description of this image.',
    ],
    'brief': [
        'Describe the image briefly.',
        'Give a short caption for this picture.',
        'Summarize what the photo shows in a few words.',
        'What does this image show, in one sentence?',
        'Write a concise description of the picture.',
        'Caption this image.',
        'Sum up the scene in a short phrase.',
        'Briefly say what is in this image.',
    ],
}

#: What a local captioner is asked: a human turn of the records it was
#: trained on.
LOCAL_PROMPT = CAPTION_INSTRUCTIONS['detailed'][0]
