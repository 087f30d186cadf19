"""``pocketlm suggest``: next-word suggestions and corrections from the command line.

One shot, per CONTEXT (or stdin line)::

    pocketlm suggest --model M "and the lord" --prefix sa --k 3
    said        -0.8055
    saw         -5.1377
    saith       -6.6363

    pocketlm suggest --model M "and the" --correct lird --json
    {"context": "and the", "typed": "lird", "suggestions": [{"word": "lord", ...}]}

Interactive (``--interactive``): a typing session (:class:`~pocketlm.runtime.typing_session.
Typing`). On a terminal each key is read as pressed: letters extend the word, space finishes
it, Tab takes the first suggestion, Backspace deletes, Enter starts a new line, Ctrl-D or Ctrl-C
ends. Without a terminal each stdin line is a string of keystrokes (``\\t`` takes the first
suggestion, ``\\b`` or DEL deletes) and one line is printed after each keystroke, so a session
can be scripted and tested. User words learned on one line are kept for the next.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import inputs
from .group import json_option, open_language_model, model_option, precision_option, threads_option
from .keyboard import Keyboard, LMSource, Suggestion, keyboard
from .typing_session import Typing

#: Keys of the interactive mode: take the first suggestion, delete, end.
ACCEPT, BACKSPACES, ENDS = "\t", ("\x7f", "\b"), ("\x03", "\x04")


def _rows(found: list[Suggestion]) -> list[dict[str, Any]]:
    return [{"word": s.word, "logprob": s.logprob, **({"channel": s.channel} if s.channel else {})}
            for s in found]


@click.command()
@model_option
@click.argument("contexts", nargs=-1)
@click.option("--prefix", default="", help="Only words starting with these letters.")
@click.option("--correct", "typed", default=None,
              help="Correct this typed word after the context instead (noisy channel).")
@click.option("--k", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many words to show.")
@click.option("--interactive", is_flag=True,
              help="Type and see suggestions as you go (stdin lines when not a terminal).")
@click.option("--no-infer-punctuation", "infer_punctuation", is_flag=True, flag_value=False,
              default=True,
              help="Read the context as typed: infer no punctuation left out between words.")
@precision_option
@threads_option
@json_option
def suggest(model_dir: Path, contexts: tuple[str, ...], prefix: str, typed: str | None, k: int,
            interactive: bool, infer_punctuation: bool, precision: str, threads: int | None,
            as_json: bool) -> None:
    """The K likeliest next words after each CONTEXT (or stdin line), with ln P.

    Exact over the vocabulary (lower-cased; no punctuation or specials). Punctuation left out
    between the context's words is inferred (--no-infer-punctuation: read as typed). See
    docs/keyboard.md.
    """
    lm = open_language_model(model_dir, precision, threads)
    kb = keyboard(lm) if infer_punctuation else Keyboard(LMSource(lm), infer_punctuation=False)
    if interactive:
        if contexts:
            raise click.UsageError("--interactive reads the keyboard; give no CONTEXT")
        session = Typing(kb)
        if sys.stdin.isatty() and sys.stdout.isatty():
            _terminal(session, k)
        else:
            _scripted(session, k, as_json)
        return
    for context in inputs.sentences(contexts, "suggest"):
        found = (kb.suggest(context, prefix, k) if typed is None
                 else kb.correct(context, typed, k))
        if as_json:
            key = {"prefix": prefix} if typed is None else {"typed": typed}
            click.echo(json.dumps({"context": context, **key, "suggestions": _rows(found)}))
            continue
        if len(contexts) != 1:
            click.echo(f"# {context}")
        for s in found:
            extra = f"\t(channel {s.channel:.1f})" if s.channel else ""
            click.echo(f"{s.word:<12}\t{s.logprob:.4f}{extra}")


def _press(session: Typing, key: str, k: int) -> None:
    if key == ACCEPT:
        first = session.suggestions(1)
        if first:
            session.accept(first[0].word)
    elif key in BACKSPACES:
        session.backspace()
    elif key.isprintable() or key.isspace():
        session.type(key)


def _scripted(session: Typing, k: int, as_json: bool) -> None:
    for line in inputs.stdin_lines("suggest"):
        session.reset()
        for key in line:
            _press(session, key, k)
            found = session.suggestions(k)
            if as_json:
                click.echo(json.dumps({"key": key, "text": session.text,
                                       "suggestions": _rows(found)}))
            else:
                click.echo(f"{session.text}|\t" + "  ".join(s.word for s in found))


def _terminal(session: Typing, k: int) -> None:  # pragma: no cover - needs a real terminal
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        click.echo("type; Tab takes the first suggestion, Enter a new line, Ctrl-D ends")
        while True:
            key = sys.stdin.read(1)
            if not key or key in ENDS:
                break
            if key in "\r\n":
                click.echo()
                session.reset()
                continue
            _press(session, key, k)
            chips = "  ".join(f"[{s.word}]" for s in session.suggestions(k))
            click.echo(f"\r\x1b[K{session.text}|   {chips}", nl=False)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        click.echo()
