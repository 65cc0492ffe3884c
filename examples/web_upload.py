"""A small web page to hand in an export: it lands in the inbox, and the sensor loads it.

    python examples/web_upload.py --port 8080          # then open http://127.0.0.1:8080/
    uvicorn --factory web_upload:create_app --app-dir examples --port 8080     # the same

Uploads go to ``POST /upload?name=<file name>`` with the file as the request body, which
is what the page's form sends (a few lines of script, no framework), and what this does::

    curl --data-binary @8_live_me_export.tar 'http://127.0.0.1:8080/upload?name=8_live_me_export.tar'

The body is streamed to a hidden temporary file in ``ETL_INBOX`` (the sensor skips names
starting with a dot) and renamed to its safe name only once complete, so the sensor never
sees half an upload. Refused: names that are not a plain file name of an export type
(``.tar``, ``.tar.gz``, ``.tgz``, ``.zip``, ``.json``, ``.json.gz``), and bodies over
``UPLOAD_MAX_BYTES`` (default 8 GiB; 413, and nothing is kept). An existing file is never
replaced: the new one gets `` (2)``, `` (3)``, ... before its suffix.

``GET /`` shows the files waiting in the inbox and the loads recorded in the warehouse's
``exports`` table; ``GET /status.json`` gives the same as JSON. It serves 127.0.0.1 by
default: put it behind a proxy with authentication before exposing it anywhere.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import secrets
import unicodedata
from pathlib import Path

import psycopg
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from etl_assets.etl.config import load_config
from etl_assets.etl.load.database import resolve_database_url

EXPORT_SUFFIXES = (".tar.gz", ".json.gz", ".tgz", ".tar", ".zip", ".json")
DEFAULT_MAX_BYTES = 8 << 30
MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")


class UploadRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def safe_upload_name(given: str | None) -> str:
    """The name the file is kept under, or :class:`UploadRefused` for a name that is no plain export file name."""
    if not given:
        raise UploadRefused(400, "a file name is needed (?name=...)")
    name = unicodedata.normalize("NFC", given).strip()
    if "/" in name or "\\" in name or "\x00" in name or name in (".", "..") or name.startswith("."):
        raise UploadRefused(400, "the name must be a plain file name, without folders")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UploadRefused(400, "the name holds control characters")
    suffix = next((s for s in EXPORT_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise UploadRefused(400, "not an export file: " + ", ".join(EXPORT_SUFFIXES))
    stem = _UNSAFE.sub("_", name[: -len(suffix)]).strip(" ._") or "export"
    return stem[: MAX_NAME_LENGTH - len(suffix)] + suffix.lower()


def _free_name(inbox: Path, name: str) -> Path:
    suffix = next(s for s in EXPORT_SUFFIXES if name.endswith(s))
    stem = name[: -len(suffix)]
    candidate, n = inbox / name, 1
    while candidate.exists():
        n += 1
        candidate = inbox / f"{stem} ({n}){suffix}"
    return candidate


def create_app(inbox: Path | None = None, database_url: str | None = None, schema: str | None = None,
               max_bytes: int | None = None) -> Starlette:
    config = load_config()
    inbox = Path(inbox or config.inbox_dir)
    schema = schema or config.schema_name
    limit = max_bytes or int(os.environ.get("UPLOAD_MAX_BYTES") or DEFAULT_MAX_BYTES)
    url_holder: dict[str, str] = {}

    def warehouse_url() -> str:
        if "url" not in url_holder:
            url_holder["url"] = database_url or resolve_database_url(config.database_url, home=config.home_dir)
        return url_holder["url"]

    async def upload(request: Request) -> Response:
        try:
            name = safe_upload_name(request.query_params.get("name"))
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise UploadRefused(413, f"larger than the limit of {limit} bytes")
            inbox.mkdir(parents=True, exist_ok=True)
            temporary = inbox / f".upload-{secrets.token_hex(8)}.partial"
            received = 0
            try:
                with open(temporary, "xb") as out:
                    async for chunk in request.stream():
                        received += len(chunk)
                        if received > limit:
                            raise UploadRefused(413, f"larger than the limit of {limit} bytes")
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if received == 0:
                    raise UploadRefused(400, "the upload is empty")
                target = _free_name(inbox, name)
                os.link(temporary, target)  # fails instead of replacing a file that appeared meanwhile
            finally:
                temporary.unlink(missing_ok=True)
        except UploadRefused as refused:
            return JSONResponse({"error": refused.reason}, status_code=refused.status)
        return JSONResponse({"saved": target.name, "bytes": received}, status_code=201)

    def status() -> dict:
        waiting = sorted(
            p.name for p in inbox.glob("*") if p.is_file() and not p.name.startswith(".")
        ) if inbox.is_dir() else []
        loads: list[dict] = []
        error = None
        try:
            with psycopg.connect(warehouse_url(), connect_timeout=5) as conn:
                conn.execute("SET TIME ZONE 'UTC'")
                if conn.execute("SELECT to_regclass(%s)", (f'"{schema}".exports',)).fetchone()[0]:
                    query = sql.SQL(
                        "SELECT file_name, conversations, messages, rejected, loaded_at FROM {} ORDER BY loaded_at DESC"
                    ).format(sql.Identifier(schema, "exports"))
                    for file_name, conversations, messages, rejected, loaded_at in conn.execute(query):
                        loads.append({"file_name": file_name, "conversations": conversations, "messages": messages,
                                      "rejected": rejected, "loaded_at": loaded_at.isoformat(timespec="seconds")})
        except psycopg.Error:
            error = "the warehouse cannot be reached"
        return {"inbox": waiting, "loads": loads, "error": error, "max_bytes": limit}

    async def status_json(request: Request) -> Response:
        return JSONResponse(status())

    async def page(request: Request) -> Response:
        state = status()
        rows = "".join(
            f"<tr><td>{html.escape(x['file_name'])}</td><td>{x['conversations']}</td><td>{x['messages']}</td>"
            f"<td>{x['rejected']}</td><td>{x['loaded_at']}</td></tr>"
            for x in state["loads"]
        ) or '<tr><td colspan="5">nothing loaded yet</td></tr>'
        waiting = "".join(f"<li>{html.escape(n)}</li>" for n in state["inbox"]) or "<li>nothing waiting</li>"
        problem = f"<p><strong>{html.escape(state['error'])}</strong></p>" if state["error"] else ""
        return HTMLResponse(_PAGE.format(rows=rows, waiting=waiting, problem=problem, limit=limit))

    return Starlette(routes=[
        Route("/", page), Route("/status.json", status_json), Route("/upload", upload, methods=["POST"]),
    ])


_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Skype export upload</title>
<style>body{{font:15px system-ui,sans-serif;max-width:50rem;margin:2rem auto}}td,th{{padding:.2rem .6rem;text-align:left}}</style>
</head><body><h1>Hand in a Skype export</h1>
<p><input type="file" id="file" accept=".tar,.tgz,.gz,.zip,.json"> <button id="send">Upload</button> <span id="said"></span></p>
<p>At most {limit} bytes. The file goes into the inbox; the sensor loads it within a minute.</p>
{problem}<h2>Waiting in the inbox</h2><ul>{waiting}</ul>
<h2>Loaded</h2><table><tr><th>File</th><th>Conversations</th><th>Messages</th><th>Rejected</th><th>Loaded at (UTC)</th></tr>{rows}</table>
<script>
document.getElementById("send").onclick = async () => {{
  const file = document.getElementById("file").files[0]; if (!file) return;
  const said = document.getElementById("said"); said.textContent = "uploading…";
  const r = await fetch("upload?name=" + encodeURIComponent(file.name), {{method: "POST", body: file}});
  const answer = await r.json(); said.textContent = r.ok ? "saved as " + answer.saved : answer.error;
}};
</script></body></html>
"""

def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
