"""A restore's side of the store: is it empty, and taking a restore out again.

A restore is the import of a backup (`Imports`, the export format's item writes) into
a store that holds nothing. Because it held nothing, a restore stopped half way (Ctrl-C)
is undone exactly by deleting every item the backup writes; and a restore that could
not be undone is finished by running it again (the import's marker adds nothing twice).
"""

from __future__ import annotations

from typing import Any

from livecount.aws import store_requests
from livecount.aws.store_admin import Items, gather_limited
from livecount.aws.store_errors import answer
from livecount.core import imports
from livecount.core.imports import ImportPlan
from livecount.core.ledger import SITE


class Restores(Items):
    async def holds(self, import_id: str | None = None) -> str | None:
        """What the store holds, in words; None when it is empty, or holds nothing but
        an unfinished restore of this same backup (`import_id`), which a run finishes."""
        records = await self.partition(self.tables.index, "index", imports.IMPORTS)
        mine = [r for r in records if r["target"]["S"] == import_id]
        if any(r.get("state", {}).get("S") == "done" for r in mine):
            return "this backup, restored before"
        if len(records) > len(mine):
            return f"{len(records) - len(mine)} imports"
        if mine:
            return None
        if tracked := await self.store.tracked():
            return f"{len(tracked)} posts and pages"
        for table in (self.tables.timeline, self.tables.referrers):
            request = store_requests.query(table, "target", SITE, consistent=True)
            if (await answer(self.ddb.query(**request, Limit=1), table)).get("Items"):
                return "counted views"
        return None

    async def undo(self, plan: ImportPlan, import_id: str) -> int:
        """Delete every item a restore of `plan` writes (the store was empty before it);
        returns how many deletes were sent."""
        t = self.tables
        keys: list[tuple[str, dict[str, Any]]] = []
        for target in plan.counts:
            if target.kind == "post":
                keys += [
                    (t.writer, {"articleId": {"S": target.id}}),
                    (t.reader, {"articleId": {"S": target.id}}),
                ]
            else:
                keys.append((t.pages, {"pageName": {"S": target.id}}))
        for row in plan.rows:
            table, sort = (t.referrers, "host") if row.table == "referrer" else (t.timeline, "hour")
            keys.append((table, {"target": {"S": row.target}, sort: {"S": row.sort}}))
        keys.append((t.index, {"index": {"S": imports.IMPORTS}, "target": {"S": import_id}}))
        await gather_limited(
            answer(self.ddb.delete_item(TableName=table, Key=key), table) for table, key in keys
        )
        await gather_limited(self.index(target, present=False) for target in plan.counts)
        return len(keys) + len(plan.counts)
