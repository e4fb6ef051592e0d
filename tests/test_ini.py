"""The role reads airflow.cfg as Airflow's configparser does, and its edit changes one line."""
import configparser
import sys

import pytest
from test_modules import ROLE, load

sys.path.insert(0, str(ROLE / "module_utils"))

from airflow_celery_config_ini import IniError, read_options, set_option  # noqa: E402

WANTED = "my_celery_config.CELERY_CONFIG"


def read(text):
    """What Airflow reads: ConfigParser, strict (a repeated option or section is an error)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_other_capitals_and_spaces_are_the_same_option_replaced_in_place():
    text = "[core]\nexecutor = CeleryExecutor\n[celery]\n  Celery_Config_Options   =  old.VALUE\nbroker_url = x\n"
    new, action = set_option(text, "celery", "celery_config_options", WANTED)
    assert action == "replaced"
    assert new == "[core]\nexecutor = CeleryExecutor\n[celery]\n  celery_config_options   =  " + WANTED + "\nbroker_url = x\n"
    assert read(new)["celery"]["celery_config_options"] == WANTED


def test_a_right_value_under_another_spelling_gets_the_name_every_airflow_reads():
    # Airflow 2.10 and 3.x read option names as written: CELERY_CONFIG_OPTIONS is ignored there.
    text = "[celery]\nCELERY_CONFIG_OPTIONS:" + WANTED + "\n"
    assert set_option(text, "celery", "celery_config_options", WANTED) == (
        "[celery]\ncelery_config_options:" + WANTED + "\n", "replaced")
    text = "[celery]\ncelery_config_options:" + WANTED + "\n"
    assert set_option(text, "celery", "celery_config_options", WANTED) == (text, "unchanged")


def test_a_comment_naming_the_key_is_not_the_key():
    text = "[celery]\n# celery_config_options = commented.OUT\n;celery_config_options=x\nbroker_url = x\n"
    new, action = set_option(text, "celery", "celery_config_options", WANTED)
    assert action == "added"
    assert new == ("[celery]\n# celery_config_options = commented.OUT\n;celery_config_options=x\nbroker_url = x\n"
                   "celery_config_options = " + WANTED + "\n")


def test_a_missing_section_is_added_at_the_end():
    text = "[core]\nexecutor = CeleryExecutor\n"
    new, action = set_option(text, "celery", "celery_config_options", WANTED)
    assert action == "section added"
    assert new == text + "\n[celery]\ncelery_config_options = " + WANTED + "\n"
    assert read(new)["celery"]["celery_config_options"] == WANTED


def test_an_empty_file_gets_the_section():
    assert set_option("", "celery", "a", "b") == ("[celery]\na = b\n", "section added")


def test_crlf_and_a_missing_final_newline_are_kept():
    text = "[core]\r\nexecutor = CeleryExecutor\r\n[celery]\r\nbroker_url = x"
    new, _ = set_option(text, "celery", "celery_config_options", WANTED)
    assert new == "[core]\r\nexecutor = CeleryExecutor\r\n[celery]\r\nbroker_url = x\r\ncelery_config_options = " + WANTED
    new, _ = set_option(text, "team1=celery", "extra_celery_config", "{}")
    assert new == text + "\r\n\r\n[team1=celery]\r\nextra_celery_config = {}"
    replaced, _ = set_option("[celery]\r\nCelery_Config_Options = old", "celery", "celery_config_options", WANTED)
    assert replaced == "[celery]\r\ncelery_config_options = " + WANTED


def test_team_sections_are_sections_like_any_other():
    text = "[celery]\nextra_celery_config = {}\n[team1=celery]\nExtra_Celery_Config = {\"a\": 1}\n"
    new, action = set_option(text, "team1=celery", "extra_celery_config", '{"b": 2}')
    assert action == "replaced"
    assert read(new)["team1=celery"]["extra_celery_config"] == '{"b": 2}'
    assert read(new)["celery"]["extra_celery_config"] == "{}"


def test_section_names_are_case_sensitive_as_in_configparser():
    text = "[Celery]\ncelery_config_options = other\n"
    new, action = set_option(text, "celery", "celery_config_options", WANTED)
    assert action == "section added"
    assert read(new)["celery"]["celery_config_options"] == WANTED


def test_an_indented_line_continues_the_option_above_and_is_not_an_option():
    text = "[celery]\nbroker_url = x\n  celery_config_options = part.of.broker_url\n"
    new, action = set_option(text, "celery", "celery_config_options", WANTED)
    assert action == "added"
    assert read(new)["celery"]["celery_config_options"] == WANTED
    assert read(new)["celery"]["broker_url"] == "x\ncelery_config_options = part.of.broker_url"


def test_a_multi_line_value_is_replaced_whole():
    text = "[celery]\ncelery_config_options = a\n  b\n# note\nbroker_url = x"
    new, action = set_option(text, "celery", "celery_config_options", WANTED)
    assert new == "[celery]\ncelery_config_options = " + WANTED + "\n# note\nbroker_url = x"
    tail = "[celery]\ncelery_config_options = a\n  b"
    new, _ = set_option(tail, "celery", "celery_config_options", WANTED)
    assert new == "[celery]\ncelery_config_options = " + WANTED


def test_a_second_run_changes_nothing():
    for text in ("[core]\r\na = 1", "[celery]\n# celery_config_options = x\n", "[celery]\nCelery_Config_Options=y"):
        once, _ = set_option(text, "celery", "celery_config_options", WANTED)
        assert set_option(once, "celery", "celery_config_options", WANTED) == (once, "unchanged")
        assert [value for _, value in read_options(once)[("celery", "celery_config_options")]] == [WANTED]


@pytest.mark.parametrize("text, message", [
    ("[celery]\ncelery_config_options = a\nCelery_Config_Options = b\n", r"appears 2 times \(lines 2, 3\)"),
    ("[celery]\na = 1\n[celery]\nb = 2\n", r"section \[celery\] appears 2 times"),
])
def test_what_airflow_refuses_is_refused_not_edited(text, message):
    with pytest.raises(IniError, match=message):
        set_option(text, "celery", "celery_config_options", WANTED)


def test_a_value_must_be_one_line():
    with pytest.raises(IniError, match="one line"):
        set_option("[celery]\n", "celery", "celery_config_options", "a\nb")


# Files ConfigParser reads without an error: mixed-case sections, `:` and `=`, spaces around
# names, indented lines that continue a value (with blank and comment lines among them, or
# what looks like a section header), an indented first option, inline comments, team sections, CRLF.
SAMPLES = [
    "[core]\nexecutor = CeleryExecutor\n[celery]\ncelery_config_options = " + WANTED + "\n",
    "[Celery]\ncelery_config_options = other.CONF\n[celery]\nCelery_Config_Options:" + WANTED + "\n",
    "[celery]\n  broker_url = redis://x\n    celery_config_options = part.of.broker_url\nresult_backend : db+mysql://x\n",
    "[celery]\ncelery_config_options = a\n\n  b\n# not part of it\n  c\n\n\nworker_concurrency = 16\n",
    "[celery]\ncelery_config_options = a # an inline comment stays\nflower_url_prefix =\n  ; an indented comment\n",
    "# a comment before any section\n[ celery ]\nx = 1\n[team1=celery]\nEXTRA_celery_config = {\"a\": 1}\n",
    "[core]\r\nA = 1\r\n[celery]\r\ncelery_config_options = " + WANTED + "\r\n  more\r\n",
    "[celery]\nkey=value=with=equals\nurl: http://host:8080/x\n",
    "[celery]\nbroker_url = x\n  [core]\ncelery_config_options = " + WANTED + "\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_the_options_read_are_those_configparser_reads(text):
    parser = read(text)
    expected = {(section, option): parser.get(section, option) for section in parser.sections()
                for option in parser.options(section)}
    found = read_options(text)
    assert all(len(lines) == 1 for lines in found.values())
    assert {key: lines[0][1] for key, lines in found.items()} == expected


def test_each_line_that_sets_an_option_is_named_by_its_number():
    text = "[celery]\na = 1\n  more\n[Celery]\nA = 2\n[celery]\nA: 3\n"
    assert read_options(text) == {("celery", "a"): [(2, "1\nmore"), (7, "3")], ("Celery", "a"): [(5, "2")]}


@pytest.mark.parametrize("text", SAMPLES)
def test_the_facts_module_reports_what_airflow_reads(tmp_path, text):
    cfg = tmp_path / "airflow.cfg"
    cfg.write_bytes(text.encode())
    parser = read(text)
    facts = load(ROLE / "library/airflow_celery_config_facts.py").cfg_facts(None, str(cfg), "my_celery_config.CELERY_CONFIG")
    facts.pop("holds")
    assert facts == {"exists": True, "value": parser.get("celery", "celery_config_options", fallback=None), "duplicates": []}


def test_the_facts_module_names_each_repeated_option(tmp_path):
    # Repeated in a section given twice, and in other capitals (one name to ConfigParser).
    text = "[celery]\nworker_concurrency = 3\n[core]\na = 1\n[celery]\nWorker_Concurrency: 16\nx = 1\nX = 2\n"
    with pytest.raises(configparser.Error):
        read(text)
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(text)
    facts = load(ROLE / "library/airflow_celery_config_facts.py").cfg_facts(None, str(cfg), "my_celery_config.CELERY_CONFIG")
    assert facts["duplicates"] == ["[celery] worker_concurrency on lines 2, 6", "[celery] x on lines 7, 8"]


def test_the_facts_module_says_whether_airflow_cfg_already_points_at_the_module(tmp_path):
    facts = load(ROLE / "library/airflow_celery_config_facts.py")
    cfg = tmp_path / "airflow.cfg"
    for text, holds in [("[celery]\ncelery_config_options = acc_cfg.CONFIG\n", True),
                        ("[celery]\r\ncelery_config_options = acc_cfg.CONFIG\r\n", True),
                        ("[celery]\ncelery_config_options = other.CONFIG\n", False),
                        ("[celery]\nCELERY_CONFIG_OPTIONS = acc_cfg.CONFIG\n", False),  # the ini module renames it
                        ("[core]\ncelery_config_options = acc_cfg.CONFIG\n", False),
                        ("[celery]\ncelery_config_options = acc_cfg.CONFIG\n  more\n", False),  # a continuation
                        ("[celery]\nbroker_url = x\n", False)]:
        cfg.write_bytes(text.encode())
        assert facts.cfg_facts(None, str(cfg), "acc_cfg.CONFIG")["holds"] is holds, text
