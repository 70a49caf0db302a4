"""`askwise chat` driven as a user drives it: in a pseudo-terminal, typing and reading."""

import sys

import pexpect


def spawn(*args, timeout=60):
    child = pexpect.spawn(sys.executable, ["-m", "askwise", "chat", *args], encoding="utf-8",
                          timeout=timeout, dimensions=(40, 200))
    child.expect("askwise chat")
    return child


def test_a_clarification_round_then_a_preset_switch(scripted):
    child = spawn("--url", scripted.url, "--model", "clarifier", "--preset", "voice")
    child.expect_exact("you> ")
    child.sendline("Who won the world cup?")
    child.expect_exact("[CLARIFY] Which year do you mean?")
    child.expect_exact("preset=voice")
    child.expect_exact("your answer> ")
    child.sendline("2018")
    child.expect_exact("[ANSWER] In 2018, France won.")
    child.expect_exact("you> ")
    child.sendline("/preset text")
    child.expect_exact("preset: text")
    child.sendline("/alpha 0.25")
    child.expect_exact("alpha = 0.25")
    child.sendline("Who won the world cup?")
    child.expect_exact("[CLARIFY]")
    child.expect_exact("alpha=0.25 beta=0.002 preset=text")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_bad_input_is_reported_and_the_session_goes_on(scripted):
    child = spawn("--url", scripted.url, "--model", "clarifier")
    child.sendline("/preset no-such-preset")
    child.sendline("hello?")
    child.expect("error: 400 .*no-such-preset")
    child.sendline("/beta lots")
    child.expect_exact("/beta needs a number")
    child.sendline("/preset default")
    child.sendline("hello?")
    child.expect_exact("[CLARIFY]")
    child.sendeof()
    child.expect(pexpect.EOF)


def test_without_url_it_serves_the_embedded_default(base_checkpoint):
    child = spawn("--preset", "voice", "--doc", "Hamlet was written by William Shakespeare.",
                  "--max-tokens", "24", timeout=600)
    child.expect_exact("you> ")
    child.sendline("Who wrote Hamlet?")
    child.expect(r"\[(ANSWER|MULTI-ANSWER|CLARIFY)\]")
    child.expect_exact("preset=voice")
    child.expect_exact("(expected: answer F1 ")  # the shipped policy decides by its value head
    child.sendline("/quit")
    child.expect(pexpect.EOF, timeout=60)
