"""`POST /api/marks/<cam>`: a mark from outside over HTTP (behind the password like every route),
the same JSON as on NATS, kept by camctl.events.marks."""

from __future__ import annotations

from aiohttp import web

from camctl.errors import CamctlError
from camctl.events.marks import MarkIntake
from camctl.web.node import Handler

MARKS_PATH = "/api/marks/{cam}"


def mark_post(intake: MarkIntake) -> tuple[str, Handler]:
    """The route for build_app's posts: 201 with the mark, 400 with why it was refused, 404 for
    an unknown camera."""

    async def post(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        try:
            shown = await intake.add_soon(request.match_info["cam"], body, "http")
        except CamctlError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except (ValueError, OSError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(shown, status=201)

    return MARKS_PATH, post
