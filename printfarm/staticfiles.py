"""WhiteNoise's static files, as middleware that also runs async.

WhiteNoiseMiddleware is sync-only; one sync-only middleware makes Django's ASGI handler run
every request of the process, async views included, through the one thread it keeps for
sync code. This wraps WhiteNoise's file index and responses in middleware that is both.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.whitenoise = WhiteNoiseMiddleware(get_response=None)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _static_response(self, request):
        # Index lookup (or a stat per request with autorefresh in DEBUG): no I/O worth a thread.
        wn = self.whitenoise
        if not request.path_info.startswith(wn.static_prefix):
            return None
        static_file = wn.find_file(request.path_info) if wn.autorefresh else wn.files.get(request.path_info)
        return None if static_file is None else wn.serve(static_file, request)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self._static_response(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._static_response(request) or await self.get_response(request)
