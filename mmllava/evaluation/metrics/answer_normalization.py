"""The official VQA answer normalisation.

The rules and word lists are those of the official VQA evaluation script
(``vqaEval.py``) and of ``EvalAIAnswerProcessor`` (used by LLaVA's
``m4c_evaluator.py`` for TextVQA and by its VQAv2 / VizWiz submission
converters), which runs a few extra steps before the official ones.
"""
import re

# The capitalised keys never match after lower-casing; kept as in the
# official list, as is the odd "somebody'd" -> "somebodyd".
CONTRACTIONS = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't",
    'couldve': "could've", 'couldnt': "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    'didnt': "didn't", 'doesnt': "doesn't", 'dont': "don't",
    'hadnt': "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    'hasnt': "hasn't", 'havent': "haven't", 'hed': "he'd",
    "hed've": "he'd've", "he'dve": "he'd've", 'hes': "he's",
    'howd': "how'd", 'howll': "how'll", 'hows': "how's",
    "Id've": "I'd've", "I'dve": "I'd've", 'Im': "I'm", 'Ive': "I've",
    'isnt': "isn't", 'itd': "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", 'itll': "it'll", "let's": "let's",
    'maam': "ma'am", 'mightnt': "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", 'mightve': "might've",
    'mustnt': "mustn't", 'mustve': "must've", 'neednt': "needn't",
    'notve': "not've", 'oclock': "o'clock", 'oughtnt': "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    'shant': "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", 'shouldve': "should've", 'shouldnt': "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", 'somebodyll': "somebody'll",
    'somebodys': "somebody's", 'someoned': "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    'someonell': "someone'll", 'someones': "someone's",
    'somethingd': "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", 'somethingll': "something'll",
    'thats': "that's", 'thered': "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", 'therere': "there're", 'theres': "there's",
    'theyd': "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    'theyll': "they'll", 'theyre': "they're", 'theyve': "they've",
    'twas': "'twas", 'wasnt': "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", 'weve': "we've", 'werent': "weren't",
    'whatll': "what'll", 'whatre': "what're", 'whats': "what's",
    'whatve': "what've", 'whens': "when's", 'whered': "where'd",
    'wheres': "where's", 'whereve': "where've", 'whod': "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", 'wholl': "who'll",
    'whos': "who's", 'whove': "who've", 'whyll': "why'll",
    'whyre': "why're", 'whys': "why's", 'wont': "won't",
    'wouldve': "would've", 'wouldnt': "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    'yall': "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", 'youd': "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", 'youll': "you'll", 'youre': "you're",
    'youve': "you've",
}
NUMBER_WORDS = {
    'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3',
    'four': '4', 'five': '5', 'six': '6', 'seven': '7', 'eight': '8',
    'nine': '9', 'ten': '10',
}
ARTICLES = frozenset({'a', 'an', 'the'})
PUNCTUATION = (';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\',
               '_', '-', '>', '<', '@', '`', ',', '?', '!')

_COMMA_BETWEEN_DIGITS = re.compile(r'\d,\d')
# The official pattern `(?!<=\d)(\.)(?!\d)` means a lookbehind but is a
# lookahead for the text '<=d', so in effect every period not followed by a
# digit goes ('5.' -> '5', '2.5' stays).
_PERIOD = re.compile(r'\.(?!\d)')


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``.

    A mark next to a space is deleted ('hi !' -> 'hi '); a mark inside a
    word becomes a space ('black-and-white' -> 'black and white'). If the
    text holds a digit-comma-digit, every mark is deleted instead, so
    numbers keep together ('1,000' -> '1000').
    """
    delete_all = _COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        # The official test looks at the input text, not the text so far.
        if delete_all or mark + ' ' in text or ' ' + mark in text:
            out = out.replace(mark, '')
        else:
            out = out.replace(mark, ' ')
    # The official call passes re.UNICODE (32) where the count goes: at
    # most 32 periods are deleted.
    return _PERIOD.sub('', out, count=32)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lower-case, number words to
    digits, articles dropped, contractions restored, single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return ' '.join(
        CONTRACTIONS.get(word, word) for word in words
        if word not in ARTICLES)


def normalize_answer(text: str) -> str:
    """Normalise a VQA answer as ``EvalAIAnswerProcessor`` does.

    Before the official steps it lower-cases, deletes commas and question
    marks and splits the possessive "'s" off its word ("man's" ->
    "man 's"); it is applied to predictions and human answers alike.
    """
    text = text.lower().replace(',', '').replace('?', '')
    text = text.replace("'s", " 's")
    text = text.replace('\n', ' ').replace('\t', ' ').strip()
    return process_digit_article(process_punctuation(text))
