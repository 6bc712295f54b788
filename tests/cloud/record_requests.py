"""Record the GraphQL requests the real `wandb.Api` sends for what runwise asks of it; writes requests.json.

    python tests/cloud/record_requests.py [-o tests/cloud/requests.json]

Starts the loopback server (tests/cloud/loopback.py) holding the `finished` fixture run (tests/data/wandb,
written offline by the real client, read by runwise's local reader), points the installed wandb at it
(WANDB_BASE_URL, a dummy 40-character key, wandb's directories in a temporary one) and makes the calls
runwise.parsers.wandb_cloud makes: Api(), default_entity, run(), scan_history(keys=[k], page_size=16),
runs(filters={"state": ...}). The file holds the wandb version, each request in order (operation and
variables) and each operation's query text: loopback.py answers exactly these. Run it again after a
wandb upgrade and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from runwise.config import RunwiseConfig  # noqa: E402
from runwise.parsers import wandb as local  # noqa: E402
from tests.cloud.loopback import CloudRun, Loopback  # noqa: E402

FIXTURE = HERE.parent / "data" / "wandb" / "offline-run-20261128_020038-fin00001"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=HERE / "requests.json")
    out = ap.parse_args().out
    run = local.load_file(FIXTURE, RunwiseConfig(FIXTURE.parents[1]))
    lb = Loopback(entity="me")
    lb.add(CloudRun.of(run, "me", "runwise-fixtures"))
    server = lb.start()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(WANDB_BASE_URL=lb.url, WANDB_API_KEY="x" * 40, WANDB_CONFIG_DIR=f"{tmp}/config",
                          WANDB_CACHE_DIR=f"{tmp}/cache", WANDB_DATA_DIR=f"{tmp}/data", WANDB_DIR=tmp)
        os.environ.pop("WANDB_MODE", None)
        import wandb

        api = wandb.Api(timeout=10)
        assert api.default_entity == "me"
        r = api.run("me/runwise-fixtures/fin00001")
        rows = list(r.scan_history(keys=["train/loss"], page_size=16, min_step=0))
        assert len(rows) == 60, len(rows)
        listed = list(api.runs("me/runwise-fixtures", filters={"state": "finished"}, order="-created_at",
                               per_page=50, lazy=False))
        assert [x.id for x in listed] == ["fin00001"]
    server.shutdown()
    server.server_close()
    record = {"wandb": wandb.__version__,
              "requests": [{"operation": op, "variables": v} for op, v in lb.log],
              "queries": lb.queries}
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{len(lb.log)} requests ({', '.join(sorted(lb.queries))}) -> {out}")


if __name__ == "__main__":
    main()
