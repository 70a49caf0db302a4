"""The web demo at `/` in headless Chromium (Debian's `chromium`, driven by Playwright):
load the page, ask in text mode and in voice mode, check the action shown, keep screenshots."""

import os
import re
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Under CI (where .ci/run installs it) a missing browser is a failure, not a skip: the page
# would otherwise go untested without anyone noticing.
pytestmark = pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                                reason="needs Debian's chromium package (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None, "CI=true but no chromium on PATH (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def ask(page, question: str, turn: int):
    page.fill("#question", question)
    page.click("#send")
    page.wait_for_selector(f".turn.assistant >> nth={turn}", timeout=120_000)
    return page.locator(".turn.assistant").nth(turn)


def test_text_and_voice_modes_with_the_real_policy(browser, embedded, tmp_path):
    page = browser.new_page()
    page.goto(embedded.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#preset") == "text"
    page.click("summary")  # documents live in a collapsed section
    page.fill("#documents", "Hamlet was written by William Shakespeare.")
    reply = ask(page, "Who wrote Hamlet?", 0)
    assert reply.get_attribute("data-action") in {"answer", "multi_answer", "clarify"}
    assert "alpha=0.3 beta=0.002" in reply.inner_text()
    assert re.fullmatch(r"the policy's odds: answer [01]\.\d\d · list [01]\.\d\d · ask [01]\.\d\d",
                        reply.locator(".odds").inner_text())
    page.screenshot(path=str(tmp_path / "demo-text.png"))

    page.click("#mode-voice")
    assert page.input_value("#preset") == "voice"
    assert page.get_attribute("#mode-voice", "aria-pressed") == "true"
    page.click("#mode-text")  # a final answer ended the episode; a clarify would await a reply
    page.click("#mode-voice")
    reply = ask(page, "Who wrote Hamlet?", 1)
    assert reply.get_attribute("data-action") in {"answer", "multi_answer", "clarify"}
    assert "alpha=0.05 beta=0.02" in reply.inner_text()
    page.screenshot(path=str(tmp_path / "demo-voice.png"))
    assert (tmp_path / "demo-voice.png").read_bytes()[:4] == b"\x89PNG"


def test_clarification_round_and_multi_answer_are_shown(browser, scripted, tmp_path):
    page = browser.new_page()
    page.goto(scripted.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    first = ask(page, "Who won the world cup?", 0)
    assert first.get_attribute("data-action") == "clarify"
    assert "CLARIFY" in first.locator(".badge").inner_text()
    second = ask(page, "2018", 1)
    assert second.get_attribute("data-action") == "answer"
    assert "In 2018, France won." in second.inner_text()
    assert second.locator(".odds").count() == 0  # this backend sends no token probabilities
    multi = ask(page, "Who won every world cup?", 2)
    assert multi.get_attribute("data-action") == "multi_answer"
    assert multi.locator("ul.readings li").all_inner_texts() == ["2018: France", "2014: Germany"]
    page.screenshot(path=str(tmp_path / "demo-clarify.png"), full_page=True)


def test_errors_are_shown_not_swallowed(browser, scripted):
    page = browser.new_page()
    page.goto(scripted.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.evaluate("document.getElementById('preset').innerHTML = '<option>nope</option>'")
    page.fill("#question", "hi")
    page.click("#send")
    page.wait_for_function("document.getElementById('error').textContent.includes('nope')")


@pytest.fixture(scope="module")
def shipped(logs):
    """`askwise serve` as a user starts it: the shipped policy, deciding by its value head."""
    from helpers import gateway

    server = gateway(logs)
    yield server
    server.stop()


def test_the_shipped_policy_shows_what_each_action_was_expected_to_give(browser, shipped, tmp_path):
    page = browser.new_page()
    page.goto(shipped.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.click("#mode-voice")
    page.click("summary")
    page.fill("#documents", "The 2018 FIFA World Cup was won by France.\nGermany won the 2014 FIFA World Cup.")
    reply = ask(page, "Who won the world cup?", 0)
    assert re.fullmatch(r"expected: answer F1 [01]\.\d\d, \d+ words → [+-]\d\.\d\d · "
                        r"list F1 [01]\.\d\d, \d+ words → [+-]\d\.\d\d · "
                        r"ask F1 [01]\.\d\d, \d+ words → [+-]\d\.\d\d",
                        reply.locator(".expected").inner_text())
    page.screenshot(path=str(tmp_path / "demo-expected.png"), full_page=True)


@pytest.fixture(scope="module")
def reader(misbehaving_backend, logs):
    """The scripted "reader" (it asks "the 2014 cup or the 2018 cup" and answers the year it
    is told), with lists built from the readings."""
    from helpers import gateway

    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "reader", "--lists", "readings")
    yield server
    server.stop()


def test_a_question_offers_buttons_and_a_press_answers_it(browser, reader, tmp_path):
    page = browser.new_page()
    page.goto(reader.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    question = ask(page, "Who won the cup?", 0)
    buttons = question.locator(".options button")
    assert buttons.all_inner_texts() == ["the 2014 cup", "the 2018 cup"]
    page.screenshot(path=str(tmp_path / "demo-options.png"), full_page=True)
    buttons.nth(1).click()
    page.wait_for_selector(".turn.assistant >> nth=1", timeout=30_000)
    assert page.locator(".turn.user").nth(1).inner_text() == "the 2018 cup"
    assert "France" in page.locator(".turn.assistant").nth(1).inner_text()
    listed = ask(page, "Who won every cup?", 2)
    assert listed.locator("ul.readings li").all_inner_texts() == [
        "the 2014 cup: Germany", "the 2018 cup: France"]


def test_the_examples_carry_their_documents(browser, reader):
    page = browser.new_page()
    page.goto(reader.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    examples = page.locator("#examples button")
    assert examples.count() == 3
    examples.nth(0).click()
    page.wait_for_selector(".turn.assistant >> nth=0", timeout=30_000)
    assert page.locator(".turn.user").nth(0).inner_text() == "Who won the world cup?"
    documents = page.input_value("#documents").splitlines()
    assert len(documents) == 2 and "2014" in documents[0] and "2018" in documents[1]
