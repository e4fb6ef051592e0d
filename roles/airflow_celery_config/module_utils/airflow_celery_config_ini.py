# -*- coding: utf-8 -*-
"""Read airflow.cfg, and set one option of it, the way Airflow's configparser reads it.

The role's one reader of airflow.cfg: the facts module reads with it (read_options), the ini
module edits with it (set_option). Pure text in, text out, so it is tested without a host.
Airflow reads airflow.cfg with Python's ConfigParser: options are `name = value` or
`name: value`, with spaces around the name or not, section names are case-sensitive,
whole-line comments start with # or ;, an inline comment is part of the value, an indented
line continues the option above it, and a repeated option in a section is an error. Option
names are lower-cased by ConfigParser and by older Airflow, but read as written by Airflow 2.10
and 3.x (their AirflowConfigParser.optionxform keeps the case), which then ignores
`Celery_Config_Options`. So an option spelled with other capitals is matched (a second line
would be a repeated option where names are lower-cased) and rewritten with the exact name,
which every version reads.
"""

from __future__ import annotations

import re

# ConfigParser's own patterns (SECTCRE, OPTCRE with its default delimiters).
SECTION = re.compile(r"\[(?P<header>.+)\]")
OPTION = re.compile(r"(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$")
COMMENT_PREFIXES = ("#", ";")


class IniError(ValueError):
    """The file or the request cannot be edited safely; the message says why."""


def split_lines(text):
    """Lines with their endings kept; a last line without a newline stays without one."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def parse(lines):
    """One dict per line: kind (section, option, continuation, comment, blank, other), the
    section it is in and, for options and their continuation lines, the option's name as
    ConfigParser stores it (lower case) and the line's value (stripped)."""
    out = []
    section = None
    option = None
    indent_level = 0
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith(COMMENT_PREFIXES):
            out.append({"kind": "blank" if not stripped else "comment", "section": section})
            continue
        indent = len(line) - len(line.lstrip())
        if section is not None and option is not None and indent > indent_level:
            out.append({"kind": "continuation", "section": section, "option": option, "value": stripped})
            continue
        indent_level = indent
        match = SECTION.match(stripped)
        if match:
            section = match.group("header")
            option = None
            out.append({"kind": "section", "section": section})
            continue
        match = OPTION.match(stripped)
        if section is None or not match or not match.group("option"):
            # ConfigParser would refuse this file; the edit leaves such a line alone.
            out.append({"kind": "other", "section": section})
            option = None
            continue
        option = match.group("option").rstrip().lower()
        out.append({"kind": "option", "section": section, "option": option,
                    "value": match.group("value").strip()})
    return out


def _eol(lines):
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def read_options(text):
    """{(section, option): [(line number, value), ...]}: every line of `text` that sets an
    option, as ConfigParser reads it, in file order. Sections as written (case-sensitive), option
    names lower-cased; a value is joined with the lines that continue it (blank ones kept, comment
    ones left out, trailing blank ones dropped), and keeps an inline comment. More than one line
    for a key is what a strict ConfigParser refuses (for ConfigParser and older Airflow, names
    that differ only in capitals are one key)."""
    found = {}
    parts = None
    for number, entry in enumerate(parse(split_lines(text)), 1):
        kind = entry["kind"]
        if kind == "option":
            parts = [entry["value"]]
            found.setdefault((entry["section"], entry["option"]), []).append((number, parts))
        elif kind == "continuation":
            parts.append(entry["value"])
        elif kind == "blank" and parts is not None:
            # ConfigParser keeps an empty line inside a value (empty_lines_in_values), not a comment.
            parts.append("")
        elif kind in ("section", "other"):
            parts = None
    return {key: [(number, "\n".join(lines).rstrip()) for number, lines in items] for key, items in found.items()}


def set_option(text, section, option, value):
    """Returns (new_text, action): action is "unchanged", "replaced", "added" (to an existing
    section) or "section added". Raises IniError where ConfigParser would read the file
    otherwise than the edit intends."""
    if "\n" in value or "\r" in value:
        raise IniError("the value of %s must be one line" % option)
    if not section or "]" in section or "\n" in section:
        raise IniError("%r is not a section name" % section)
    if not OPTION.match(option + " = x") or option.strip() != option or not option \
            or "=" in option or ":" in option:
        raise IniError("%r is not an option name" % option)
    key = option.lower()
    lines = split_lines(text)
    entries = parse(lines)
    eol = _eol(lines)
    headers = [i for i, e in enumerate(entries) if e["kind"] == "section" and e["section"] == section]
    if len(headers) > 1:
        raise IniError("section [%s] appears %d times (lines %s); Airflow refuses such a file: merge them first"
                       % (section, len(headers), ", ".join(str(i + 1) for i in headers)))
    if not headers:
        new = list(lines)
        if new:
            if not new[-1].endswith("\n"):
                new[-1] += eol
            new.append(eol)
        ending = eol if (not text or text.endswith("\n")) else ""
        new.append("[%s]%s" % (section, eol))
        new.append("%s = %s%s" % (option, value, ending))
        return "".join(new), "section added"
    found = [i for i, e in enumerate(entries)
             if e["kind"] == "option" and e["section"] == section and e["option"] == key]
    if len(found) > 1:
        raise IniError("[%s] %s appears %d times (lines %s); Airflow refuses such a file: remove the extra lines first"
                       % (section, option, len(found), ", ".join(str(i + 1) for i in found)))
    if found:
        index = found[0]
        continuation = [i for i in range(index + 1, len(lines))
                        if entries[i]["kind"] == "continuation" and entries[i].get("option") == key
                        and all(entries[j]["kind"] in ("continuation", "blank", "comment")
                                for j in range(index + 1, i))]
        line = lines[index]
        ending = line[len(line.rstrip("\r\n")):]
        body = line[:len(line) - len(ending)]
        lead = len(body) - len(body.lstrip())
        match = OPTION.match(body.strip())
        if entries[index]["value"] == value and not continuation and match.group("option") == option:
            return text, "unchanged"
        # The spacing around the delimiter stays; the name becomes the one every Airflow reads.
        head = body[:lead] + option + body[lead + match.end("option"):lead + match.start("value")]
        if head.endswith(("=", ":")) and len(head) > 1 and head[-2] == " ":
            head += " "
        new = list(lines)
        new[index] = head + value + ending
        if continuation and not ending:
            new[index] += eol
        for i in reversed(continuation):
            del new[i]
        if continuation and not text.endswith("\n"):
            # The removed value lines ended the file: it keeps ending without a newline.
            new[-1] = new[-1].rstrip("\r\n")
        return "".join(new), "replaced"
    header = headers[0]
    last = header
    for i in range(header + 1, len(lines)):
        kind = entries[i]["kind"]
        if kind == "section":
            break
        if kind in ("option", "continuation", "other"):
            last = i
    new = list(lines)
    ending = eol
    if not new[last].endswith("\n"):
        new[last] += eol
        ending = ""
    new.insert(last + 1, "%s = %s%s" % (option, value, ending))
    return "".join(new), "added"
