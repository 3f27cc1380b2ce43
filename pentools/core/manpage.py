"""Man pages drawn from click commands, so that a page cannot drift from ``--help``.

The synopsis and the options come from the command's own click definitions;
a `Manual` adds what click does not know: the name line, more description,
signals, files, examples and related pages.  `render` writes roff for the
man(7) macros, which man-db and mandoc both read.

Prose uses two small conventions: text in backquotes is set in bold (option
names, commands), and a paragraph whose lines all start with four spaces is
shown as written (a command line, a configuration snippet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import click

#: What run_command (core/cli.py) makes of each outcome, true of every command.
EXIT_STATUS = (
    "0 on success; 1 when the command fails (a file that cannot be opened, a bad "
    "address or format, an error reported by the program), with a one-line message "
    "on stderr; 2 for a usage error (an unknown option, a missing or invalid "
    "argument); 130 when interrupted (INT)."
)


@dataclass(frozen=True)
class Manual:
    """What a man page says beyond its command's click definitions.

    Every tuple of pairs is (term, explanation): a signal, a file, or in
    `examples` (what the example does, the command lines).
    """

    summary: str
    description: tuple[str, ...] = ()
    signals: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    examples: tuple[tuple[str, str], ...] = ()
    see_also: tuple[str, ...] = ()
    exit_status: str = EXIT_STATUS


def render(name: str, command: click.Command, manual: Manual, version: str) -> str:
    """The man page of `command` (run as `name`), in section 1, as roff source."""
    ctx = click.Context(command, info_name=name)
    lines = [
        f'.TH {name.upper()} 1 "" "pentools {version}" "pentools manual"',
        ".nh",  # option names and addresses must not be hyphenated
        ".ad l",
        ".SH NAME",
        f"{_escape(name)} \\- {_escape(manual.summary)}",
        ".SH SYNOPSIS",
        *_synopsis(ctx),
        ".SH DESCRIPTION",
        *_paragraphs(_help_paragraphs(command)),
        *_paragraphs(manual.description),
        ".SH OPTIONS",
        *_options(ctx),
    ]
    if isinstance(command, click.Group):
        lines += [".SH COMMANDS", *_subcommands(ctx, command)]
    lines += [".SH EXIT STATUS", *_paragraphs((manual.exit_status,))]
    for title, entries in (("SIGNALS", manual.signals), ("FILES", manual.files)):
        lines += [f".SH {title}", *_definitions(entries)]
    lines += [".SH EXAMPLES", *_examples(manual.examples)]
    lines += [".SH SEE ALSO", ", ".join(_reference(page) for page in manual.see_also)]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """Text safe for roff: backslashes and hyphens escaped, `quoted` words in bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)


def _lines(text: str) -> list[str]:
    """`text` as roff input lines: a line may not start with a control character."""
    return [("\\&" + line if line.startswith((".", "'")) else line) for line in text.split("\n")]


def _paragraphs(paragraphs: tuple[str, ...] | list[str]) -> list[str]:
    lines: list[str] = []
    for paragraph in paragraphs:
        rows = paragraph.split("\n")
        if all(row.startswith("    ") for row in rows):
            literal = "\n".join(row[4:] for row in rows)
            lines += [".PP", ".RS 4", ".nf", *_lines(_escape(literal)), ".fi", ".RE"]
        else:
            lines += [".PP", *_lines(_escape(" ".join(row.strip() for row in rows)))]
    return lines


def _help_paragraphs(command: click.Command) -> list[str]:
    return [part.strip() for part in (command.help or "").split("\n\n") if part.strip()]


def _metavar(param: click.Option) -> str:
    """What an option takes, as a reader would name it."""
    if param.metavar:
        return param.metavar
    if isinstance(param.type, click.Choice):
        return "|".join(str(choice) for choice in param.type.choices)
    if isinstance(param.type, click.types.IntParamType):
        return "N"
    if isinstance(param.type, click.types.FloatParamType):
        return "NUMBER"
    return param.type.name.upper()


def _option_words(param: click.Option, short: bool = False) -> str:
    """`-n, --concurrency N` in roff (`short`: `-n N`): names in bold, the value in italics."""
    separator = "|" if short else ", "
    shown = (param.opts[:1] + param.secondary_opts[:1]) if short else param.opts
    names = separator.join(f"\\fB{_escape(name)}\\fR" for name in shown)
    if param.secondary_opts and not short:
        names += " / " + ", ".join(f"\\fB{_escape(name)}\\fR" for name in param.secondary_opts)
    if param.is_flag or param.count:
        return names
    return f"{names} \\fI{_escape(_metavar(param))}\\fR"


def _visible_options(ctx: click.Context) -> list[click.Option]:
    return [
        param
        for param in ctx.command.get_params(ctx)
        if isinstance(param, click.Option) and not param.hidden
    ]


def _usage(ctx: click.Context) -> str:
    """One synopsis line: the command, each option in brackets, the arguments."""
    words = [f"\\fB{_escape(ctx.command_path)}\\fR"]
    for param in _visible_options(ctx):
        if param is ctx.command.get_help_option(ctx) or param.name == "version":
            continue
        repeat = " ..." if param.multiple or param.count else ""
        words.append(f"[{_option_words(param, short=True)}]{repeat}")
    for argument in ctx.command.get_params(ctx):
        if isinstance(argument, click.Argument):
            words.append(f"\\fI{_escape(argument.make_metavar(ctx))}\\fR")
    return " ".join(words)


def _synopsis(ctx: click.Context) -> list[str]:
    command = ctx.command
    if not isinstance(command, click.Group):
        return [_usage(ctx)]
    lines = [f"\\fB{_escape(ctx.command_path)}\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]"]
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        assert sub is not None
        lines += [".br", _usage(click.Context(sub, info_name=name, parent=ctx))]
    return lines


def _options(ctx: click.Context) -> list[str]:
    lines: list[str] = []
    for param in _visible_options(ctx):
        text = param.help or ""
        default = param.default
        if param.secondary_opts and isinstance(default, bool):  # name the flag that is on
            default = (param.opts if default else param.secondary_opts)[0]
        elif isinstance(default, float):
            default = f"{default:g}"  # 600, not 600.0
        if param.show_default and default not in (None, False, ()):
            text += f" (default: {default})"
        lines += [".TP", _option_words(param), *_lines(_escape(text))]
    return lines


def _subcommands(ctx: click.Context, group: click.Group) -> list[str]:
    lines: list[str] = []
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None
        sub_ctx = click.Context(sub, info_name=name, parent=ctx)
        lines += [f".SS {_escape(sub_ctx.command_path)}"]
        lines += _paragraphs(_help_paragraphs(sub))
        lines += _options(sub_ctx)
    return lines


def _definitions(entries: tuple[tuple[str, str], ...]) -> list[str]:
    lines: list[str] = []
    for term, text in entries:
        lines += [".TP", f"\\fB{_escape(term)}\\fR", *_lines(_escape(" ".join(text.split())))]
    return lines


def _examples(examples: tuple[tuple[str, str], ...]) -> list[str]:
    lines: list[str] = []
    for text, commands in examples:
        lines += _paragraphs((text, "\n".join("    " + row for row in commands.split("\n"))))
    return lines


def _reference(page: str) -> str:
    """`penctl(1)` as roff: the name in bold, the section plain."""
    name, _, section = page.partition("(")
    return f"\\fB{_escape(name)}\\fR({section}"
