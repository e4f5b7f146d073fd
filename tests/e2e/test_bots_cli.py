"""``herald bots``, run as a user runs it, against a running Herald."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from herald.config import Settings
from tests.e2e.test_cli import run
from tests.servers import running_herald

SID = "AC" + "2" * 32


async def test_bots_create_update_list_delete(settings: Settings, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"match": "exact", "pattern": "hours", "reply": "9 to 5"}]))
    async with running_herald(settings, run_workers=False) as herald:
        env = {"HERALD_URL": herald.url, "HERALD_API_KEY": herald.project.api_key}

        async def herald_cli(*args: str) -> tuple[int, str, str]:
            result = await asyncio.to_thread(run, ["bots", *args], env, tmp_path)
            return result.returncode, result.stdout, result.stderr

        code, out, err = await herald_cli(
            "create", "--name", "Support", "--account-sid", SID, "--auth-token", "tok",
            "--phone", "+15005550006", "--rules", str(rules), "--json",
        )  # fmt: skip
        assert code == 0, out + err
        bot = json.loads(out)
        assert bot["rules"][0]["reply"] == "9 to 5"
        assert bot["inboundWebhookUrl"].endswith(f"/webhooks/twilio/inbound/{bot['id']}")

        code, out, err = await herald_cli("update", bot["id"], "--default-reply", "Hi!")
        assert code == 0, out + err
        assert "updated" in out
        code, out, _ = await herald_cli("list", "--json")
        (listed,) = json.loads(out)["items"]
        assert (listed["name"], listed["defaultReply"]) == ("Support", "Hi!")
        code, out, _ = await herald_cli("list")
        assert "Support" in out

        code, _, err = await herald_cli("create", "--name", "x", "--account-sid", SID,
                                        "--auth-token", "t", "--phone", "555")  # fmt: skip
        assert code == 1
        assert "invalid_phone" in err

        code, out, err = await herald_cli("webchat", bot["id"])
        assert code == 0, out + err
        assert out.strip() == bot["webchat"]["snippet"]
        code, out, err = await herald_cli("webchat", bot["id"], "--visitor", "user-1", "--json")
        assert code == 0, out + err
        assert json.loads(out)["visitorId"] == "user-1"
        assert 'data-visitor="user-1"' in json.loads(out)["snippet"]
        code, _, err = await herald_cli("webchat", bot["id"], "--visitor", "no spaces")
        assert code == 1 and "invalid_visitor_id" in err

        code, out, err = await herald_cli("delete", bot["id"])
        assert code == 0, out + err
        code, out, _ = await herald_cli("list", "--json")
        assert json.loads(out)["count"] == 0
