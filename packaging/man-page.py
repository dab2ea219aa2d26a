#!/usr/bin/env python3
"""Writes a binary's man page (section 1, man(7) macros) from swift-argument-parser's own
description of its commands: `BINARY --experimental-dump-help`, the JSON that argument parser's
generate-manual plugin reads too. One page per binary, every subcommand in it (scripts/package).

Usage: packaging/man-page.py BINARY VERSION DATE > NAME.1

Python 3's standard library only. The plugin itself is not used: it builds every product of the
package in a configuration of its own first, which a packaging run of an existing build cannot afford.
"""
import json
import subprocess
import sys


def escape(text):
    """Text safe in a man(7) line: backslashes and hyphens escaped, non-ASCII as \\[uXXXX], no line starting with . or '."""
    text = " ".join(str(text).split()).replace("\\", "\\e").replace("-", "\\-")
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    return "\\&" + text if text[:1] in (".", "'") else text


def flag_names(argument):
    names = []
    for name in argument.get("names", []):
        prefix = "-" if name["kind"] == "short" else "--" if name["kind"] == "long" else "-"
        names.append(prefix + name["name"])
    return names


def argument_text(argument, names):
    """An argument as the page shows it: its VALUE, or each of `names` with its VALUE, or each name."""
    value = argument.get("valueName", "value")
    if argument["kind"] == "positional":
        return f"\\fI{escape(value)}\\fR"
    if argument["kind"] == "option":
        return ", ".join(f"\\fB{escape(name)}\\fR \\fI{escape(value)}\\fR" for name in names)
    return ", ".join(f"\\fB{escape(name)}\\fR" for name in names)


def synopsis(path, command):
    parts = [f"\\fB{escape(' '.join(path))}\\fR"]
    for argument in command.get("arguments", []):
        if not argument.get("shouldDisplay", True) or argument["kind"] == "flag" and flag_names(argument) in (["-h", "--help"], ["--version"]):
            continue
        text = argument_text(argument, flag_names(argument)[:1])
        if argument.get("isRepeating"):
            text += " ..."
        parts.append(f"[{text}]" if argument.get("isOptional") else text)
    if command.get("subcommands"):
        parts.append("\\fIsubcommand\\fR")
    return " ".join(parts)


def options(command):
    lines = []
    for argument in command.get("arguments", []):
        if not argument.get("shouldDisplay", True):
            continue
        head = argument_text(argument, flag_names(argument))
        text = argument.get("abstract", "")
        if argument.get("discussion"):
            text += " " + (argument["discussion"] if isinstance(argument["discussion"], str) else "")
        if argument.get("defaultValue") not in (None, ""):
            text += f" (default: {argument['defaultValue']})"
        lines += [".TP", head, escape(text.strip()) or "\\&"]
    return lines


def describe(path, command, top):
    lines = []
    if not top:
        lines += [f'.SS "{escape(" ".join(path))}"']
        if command.get("abstract"):
            lines.append(escape(command["abstract"]))
        lines.append(".PP")
    lines.append(synopsis(path, command))
    if command.get("discussion"):
        lines += [".PP", escape(command["discussion"])]
    described = options(command)
    if described:
        lines += [".PP", "Options:" if not top else "\\fBOptions:\\fR", ".RS"] + described + [".RE"]
    for sub in command.get("subcommands", []):
        if sub.get("shouldDisplay", True) and sub["commandName"] != "help":
            lines += describe(path + [sub["commandName"]], sub, False)
    return lines


def main():
    if len(sys.argv) != 4:
        print("usage: packaging/man-page.py BINARY VERSION DATE", file=sys.stderr)
        sys.exit(2)
    binary, version, date = sys.argv[1:]
    dump = subprocess.run([binary, "--experimental-dump-help"], capture_output=True, text=True, timeout=30)
    if dump.returncode != 0:
        print(f"man-page: {binary} --experimental-dump-help exited {dump.returncode}; is it an argument-parser binary?", file=sys.stderr)
        sys.exit(1)
    command = json.loads(dump.stdout)["command"]
    name = command["commandName"]
    out = [
        f'.TH "{name.upper()}" "1" "{date}" "{escape(name)} {escape(version)}" "User Commands"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(command.get('abstract', ''))}",
        ".SH SYNOPSIS",
        synopsis([name], command),
        ".SH DESCRIPTION",
        escape(command.get("abstract", "")),
    ]
    if command.get("discussion"):
        out += [".PP", escape(command["discussion"])]
    top_options = options(command)
    if top_options:
        out += [".SH OPTIONS"] + top_options
    subcommands = [sub for sub in command.get("subcommands", []) if sub.get("shouldDisplay", True) and sub["commandName"] != "help"]
    if subcommands:
        out.append(".SH COMMANDS")
        for sub in subcommands:
            out += describe([name, sub["commandName"]], sub, False)
    out += [
        ".SH SEE ALSO",
        f"\\fB{escape(name)} help\\fR \\fIsubcommand\\fR, \\fB{escape(name)}\\fR \\fIsubcommand\\fR \\fB\\-\\-help\\fR; "
        f"/usr/share/doc/{escape(name)}/",
    ]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
