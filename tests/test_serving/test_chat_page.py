"""The chat page (``mmllava/serving/static/chat.html``) in headless
Chromium: type a question, attach a photo, watch the answer stream in."""
import shutil
from pathlib import Path

import pytest

from mmllava.apis import ChatSession

playwright_api = pytest.importorskip('playwright.sync_api')
sync_playwright = playwright_api.sync_playwright

#: Debian's chromium (``apt-get install chromium``); playwright's own
#: browser download is never used.
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-background-networking',
                 '--disable-component-update', '--no-first-run']
QUESTIONS = ['What is in the image?', 'Tell me more.']

#: Records every text the newest answer shows, to see it grow.
RECORD_ANSWER = """() => {
    window.answerTexts = [];
    new MutationObserver(() => {
        const answers = document.querySelectorAll('.assistant .text');
        if (answers.length) {
            window.answerTexts.push(answers[answers.length - 1].textContent);
        }
    }).observe(document.getElementById('messages'),
               {subtree: true, childList: true, characterData: true});
}"""
pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f'needs Chromium at {CHROMIUM} (apt-get install chromium)')]

DONE = """(count) => document.querySelectorAll('.assistant').length === count
    && !document.getElementById('send').disabled"""


@pytest.fixture(scope='module')
def server(serving_model, start_server):
    return start_server(serving_model)


@pytest.mark.usefixtures('in_workspace', 'one_thread')
def test_a_question_about_a_photo_streams_an_answer(server, serving_model,
                                                     model_workspace,
                                                     tmp_path):
    url, _ = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 900, 'height': 700})
            page.goto(url)
            page.wait_for_function(
                "document.getElementById('model').textContent"
                ".includes('llava-tiny_demo_vqa')")
            page.evaluate(RECORD_ANSWER)
            page.fill('#question', QUESTIONS[0])
            page.set_input_files('#image',
                                 str(Path(model_workspace, 'astronaut.png')))
            page.click('#send')
            page.wait_for_function(DONE, arg=1, timeout=30_000)
            first_texts = page.evaluate('window.answerTexts')
            page.fill('#question', QUESTIONS[1])
            page.press('#question', 'Enter')
            page.wait_for_function(DONE, arg=2, timeout=30_000)
            answers = page.locator('.assistant .text').all_text_contents()
            errors = page.locator('.error').all_text_contents()
            page.screenshot(path=str(tmp_path / 'chat.png'), full_page=True)
            image_shown = page.locator('.user img').count()
        finally:
            browser.close()
    assert errors == []
    session = ChatSession(serving_model,
                          Path(model_workspace, 'astronaut.png'))
    assert answers == [session.ask(question) for question in QUESTIONS]
    # The answer grew piece by piece before it was complete.
    partial = {text for text in first_texts if text and text != answers[0]}
    assert partial and all(answers[0].startswith(text) for text in partial)
    assert image_shown == 1
    assert (tmp_path / 'chat.png').stat().st_size > 10_000


@pytest.mark.usefixtures('in_workspace', 'one_thread')
def test_at_phone_width_an_error_leaves_no_empty_answer(server,
                                                        model_workspace,
                                                        tmp_path):
    """390 px wide: Send is on screen; a file that is not an image gets the
    server's error, and no empty answer bubble or broken image stays."""
    url, _ = server
    not_image = tmp_path / 'notes.png'
    not_image.write_text('not an image')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 390, 'height': 844})
            page.goto(url)
            send = page.locator('#send').bounding_box()
            page_width = page.evaluate(
                'document.documentElement.scrollWidth')
            icon = page.evaluate(
                """() => fetch(document.querySelector('link[rel=icon]').href)
                    .then(r => r.status + ' '
                          + r.headers.get('content-type'))""")
            page.fill('#question', QUESTIONS[0])
            page.set_input_files('#image', str(not_image))
            page.click('#send')
            page.wait_for_function(
                "document.querySelector('.error') !== null", timeout=30_000)
            errors = page.locator('.error').all_text_contents()
            answers = page.locator('.assistant').count()
            broken = page.evaluate(
                """() => [...document.querySelectorAll('#messages img')]
                    .filter(img => img.complete && img.naturalWidth === 0)
                    .length""")
            question = page.input_value('#question')
        finally:
            browser.close()
    assert send is not None and send['x'] >= 0
    assert send['x'] + send['width'] <= 390
    assert page_width <= 390
    assert icon == '200 image/svg+xml'
    assert len(errors) == 1 and 'not an image' in errors[0]
    assert answers == 0
    assert broken == 0
    assert question == QUESTIONS[0]
