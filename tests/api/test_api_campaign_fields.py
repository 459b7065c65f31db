"""A campaign's settings over the API are the config's settings that are stored on the
campaign row; a config-only setting (read by the running dialer from its file, such as
`hold_music_wav`) is neither shown nor accepted (422), so adding one to the config cannot
break the API (it did: every campaign read failed with an AttributeError)."""

from __future__ import annotations

import httpx

from db.models import Campaign
from dialer.config import CampaignConfig

CONFIG_ONLY = [f for f in CampaignConfig.model_fields if not hasattr(Campaign, f)
               and f not in ("name", "max_attempts")]


async def test_config_only_settings_are_not_campaign_fields(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/campaigns/spring")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert not set(CONFIG_ONLY) & set(shown)
    assert all(hasattr(Campaign, f) for f in shown
               if f in CampaignConfig.model_fields and f != "max_attempts")
    for f in CONFIG_ONLY:
        r = await client.post("/api/v1/campaigns", json={
            "name": f"c-{f}", "caller_id": "+14155550100", f: "x"})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == f
        r = await client.patch("/api/v1/campaigns/spring", json={f: "x"})
        assert r.status_code == 422, r.text
    assert [c["name"] for c in (await client.get("/api/v1/campaigns")).json()["campaigns"]] \
        == ["spring"]


async def test_the_amd_deadline_is_a_campaign_setting_refused_naming_the_key(
        client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/campaigns", json={"name": "b2c", "caller_id": "+14155550100"})
    assert r.status_code == 201 and r.json()["amd_decide_by_ms"] == 2500, r.text
    r = await client.patch("/api/v1/campaigns/b2c", json={"amd_decide_by_ms": 3500})
    assert r.status_code == 200 and r.json()["amd_decide_by_ms"] == 3500, r.text
    for bad in (500, 30001):
        r = await client.patch("/api/v1/campaigns/b2c", json={"amd_decide_by_ms": bad})
        assert r.status_code == 422, r.text
        (err,) = r.json()["errors"]
        assert err["field"] == "amd_decide_by_ms"
        assert "0 (no deadline) or 1000-30000 ms" in err["message"]
    r = await client.patch("/api/v1/campaigns/b2c", json={"amd_decide_by_ms": 9000})
    assert r.status_code == 422 and "amd_decide_by_ms: 9000 is after amd_max_ms" in r.text
    assert (await client.get("/api/v1/campaigns/b2c")).json()["amd_decide_by_ms"] == 3500
    r = await client.post("/api/v1/campaigns", json={
        "name": "nodeadline", "caller_id": "+14155550100", "amd_decide_by_ms": 0})
    assert r.status_code == 201 and r.json()["amd_decide_by_ms"] == 0, r.text
    r = await client.post("/api/v1/campaigns", json={
        "name": "bad", "caller_id": "+14155550100", "amd_decide_by_ms": 999})
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["field"] == "amd_decide_by_ms"
    assert "0 (no deadline) or 1000-30000 ms" in err["message"]


async def test_a_campaign_row_made_with_the_model_defaults_can_be_updated(
        client: httpx.AsyncClient) -> None:
    """"spring" is made by the harness with the row's own defaults: they must pass the
    config's rules, or every update of such a campaign is refused whatever it sends (the
    row's amd_max_ms default was 3500, below the greeting budget + 1500 the config asks)."""
    r = await client.patch("/api/v1/campaigns/spring", json={"amd_decide_by_ms": 3000})
    assert r.status_code == 200, r.text
    assert r.json()["amd_max_ms"] == CampaignConfig.model_fields["amd_max_ms"].default
