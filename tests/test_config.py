"""Config: TOML + environment, and errors that name the key, the value and the expected form."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.config import ConfigError, load_settings

EXAMPLE = Path(__file__).parent.parent / "deploy" / "dialer.example.toml"


def test_example_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.campaigns[0].caller_id == "+14155550100"
    text = EXAMPLE.read_text()
    # every field of every section appears in the example file
    for section in ("dialer", "database", "mqtt", "metrics", "sip", "scheduling"):
        model = getattr(settings, section)
        for key in type(model).model_fields:
            if key != "trunks":
                assert f"\n{key} = " in text, f"{section}.{key} undocumented"
    for key in type(settings.campaigns[0]).model_fields:
        assert f"\n{key} = " in text, f"campaigns.{key} undocumented"
    for key in type(settings.sip.trunks["main"]).model_fields:
        assert f"\n{key} = " in text, f"sip.trunks.{key} undocumented"


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.database.url.startswith("sqlite")
    assert settings.mqtt.url == ""  # embedded broker


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_DATABASE__URL", "postgresql://u@127.0.0.1:5432/d")
    monkeypatch.setenv("DIALER_SIP__NODES", "3")
    settings = load_settings(EXAMPLE)
    assert settings.database.url == "postgresql://u@127.0.0.1:5432/d"
    assert settings.sip.nodes == 3


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[sip]\nnodes = "many"\n', "sip.nodes = 'many'"),
        ('[database]\nurl = "mysql://x"\n', "database.url = 'mysql://x': expected sqlite"),
        ('[metrics]\nport = 70000\n', "metrics.port = 70000"),
        ('[dialer]\nlog_levl = "INFO"\n', "dialer.log_levl: unknown key"),
        ('[[campaigns]]\nname = "a"\ncaller_id = "123"\n',
         "campaigns.0.caller_id = '123': expected a diallable E.164 number"),
        ('[[campaigns]]\nname = "a"\ncaller_id = "+14155550100"\ntimezone = "Mars/Base"\n',
         "campaigns.0.timezone = 'Mars/Base': expected an IANA time zone"),
        ('[[campaigns]]\nname = "a"\n', "campaigns.0.caller_id: required key is missing"),
        ('[[campaigns]]\nname = "a"\ncaller_id = "+14155550100"\ntrunk = "nope"\n',
         "campaigns.0.trunk = 'nope': expected one of the [sip.trunks.*] names"),
        ('[[campaigns]]\nname = "a"\ncaller_id = "+14155550100"\namd_decide_by_ms = 500\n',
         "campaigns.0.amd_decide_by_ms = 500: expected 0 (no deadline) or 1000-30000 ms"),
        ('[[campaigns]]\nname = "a"\ncaller_id = "+14155550100"\namd_decide_by_ms = 9000\n',
         "amd_decide_by_ms: 9000 is after amd_max_ms (6500)"),
        ("[sip\n", "not valid TOML"),
        ('[[agents]]\nlogin = "a"\nsip_uri = "sip:a@h"\ncampaign = "nope"\n',
         "agents.0.campaign = 'nope': expected one of the [[campaigns]] names"),
        ('[sip.trunks.t]\nuri = "sip:x"\ndial_plan = "no.such.module:f"\n',
         "sip.trunks.t.dial_plan = 'no.such.module:f': cannot import it"),
        ('[sip.trunks.t]\nuri = "sip:x"\ndial_plan = "not a path"\n',
         "sip.trunks.t.dial_plan = 'not a path'"),
        ('[[agents]]\nlogin = "a"\nsip_uri = "sip:a@h"\ngroups = ["Closers!"]\n',
         "agents.0.groups"),
        ('[[agents]]\nlogin = "a"\nsip_uri = "sip:a@h"\ngroups = ["Closers!"]\n',
         "group name 'Closers!': expected 1-32 of a-z, 0-9"),
    ],
)
def test_bad_config_names_key_value_and_form(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert expected in str(info.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_dial_plan_is_imported_and_applied(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[sip.trunks.t]\nuri = "sip:x"\ndial_plan = "dialer.demo.run:sipp_user"\n')
    user_for = load_settings(path).sip.trunks["t"].user_for()
    assert user_for("+12125550500") == "status486_2_0"  # ...500: busy in the demo number plan
    assert load_settings(None).sip.trunks == {}


# --------------------------------------------------------------- agent passwords (issue #12)

AGENT = """
[[agents]]
login = "alice"
sip_uri = "sip:alice@127.0.0.1:5070"
"""


def test_agent_password_hash_is_accepted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from dialer.passwords import hash_password, verify_password

    stored = hash_password("pw-alice")
    path = tmp_path / "c.toml"
    path.write_text(AGENT + f'password_hash = "{stored}"\n')
    with caplog.at_level("WARNING"):
        settings = load_settings(path)
    assert settings.agents[0].password_hash == stored and settings.agents[0].password == ""
    assert verify_password("pw-alice", settings.agents[0].mqtt_secret)
    assert not caplog.records


def test_malformed_password_hash_names_the_key_and_the_form(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(AGENT + 'password_hash = "hunter2-plain"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    msg = str(e.value)
    assert "agents.0.password_hash" in msg and "scrypt$" in msg
    assert "dialer agents hash-password" in msg
    assert "hunter2-plain" not in msg  # a pasted plain password is not echoed


def test_plain_agent_password_is_deprecated_with_a_warning_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(AGENT + 'password = "pw-plain-alice"\n')
    with caplog.at_level("WARNING"):
        settings = load_settings(path)
    assert settings.agents[0].mqtt_secret == "pw-plain-alice"  # still works meanwhile
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "deprecated" in text and "agents.0.password" in text and "password_hash" in text
    assert "dialer agents hash-password" in text
    assert "pw-plain-alice" not in text and "pw-plain-alice" not in caplog.text


def test_agent_with_both_password_and_hash_is_refused(tmp_path: Path) -> None:
    from dialer.passwords import hash_password

    path = tmp_path / "c.toml"
    path.write_text(AGENT + f'password = "pw-x"\npassword_hash = "{hash_password("pw-x")}"\n')
    with pytest.raises(ConfigError, match=r"agents\.0\.password: .*not both") as e:
        load_settings(path)
    assert "pw-x" not in str(e.value)


def test_a_hash_under_the_plain_password_key_is_refused(tmp_path: Path) -> None:
    from dialer.passwords import hash_password

    path = tmp_path / "c.toml"
    path.write_text(AGENT + f'password = "{hash_password("pw-y")}"\n')
    with pytest.raises(ConfigError, match=r"agents\.0\.password: holds a hash.*password_hash"):
        load_settings(path)


def test_bad_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nsupervisors = { boss = 12345678 }\n'
                    '[sip.trunks.t]\nuri = "sip:x"\npassword = 987654321\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert "sip.trunks.t.password" in str(e.value) and "mqtt.supervisors.boss" in str(e.value)
    assert "12345678" not in str(e.value) and "987654321" not in str(e.value)


# --------------------------------------------------------------- call controls (issue #18)

CAMPAIGN = '[[campaigns]]\nname = "a"\ncaller_id = "+14155550100"\n'


def _wav(path: Path, channels: int = 1, width: int = 2, rate: int = 8000) -> Path:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\0" * (width * channels * rate // 10))
    return path


def test_trunk_dtmf_method_reaches_the_sip_trunk_and_bad_values_name_the_key(
        tmp_path: Path) -> None:
    from dialer.app import trunk_configs

    path = tmp_path / "c.toml"
    path.write_text('[sip.trunks.t]\nuri = "sip:x"\ndtmf_method = "sip_info"\n')
    settings = load_settings(path)
    assert trunk_configs(settings)["t"].dtmf_method == "sip_info"
    assert load_settings(None).sip.trunks == {}
    path.write_text('[sip.trunks.t]\nuri = "sip:x"\n')
    assert trunk_configs(load_settings(path))["t"].dtmf_method == "auto"
    path.write_text('[sip.trunks.t]\nuri = "sip:x"\ndtmf_method = "inband"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert "sip.trunks.t.dtmf_method = 'inband'" in str(e.value)
    assert "rfc2833" in str(e.value) and "sip_info" in str(e.value)


def test_campaign_hold_music_wav_is_checked_naming_the_key(tmp_path: Path) -> None:
    good = _wav(tmp_path / "hold.wav", rate=16000)
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN + f'hold_music_wav = "{good}"\n')
    assert load_settings(path).campaigns[0].hold_music_wav == str(good)
    path.write_text(CAMPAIGN)
    assert load_settings(path).campaigns[0].hold_music_wav == ""
    for wav, expected in (
            (tmp_path / "none.wav", "no such file"),
            (_wav(tmp_path / "stereo.wav", channels=2), "expected mono 16-bit PCM"),
            (_wav(tmp_path / "hifi.wav", rate=44100), "44100 Hz"),
            (tmp_path / "text.wav", "not a readable PCM WAV")):
        if wav.name == "text.wav":
            wav.write_text("not audio")
        path.write_text(CAMPAIGN + f'hold_music_wav = "{wav}"\n')
        with pytest.raises(ConfigError) as e:
            load_settings(path)
        assert f"campaigns.0.hold_music_wav = '{wav}'" in str(e.value), e.value
        assert expected in str(e.value), e.value
